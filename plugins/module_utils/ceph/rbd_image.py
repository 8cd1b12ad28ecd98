# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the rbd_image module: read the image, plan, then act in one place.

plan_image() is pure (wanted + the image as `rbd info` reports it + its watchers + the pool's
namespaces in, rbd commands or errors out) and unit-tested; run_image() reads through CephCli
running `rbd`, plans, and outside check mode runs the planned commands in order.

Rules: sizes are bytes (10G is 10 GiB) and reach rbd as `<bytes>B`, never in rbd's default
unit (MiB). An image grows with `rbd resize`; it shrinks only with allow_shrink (what lies past
the new end is lost). Features are chosen when the image is created; on an existing image only
those rbd switches at runtime change (exclusive-lock, object-map, fast-diff and journaling;
deep-flatten can only be switched off), and a set that breaks a dependency (object-map needs
exclusive-lock, ...) is refused. An image is deleted only when no client has it open (its
watchers) unless force, and never while it has snapshots.
"""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import (
    CephCli,
    CephError,
    ceph_connection_argument_spec,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.sizes import SizeError, format_size, parse_size

# the features `rbd create --image-feature` takes, in the order rbd lists them
FEATURES = ("layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten", "journaling")
# what `rbd feature enable|disable` accepts on an existing image (librbd's RBD_FEATURES_MUTABLE)
ENABLE_LATER = ("exclusive-lock", "object-map", "fast-diff", "journaling")
DISABLE_LATER = ENABLE_LATER + ("deep-flatten",)
REQUIRES = {"object-map": "exclusive-lock", "fast-diff": "object-map", "journaling": "exclusive-lock"}

ARGUMENT_SPEC = dict(
    ceph_connection_argument_spec(),
    pool=dict(type="str", required=True),
    namespace=dict(type="str"),
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    size=dict(type="raw"),
    features=dict(type="list", elements="str", choices=list(FEATURES)),
    allow_shrink=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)


def image_spec(pool, namespace, name):
    """rbd's image spec: pool/name, or pool/namespace/name."""
    return "/".join(part for part in (pool, namespace, name) if part)


def ordered(features):
    return sorted(features, key=lambda f: (FEATURES.index(f) if f in FEATURES else len(FEATURES), f))


def image_view(info, pool, namespace):
    """The image as this module reports it, from `rbd info --format json` (size in bytes)."""
    return dict(
        pool=pool,
        namespace=namespace,
        name=info.get("name"),
        id=info.get("id"),
        size=info.get("size"),
        features=ordered(info.get("features") or []),
        object_size=info.get("object_size"),
        snapshot_count=info.get("snapshot_count", 0),
    )


def _present_errors(wanted, current, size, spec, size_unreadable=False):
    errors = []
    features = wanted.get("features")
    if features is not None:
        if not features and current is None:
            errors.append(
                "features: [] for new image %s; fix: list the features it needs (at least layering), or leave "
                "features unset for the cluster's default (rbd_default_features)" % spec
            )
        for feature in ordered(set(features)):
            need = REQUIRES.get(feature)
            if need and need not in features:
                errors.append(
                    "features: %s for image %s needs %s; fix: add %s to features, or drop %s"
                    % (feature, spec, need, need, feature)
                )
    if size == 0:
        errors.append("size: 0 for image %s; fix: give a size above 0, like 10G" % spec)
    elif size is None and current is None and not size_unreadable:
        errors.append("size: None for new image %s; fix: give its size, like 10G" % spec)
    elif size is not None and current is not None and size < current["size"] and not wanted.get("allow_shrink"):
        errors.append(
            "size: %s for image %s is below its size %s; fix: give at least %s, or set allow_shrink: true "
            "(the data past %s is lost)"
            % (format_size(size), spec, format_size(current["size"]), format_size(current["size"]), format_size(size))
        )
    return errors


def _feature_changes(features, current, spec):
    """(disable, enable, errors) for an existing image."""
    have = set(current["features"]) & set(FEATURES)
    enable, disable = ordered(set(features) - have), ordered(have - set(features))
    errors = []
    for feature in enable:
        if feature not in ENABLE_LATER:
            errors.append(
                "features: %s is not enabled on image %s and rbd enables only %s on an existing image; fix: drop "
                "%s from features, or move the data to a new image that has it (rbd migration prepare)"
                % (feature, spec, ", ".join(ENABLE_LATER), feature)
            )
    for feature in disable:
        if feature not in DISABLE_LATER:
            errors.append(
                "features: %s is enabled on image %s and rbd disables only %s on an existing image; fix: add %s "
                "to features" % (feature, spec, ", ".join(DISABLE_LATER), feature)
            )
    # off in reverse dependency order, on in dependency order (fast-diff after object-map after exclusive-lock)
    return list(reversed(disable)), enable, errors


def plan_image(wanted, current, watchers, namespaces):
    """wanted: the module's params; current: image_view() or None; watchers: `rbd status` watchers;
    namespaces: the pool's namespaces, None when the pool does not exist.

    Returns {commands: [[rbd args]...], before, after, errors}.
    """
    pool, namespace = wanted["pool"], wanted.get("namespace")
    spec = image_spec(pool, namespace, wanted["name"])
    if wanted.get("state", "present") == "absent":
        if current is None:
            return dict(commands=[], before=None, after=None, errors=[])
        errors = []
        if current.get("snapshot_count"):
            errors.append(
                "state: absent for image %s, which has %d snapshots; fix: remove them first (rbd snap purge %s; "
                "a protected one needs rbd snap unprotect, and its clones a flatten)"
                % (spec, current["snapshot_count"], spec)
            )
        if watchers and not wanted.get("force"):
            errors.append(
                "state: absent for image %s, which %d client(s) have open (%s); fix: unmap or stop them first, or "
                "set force: true if these watches are stale (rbd rm still refuses a live one; a crashed "
                "client's watch expires after about 30 seconds)"
                % (spec, len(watchers), ", ".join(sorted(w.get("address", "?") for w in watchers)))
            )
        if errors:
            return dict(commands=[], before=current, after=current, errors=errors)
        return dict(commands=[["rm", "--no-progress", spec]], before=current, after=None, errors=[])

    errors = []
    if namespaces is None:
        errors.append(
            "pool: %r does not exist; fix: create it first (idcloud.platform.ceph_pool with application: rbd)" % pool
        )
    elif namespace and namespace not in namespaces:
        errors.append(
            "namespace: %r does not exist in pool %s (namespaces: %s); fix: create it with "
            "`rbd namespace create %s/%s`, or name one of those"
            % (namespace, pool, ", ".join(namespaces) or "none", pool, namespace)
        )
    size = None
    if wanted.get("size") is not None:
        try:
            size = parse_size(wanted["size"])
        except SizeError as exc:
            errors.append("size: %r for image %s %s" % (wanted["size"], spec, exc))
    size_unreadable = wanted.get("size") is not None and size is None
    errors += _present_errors(wanted, current, size, spec, size_unreadable)
    features = wanted.get("features")
    disable, enable = [], []
    if current is not None and features is not None:
        disable, enable, feature_errors = _feature_changes(features, current, spec)
        errors += feature_errors
    if errors:
        return dict(commands=[], before=current, after=current, errors=errors)

    commands = []
    if current is None:
        create = ["create", "--size", "%dB" % size]
        for feature in ordered(set(features or [])):
            create += ["--image-feature", feature]
        commands.append(create + [spec])
        after = dict(
            pool=pool,
            namespace=namespace,
            name=wanted["name"],
            id=None,
            size=size,
            features=ordered(set(features)) if features is not None else None,
            object_size=None,
            snapshot_count=0,
        )
        return dict(commands=commands, before=None, after=after, errors=[])

    after = dict(current)
    if size is not None and size != current["size"]:
        resize = ["resize", "--size", "%dB" % size]
        commands.append(resize + (["--allow-shrink"] if size < current["size"] else []) + ["--no-progress", spec])
        after["size"] = size
    if disable:
        commands.append(["feature", "disable", spec] + disable)
    if enable:
        commands.append(["feature", "enable", spec] + enable)
    if disable or enable:
        after["features"] = ordered((set(current["features"]) - set(disable)) | set(enable))
    return dict(commands=commands, before=current, after=after, errors=[])


def read_state(cli, params):
    """(image_view or None, watchers, namespaces or None when the pool is missing)."""
    pool, namespace = params["pool"], params.get("namespace")
    # lists the pool's namespaces and, by exiting ENOENT, tells a missing pool from a missing image
    listed = cli.run("namespace", "ls", pool, missing_ok=True)
    namespaces = None if listed is None else sorted(entry["name"] for entry in listed)
    if namespaces is None or (namespace and namespace not in namespaces):
        return None, [], namespaces
    spec = image_spec(pool, namespace, params["name"])
    info = cli.run("info", spec, missing_ok=True)
    if info is None:
        return None, [], namespaces
    watchers = []
    if params.get("state") == "absent":
        watchers = (cli.run("status", spec) or {}).get("watchers") or []
    return image_view(info, pool, namespace), watchers, namespaces


def run_image(run_command, params, check_mode=False, diff=False):
    cli = CephCli(run_command, params, binary="rbd")
    current, watchers, namespaces = read_state(cli, params)
    plan = plan_image(params, current, watchers, namespaces)
    if plan["errors"]:
        raise CephError("; ".join(plan["errors"]))
    after = plan["after"]
    if not check_mode and plan["commands"]:
        for command in plan["commands"]:
            cli.run(*command, json_out=False)
        if after is not None:
            # the id and the default features of a new image are known only once rbd made it
            after = read_state(cli, params)[0]
    result = dict(
        changed=bool(plan["commands"]),
        commands=[cli.shown(c) for c in plan["commands"]],
        image=after,
    )
    if diff:
        result["diff"] = dict(before=plan["before"] or {}, after=after or {})
    return result
