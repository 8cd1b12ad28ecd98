"""The collection's CSI driver (csi/idcloud_csi) against a real Ceph cluster, held to csi-sanity.

A lab of its own ("it-csi": three hosts c1-c3, each a mon, a mgr and an OSD host, c1 and c2 also
MDSs, like test_ceph_cluster.py) gets Ceph from playbooks/ceph.yml. On c1 the driver runs as one
process serving Identity, Controller and Node, with Debian 12's python3-grpcio and
python3-protobuf and stubs generated there by scripts/csi-stubs with Debian's protoc and
grpc_python_plugin (the versions of that runtime); its Debian dependencies (ceph-fuse, rbd-fuse,
e2fsprogs, xfsprogs, ...) come through the mirror's apt-cacher-ng. The lab's kernel has no rbd,
nbd or ceph module, so the driver runs with its FUSE paths: `--cephfs-mounter fuse` (ceph-fuse)
and `--rbd-mapper fuse` (rbd-fuse shows the image as a file, a loop device carries the
filesystem). The cephx user `client.csi` has the caps the driver needs, and reaches the driver
only as per-call secrets (csi-sanity's --csi.secrets), and as the driver's own keyring for
GetCapacity.

csi-sanity v5.6.0 (from the mirror: lab/artifacts/versions.yml, entry csi-sanity) runs three
times: cephfs, rbd with a filesystem, rbd as a raw block volume (--csi.testvolumeaccesstype=block).
Each must pass. On 2026-12-07 each ran 45 of 103 specs: 45 passed, 0 failed, 57 skipped, 1
pending, the same specs in all three runs; the test prints each skipped spec with csi-sanity's
reason. Every skip is a capability the driver does not advertise, and its reason as csi-sanity
gives it:

- snapshots, 21 specs: CreateSnapshot (6), ListSnapshots (7), GetSnapshot (3), DeleteSnapshot
  (3), CreateVolume from a snapshot (2): "... not supported" (no CREATE_DELETE_SNAPSHOT,
  LIST_SNAPSHOTS, GET_SNAPSHOT);
- cloning, 2: CreateVolume from a volume, "Volume Cloning not supported" (no CLONE_VOLUME);
- ControllerPublishVolume (7), ControllerUnpublishVolume (1) and "volume lifecycle" (2):
  "... not supported" (no PUBLISH_UNPUBLISH_VOLUME: RBD and CephFS need no controller attach;
  the node attach limit spec is one of the seven);
- ControllerModifyVolume and volume attribute classes, 8: "... not supported" (no
  MODIFY_VOLUME);
- volume group snapshots, 6: "GroupControllerService not supported";
- ListVolumes, 3: "ListVolumes not supported" (the driver keeps no list of its volumes);
- volume and storage health, 6: ControllerGetVolumeHealth (2), ControllerListVolumeHealth (1),
  NodeGetVolumeHealth (2), NodeGetStorageHealth (1), "... not supported";
- NodePublishVolume "with single node multi writer capability", 1: "Service does not have
  single node multi writer capability";
- pending (not skipped): "ListVolumes pagination should detect volumes added between pages ...",
  marked pending in csi-test itself.

Then what csi-sanity does not do: an RBD volume staged and published, a file written through
the mount, unpublished and unstaged, staged and published again and the file read back; the
same for a CephFS volume, whose quota is read from the subvolume (`ceph.quota.max_bytes` on its
path through ceph-fuse, and `ceph fs subvolume info`) and grows with ControllerExpandVolume.
"""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from lab_helpers import CACHE, ENV, REPO, lab, lab_net, one_rack_description, playbook, podman_exec, write_inventory

LAB = "it-csi"
HOSTS = ["c1", "c2", "c3"]
MDS = ["c1", "c2"]
OSD_GIB = 3
NODE = f"{LAB}-c1"
GIB = 1024**3
SANITY = ("csi-sanity", "v5.6.0")
OPT = "/opt/idcloud-csi"
ENDPOINT = "unix:///run/idcloud-csi/csi.sock"
PACKAGES = [
    "python3-grpcio",
    "python3-protobuf",
    "protobuf-compiler",
    "protobuf-compiler-grpc",
    "libprotobuf-dev",
    "ceph-fuse",
    "rbd-fuse",
    "fuse3",
    "e2fsprogs",
    "xfsprogs",
    "attr",
]
# the caps the driver's calls need: subvolumes through the mgr, images in pool rbd, ceph-fuse
CAPS = [
    "mon",
    "allow r",
    "mgr",
    "allow rw",
    "osd",
    "allow rwx pool=rbd, allow rw tag cephfs *=*",
    "mds",
    "allow rw",
]
pytestmark = pytest.mark.storage


def description():
    desc = one_rack_description(
        LAB,
        lab_net(LAB),
        {
            h: ["ceph_mon", "ceph_mgr", "ceph_osd"]
            + (["ceph_mds"] if h in MDS else [])
            + (["etcd"] if h == "c1" else [])
            for h in HOSTS
        },
        tor_as=65321,
        registry=False,
    )
    desc["ceph"] = {"pool_size": 3, "failure_domain": "host"}
    for host in desc["rooms"][0]["racks"][0]["hosts"]:
        host["osd_devices"] = [{"file": f"/var/lib/ceph-osd/{host['name']}-0.img", "size_gib": OSD_GIB}]
    return desc


def on_node(*cmd, check=True, timeout=None):
    proc = subprocess.run(["podman", "exec", NODE, *cmd], env=ENV, text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} on {NODE} failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sh(script, **kw):
    return on_node("bash", "-ec", script, **kw)


def csi(method, request=None, check=True):
    """One CSI call through the driver's own client on c1: the response, or {code, message}."""
    proc = on_node(
        "env",
        f"PYTHONPATH={OPT}",
        f"IDCLOUD_CSI_STUBS={OPT}/stubs",
        "python3",
        "-m",
        "idcloud_csi.client",
        "--endpoint",
        ENDPOINT,
        method,
        json.dumps(request or {}),
        check=False,
    )
    if proc.returncode != 0:
        error = json.loads(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else {"message": proc.stdout}
        assert not check, f"{method} failed: {error}"
        return error
    return json.loads(proc.stdout)


def podman_cp(src, dest):
    subprocess.run(["podman", "cp", src, f"{NODE}:{dest}"], env=ENV, check=True)


def ceph(*args):
    return json.loads(podman_exec(NODE, "ceph", *args, "--format", "json").stdout)


@pytest.fixture(scope="module")
def idc(tmp_path_factory):
    assert shutil.which("podman"), "podman is not installed: run scripts/bootstrap (this test never skips)"
    sanity = os.path.join(CACHE, "artifacts", *SANITY, "bin", "linux", "amd64", "csi-sanity")
    assert os.path.exists(sanity), (
        f"{sanity} is missing: build it with `.venv/bin/python lab/artifacts/build csi-sanity` (this test never skips)"
    )
    path = write_inventory(str(tmp_path_factory.mktemp(LAB)), description())
    lab(path, "down")
    shutil.rmtree(os.path.expanduser(f"~/.idcloud/{LAB}/ceph"), ignore_errors=True)
    try:
        lab(path, "up")
        yield path
    finally:
        lab(path, "down")


def converge_ceph(idc, logs):
    start = time.monotonic()
    playbook(idc, "ceph.yml", log=logs / "ceph.log")
    print(f"ceph.yml converged in {time.monotonic() - start:.0f} s")


def install_driver():
    """The driver, its Debian dependencies, stubs made on the host, csi-sanity from the mirror,
    and the cephx user client.csi on c1; the user's key."""
    sh(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {' '.join(PACKAGES)} >/dev/null")
    sh(f"rm -rf {OPT} && mkdir -p {OPT}/proto")
    podman_cp(os.path.join(REPO, "csi", "idcloud_csi"), f"{OPT}/idcloud_csi")
    podman_cp(os.path.join(REPO, "scripts", "csi-stubs"), f"{OPT}/csi-stubs")
    protos = subprocess.run(
        [os.path.join(REPO, "scripts", "csi-stubs"), "protos"], check=True, capture_output=True, text=True
    ).stdout.strip()
    for name in os.listdir(protos):
        podman_cp(os.path.join(protos, name), f"{OPT}/proto/{name}")
    # the stubs made on the host by Debian's protoc: the versions of Debian's python3-protobuf
    generated = sh(
        f"python3 {OPT}/csi-stubs generate --toolchain protoc --proto-dir {OPT}/proto --out {OPT}/stubs"
    ).stdout.strip()
    assert generated == f"{OPT}/stubs", generated

    # the mirror serves csi-sanity like every artifact; its sum is the cache's
    with open(os.path.join(CACHE, "artifacts", *SANITY, "SHA256SUMS")) as f:
        digest = re.search(r"^(\S+)\s+bin/linux/amd64/csi-sanity$", f.read(), re.M)[1]
    mirror = f"http://10.{lab_net(LAB)}.1.250"
    sh(
        f"curl -fsS -o /usr/local/bin/csi-sanity {mirror}/{SANITY[0]}/{SANITY[1]}/bin/linux/amd64/csi-sanity && "
        f"echo '{digest}  /usr/local/bin/csi-sanity' | sha256sum -c --quiet && chmod 755 /usr/local/bin/csi-sanity"
    )
    podman_exec(NODE, "ceph", "auth", "get-or-create", "client.csi", *CAPS)
    sh("ceph auth get client.csi > /etc/ceph/ceph.client.csi.keyring && chmod 600 /etc/ceph/ceph.client.csi.keyring")
    return podman_exec(NODE, "ceph", "auth", "get-key", "client.csi").stdout.strip()


def start_driver():
    """The driver under systemd on c1 (a transient unit), until its /healthz answers."""
    sh(
        "systemctl stop idcloud-csi 2>/dev/null || true; systemctl reset-failed idcloud-csi 2>/dev/null || true; "
        f"systemd-run --unit idcloud-csi --setenv=PYTHONPATH={OPT} --setenv=IDCLOUD_CSI_STUBS={OPT}/stubs "
        f"python3 -m idcloud_csi --endpoint {ENDPOINT} --node-id c1 --rack k1 "
        "--rbd-mapper fuse --cephfs-mounter fuse --default-fs-type xfs "
        "--ceph-id csi --ceph-keyring /etc/ceph/ceph.client.csi.keyring "
        "--health-port 9808 --log-level DEBUG"
    )
    deadline = time.monotonic() + 60
    while sh("curl -fsS http://127.0.0.1:9808/healthz", check=False).returncode != 0:
        assert time.monotonic() < deadline, sh("journalctl -u idcloud-csi --no-pager | tail -50").stdout
        time.sleep(1)


@pytest.fixture(scope="module")
def driver(idc, tmp_path_factory):
    """Ceph converged, the driver installed and running on c1 under systemd; its key."""
    logs = tmp_path_factory.mktemp("csi-logs")
    converge_ceph(idc, logs)
    start = time.monotonic()
    key = install_driver()
    start_driver()
    print(f"driver installed and healthy in {time.monotonic() - start:.0f} s")
    yield {"key": key, "secrets": {"userID": "csi", "userKey": key}, "logs": logs}
    journal = sh("journalctl -u idcloud-csi --no-pager", check=False).stdout
    (logs / "driver.log").write_text(journal)
    print(f"driver log: {logs / 'driver.log'}")
    assert key not in journal, "the cephx key is in the driver's log"
    sh("systemctl stop idcloud-csi", check=False)


SUMMARY = re.compile(r"(SUCCESS|FAIL)! -- (\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped")


def run_sanity(driver, name, params, *extra):
    """csi-sanity with these StorageClass parameters; (summary, [(skipped spec, reason)], failures, output)."""
    secrets = {
        f"{call}Secret": driver["secrets"]
        for call in (
            "CreateVolume",
            "DeleteVolume",
            "ControllerValidateVolumeCapabilities",
            "ControllerExpandVolume",
            "NodeStageVolume",
            "NodePublishVolume",
            "NodeExpandVolume",
        )
    }
    work = f"/root/sanity-{name}"
    sh(f"rm -rf {work} && mkdir -p {work} && chmod 700 {work}")
    # JSON is YAML: csi-sanity reads both files with a YAML parser
    subprocess.run(
        ["podman", "exec", "-i", NODE, "bash", "-c", f"cat > {work}/secrets.yaml"],
        input=json.dumps(secrets),
        text=True,
        env=ENV,
        check=True,
    )
    subprocess.run(
        ["podman", "exec", "-i", NODE, "bash", "-c", f"cat > {work}/params.yaml"],
        input=json.dumps(params),
        text=True,
        env=ENV,
        check=True,
    )
    start = time.monotonic()
    proc = on_node(
        "csi-sanity",
        f"--csi.endpoint={ENDPOINT}",
        f"--csi.secrets={work}/secrets.yaml",
        f"--csi.testvolumeparameters={work}/params.yaml",
        f"--csi.testvolumesize={GIB}",
        f"--csi.testvolumeexpandsize={2 * GIB}",
        f"--csi.stagingdir={work}/staging",
        f"--csi.mountdir={work}/mount",
        f"--ginkgo.json-report={work}/report.json",
        "--ginkgo.no-color",
        *extra,
        check=False,
        timeout=3600,
    )
    elapsed = time.monotonic() - start
    out = proc.stdout + proc.stderr
    (driver["logs"] / f"sanity-{name}.log").write_text(out)
    report = json.loads(on_node("cat", f"{work}/report.json").stdout)
    skipped, failures = [], []
    for suite in report:
        for spec in suite.get("SpecReports") or []:
            text = " ".join([*spec.get("ContainerHierarchyTexts", []), spec.get("LeafNodeText", "")]).strip()
            if spec["State"] == "skipped":
                skipped.append((text, (spec.get("Failure") or {}).get("Message", "").strip()))
            elif spec["State"] == "pending":
                # marked pending upstream (never run by any driver): listed, not failed
                skipped.append((text, "pending upstream (PIt in csi-test)"))
            elif spec["State"] != "passed":
                failures.append((text, (spec.get("Failure") or {}).get("Message", "")[:2000]))
    summary = SUMMARY.search(out)
    print(f"\ncsi-sanity {name}: {summary.group(0) if summary else 'no summary'} in {elapsed:.0f} s")
    for text, reason in skipped:
        print(f"  skipped: {text} -- {reason}")
    return summary, skipped, failures, out


def assert_passed(result):
    summary, _, failures, out = result
    assert summary, f"csi-sanity printed no summary:\n{out[-5000:]}"
    assert not failures and summary.group(1) == "SUCCESS" and summary.group(3) == "0", (
        "\n\n".join(f"{text}\n{message}" for text, message in failures) or out[-5000:]
    )


def test_csi_sanity_cephfs(driver):
    assert_passed(run_sanity(driver, "cephfs", {"backend": "cephfs", "fsName": "cephfs"}))


def test_csi_sanity_rbd_filesystem_through_rbd_fuse(driver):
    assert_passed(run_sanity(driver, "rbd", {"backend": "rbd", "pool": "rbd", "mapper": "fuse"}))


def test_csi_sanity_rbd_raw_block(driver):
    result = run_sanity(
        driver, "rbd-block", {"backend": "rbd", "pool": "rbd", "mapper": "fuse"}, "--csi.testvolumeaccesstype=block"
    )
    assert_passed(result)


def mount_cap(mode="SINGLE_NODE_WRITER", fs_type=""):
    return {"mount": {"fs_type": fs_type}, "access_mode": {"mode": mode}}


def stage_and_publish(vid, context, cap, secrets, base):
    csi(
        "NodeStageVolume",
        {
            "volume_id": vid,
            "staging_target_path": f"{base}/staging",
            "volume_capability": cap,
            "volume_context": context,
            "secrets": secrets,
        },
    )
    csi(
        "NodePublishVolume",
        {
            "volume_id": vid,
            "staging_target_path": f"{base}/staging",
            "target_path": f"{base}/pod/volume",
            "volume_capability": cap,
            "volume_context": context,
        },
    )
    return f"{base}/pod/volume"


def unpublish_and_unstage(vid, base):
    csi("NodeUnpublishVolume", {"volume_id": vid, "target_path": f"{base}/pod/volume"})
    csi("NodeUnstageVolume", {"volume_id": vid, "staging_target_path": f"{base}/staging"})


def create_rbd(name, cap, secrets):
    volume = csi(
        "CreateVolume",
        {
            "name": name,
            "capacity_range": {"required_bytes": GIB},
            "volume_capabilities": [cap],
            "parameters": {"backend": "rbd", "pool": "rbd", "mapper": "fuse"},
            "secrets": secrets,
        },
    )["volume"]
    return volume["volume_id"], volume.get("volume_context", {})


def fs_size(path):
    return int(sh(f"df -B1 --output=size {path} | tail -1").stdout)


def test_rbd_round_trip_keeps_a_file_and_grows(driver):
    """ext4 through rbd-fuse and a loop device: a file survives unstage and restage. Growth:
    online where the kernel allows it; the lab's hosts lack CAP_SYS_RESOURCE (as this VM does),
    which an online ext4 resize needs, so there NodeExpandVolume says so and the next stage
    grows the filesystem offline."""
    secrets = driver["secrets"]
    base = "/var/lib/it-csi/rbd"
    sh(f"rm -rf {base} && mkdir -p {base}/staging {base}/pod")
    cap = mount_cap(fs_type="ext4")
    vid, context = create_rbd("round-trip-rbd", cap, secrets)
    image = json.loads(podman_exec(NODE, "rbd", "info", f"rbd/{context['image']}", "--format", "json").stdout)
    assert image["size"] == GIB
    try:
        path = stage_and_publish(vid, context, cap, secrets, base)
        mount = sh(f"findmnt -n -o SOURCE,FSTYPE --target {base}/staging").stdout.split()
        assert mount[0].startswith("/dev/loop") and mount[1] == "ext4", mount
        sh(f"echo written-through-rbd-fuse > {path}/hello && sync")
        unpublish_and_unstage(vid, base)
        assert sh(f"findmnt {base}/staging", check=False).returncode != 0
        assert "rbd-fuse" not in sh("findmnt -n -o FSTYPE -l", check=False).stdout

        path = stage_and_publish(vid, context, cap, secrets, base)
        assert sh(f"cat {path}/hello").stdout.strip() == "written-through-rbd-fuse"
        grown = csi(
            "ControllerExpandVolume",
            {"volume_id": vid, "capacity_range": {"required_bytes": 2 * GIB}, "secrets": secrets},
        )
        assert int(grown["capacity_bytes"]) == 2 * GIB and grown["node_expansion_required"]
        request = {"volume_id": vid, "volume_path": path, "capacity_range": {"required_bytes": 2 * GIB}}
        node = csi("NodeExpandVolume", request, check=False)
        if "code" in node:
            assert node["code"] == "FAILED_PRECONDITION" and "CAP_SYS_RESOURCE" in node["message"], node
            print(f"rbd ext4 online growth refused as expected here: {node['message']}")
            unpublish_and_unstage(vid, base)
            path = stage_and_publish(vid, context, cap, secrets, base)
        else:
            assert int(node["capacity_bytes"]) == 2 * GIB
        size = fs_size(path)
        assert size > 1.9 * GIB, size
        stats = csi("NodeGetVolumeStats", {"volume_id": vid, "volume_path": path})
        by_unit = {u["unit"]: u for u in stats["usage"]}
        assert int(by_unit["BYTES"]["total"]) == size and int(by_unit["INODES"]["total"]) > 0
        assert sh(f"cat {path}/hello").stdout.strip() == "written-through-rbd-fuse"
        print(f"rbd ext4 round trip: file read back after re-stage; grown to {size} bytes")
    finally:
        unpublish_and_unstage(vid, base)
        csi("DeleteVolume", {"volume_id": vid, "secrets": secrets})
    assert podman_exec(NODE, "rbd", "info", f"rbd/{context['image']}", check=False).returncode != 0


def test_rbd_xfs_grows_online(driver):
    secrets = driver["secrets"]
    base = "/var/lib/it-csi/rbd-xfs"
    sh(f"rm -rf {base} && mkdir -p {base}/staging {base}/pod")
    cap = mount_cap(fs_type="xfs")
    vid, context = create_rbd("grow-rbd-xfs", cap, secrets)
    try:
        path = stage_and_publish(vid, context, cap, secrets, base)
        assert sh(f"findmnt -n -o FSTYPE --target {base}/staging").stdout.strip() == "xfs"
        before = fs_size(path)
        sh(f"echo before-growth > {path}/hello")
        csi(
            "ControllerExpandVolume",
            {"volume_id": vid, "capacity_range": {"required_bytes": 2 * GIB}, "secrets": secrets},
        )
        node = csi(
            "NodeExpandVolume", {"volume_id": vid, "volume_path": path, "capacity_range": {"required_bytes": 2 * GIB}}
        )
        assert int(node["capacity_bytes"]) == 2 * GIB
        after = fs_size(path)
        assert after > before + 0.9 * GIB, (before, after)
        assert sh(f"cat {path}/hello").stdout.strip() == "before-growth"
        print(f"rbd xfs grown online: {before} -> {after} bytes")
    finally:
        unpublish_and_unstage(vid, base)
        csi("DeleteVolume", {"volume_id": vid, "secrets": secrets})


def test_cephfs_round_trip_keeps_a_file_and_its_quota_follows(driver):
    secrets = driver["secrets"]
    base = "/var/lib/it-csi/cephfs"
    sh(f"rm -rf {base} && mkdir -p {base}/staging {base}/pod")
    cap = mount_cap(mode="MULTI_NODE_MULTI_WRITER")
    volume = csi(
        "CreateVolume",
        {
            "name": "round-trip-cephfs",
            "capacity_range": {"required_bytes": GIB},
            "volume_capabilities": [cap],
            "parameters": {"backend": "cephfs", "fsName": "cephfs"},
            "secrets": secrets,
        },
    )["volume"]
    vid, context = volume["volume_id"], volume.get("volume_context", {})
    name = vid.split(":")[-1]
    info = ceph("fs", "subvolume", "info", "cephfs", name, "--group_name", "csi")
    assert info["bytes_quota"] == GIB and context["subvolumePath"] == info["path"]
    try:
        path = stage_and_publish(vid, context, cap, secrets, base)
        assert sh(f"findmnt -n -o FSTYPE --target {base}/staging").stdout.strip() == "fuse.ceph-fuse"
        quota = sh(f"getfattr --only-values -n ceph.quota.max_bytes {base}/staging").stdout.strip()
        assert int(quota) == GIB
        sh(f"echo written-through-ceph-fuse > {path}/hello && sync")
        unpublish_and_unstage(vid, base)
        path = stage_and_publish(vid, context, cap, secrets, base)
        assert sh(f"cat {path}/hello").stdout.strip() == "written-through-ceph-fuse"

        grown = csi(
            "ControllerExpandVolume",
            {"volume_id": vid, "capacity_range": {"required_bytes": 3 * GIB}, "secrets": secrets},
        )
        assert int(grown["capacity_bytes"]) == 3 * GIB and not grown.get("node_expansion_required")
        assert ceph("fs", "subvolume", "info", "cephfs", name, "--group_name", "csi")["bytes_quota"] == 3 * GIB

        # the mounted client hears of the new quota from the MDS: give it a moment
        def seen():
            quota = sh(f"getfattr --only-values -n ceph.quota.max_bytes {base}/staging").stdout.strip()
            stats = csi("NodeGetVolumeStats", {"volume_id": vid, "volume_path": path})
            return int(quota), int({u["unit"]: u for u in stats["usage"]}["BYTES"]["total"])

        deadline = time.monotonic() + 60
        while seen() != (3 * GIB, 3 * GIB) and time.monotonic() < deadline:
            time.sleep(2)
        # ceph-fuse reports the quota as the file system's size (client_quota_df)
        assert seen() == (3 * GIB, 3 * GIB), seen()
        print("cephfs round trip: file read back after re-stage; quota 1 GiB -> 3 GiB, statvfs shows it")
    finally:
        unpublish_and_unstage(vid, base)
        csi("DeleteVolume", {"volume_id": vid, "secrets": secrets})
    assert podman_exec(
        NODE, "ceph", "fs", "subvolume", "info", "cephfs", name, "--group_name", "csi", check=False
    ).returncode


def test_capacity_registration_socket_and_health(driver):
    capacity = csi("GetCapacity", {"parameters": {"backend": "rbd", "pool": "rbd"}})
    df = {p["name"]: p for p in ceph("df")["pools"]}
    assert abs(int(capacity["available_capacity"]) - df["rbd"]["stats"]["max_avail"]) < GIB
    sock = "/var/lib/kubelet/plugins_registry/csi.idcloud.io-reg.sock"
    assert sh(f"test -S {sock}", check=False).returncode == 0
    # what the kubelet's plugin watcher asks on that socket
    ask = (
        "import grpc, pluginregistration_pb2 as p, pluginregistration_pb2_grpc as g; "
        f"i = g.RegistrationStub(grpc.insecure_channel('unix://{sock}')).GetInfo(p.InfoRequest(), timeout=10); "
        "print(i.type, i.name, i.endpoint, ','.join(i.supported_versions))"
    )
    info = on_node("env", f"PYTHONPATH={OPT}/stubs", "python3", "-c", ask).stdout.split()
    assert info == ["CSIPlugin", "csi.idcloud.io", ENDPOINT[len("unix://") :], "1.0.0"], info
    assert sh("curl -fsS http://127.0.0.1:9808/healthz").stdout.strip() == "ok"
    info = csi("NodeGetInfo")
    assert info["node_id"] == "c1" and info["accessible_topology"]["segments"] == {"topology.idcloud.io/rack": "k1"}
