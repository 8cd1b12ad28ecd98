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


# the group variable that names each image of images.yml for the roles
IMAGE_VARS = {
    "pause": "container_runtime_sandbox_image",
    "web": "workload_image",
    "calico-node": "calico_node_image",
    "calico-kube-controllers": "calico_kube_controllers_image",
    "coredns": "cluster_addons_coredns_image",
    "metrics-server": "cluster_addons_metrics_server_image",
    "filebeat": "log_shipper_image",
    "csi-provisioner": "csi_ceph_provisioner_image",
    "csi-resizer": "csi_ceph_resizer_image",
    "csi-ceph": "csi_ceph_image",
}


def test_lab_group_vars_name_the_pinned_tags():
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "images.yml").read_text())
    group_vars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all" / "images.yml").read_text())
    assert set(images) == set(IMAGE_VARS), "every image needs its group variable here and in group_vars"
    for name, var in IMAGE_VARS.items():
        assert group_vars[var] == f"{{{{ idcloud_registry }}}}/{images[name]['repository']}:{images[name]['tag']}", name


def test_static_images_take_binaries_from_the_artifacts():
    build = load_builder()
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "images.yml").read_text())
    versions = yaml.safe_load((REPO / "lab" / "artifacts" / "versions.yml").read_text())
    static = {n: s for n, s in images.items() if s["source"] == "static"}
    assert static
    for name, spec in static.items():
        assert spec["source"] in build.BUILDERS
        binaries = versions[spec["artifact"]["name"]]["binaries"]
        for rel in spec["artifact"]["files"]:
            assert rel.startswith("bin/linux/amd64/") and rel.rsplit("/", 1)[1] in binaries, (name, rel)
        assert spec["entrypoint"][0].startswith("/usr/bin/")
        assert spec["entrypoint"][0].rsplit("/", 1)[1] in [f.rsplit("/", 1)[1] for f in spec["artifact"]["files"]]


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


def test_self_signed_tls_puts_a_matching_localhost_pair_in_the_image(tmp_path):
    """agnhost's /localhost.crt and /localhost.key (the StatefulSet and lifecycle-hook tests):
    a certificate for localhost and the key it was made with, both in the layer."""
    import subprocess

    build = load_builder()
    conformance = yaml.safe_load((REPO / "lab" / "registry-images" / "conformance.yml").read_text())
    spec = conformance["e2e-agnhost"]
    assert spec["self_signed_tls"] == {"cn": "localhost", "cert": "localhost.crt", "key": "localhost.key"}
    lay = build.Layer()
    build.image_files(spec, lay, str(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(lay.tar())) as tar:
        cert = tar.extractfile("localhost.crt").read()
        key = tar.extractfile("localhost.key").read()
    (tmp_path / "c").write_bytes(cert)
    (tmp_path / "k").write_bytes(key)
    text = subprocess.run(
        ["openssl", "x509", "-in", tmp_path / "c", "-noout", "-subject", "-ext", "subjectAltName"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "CN = localhost" in text and "DNS:localhost" in text, text
    pub_cert = subprocess.run(["openssl", "x509", "-in", tmp_path / "c", "-noout", "-pubkey"], capture_output=True)
    pub_key = subprocess.run(["openssl", "pkey", "-in", tmp_path / "k", "-pubout"], capture_output=True)
    assert pub_cert.returncode == 0 and pub_cert.stdout == pub_key.stdout
    # the inherited tag carries the same pair
    assert conformance["e2e-agnhost-prev"]["self_signed_tls"] == spec["self_signed_tls"]


def test_an_image_of_the_repositorys_code_pins_its_sources_digest(tmp_path, monkeypatch):
    """The driver's image records the digest of its sources beside its tag: a change of the
    driver without a new tag is refused (a node keeps an image by its tag)."""
    build = load_builder()
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "images.yml").read_text())
    spec = images["csi-ceph"]
    assert spec["sources_digest"] == build.sources_digest(spec), (
        "csi/idcloud_csi or scripts/csi-stubs changed: bump the csi-ceph tag (and csi_ceph_image) and set "
        f"sources_digest: {build.sources_digest(spec)}"
    )
    build.check_sources_pinned("csi-ceph", spec)
    # a changed source changes the digest, and the builder refuses it
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(build, "REPO", str(tmp_path))
    entry = {"tag": "1", "sources": ["pkg"]}
    entry["sources_digest"] = build.sources_digest(entry)
    build.check_sources_pinned("x", entry)
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    try:
        build.check_sources_pinned("x", entry)
    except SystemExit as exc:
        assert "bump the tag" in str(exc) and entry["sources_digest"] not in str(exc).split("set sources_digest: ")[1]
    else:
        raise AssertionError("a changed source passed with the old digest")
    # compiled files do not count
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    entry["sources_digest"] = build.sources_digest(entry)
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\1")
    build.check_sources_pinned("x", entry)
