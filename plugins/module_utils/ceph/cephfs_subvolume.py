# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the cephfs_subvolume module: read the subvolume, plan, then act in one place.

plan_subvolume() is pure (wanted + the subvolume as `ceph fs subvolume info` reports it + the
cluster's volumes and the volume's groups in, ceph commands or errors out) and unit-tested;
run_subvolume() reads through CephCli, plans, and outside check mode runs the planned commands.

Rules: size is the subvolume's quota in bytes (0: none). A quota is never set below the bytes
the subvolume holds, and lowered only with allow_shrink; every resize carries --no_shrink, so
the mgr refuses it too if the subvolume grew past the new quota since it was read. The mode
of an existing subvolume is not changed here: a different mode is refused with the fix. A
subvolume that holds data is deleted only with force. The volume and the group must exist.
"""

from __future__ import annotations

import re

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import (
    CephCli,
    CephError,
    ceph_connection_argument_spec,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.sizes import SizeError, format_size, parse_size

# the group the mgr files a subvolume under when no group is named
NO_GROUP = "_nogroup"
_MODE = re.compile(r"^[0-7]{3,4}$")

ARGUMENT_SPEC = dict(
    ceph_connection_argument_spec(),
    volume=dict(type="str", required=True),
    group=dict(type="str"),
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    size=dict(type="raw"),
    mode=dict(type="str"),
    allow_shrink=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)


def group_of(params):
    """The group the commands name: None for the default group (given as nothing or as _nogroup)."""
    group = params.get("group")
    return None if not group or group == NO_GROUP else group


def group_args(group):
    return ["--group_name", group] if group else []


def label(volume, group, name):
    """How messages name the subvolume: `pvc-1 in group csi of volume cephfs`."""
    return "%s%s of volume %s" % (name, " in group %s" % group if group else "", volume)


def subvolume_view(info, volume, group, name, path):
    """The fields this module keeps, from `ceph fs subvolume info` (quota 0: none; mode without the type bits)."""
    quota = info.get("bytes_quota")
    mode = info.get("mode")
    return dict(
        volume=volume,
        group=group,
        name=name,
        size=quota if isinstance(quota, int) else 0,
        mode="%04o" % (mode & 0o7777) if isinstance(mode, int) else None,
        bytes_used=info.get("bytes_used", 0),
        path=path,
        state=info.get("state", "complete"),
    )


def _where_errors(volume, group, volumes, groups):
    if volume not in volumes:
        return [
            "volume: %r is not a CephFS volume of this cluster (volumes: %s); fix: name one of those, or create it "
            "with `ceph fs volume create %s`" % (volume, ", ".join(volumes) or "none", volume)
        ]
    if group and group not in (groups or []):
        return [
            "group: %r does not exist in volume %s (groups: %s); fix: create it with "
            "`ceph fs subvolumegroup create %s %s`, or name one of those"
            % (group, volume, ", ".join(groups or []) or "none", volume, group)
        ]
    return []


def _mode_value(mode, where, errors):
    """The mode as '0755', or None (an error recorded) when it is not an octal string."""
    if mode is None:
        return None
    if not _MODE.match(str(mode)):
        errors.append(
            "mode: %r for subvolume %s is not an octal mode; fix: give it quoted, like mode: '0755' "
            "(YAML reads an unquoted 0755 as the number 493)" % (mode, where)
        )
        return None
    return "%04o" % int(str(mode), 8)


def _resize(wanted_size, current, where, allow_shrink, errors):
    """The new_size argument of `ceph fs subvolume resize`, or None when the quota stays."""
    quota, used = current["size"], current["bytes_used"]
    if wanted_size == quota:
        return None
    if wanted_size == 0:
        return "infinite"
    if wanted_size < used:
        errors.append(
            "size: %s for subvolume %s is below the %s it holds; fix: give at least %s, or free space in it first"
            % (format_size(wanted_size), where, format_size(used), format_size(used))
        )
    elif quota and wanted_size < quota and not allow_shrink:
        errors.append(
            "size: %s for subvolume %s is below its quota %s; fix: give at least %s, or set allow_shrink: true "
            "(it holds %s)"
            % (format_size(wanted_size), where, format_size(quota), format_size(quota), format_size(used))
        )
    return str(wanted_size)


def plan_subvolume(wanted, current, volumes, groups):
    """wanted: the module's params; current: subvolume_view() or None; volumes: the cluster's CephFS
    volumes; groups: the volume's subvolume groups (None when not read).

    Returns {commands: [[ceph args]...], before, after, errors}.
    """
    volume, group, name = wanted["volume"], group_of(wanted), wanted["name"]
    where = label(volume, group, name)
    gargs = group_args(group)
    if wanted.get("state", "present") == "absent":
        if current is None:
            return dict(commands=[], before=None, after=None, errors=[])
        if current["bytes_used"] and not wanted.get("force"):
            error = "state: absent for subvolume %s, which holds %s; fix: set force: true to delete it and its data" % (
                where,
                format_size(current["bytes_used"]),
            )
            return dict(commands=[], before=current, after=current, errors=[error])
        return dict(commands=[["fs", "subvolume", "rm", volume, name] + gargs], before=current, after=None, errors=[])

    errors = _where_errors(volume, group, volumes, groups)
    mode = _mode_value(wanted.get("mode"), where, errors)
    size = None
    if wanted.get("size") is not None:
        try:
            size = parse_size(wanted["size"])
        except SizeError as exc:
            errors.append("size: %r for subvolume %s %s" % (wanted["size"], where, exc))
    if current is not None and current["state"] != "complete":
        errors.append(
            "state: present for subvolume %s, which is %r; fix: wait for its clone to finish (ceph fs clone status), "
            "or remove its retained snapshots" % (where, current["state"])
        )
    elif current is not None and mode is not None and mode != current["mode"]:
        errors.append(
            "mode: %r for subvolume %s differs from its mode %r, and this module does not change the mode of an "
            "existing subvolume; fix: set mode to %r (or leave it unset), or chmod its path on a client mount"
            % (wanted["mode"], where, current["mode"], current["mode"])
        )
    new_size = None
    if current is not None and size is not None and current["state"] == "complete":
        new_size = _resize(size, current, where, wanted.get("allow_shrink"), errors)
    if errors:
        return dict(commands=[], before=current, after=current, errors=errors)

    if current is None:
        create = ["fs", "subvolume", "create", volume, name]
        create += ["--size", str(size)] if size else []
        create += gargs + (["--mode", mode] if mode else [])
        # 0755: the mgr's mode for a subvolume created without --mode
        after = dict(
            volume=volume,
            group=group,
            name=name,
            size=size or 0,
            mode=mode or "0755",
            bytes_used=0,
            path=None,
            state="complete",
        )
        return dict(commands=[create], before=None, after=after, errors=[])
    if new_size is None:
        return dict(commands=[], before=current, after=current, errors=[])
    # --no_shrink: the mgr refuses a quota below what the subvolume holds when the command runs
    resize = ["fs", "subvolume", "resize", volume, name, new_size] + gargs
    resize += ["--no_shrink"] if new_size != "infinite" else []
    return dict(commands=[resize], before=current, after=dict(current, size=size), errors=[])


def read_state(cli, params):
    """(subvolume_view or None, the raw info or None, volumes, groups or None)."""
    volume, group, name = params["volume"], group_of(params), params["name"]
    volumes = sorted(entry["name"] for entry in cli.run("fs", "volume", "ls") or [])
    if volume not in volumes:
        return None, None, volumes, None
    groups = None
    if group:
        groups = sorted(entry["name"] for entry in cli.run("fs", "subvolumegroup", "ls", volume) or [])
        if group not in groups:
            return None, None, volumes, groups
    info = cli.run("fs", "subvolume", "info", volume, name, *group_args(group), missing_ok=True)
    if info is None:
        return None, None, volumes, groups
    path = None
    if info.get("state", "complete") == "complete":
        # getpath prints the bare path, with or without --format json
        path = cli.run("fs", "subvolume", "getpath", volume, name, *group_args(group), json_out=False).strip()
    return subvolume_view(info, volume, group, name, path), info, volumes, groups


def run_subvolume(run_command, params, check_mode=False, diff=False):
    cli = CephCli(run_command, params)
    current, info, volumes, groups = read_state(cli, params)
    plan = plan_subvolume(params, current, volumes, groups)
    if plan["errors"]:
        raise CephError("; ".join(plan["errors"]))
    after = plan["after"]
    if not check_mode and plan["commands"]:
        for command in plan["commands"]:
            cli.run(*command, json_out=False)
        after, info = read_state(cli, params)[:2] if after is not None else (None, None)
    elif after is None:
        info = None
    result = dict(
        changed=bool(plan["commands"]),
        commands=[cli.shown(c) for c in plan["commands"]],
        subvolume=after,
        path=(after or {}).get("path"),
        info=info,
    )
    if diff:
        result["diff"] = dict(before=plan["before"] or {}, after=after or {})
    return result
