# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's file as YAML text: what a YAML loader hides from the validation.

A loader turns an empty file into None, indistinguishable from "no description", and keeps
only the last value of a key written twice, silently. source_errors() reads the text's node
tree (PyYAML's composer: no tag is constructed, so !vault and !unsafe values need no secret)
and reports both in the validation's style, each duplicate named by its path, as
parse_description names fields: ``rooms[room-a].racks[a01].hosts[m1].address``.
"""

from __future__ import annotations

import yaml

__all__ = ["source_errors"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


def source_errors(text: str) -> list[str]:
    """Problems of the description's YAML text: an empty file, a key written twice in one mapping.

    Syntax errors are the loader's to report; text the composer cannot read gives no errors here.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    # "---" alone is a document holding null: as empty as no document at all
    if root is None or (isinstance(root, yaml.ScalarNode) and root.tag == _NULL_TAG):
        return [
            "(file): is empty (no YAML document, or only comments); fix: write the IDC description in it, "
            "starting with plugin: idcloud.platform.idc, cluster: and rooms:, or remove the file from the "
            "inventory sources"
        ]
    errors: list[str] = []
    _walk(root, "", errors, set())
    return errors


def _key_of(node) -> tuple[str, str] | None:
    # plain scalars are compared as resolved (tag and text), so 'a' and "a" are one key, 1 and "1" two
    if isinstance(node, yaml.ScalarNode) and node.tag != _MERGE_TAG:
        return node.tag, node.value
    return None


def _name_of(node) -> str | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key, value in node.value:
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "name"
            and isinstance(value, yaml.ScalarNode)
            and value.value
        ):
            return value.value
    return None


def _walk(node, path: str, errors: list[str], seen: set[int]) -> None:
    # aliases make the tree a graph: walk each node once
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            ident = _key_of(key)
            if ident is None:
                where = path or "(top level)"
            else:
                where = f"{path}.{key.value}" if path else key.value
            if ident is not None:
                line = key.start_mark.line + 1
                if ident in first_line:
                    errors.append(
                        f"{where}: key {key.value!r} is written twice in one mapping (lines {first_line[ident]} and {line}); "
                        "fix: keep one of them: YAML keeps only the last value and silently drops the first"
                    )
                else:
                    first_line[ident] = line
            _walk(value, where, errors, seen)
    elif isinstance(node, yaml.SequenceNode):
        names: list[str | None] = []
        for index, item in enumerate(node.value):
            name = _name_of(item)
            label = name if name is not None and name not in names else str(index)
            names.append(name)
            _walk(item, f"{path}[{label}]", errors, seen)
