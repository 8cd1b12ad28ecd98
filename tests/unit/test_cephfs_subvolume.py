"""cephfs_subvolume: the plan (pure) and the run against a fake `ceph fs` command line."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cephfs_subvolume import (
    ARGUMENT_SPEC,
    plan_subvolume,
    run_subvolume,
    subvolume_view,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError

GIB = 1024**3
PATH = "/volumes/csi/ci-cache/6a9e2c4d-3f7b-4d1e-9b8a-0c5d2e7f1a3b"
VOLUMES = ["cephfs"]
GROUPS = ["csi"]


def wanted(**kw):
    base = dict(
        volume="cephfs",
        group="csi",
        name="ci-cache",
        state="present",
        size=None,
        mode=None,
        allow_shrink=False,
        force=False,
    )
    base.update(kw)
    return base


def current(**kw):
    base = dict(
        volume="cephfs",
        group="csi",
        name="ci-cache",
        size=500 * GIB,
        mode="0775",
        bytes_used=120 * GIB,
        path=PATH,
        state="complete",
    )
    base.update(kw)
    return base


def plan(want, have=None, volumes=VOLUMES, groups=GROUPS):
    return plan_subvolume(want, have, volumes, groups)


def test_a_new_subvolume_is_created_with_its_quota_group_and_mode():
    result = plan(wanted(size="500G", mode="775"))
    assert result["errors"] == []
    assert result["commands"] == [
        [
            "fs",
            "subvolume",
            "create",
            "cephfs",
            "ci-cache",
            "--size",
            "536870912000",
            "--group_name",
            "csi",
            "--mode",
            "0775",
        ]
    ]
    assert result["after"] == current(bytes_used=0, path=None)


def test_a_new_subvolume_without_quota_or_mode_gets_the_mgrs_defaults():
    for size in (None, 0, "0"):
        result = plan(wanted(group=None, size=size))
        assert result["commands"] == [["fs", "subvolume", "create", "cephfs", "ci-cache"]]
        assert result["after"]["size"] == 0 and result["after"]["mode"] == "0755"


def test_a_subvolume_as_wanted_needs_nothing():
    result = plan(wanted(size=500 * GIB, mode="0775"), current())
    assert result["commands"] == [] and result["errors"] == []
    assert plan(wanted(), current())["commands"] == []


def test_the_quota_grows_is_removed_or_is_set_with_no_shrink():
    grow = plan(wanted(size="1T"), current())
    assert grow["commands"] == [
        ["fs", "subvolume", "resize", "cephfs", "ci-cache", "1099511627776", "--group_name", "csi", "--no_shrink"]
    ]
    assert grow["after"]["size"] == 1024 * GIB
    unlimited = plan(wanted(size=0), current())
    assert unlimited["commands"] == [
        ["fs", "subvolume", "resize", "cephfs", "ci-cache", "infinite", "--group_name", "csi"]
    ]
    # a first quota on a subvolume without one is not a shrink, as long as it holds less
    first = plan(wanted(size="200G"), current(size=0))
    assert first["errors"] == [] and first["commands"][0][5] == str(200 * GIB)


def test_a_quota_below_what_the_subvolume_holds_is_always_refused():
    for allow_shrink in (False, True):
        result = plan(wanted(size="100G", allow_shrink=allow_shrink), current())
        assert result["commands"] == []
        assert result["errors"] == [
            "size: 100 GiB for subvolume ci-cache in group csi of volume cephfs is below the 120 GiB it holds; "
            "fix: give at least 120 GiB, or free space in it first"
        ]


def test_a_lower_quota_needs_allow_shrink():
    refused = plan(wanted(size="200G"), current())
    assert refused["errors"] == [
        "size: 200 GiB for subvolume ci-cache in group csi of volume cephfs is below its quota 500 GiB; fix: give at "
        "least 500 GiB, or set allow_shrink: true (it holds 120 GiB)"
    ]
    allowed = plan(wanted(size="200G", allow_shrink=True), current())
    assert allowed["commands"][0][5:] == [str(200 * GIB), "--group_name", "csi", "--no_shrink"]


def test_a_different_mode_is_refused_with_the_current_one():
    result = plan(wanted(mode="0700"), current())
    assert result["commands"] == []
    assert result["errors"] == [
        "mode: '0700' for subvolume ci-cache in group csi of volume cephfs differs from its mode '0775', and this "
        "module does not change the mode of an existing subvolume; fix: set mode to '0775' (or leave it unset), or "
        "chmod its path on a client mount"
    ]


@pytest.mark.parametrize("mode", ["493", "rwxr-xr-x", "07755", "75"])
def test_a_mode_that_is_not_octal_is_refused(mode):
    result = plan(wanted(mode=mode))
    assert result["errors"] == [
        "mode: %r for subvolume ci-cache in group csi of volume cephfs is not an octal mode; fix: give it quoted, "
        "like mode: '0755' (YAML reads an unquoted 0755 as the number 493)" % mode
    ]


def test_an_unquoted_mode_reaches_the_plan_as_a_decimal_string_and_is_refused():
    # YAML reads `mode: 0755` as the number 493; Ansible hands the str option over as '493'
    checked = ArgumentSpecValidator(ARGUMENT_SPEC).validate(dict(volume="cephfs", name="ci-cache", mode=0o755))
    assert checked.validated_parameters["mode"] == "493"
    assert "(YAML reads an unquoted 0755 as the number 493)" in plan(dict(wanted(), mode="493"))["errors"][0]


def test_a_missing_volume_or_group_is_named_with_the_size_error():
    assert plan(wanted(volume="cephfs2", size="10GB"), volumes=["cephfs"])["errors"] == [
        "volume: 'cephfs2' is not a CephFS volume of this cluster (volumes: cephfs); fix: name one of those, or "
        "create it with `ceph fs volume create cephfs2`",
        "size: '10GB' for subvolume ci-cache in group csi of volume cephfs2 is ambiguous (GB can mean powers of 1000, "
        "or bits); fix: write 10G or 10GiB for powers of 1024",
    ]
    assert plan(wanted(group="kube"), groups=["csi"])["errors"] == [
        "group: 'kube' does not exist in volume cephfs (groups: csi); fix: create it with "
        "`ceph fs subvolumegroup create cephfs kube`, or name one of those"
    ]


def test_the_default_group_can_be_named_nogroup():
    result = plan(wanted(group="_nogroup"), groups=None)
    assert result["errors"] == []
    assert result["commands"] == [["fs", "subvolume", "create", "cephfs", "ci-cache"]]


def test_a_subvolume_still_being_cloned_is_refused():
    result = plan(wanted(size="1T"), current(state="in-progress", path=None))
    assert result["errors"] == [
        "state: present for subvolume ci-cache in group csi of volume cephfs, which is 'in-progress'; fix: wait for "
        "its clone to finish (ceph fs clone status), or remove its retained snapshots"
    ]


def test_deleting_a_subvolume_with_data_needs_force():
    refused = plan(wanted(state="absent"), current())
    assert refused["commands"] == []
    assert refused["errors"] == [
        "state: absent for subvolume ci-cache in group csi of volume cephfs, which holds 120 GiB; fix: set force: "
        "true to delete it and its data"
    ]
    forced = plan(wanted(state="absent", force=True), current())
    assert forced["commands"] == [["fs", "subvolume", "rm", "cephfs", "ci-cache", "--group_name", "csi"]]
    empty = plan(wanted(state="absent"), current(bytes_used=0))
    assert empty["commands"] == forced["commands"] and empty["after"] is None
    assert plan(wanted(state="absent"), None)["commands"] == []


def info_json(quota, used, mode=0o40775, path=PATH, state="complete"):
    """`ceph fs subvolume info --format json` of a v2 subvolume, as Pacific and Reef print it."""
    return {
        "atime": "2024-01-08 10:00:00",
        "bytes_pcent": "undefined" if not quota else "%.2f" % (100.0 * used / quota),
        "bytes_quota": quota or "infinite",
        "bytes_used": used,
        "created_at": "2024-01-08 10:00:00",
        "ctime": "2024-01-08 10:00:00",
        "data_pool": "cephfs.cephfs.data",
        "features": ["snapshot-clone", "snapshot-autoprotect", "snapshot-retention"],
        "gid": 0,
        "mode": mode,
        "mon_addrs": ["10.20.0.1:6789", "10.20.0.2:6789", "10.20.0.3:6789"],
        "mtime": "2024-01-08 10:00:00",
        "path": path,
        "pool_namespace": "",
        "state": state,
        "type": "subvolume",
        "uid": 0,
    }


def test_the_view_comes_from_subvolume_info():
    # the mode ceph reports carries the directory bit (0o40775); no quota is "infinite"
    assert subvolume_view(info_json(500 * GIB, 120 * GIB), "cephfs", "csi", "ci-cache", PATH) == current()
    assert subvolume_view(info_json(0, 0, mode=0o40755), "cephfs", "csi", "ci-cache", PATH)["size"] == 0


class FakeCephFs:
    """`ceph fs` (the mgr's volumes module) over one volume, printing what it prints; records the changes."""

    def __init__(self, subvolumes=None, groups=("csi",)):
        self.volumes = {"cephfs": list(groups)}
        # (group or None, name) -> dict(quota, used, mode, path)
        self.subvolumes = {key: dict(sub) for key, sub in (subvolumes or {}).items()}
        self.calls = []

    def __call__(self, cmd):
        args = cmd[cmd.index("--connect-timeout") + 2 :]
        json_out = args[-2:] == ["--format", "json"]
        args = args[:-2] if json_out else args
        words, options = [], {}
        rest = iter(args)
        for arg in rest:
            if arg == "--no_shrink":
                options[arg] = True
            elif arg.startswith("--"):
                options[arg] = next(rest)
            else:
                words.append(arg)
        if words[:3] == ["fs", "volume", "ls"]:
            return 0, json.dumps([{"name": v} for v in self.volumes]), ""
        if words[:3] == ["fs", "subvolumegroup", "ls"]:
            return 0, json.dumps([{"name": g} for g in self.volumes[words[3]]]), ""
        verb, name = words[2], words[4]
        key = (options.get("--group_name"), name)
        if verb in ("info", "getpath", "resize", "rm") and key not in self.subvolumes:
            return 2, "", "Error ENOENT: subvolume '%s' does not exist" % name
        sub = self.subvolumes.get(key)
        if verb == "info":
            return 0, json.dumps(info_json(sub["quota"], sub["used"], sub["mode"], sub["path"])), ""
        if verb == "getpath":
            return 0, sub["path"] + "\n", ""
        self.calls.append(args)
        if verb == "create":
            group = options.get("--group_name") or "_nogroup"
            self.subvolumes[key] = dict(
                quota=int(options.get("--size", 0)),
                used=0,
                mode=0o40000 | int(options.get("--mode", "755"), 8),
                path="/volumes/%s/%s/0c5d2e7f-1a3b-4d1e-9b8a-6a9e2c4d3f7b" % (group, name),
            )
            return 0, "", ""
        if verb == "resize":
            size = 0 if words[5] in ("inf", "infinite") else int(words[5])
            if size and size < sub["used"] and options.get("--no_shrink"):
                return (
                    22,
                    "",
                    "Error EINVAL: Can't resize the subvolume. The new size '%d' would be lesser than the current "
                    "used size '%d'" % (size, sub["used"]),
                )
            sub["quota"] = size
            return 0, json.dumps([{"bytes_used": sub["used"]}, {"bytes_quota": size}, {"bytes_pcent": "0.00"}]), ""
        if verb == "rm":
            del self.subvolumes[key]
            return 0, "", ""
        raise AssertionError("unexpected command %s" % args)


def params(**kw):
    return dict(wanted(**kw), cluster_conf="/etc/ceph/ceph.conf", user="admin", keyring=None, timeout=5)


def test_run_creates_once_and_check_mode_runs_nothing():
    fake = FakeCephFs()
    preview = run_subvolume(fake, params(size="500G", mode="0775"), check_mode=True, diff=True)
    assert preview["changed"] and fake.calls == [] and fake.subvolumes == {}
    assert preview["commands"] == [
        "ceph fs subvolume create cephfs ci-cache --size 536870912000 --group_name csi --mode 0775"
    ]
    assert preview["path"] is None and preview["info"] is None and preview["diff"]["before"] == {}

    created = run_subvolume(fake, params(size="500G", mode="0775"), diff=True)
    assert len(fake.calls) == 1
    assert created["path"] == "/volumes/csi/ci-cache/0c5d2e7f-1a3b-4d1e-9b8a-6a9e2c4d3f7b"
    assert created["subvolume"]["size"] == 500 * GIB and created["subvolume"]["mode"] == "0775"
    assert created["info"]["data_pool"] == "cephfs.cephfs.data"

    again = run_subvolume(fake, params(size=500 * GIB, mode="775"))
    assert not again["changed"] and len(fake.calls) == 1


def test_run_grows_the_quota_in_a_group():
    fake = FakeCephFs({("csi", "ci-cache"): dict(quota=500 * GIB, used=120 * GIB, mode=0o40775, path=PATH)})
    result = run_subvolume(fake, params(size="1T"), diff=True)
    assert result["commands"] == ["ceph fs subvolume resize cephfs ci-cache 1099511627776 --group_name csi --no_shrink"]
    assert fake.subvolumes[("csi", "ci-cache")]["quota"] == 1024 * GIB
    assert result["diff"]["before"]["size"] == 500 * GIB and result["diff"]["after"]["size"] == 1024 * GIB
    assert result["info"]["bytes_quota"] == 1024 * GIB


def test_check_mode_resizes_nothing():
    fake = FakeCephFs({("csi", "ci-cache"): dict(quota=500 * GIB, used=120 * GIB, mode=0o40775, path=PATH)})
    result = run_subvolume(fake, params(size="1T"), check_mode=True)
    assert result["changed"] and fake.calls == []
    assert fake.subvolumes[("csi", "ci-cache")]["quota"] == 500 * GIB


def test_run_refuses_to_delete_data_before_any_command_and_deletes_with_force():
    fake = FakeCephFs({("csi", "ci-cache"): dict(quota=0, used=120 * GIB, mode=0o40775, path=PATH)})
    with pytest.raises(
        CephError, match=r"^state: absent for subvolume ci-cache .* which holds 120 GiB; fix: set force"
    ):
        run_subvolume(fake, params(state="absent"))
    assert fake.calls == []
    deleted = run_subvolume(fake, params(state="absent", force=True), diff=True)
    assert fake.calls == [["fs", "subvolume", "rm", "cephfs", "ci-cache", "--group_name", "csi"]]
    assert deleted["subvolume"] is None and deleted["path"] is None and deleted["diff"]["after"] == {}
    assert not run_subvolume(fake, params(state="absent"))["changed"]


def test_run_in_a_missing_volume_refuses_present_and_has_nothing_to_delete():
    fake = FakeCephFs()
    with pytest.raises(CephError, match=r"^volume: 'home' is not a CephFS volume of this cluster \(volumes: cephfs\)"):
        run_subvolume(fake, params(volume="home"))
    assert not run_subvolume(fake, params(volume="home", state="absent"))["changed"]


def test_run_raises_the_mgrs_own_message_when_a_command_fails():
    fake = FakeCephFs({("csi", "ci-cache"): dict(quota=500 * GIB, used=120 * GIB, mode=0o40775, path=PATH)})

    def grown_meanwhile(cmd):
        # the subvolume filled up between the read and the resize: --no_shrink makes the mgr refuse
        if "resize" in cmd:
            fake.subvolumes[("csi", "ci-cache")]["used"] = 300 * GIB
        return fake(cmd)

    with pytest.raises(CephError, match=r"`ceph fs subvolume resize .*` failed \(rc 22\): Error EINVAL: Can't resize"):
        run_subvolume(grown_meanwhile, params(size="200G", allow_shrink=True))
    assert fake.subvolumes[("csi", "ci-cache")]["quota"] == 500 * GIB
