"""The lab registry's images: tags pinned once, and layers that are the same bytes every build."""
import importlib.machinery
import importlib.util
import io
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def load_builder():
    loader = importlib.machinery.SourceFileLoader("lab_images_build", str(REPO / "lab" / "registry-images" / "build"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_lab_group_vars_name_the_pinned_tags():
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "images.yml").read_text())
    group_vars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "images.yml").read_text())
    assert group_vars["container_runtime_sandbox_image"] == (
        f"{{{{ idcloud_registry }}}}/{images['pause']['repository']}:{images['pause']['tag']}")
    assert group_vars["workload_image"] == (
        f"{{{{ idcloud_registry }}}}/{images['web']['repository']}:{images['web']['tag']}")
    assert group_vars["calico_node_image"] == (
        f"{{{{ idcloud_registry }}}}/{images['calico-node']['repository']}:{images['calico-node']['tag']}")


def test_lab_description_names_the_registry_on_the_mirror():
    desc = yaml.safe_load((REPO / "inventories" / "lab" / "idc.yml").read_text())
    assert desc["vars"]["idcloud_registry"] == f"{desc['lab']['mirror']['address']}:5000"


def test_layer_is_deterministic_with_parents_owners_and_no_times():
    build = load_builder()

    def layer():
        lay = build.Layer()
        lay.file("usr/bin/tool", b"#!/bin/sh\n", mode=0o755)
        lay.symlink("bin/sh", "/bin/busybox")
        lay.dir("www", uid=65534, gid=65534)
        return lay.tar()

    first = layer()
    assert first == layer()
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    assert {"usr", "usr/bin", "bin"} <= set(members)
    assert all(m.mtime == 0 and m.uname == "" for m in members.values())
    assert (members["www"].uid, members["www"].gid) == (65534, 65534)
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/bin/tool"].mode == 0o755


def test_cache_key_follows_the_sources(tmp_path, monkeypatch):
    build = load_builder()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.go").write_text("package main\n")
    monkeypatch.setattr(build, "HERE", str(tmp_path))
    spec = {"source": "src", "tag": "1", "repository": "x/y"}
    before = build.content_hash("p", spec)
    assert build.content_hash("p", spec) == before
    (tmp_path / "src" / "main.go").write_text("package main // changed\n")
    assert build.content_hash("p", spec) != before
    assert build.content_hash("p", dict(spec, tag="2")) != build.content_hash("p", spec)
