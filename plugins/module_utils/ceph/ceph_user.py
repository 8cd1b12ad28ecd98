# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the ceph_user module: read the cephx entity, plan, then act in one place.

plan_user() is pure (wanted + the entity as `ceph auth get` reports it in, ceph commands or
errors out) and unit-tested; run_user() reads through CephCli, plans, and outside check mode
runs the planned commands in order.

Rules: the name is <type>.<id> with a type cephx knows; client.admin is managed only with
allow_client_admin; the caps are given whole, because `ceph auth caps` replaces every cap of
the entity (a cap left out is a cap removed, and the diff shows it). A missing entity is made
with `ceph auth get-or-create`, removed with `ceph auth del`.

The key is read apart from the entity's view: it never enters the plan, the diff, the
commands or a message, and reaches the result only as `key` with return_key.
"""

from __future__ import annotations

import difflib
import re

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import (
    CephCli,
    CephError,
    ceph_connection_argument_spec,
)

ENTITY_TYPES = ("client", "mds", "mgr", "mon", "osd")
CAP_SERVICES = ("mds", "mgr", "mon", "osd")
ADMIN = "client.admin"
_ENTITY_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:+-]*$")

ARGUMENT_SPEC = dict(
    ceph_connection_argument_spec(),
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    caps=dict(type="dict"),
    allow_client_admin=dict(type="bool", default=False),
    return_key=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)

NO_LOG_WARNING = (
    "return_key: true on a task without no_log; fix: add `no_log: true` to the task, or the key is printed "
    "with -v and handed to every callback"
)


def did_you_mean(word, choices):
    close = difflib.get_close_matches(word, choices, n=1)
    return " (did you mean %s?)" % close[0] if close else ""


def name_errors(name, allow_client_admin=False):
    """Problems with the entity's name, each as `name: ...; fix: ...`."""
    kind, dot, ident = name.partition(".")
    if not dot:
        return ["name: %r is not a cephx entity (<type>.<id>); fix: give the type too, like client.%s" % (name, name)]
    if kind not in ENTITY_TYPES:
        return [
            "name: %r has the type %r%s; fix: use one of %s"
            % (name, kind, did_you_mean(kind, ENTITY_TYPES), ", ".join(ENTITY_TYPES))
        ]
    if not _ENTITY_ID.match(ident):
        return [
            "name: %r has no usable id after %r; fix: give letters, digits and . _ - @ : + only, like %s.csi-rbd"
            % (name, kind + ".", kind)
        ]
    if name == ADMIN and not allow_client_admin:
        return [
            "name: client.admin is the cluster's admin user (every admin tool and the orchestrator use it); "
            "fix: set allow_client_admin: true to manage it here"
        ]
    return []


def caps_errors(name, caps, current):
    """Problems with the wanted caps (None: caps not managed)."""
    if caps is None:
        return []
    errors = []
    for service in sorted(caps):
        value = caps[service]
        if service not in CAP_SERVICES:
            errors.append(
                "caps: %r for %s is not a cephx service%s; fix: use %s"
                % (service, name, did_you_mean(service, CAP_SERVICES), ", ".join(CAP_SERVICES))
            )
        elif not isinstance(value, str) or not value.strip():
            errors.append(
                "caps.%s: %r for %s is not a cap; fix: give a cap string like 'profile rbd' or 'allow r', "
                "or leave %s out of caps" % (service, value, name, service)
            )
    if not caps and current is not None and current["caps"]:
        # `ceph auth caps` takes at least one cap, so an entity cannot be left with none
        errors.append(
            "caps: {} for %s, which has caps for %s; fix: give at least one cap, or delete the entity "
            "with state: absent" % (name, ", ".join(sorted(current["caps"])))
        )
    return errors


def user_view(entry):
    """The fields this module keeps (never the key), from one entry of `ceph auth get`."""
    return dict(entity=entry["entity"], caps=dict(entry.get("caps") or {}))


def cap_args(caps):
    """`mon 'profile rbd' osd '...'` as ceph's argument list, services in the order ceph prints them."""
    return [arg for service in sorted(caps) for arg in (service, caps[service])]


def plan_user(wanted, current):
    """wanted: the module's params; current: user_view() or None.

    Returns {commands: [[ceph args]...], before, after, errors}.
    """
    name = wanted["name"]
    errors = name_errors(name, wanted.get("allow_client_admin", False))
    if wanted.get("state", "present") == "absent":
        if errors:
            return dict(commands=[], before=current, after=current, errors=errors)
        if current is None:
            return dict(commands=[], before=None, after=None, errors=[])
        return dict(commands=[["auth", "del", name]], before=current, after=None, errors=[])

    caps = wanted.get("caps")
    errors += caps_errors(name, caps, current)
    if errors:
        return dict(commands=[], before=current, after=current, errors=errors)
    if current is None:
        caps = dict(caps or {})
        command = ["auth", "get-or-create", name] + cap_args(caps)
        return dict(commands=[command], before=None, after=dict(entity=name, caps=caps), errors=[])
    if caps is None or dict(caps) == current["caps"]:
        return dict(commands=[], before=current, after=current, errors=[])
    # `ceph auth caps` replaces all caps: the command carries every wanted cap, not only the changed ones
    command = ["auth", "caps", name] + cap_args(caps)
    return dict(commands=[command], before=current, after=dict(entity=name, caps=dict(caps)), errors=[])


def read_state(cli, name):
    """(user_view or None, key or None); `ceph auth get` prints a keyring: a list with the one entity."""
    found = cli.run("auth", "get", name, missing_ok=True)
    if not found:
        return None, None
    return user_view(found[0]), found[0].get("key")


def run_user(run_command, params, check_mode=False, diff=False, task_no_log=False):
    name = params["name"]
    # a malformed name is refused before ceph sees it (ceph's own answer would be a bare EINVAL)
    errors = name_errors(name, params.get("allow_client_admin", False))
    if errors:
        raise CephError("; ".join(errors))
    cli = CephCli(run_command, params)
    current, key = read_state(cli, name)
    plan = plan_user(params, current)
    if plan["errors"]:
        raise CephError("; ".join(plan["errors"]))
    if not check_mode and plan["commands"]:
        for command in plan["commands"]:
            # get-or-create prints the new keyring: json_out=False keeps it out of every value we hold
            cli.run(*command, json_out=False)
        key = read_state(cli, name)[1] if params.get("return_key") and plan["after"] else None
    result = dict(
        changed=bool(plan["commands"]),
        commands=[cli.shown(c) for c in plan["commands"]],
        user=plan["after"],
    )
    if params.get("return_key"):
        result["key"] = key if plan["after"] is not None else None
        if not task_no_log:
            result["warnings"] = [NO_LOG_WARNING]
    if diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    return result
