# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's YAML text: empty files and keys written twice (plugins/module_utils/idc/source.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.idc.source import source_errors

REPO = Path(__file__).resolve().parents[2]
TWICE = "is written twice in one mapping"


@pytest.mark.parametrize(
    "path",
    [
        "inventories/lab/idc.yml",
        "inventories/sample/idc.yml",
        "molecule/etcd/idc.yml",
        "molecule/apiserver_lb/idc.yml",
        "molecule/node_tuning/idc.yml",
    ],
)
def test_shipped_descriptions_have_no_text_problems(path):
    assert source_errors((REPO / path).read_text()) == []


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n", "---\n", "--- ~\n", "null\n"])
def test_empty_documents(text):
    assert source_errors(text) == [
        "(file): is empty (no YAML document, or only comments); fix: write the IDC description in it, starting with "
        "plugin: idcloud.platform.idc, cluster: and rooms:, or remove the file from the inventory sources"
    ]


def test_a_top_level_key_twice():
    assert source_errors("plugin: idcloud.platform.idc\nrooms: []\nrooms: [x]\n") == [
        "rooms: key 'rooms' is written twice in one mapping (lines 2 and 3); fix: keep one of them: YAML keeps only "
        "the last value and silently drops the first"
    ]


def test_nested_keys_are_named_by_the_path_the_validation_uses():
    text = """\
rooms:
  - name: room-a
    racks:
      - name: a01
        tor: {as: 65101, as: 65102}
        hosts:
          - {name: m1, roles: [etcd]}
          - name: m1
            address: 10.10.1.11
            address: 10.10.1.12
"""
    errors = source_errors(text)
    assert [e.split(": key")[0] for e in errors] == [
        "rooms[room-a].racks[a01].tor.as",
        "rooms[room-a].racks[a01].hosts[1].address",
    ]
    assert "(lines 9 and 10)" in errors[1]


def test_quoted_and_plain_keys_are_one_key_but_a_number_is_not_a_string():
    assert TWICE in source_errors('vars: {a: 1, "a": 2}\n')[0]
    assert source_errors('vars: {1: x, "1": y}\n') == []


def test_anchors_merge_keys_and_tags_are_read_without_constructing_them():
    text = """\
base: &base {cpu: 4, memory_gib: 8}
hosts:
  - {<<: *base, name: a}
  - {<<: *base, name: b}
secret: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  3132
raw: !unsafe "{{ x }}"
"""
    assert source_errors(text) == []


def test_text_the_composer_cannot_read_is_left_to_the_loader():
    assert source_errors("a: [1, 2\n") == []
    assert source_errors("a: 1\n---\nb: 2\n") == []
