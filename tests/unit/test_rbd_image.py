"""rbd_image: the plan (pure) and the run against a fake `rbd` command line."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.rbd_image import (
    ARGUMENT_SPEC,
    image_view,
    plan_image,
    run_image,
)

GIB = 1024**3
# what a Pacific/Reef cluster gives an image created without --image-feature (rbd_default_features)
DEFAULT_FEATURES = ["layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten"]


def wanted(**kw):
    base = dict(
        pool="kubernetes",
        namespace=None,
        name="pvc-1",
        state="present",
        size=None,
        features=None,
        allow_shrink=False,
        force=False,
    )
    base.update(kw)
    return base


def current(**kw):
    base = dict(
        pool="kubernetes",
        namespace=None,
        name="pvc-1",
        id="5e2b8b4567a1",
        size=20 * GIB,
        features=list(DEFAULT_FEATURES),
        object_size=4194304,
        snapshot_count=0,
    )
    base.update(kw)
    return base


def plan(want, have=None, watchers=(), namespaces=("tenant-a",)):
    return plan_image(want, have, list(watchers), None if namespaces is None else list(namespaces))


def test_a_new_image_is_created_in_bytes_with_its_features_in_rbds_order():
    result = plan(wanted(size="10G", features=["object-map", "layering", "exclusive-lock"]))
    assert result["errors"] == []
    assert result["commands"] == [
        [
            "create",
            "--size",
            "10737418240B",
            "--image-feature",
            "layering",
            "--image-feature",
            "exclusive-lock",
            "--image-feature",
            "object-map",
            "kubernetes/pvc-1",
        ]
    ]
    assert result["after"]["size"] == 10 * GIB and result["after"]["id"] is None


def test_an_image_as_wanted_needs_nothing():
    result = plan(wanted(size="20G", features=list(reversed(DEFAULT_FEATURES))), current())
    assert result["commands"] == [] and result["errors"] == []


def test_an_image_grows_and_shrinks_only_when_allowed():
    grow = plan(wanted(size=30 * GIB), current())
    assert grow["commands"] == [["resize", "--size", "32212254720B", "--no-progress", "kubernetes/pvc-1"]]

    refused = plan(wanted(size="10G"), current())
    assert refused["commands"] == []
    assert refused["errors"] == [
        "size: 10 GiB for image kubernetes/pvc-1 is below its size 20 GiB; fix: give at least 20 GiB, or set "
        "allow_shrink: true (the data past 10 GiB is lost)"
    ]
    shrink = plan(wanted(size="10G", allow_shrink=True), current())
    assert shrink["commands"] == [
        ["resize", "--size", "10737418240B", "--allow-shrink", "--no-progress", "kubernetes/pvc-1"]
    ]


def test_runtime_features_switch_in_dependency_order():
    have = current(features=["layering", "deep-flatten"])
    on = plan(wanted(features=["layering", "deep-flatten", "fast-diff", "object-map", "exclusive-lock"]), have)
    assert on["commands"] == [["feature", "enable", "kubernetes/pvc-1", "exclusive-lock", "object-map", "fast-diff"]]
    off = plan(wanted(features=["layering"]), current())
    assert off["commands"] == [
        ["feature", "disable", "kubernetes/pvc-1", "deep-flatten", "fast-diff", "object-map", "exclusive-lock"]
    ]
    assert off["after"]["features"] == ["layering"]


def test_features_rbd_cannot_switch_on_an_existing_image_are_refused():
    result = plan(wanted(features=["exclusive-lock"]), current(features=["exclusive-lock", "deep-flatten", "layering"]))
    assert result["commands"] == []
    assert result["errors"] == [
        "features: layering is enabled on image kubernetes/pvc-1 and rbd disables only exclusive-lock, object-map, "
        "fast-diff, journaling, deep-flatten on an existing image; fix: add layering to features"
    ]
    enable = plan(wanted(features=["layering", "deep-flatten"]), current(features=["layering"]))
    assert enable["errors"][0].startswith(
        "features: deep-flatten is not enabled on image kubernetes/pvc-1 and rbd enables only exclusive-lock, "
        "object-map, fast-diff, journaling on an existing image; fix: drop deep-flatten from features"
    )


def test_a_feature_without_what_it_needs_is_refused():
    result = plan(wanted(size="1G", features=["layering", "fast-diff", "journaling"]))
    assert result["errors"] == [
        "features: fast-diff for image kubernetes/pvc-1 needs object-map; fix: add object-map to features, or drop "
        "fast-diff",
        "features: journaling for image kubernetes/pvc-1 needs exclusive-lock; fix: add exclusive-lock to features, "
        "or drop journaling",
    ]


def test_features_rbd_reports_but_does_not_take_are_not_compared():
    have = current(features=["layering", "exclusive-lock", "data-pool", "operations"])
    assert plan(wanted(features=["layering", "exclusive-lock"]), have)["commands"] == []


def test_sizes_are_checked_with_the_rest():
    result = plan(wanted(size="10GB", features=[]))
    assert result["errors"] == [
        "size: '10GB' for image kubernetes/pvc-1 is ambiguous (GB can mean powers of 1000, or bits); fix: write 10G "
        "or 10GiB for powers of 1024",
        "features: [] for new image kubernetes/pvc-1; fix: list the features it needs (at least layering), or leave "
        "features unset for the cluster's default (rbd_default_features)",
    ]
    assert plan(wanted())["errors"] == ["size: None for new image kubernetes/pvc-1; fix: give its size, like 10G"]
    assert plan(wanted(size=0), current())["errors"] == [
        "size: 0 for image kubernetes/pvc-1; fix: give a size above 0, like 10G"
    ]


def test_a_missing_pool_or_namespace_is_named():
    assert plan(wanted(size="1G"), namespaces=None)["errors"] == [
        "pool: 'kubernetes' does not exist; fix: create it first (idcloud.platform.ceph_pool with application: rbd)"
    ]
    assert plan(wanted(size="1G", namespace="tenant-b"))["errors"] == [
        "namespace: 'tenant-b' does not exist in pool kubernetes (namespaces: tenant-a); fix: create it with "
        "`rbd namespace create kubernetes/tenant-b`, or name one of those"
    ]


def test_deleting_an_open_image_needs_force_and_snapshots_stop_it():
    watcher = {"address": "10.20.0.11:0/2876543210", "client": 4711, "cookie": 18446462598732840961}
    refused = plan(wanted(state="absent"), current(), watchers=[watcher])
    assert refused["commands"] == []
    assert refused["errors"][0].startswith(
        "state: absent for image kubernetes/pvc-1, which 1 client(s) have open (10.20.0.11:0/2876543210); fix: "
        "unmap or stop them first, or set force: true"
    )
    forced = plan(wanted(state="absent", force=True), current(), watchers=[watcher])
    assert forced["commands"] == [["rm", "--no-progress", "kubernetes/pvc-1"]] and forced["after"] is None
    snapped = plan(wanted(state="absent", force=True), current(snapshot_count=2))
    assert snapped["errors"][0].startswith(
        "state: absent for image kubernetes/pvc-1, which has 2 snapshots; fix: remove them first "
        "(rbd snap purge kubernetes/pvc-1"
    )
    assert plan(wanted(state="absent"), None)["commands"] == []


def info_json(name, image_id, size, features, snapshot_count=0):
    """`rbd info --format json` of a format 2 image, as Pacific and Reef print it."""
    return {
        "name": name,
        "id": image_id,
        "size": size,
        "objects": -(-size // 4194304),
        "order": 22,
        "object_size": 4194304,
        "snapshot_count": snapshot_count,
        "block_name_prefix": "rbd_data.%s" % image_id,
        "format": 2,
        "features": features,
        "op_features": [],
        "flags": [],
        "create_timestamp": "Mon Jan  8 10:00:00 2024",
        "access_timestamp": "Mon Jan  8 10:00:00 2024",
        "modify_timestamp": "Mon Jan  8 10:00:00 2024",
    }


def test_ansible_takes_sizes_as_written_and_checks_the_feature_names():
    validator = ArgumentSpecValidator(ARGUMENT_SPEC)
    for size in ("10G", 10737418240):
        checked = validator.validate(dict(pool="kubernetes", name="pvc-1", size=size))
        assert checked.error_messages == [] and checked.validated_parameters["size"] == size
    typo = validator.validate(dict(pool="kubernetes", name="pvc-1", features=["layering", "fast-dif"]))
    assert typo.error_messages[0].endswith("Got no match for: fast-dif")


def test_the_view_comes_from_rbd_info():
    info = info_json("pvc-1", "5e2b8b4567a1", 20 * GIB, list(reversed(DEFAULT_FEATURES)))
    assert image_view(info, "kubernetes", None) == current()


class FakeRbd:
    """`rbd` over pools of images, printing what rbd prints; records the commands that change something."""

    def __init__(self, pools=None, images=None, watchers=None):
        self.pools = pools if pools is not None else {"kubernetes": ["tenant-a"]}
        self.images = {spec: dict(info) for spec, info in (images or {}).items()}
        self.watchers = watchers or {}
        self.calls, self.seen = [], []
        self.next_id = iter(["7f3c9d2e1b0a", "8a4d0e3f2c1b"])

    def __call__(self, cmd):
        assert cmd[0] == "rbd"
        args = cmd[cmd.index("--client-mount-timeout") + 2 :]
        if args[0] == "--keyring":
            args = args[2:]
        if args[-2:] == ["--format", "json"]:
            args = args[:-2]
        self.seen.append(cmd)
        if args[:2] == ["namespace", "ls"]:
            if args[2] not in self.pools:
                return 2, "", "rbd: error opening pool '%s': (2) No such file or directory" % args[2]
            return 0, json.dumps([{"name": ns} for ns in self.pools[args[2]]]), ""
        spec = args[-1]
        if args[0] in ("info", "status") and spec not in self.images:
            return 2, "", "rbd: error opening image %s: (2) No such file or directory" % spec.rsplit("/", 1)[-1]
        if args[0] == "info":
            return 0, json.dumps(self.images[spec]), ""
        if args[0] == "status":
            return 0, json.dumps({"watchers": self.watchers.get(spec, [])}), ""
        self.calls.append(args)
        return self.change(args, spec)

    def change(self, args, spec):
        if args[0] == "create":
            features = [args[i + 1] for i, a in enumerate(args) if a == "--image-feature"] or DEFAULT_FEATURES
            size = int(args[args.index("--size") + 1].rstrip("B"))
            self.images[spec] = info_json(spec.rsplit("/", 1)[-1], next(self.next_id), size, list(features))
        elif args[0] == "resize":
            size = int(args[args.index("--size") + 1].rstrip("B"))
            if size < self.images[spec]["size"] and "--allow-shrink" not in args:
                return 22, "", "rbd: shrinking an image is only allowed with the --allow-shrink flag"
            self.images[spec]["size"] = size
        elif args[:2] == ["feature", "enable"]:
            self.images[args[2]]["features"] += args[3:]
        elif args[:2] == ["feature", "disable"]:
            image = self.images[args[2]]
            image["features"] = [f for f in image["features"] if f not in args[3:]]
        elif args[0] == "rm":
            if self.watchers.get(spec):
                return 16, "", "rbd: error: image still has watchers"
            del self.images[spec]
        else:
            raise AssertionError("unexpected command %s" % args)
        return 0, "", ""


def params(**kw):
    return dict(wanted(**kw), cluster_conf="/etc/ceph/ceph.conf", user="admin", keyring=None, timeout=5)


def test_run_creates_once_and_check_mode_runs_nothing():
    fake = FakeRbd()
    preview = run_image(fake, params(size="10G"), check_mode=True, diff=True)
    assert preview["changed"] and fake.calls == [] and fake.images == {}
    assert preview["commands"] == ["rbd create --size 10737418240B kubernetes/pvc-1"]
    assert preview["diff"]["before"] == {} and preview["image"]["features"] is None

    created = run_image(fake, params(size="10G"), diff=True)
    assert fake.calls == [["create", "--size", "10737418240B", "kubernetes/pvc-1"]]
    # the id and the default features come from rbd info after the create
    assert created["image"]["id"] == "7f3c9d2e1b0a" and created["image"]["features"] == DEFAULT_FEATURES
    assert created["diff"]["after"] == created["image"]

    again = run_image(fake, params(size=10 * GIB, features=DEFAULT_FEATURES))
    assert not again["changed"] and len(fake.calls) == 1


def test_run_passes_the_connection_to_rbd():
    fake = FakeRbd()
    run_image(fake, dict(params(size="1G"), keyring="/etc/ceph/ceph.client.ops.keyring", user="ops"))
    assert fake.seen[0][:9] == [
        "rbd",
        "--conf",
        "/etc/ceph/ceph.conf",
        "--id",
        "ops",
        "--client-mount-timeout",
        "5",
        "--keyring",
        "/etc/ceph/ceph.client.ops.keyring",
    ]


def test_run_in_a_namespace_grows_and_switches_features():
    spec = "kubernetes/tenant-a/pvc-1"
    fake = FakeRbd(images={spec: info_json("pvc-1", "5e2b8b4567a1", 20 * GIB, ["layering", "exclusive-lock"])})
    result = run_image(
        fake, params(namespace="tenant-a", size="30G", features=["layering", "exclusive-lock", "object-map"])
    )
    assert result["commands"] == [
        "rbd resize --size 32212254720B --no-progress kubernetes/tenant-a/pvc-1",
        "rbd feature enable kubernetes/tenant-a/pvc-1 object-map",
    ]
    assert fake.images[spec]["size"] == 30 * GIB
    assert result["image"]["features"] == ["layering", "exclusive-lock", "object-map"]
    assert result["image"]["namespace"] == "tenant-a"


def test_run_refuses_to_delete_an_open_image_before_any_command():
    spec = "kubernetes/pvc-1"
    watcher = {"address": "10.20.0.11:0/2876543210", "client": 4711, "cookie": 18446462598732840961}
    fake = FakeRbd(images={spec: info_json("pvc-1", "5e2b8b4567a1", GIB, DEFAULT_FEATURES)}, watchers={spec: [watcher]})
    with pytest.raises(CephError, match=r"^state: absent for image kubernetes/pvc-1, which 1 client\(s\) have open"):
        run_image(fake, params(state="absent"))
    assert fake.calls == []

    fake.watchers = {}
    deleted = run_image(fake, params(state="absent"), diff=True)
    assert fake.calls == [["rm", "--no-progress", spec]] and deleted["image"] is None
    assert deleted["diff"]["after"] == {} and deleted["diff"]["before"]["id"] == "5e2b8b4567a1"
    assert not run_image(fake, params(state="absent"))["changed"]


def test_run_with_a_missing_pool_names_it_and_absent_is_then_done():
    fake = FakeRbd(pools={})
    with pytest.raises(CephError, match=r"^pool: 'kubernetes' does not exist"):
        run_image(fake, params(size="1G"))
    assert not run_image(fake, params(state="absent"))["changed"]


def test_run_raises_rbds_own_message_when_a_command_fails():
    spec = "kubernetes/pvc-1"
    fake = FakeRbd(images={spec: info_json("pvc-1", "5e2b8b4567a1", 20 * GIB, DEFAULT_FEATURES)})

    def failing(cmd):
        if "resize" in cmd:
            return 1, "", "rbd: resize error: (122) Disk quota exceeded"
        return fake(cmd)

    with pytest.raises(CephError, match=r"^`rbd resize --size 32212254720B --no-progress kubernetes/pvc-1` failed"):
        run_image(failing, params(size="30G"))
