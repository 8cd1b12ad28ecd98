"""The CSI driver's calls against fakes of the ceph/rbd command lines and the node's mounts:
idempotence by name, the codes the spec names, what runs on a node, and that the cephx key is
never on a command line, in a log line or in an error."""

import logging
import os

import pytest

from csi_fakes import KEY, SECRETS, FakeRunner
from idcloud_csi.driver import Driver
from idcloud_csi.errors import CsiError
from idcloud_csi.mounts import Mounter
from idcloud_csi.server import Config
from idcloud_csi.volumes import GIB, MIB

RBD = {"backend": "rbd", "pool": "rbd"}
CEPHFS = {"backend": "cephfs", "fsName": "cephfs"}


def cap(access_type="mount", mode="SINGLE_NODE_WRITER", fs_type=None):
    return {"access_type": access_type, "access_mode": mode, "fs_type": fs_type, "mount_flags": []}


@pytest.fixture
def runner(tmp_path):
    return FakeRunner(tmp_path)


@pytest.fixture
def driver(tmp_path, runner):
    config = Config(
        mon_host="10.0.0.1",
        rbd_mapper="fuse",
        cephfs_mounter="fuse",
        state_dir=str(tmp_path / "state"),
        work_dir=str(tmp_path / "work"),
        node_id="n1",
        rack="r1",
    )
    return Driver(config, runner, Mounter(runner, str(runner.mountinfo)))


def code_of(call, *args):
    with pytest.raises(CsiError) as err:
        call(*args)
    return err.value.code


def ceph_commands(runner):
    return [c for c in runner.commands if c[0] in ("ceph", "rbd")]


# --- controller --------------------------------------------------------------------------
def test_rbd_create_is_idempotent_by_name(driver, runner):
    first = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)
    assert first["volume_id"] == "v1:rbd:rbd::csi-vol-pvc-1" and first["capacity_bytes"] == GIB
    assert runner.cluster.images == {"rbd/csi-vol-pvc-1": GIB}
    create = [c for c in runner.commands if "create" in c]
    assert create and create[0][-5:] == ["--size", f"{GIB}B", "--image-feature", "layering", "rbd/csi-vol-pvc-1"]
    again = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)
    assert again == first
    assert len([c for c in runner.commands if "create" in c]) == 1


def test_same_name_other_size_already_exists(driver):
    driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)
    assert code_of(driver.create_volume, "pvc-1", 2 * GIB, 0, [cap()], RBD, SECRETS) == "ALREADY_EXISTS"
    driver.create_volume("fs-1", GIB, 0, [cap()], CEPHFS, SECRETS)
    assert code_of(driver.create_volume, "fs-1", 3 * GIB, 0, [cap()], CEPHFS, SECRETS) == "ALREADY_EXISTS"
    # a range the existing size is in is the same volume
    assert driver.create_volume("pvc-1", MIB, 2 * GIB, [cap()], RBD, SECRETS)["capacity_bytes"] == GIB


def test_image_features_are_checked_and_passed(driver, runner):
    params = dict(RBD, imageFeatures="layering,exclusive-lock,object-map")
    driver.create_volume("pvc-f", GIB, 0, [cap()], params, SECRETS)
    create = next(c for c in runner.commands if "create" in c)
    assert [create[i + 1] for i, w in enumerate(create) if w == "--image-feature"] == [
        "layering",
        "exclusive-lock",
        "object-map",
    ]
    bad = dict(RBD, imageFeatures="layering,fast-diff")
    assert code_of(driver.create_volume, "pvc-g", GIB, 0, [cap()], bad, SECRETS) == "INVALID_ARGUMENT"


def test_cephfs_create_makes_the_group_and_a_subvolume_with_its_quota(driver, runner):
    out = driver.create_volume("pvc-2", 2 * GIB, 0, [cap(mode="MULTI_NODE_MULTI_WRITER")], CEPHFS, SECRETS)
    assert out["volume_id"] == "v1:cephfs:cephfs:csi:csi-vol-pvc-2"
    assert runner.cluster.subvolumes == {("cephfs", "csi", "csi-vol-pvc-2"): 2 * GIB}
    assert ("cephfs", "csi") in runner.cluster.groups
    assert out["volume_context"] == {
        "backend": "cephfs",
        "fsName": "cephfs",
        "subvolumePath": "/volumes/csi/csi-vol-pvc-2/0f0f",
    }


@pytest.mark.parametrize(
    "name,caps,params,code",
    [
        ("", [cap()], RBD, "INVALID_ARGUMENT"),
        ("v", [], RBD, "INVALID_ARGUMENT"),
        ("v", [cap()], {"pool": "rbd"}, "INVALID_ARGUMENT"),  # no backend
        ("v", [cap()], {"backend": "rbd"}, "INVALID_ARGUMENT"),  # no pool
        ("v", [cap()], dict(RBD, poool="x"), "INVALID_ARGUMENT"),  # a typo is named, not ignored
        ("v", [cap("block")], CEPHFS, "INVALID_ARGUMENT"),
        ("v", [cap(mode="MULTI_NODE_MULTI_WRITER")], RBD, "INVALID_ARGUMENT"),
    ],
)
def test_create_refuses_bad_requests(driver, runner, name, caps, params, code):
    assert code_of(driver.create_volume, name, GIB, 0, caps, params, SECRETS) == code
    assert ceph_commands(runner) == []


def test_missing_secrets_name_the_fields(driver):
    with pytest.raises(CsiError) as err:
        driver.create_volume("v", GIB, 0, [cap()], RBD, {"userID": "csi"})
    assert err.value.code == "INVALID_ARGUMENT" and "userKey" in err.value.message


def test_delete_is_idempotent_and_takes_foreign_ids(driver, runner):
    vid = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)["volume_id"]
    driver.delete_volume(vid, SECRETS)
    assert runner.cluster.images == {}
    driver.delete_volume(vid, SECRETS)  # gone already: OK
    before = len(runner.commands)
    driver.delete_volume("fake-vol-id", SECRETS)  # never ours: OK, nothing run
    assert len(runner.commands) == before
    assert code_of(driver.delete_volume, "", SECRETS) == "INVALID_ARGUMENT"


def test_delete_of_an_image_still_open_is_a_failed_precondition(driver, runner):
    vid = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)["volume_id"]
    runner.fail["rbd rm"] = (16, "rbd: error: image still has watchers")
    assert code_of(driver.delete_volume, vid, SECRETS) == "FAILED_PRECONDITION"


def test_expand(driver, runner):
    rbd = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)["volume_id"]
    assert driver.expand_volume(rbd, 2 * GIB, 0, SECRETS) == (2 * GIB, True)
    assert runner.cluster.images["rbd/csi-vol-pvc-1"] == 2 * GIB
    assert driver.expand_volume(rbd, GIB, 0, SECRETS) == (2 * GIB, True)  # never shrinks
    fs = driver.create_volume("pvc-2", GIB, 0, [cap()], CEPHFS, SECRETS)["volume_id"]
    assert driver.expand_volume(fs, 3 * GIB, 0, SECRETS) == (3 * GIB, False)
    resize = next(c for c in runner.commands if "resize" in c and c[0] == "ceph")
    assert "--no_shrink" in resize
    assert code_of(driver.expand_volume, "v1:rbd:rbd::nope", GIB, 0, SECRETS) == "NOT_FOUND"
    assert code_of(driver.expand_volume, rbd, 0, 0, SECRETS) == "INVALID_ARGUMENT"
    assert code_of(driver.expand_volume, "", GIB, 0, SECRETS) == "INVALID_ARGUMENT"


def test_validate_capabilities(driver):
    vid = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)["volume_id"]
    assert driver.validate_capabilities(vid, [cap()], SECRETS) == []
    assert driver.validate_capabilities(vid, [cap(mode="MULTI_NODE_MULTI_WRITER")], SECRETS)
    assert code_of(driver.validate_capabilities, "v1:rbd:rbd::gone", [cap()], SECRETS) == "NOT_FOUND"
    assert code_of(driver.validate_capabilities, vid, [], SECRETS) == "INVALID_ARGUMENT"


def test_capacity_from_ceph_df(driver, tmp_path):
    keyring = tmp_path / "own.keyring"
    keyring.write_text(f"[client.csi]\n\tkey = {KEY}\n")
    driver.config.ceph_id, driver.config.ceph_keyring = "csi", str(keyring)
    assert driver.capacity({}) == 27 << 30
    assert driver.capacity(RBD) == 5 << 30
    assert driver.capacity(CEPHFS) == 4 << 30


# --- secrets -----------------------------------------------------------------------------
def test_the_key_is_never_on_a_command_line_in_a_log_or_an_error(driver, runner, caplog):
    caplog.set_level(logging.DEBUG, logger="idcloud_csi")
    driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)
    assert not any(KEY in " ".join(c) for c in runner.commands)
    # every call's keyring is gone when it returns
    assert runner.keyrings_seen and not any(os.path.exists(k) for k in runner.keyrings_seen)
    # a failing command that echoes the key: the error and the log carry <redacted>
    runner.fail["rbd"] = (1, f"auth failure for key {KEY}")
    with pytest.raises(CsiError) as err:
        driver.create_volume("pvc-2", GIB, 0, [cap()], RBD, SECRETS)
    assert KEY not in str(err.value) and "<redacted>" in str(err.value)
    from idcloud_csi.runner import RedactingFilter

    records = [RedactingFilter().filter(r) and r.getMessage() for r in caplog.records]
    assert not any(KEY in message for message in records)


# --- node --------------------------------------------------------------------------------
def test_rbd_fuse_stage_publish_unpublish_unstage(driver, runner, tmp_path):
    vid = driver.create_volume("pvc-1", GIB, 0, [cap()], RBD, SECRETS)["volume_id"]
    staging, target = tmp_path / "staging", tmp_path / "pods" / "target"
    staging.mkdir()
    target.parent.mkdir()
    driver.stage(vid, str(staging), cap(fs_type="xfs"), {}, SECRETS)
    fuse = next(c for c in runner.commands if c[0] == "rbd-fuse")
    assert fuse[fuse.index("-p") + 1] == "rbd" and fuse[fuse.index("-r") + 1] == "csi-vol-pvc-1"
    assert ["mkfs.xfs", "-K", "/dev/loop0"] in runner.commands
    assert runner.mounted()[str(staging)][:2] == ("/dev/loop0", "xfs")
    # the key rbd-fuse read is gone once the image answered
    assert not [p for p in (tmp_path / "state").rglob("keyring")]

    commands = len(runner.commands)
    driver.stage(vid, str(staging), cap(fs_type="xfs"), {}, SECRETS)  # staged already: nothing to do
    assert len(runner.commands) == commands

    driver.publish(vid, str(staging), str(target), cap(fs_type="xfs"), readonly=True)
    assert runner.mounted()[str(target)][2] == "ro"
    stats_path = str(target)
    assert driver.node_expand(vid, stats_path, 2 * GIB) == 2 << 30
    assert ["xfs_growfs", stats_path] in runner.commands
    driver.unpublish(vid, str(target))
    assert not target.exists() and str(target) not in runner.mounted()
    driver.unpublish(vid, str(target))  # again: OK

    driver.unstage(vid, str(staging))
    assert runner.mounted() == {} and runner.loops == {}
    driver.unstage(vid, str(staging))  # again: OK

    # a second stage finds the filesystem (blkid) and makes none
    runner.filesystems["/dev/loop0"] = "xfs"
    driver.stage(vid, str(staging), cap(fs_type="xfs"), {}, SECRETS)
    assert len([c for c in runner.commands if c[0].startswith("mkfs")]) == 1


def test_rbd_block_volume_is_the_loop_device_bound_onto_a_file(driver, runner, tmp_path):
    vid = driver.create_volume("blk", GIB, 0, [cap("block")], RBD, SECRETS)["volume_id"]
    staging, target = tmp_path / "staging", tmp_path / "dev-target"
    staging.mkdir()
    driver.stage(vid, str(staging), cap("block"), {}, SECRETS)
    assert not [c for c in runner.commands if c[0].startswith("mkfs")]
    driver.publish(vid, str(staging), str(target), cap("block"), readonly=False)
    assert target.is_file() and runner.mounted()[str(target)][0] == "/dev/loop0"
    driver.unpublish(vid, str(target))
    assert not target.exists()


def test_cephfs_stage_with_ceph_fuse(driver, runner, tmp_path):
    out = driver.create_volume("pvc-2", GIB, 0, [cap()], CEPHFS, SECRETS)
    staging = tmp_path / "staging"
    driver.stage(out["volume_id"], str(staging), cap(), out["volume_context"], SECRETS)
    fuse = next(c for c in runner.commands if c[0] == "ceph-fuse")
    assert fuse[1] == str(staging)
    assert fuse[fuse.index("-r") + 1] == "/volumes/csi/csi-vol-pvc-2/0f0f"
    assert "--client_fs=cephfs" in fuse and fuse[fuse.index("--id") + 1] == "csi"
    assert driver.node_expand(out["volume_id"], str(staging), 2 * GIB) == 2 * GIB  # no-op on a node
    driver.unstage(out["volume_id"], str(staging))
    assert runner.mounted() == {}


def test_node_calls_name_the_missing_field(driver, tmp_path):
    vid = "v1:rbd:rbd::csi-vol-x"
    assert code_of(driver.stage, "", "/s", cap(), {}, SECRETS) == "INVALID_ARGUMENT"
    assert code_of(driver.stage, vid, "", cap(), {}, SECRETS) == "INVALID_ARGUMENT"
    assert code_of(driver.stage, vid, "/s", None, {}, SECRETS) == "INVALID_ARGUMENT"
    assert code_of(driver.publish, vid, "/s", "", cap(), False) == "INVALID_ARGUMENT"
    assert code_of(driver.publish, vid, "/s", "/t", None, False) == "INVALID_ARGUMENT"
    assert code_of(driver.unpublish, "", "/t") == "INVALID_ARGUMENT"
    assert code_of(driver.unstage, vid, "") == "INVALID_ARGUMENT"
    # publishing what is not staged is a failed precondition
    (tmp_path / "s").mkdir()
    assert code_of(driver.publish, vid, str(tmp_path / "s"), str(tmp_path / "t"), cap(), False) == (
        "FAILED_PRECONDITION"
    )


def test_volume_stats_and_node_expand_codes(driver, tmp_path):
    assert code_of(driver.stats, "fake-vol-id", "some/path") == "NOT_FOUND"
    assert code_of(driver.stats, "v1:rbd:rbd::x", "") == "INVALID_ARGUMENT"
    assert code_of(driver.stats, "v1:rbd:rbd::x", str(tmp_path)) == "NOT_FOUND"  # not mounted there
    assert code_of(driver.node_expand, "fake-vol-id", "some/path", GIB) == "NOT_FOUND"
    assert code_of(driver.node_expand, "v1:rbd:rbd::x", "", GIB) == "INVALID_ARGUMENT"
    assert code_of(driver.node_expand, "v1:rbd:rbd::x", "some/path", GIB) == "NOT_FOUND"


def test_volume_stats_of_a_mounted_volume(driver, runner, tmp_path):
    out = driver.create_volume("pvc-2", GIB, 0, [cap()], CEPHFS, SECRETS)
    staging = tmp_path / "staging"
    driver.stage(out["volume_id"], str(staging), cap(), out["volume_context"], SECRETS)
    stats = driver.stats(out["volume_id"], str(staging))
    available, total, used = stats["bytes"]
    assert total > 0 and 0 <= available <= total and used >= 0
    assert stats["inodes"] is None or stats["inodes"][1] >= stats["inodes"][2]


def test_node_info_has_the_rack(driver):
    assert driver.node_info() == {"node_id": "n1", "topology": {"topology.idcloud.io/rack": "r1"}}


def test_a_second_call_on_a_busy_volume_is_aborted(driver):
    with driver.locks.hold("v1:rbd:rbd::x"):
        assert code_of(driver.unpublish, "v1:rbd:rbd::x", "/t") == "ABORTED"


def test_rbd_fuse_processes_of_a_mount_are_found_in_proc(tmp_path):
    from idcloud_csi.backends.rbd import rbd_fuse_pids

    for pid, args in {
        "12": [b"/usr/bin/rbd-fuse", b"/st/a/mnt", b"-p", b"rbd"],
        "13": [b"rbd-fuse", b"/st/b/mnt"],
    }.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(b"\0".join(args) + b"\0")
    (tmp_path / "self").mkdir()
    assert rbd_fuse_pids("/st/a/mnt", str(tmp_path)) == [12]
    assert rbd_fuse_pids("/st/c/mnt", str(tmp_path)) == []


def test_ext4_grows_offline_at_stage_when_online_growth_is_refused(driver, runner, tmp_path):
    """Without CAP_SYS_RESOURCE (the lab's hosts) the kernel refuses an online ext4 resize: the
    error says so and names the fixes, and the next stage grows the filesystem offline."""
    vid = driver.create_volume("pvc-e", GIB, 0, [cap(fs_type="ext4")], RBD, SECRETS)["volume_id"]
    staging = tmp_path / "staging"
    runner.device_size = GIB
    driver.stage(vid, str(staging), cap(fs_type="ext4"), {}, SECRETS)
    assert runner.fs_bytes["/dev/loop0"] == GIB
    runner.device_size = 2 * GIB  # the controller grew the image
    runner.online_resize_refused = True
    with pytest.raises(CsiError) as err:
        driver.node_expand(vid, str(staging), 2 * GIB)
    assert err.value.code == "FAILED_PRECONDITION" and "CAP_SYS_RESOURCE" in err.value.message
    driver.unstage(vid, str(staging))
    before = len(runner.commands)
    driver.stage(vid, str(staging), cap(fs_type="ext4"), {}, SECRETS)
    tools = [c[0] for c in runner.commands[before:]]
    assert tools.index("e2fsck") < tools.index("resize2fs") < tools.index("mount")
    assert runner.fs_bytes["/dev/loop0"] == 2 * GIB
    # a filesystem as large as its device is left alone
    driver.unstage(vid, str(staging))
    before = len(runner.commands)
    driver.stage(vid, str(staging), cap(fs_type="ext4"), {}, SECRETS)
    assert "resize2fs" not in [c[0] for c in runner.commands[before:]]
