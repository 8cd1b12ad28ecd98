"""The CSI driver's pure rules: volume ids, names, sizes, capabilities, mons, the mount table."""

import pytest

from idcloud_csi.ceph import kernel_mon_list, mon_hosts_from_conf
from idcloud_csi.errors import CsiError
from idcloud_csi.mounts import parse_mountinfo
from idcloud_csi.volumes import (
    GIB,
    MIB,
    VolumeId,
    capability_problems,
    decode_volume_id,
    size_fits,
    volume_name,
    volume_size,
)


def cap(access_type="mount", mode="SINGLE_NODE_WRITER", fs_type=None):
    return {"access_type": access_type, "access_mode": mode, "fs_type": fs_type, "mount_flags": []}


@pytest.mark.parametrize(
    "vid",
    [
        VolumeId("rbd", "rbd", "", "csi-vol-pvc-1"),
        VolumeId("rbd", "pool:with/odd%chars", "ns", "img"),
        VolumeId("cephfs", "cephfs", "csi", "csi-vol-x_0123"),
    ],
)
def test_volume_id_round_trips(vid):
    encoded = vid.encode()
    assert encoded.count(":") == 4
    assert decode_volume_id(encoded) == vid


def test_volume_id_encoding_is_stable():
    assert VolumeId("rbd", "rbd", "", "csi-vol-a").encode() == "v1:rbd:rbd::csi-vol-a"
    assert VolumeId("cephfs", "fs:1", "g", "n").encode() == "v1:cephfs:fs%3A1:g:n"


@pytest.mark.parametrize("bad", ["fake-vol-id", "v1:nfs:a::b", "v2:rbd:rbd::x", "v1:rbd:::x", "v1:rbd:rbd::"])
def test_an_id_this_driver_never_made_is_not_found(bad):
    with pytest.raises(CsiError) as err:
        decode_volume_id(bad)
    assert err.value.code == "NOT_FOUND"


def test_an_empty_id_is_an_invalid_argument():
    with pytest.raises(CsiError) as err:
        decode_volume_id("")
    assert err.value.code == "INVALID_ARGUMENT"


def test_names_are_deterministic_and_safe():
    assert volume_name("csi-vol-", "pvc-3f2a") == "csi-vol-pvc-3f2a"
    long_name = "sanity-" + "x" * 121
    hashed = volume_name("csi-vol-", long_name)
    assert hashed == volume_name("csi-vol-", long_name)
    assert hashed.startswith("csi-vol-x_") and len(hashed) == len("csi-vol-x_") + 40
    # names with characters Ceph or a path would mind are hashed, never passed through
    for odd in ("Upper", "a b", "a/b", "a_b", "ü"):
        assert "_" in volume_name("csi-vol-", odd)
    assert volume_name("csi-vol-", "a/b") != volume_name("csi-vol-", "a_b")


@pytest.mark.parametrize(
    "required,limit,size",
    [
        (0, 0, GIB),  # nothing asked: the default
        (1, 0, MIB),  # rounded up to a MiB
        (GIB + 1, 0, GIB + MIB),
        (0, 100 * MIB, 100 * MIB),  # default above the limit: the limit
        (5 * GIB, 5 * GIB, 5 * GIB),
        (1000, 4096, 4096),  # no whole MiB fits, the 512-aligned limit does
    ],
)
def test_sizes(required, limit, size):
    assert volume_size(required, limit, GIB) == size


def test_a_range_no_size_fits_is_out_of_range():
    with pytest.raises(CsiError) as err:
        volume_size(1000, 1001, GIB)
    assert err.value.code == "OUT_OF_RANGE"


def test_required_above_limit_is_invalid():
    with pytest.raises(CsiError) as err:
        volume_size(2 * GIB, GIB, GIB)
    assert err.value.code == "INVALID_ARGUMENT" and "swap" in err.value.message


def test_size_fits():
    assert size_fits(GIB, GIB, 0)
    assert size_fits(GIB, MIB, GIB)
    assert not size_fits(GIB, 2 * GIB, 0)
    assert not size_fits(2 * GIB, GIB, GIB)


def test_cephfs_serves_every_access_mode_but_no_block():
    modes = ["SINGLE_NODE_WRITER", "MULTI_NODE_MULTI_WRITER", "MULTI_NODE_READER_ONLY"]
    assert capability_problems("cephfs", [cap(mode=m) for m in modes]) == []
    problems = capability_problems("cephfs", [cap("block")])
    assert problems and "rbd backend" in problems[0]


def test_rbd_is_single_node_and_takes_ext4_xfs_and_block():
    assert capability_problems("rbd", [cap(fs_type="ext4"), cap(fs_type="xfs"), cap("block")]) == []
    assert "ReadWriteOnce" in capability_problems("rbd", [cap(mode="MULTI_NODE_MULTI_WRITER")])[0]
    assert "btrfs" in capability_problems("rbd", [cap(fs_type="btrfs")])[0]
    assert capability_problems("rbd", [cap("block", mode="MULTI_NODE_READER_ONLY")]) == []


def test_capabilities_missing_or_incomplete():
    assert "missing" in capability_problems("rbd", [])[0]
    assert "access type" in capability_problems("rbd", [cap(access_type=None)])[0]
    assert "access_mode" in capability_problems("rbd", [cap(mode="UNKNOWN")])[0]


def test_mons_for_the_kernel_client():
    both = "[v2:10.1.1.11:3300,v1:10.1.1.11:6789],[v2:10.1.1.12:3300,v1:10.1.1.12:6789]"
    assert kernel_mon_list(both) == "10.1.1.11:6789,10.1.1.12:6789"
    assert kernel_mon_list("10.0.0.1, 10.0.0.2:6790") == "10.0.0.1:6789,10.0.0.2:6790"


def test_mon_host_from_a_ceph_conf(tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\nfsid = x\nmon host = 10.0.0.1,10.0.0.2 # the mons\n[client]\nmon_host = no\n")
    assert mon_hosts_from_conf(str(conf)) == "10.0.0.1,10.0.0.2"
    assert mon_hosts_from_conf(str(tmp_path / "missing")) is None


def test_mountinfo_unescapes_paths():
    text = (
        "36 35 98:0 / /mnt/with\\040space rw,noatime master:1 - ext4 /dev/loop0 rw,errors=continue\n"
        "37 35 0:50 / /var/lib/x rw - fuse.ceph-fuse ceph-fuse rw,user_id=0\n"
    )
    mounts = parse_mountinfo(text)
    assert mounts[0].mountpoint == "/mnt/with space" and mounts[0].source == "/dev/loop0"
    assert mounts[0].fstype == "ext4" and "noatime" in mounts[0].options
    assert mounts[1].fstype == "fuse.ceph-fuse"
