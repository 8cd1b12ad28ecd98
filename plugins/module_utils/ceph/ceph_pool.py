# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the ceph_pool module: read the pools, plan, then act in one place.

plan_pool() is pure (wanted + the pool as Ceph reports it + the CRUSH rules and OSD count in,
ceph commands or errors out) and unit-tested; run_pool() reads through CephCli, plans, and
outside check mode runs the planned commands in order.

Rules: min_size at most size; size not above the OSDs that are in (a pool bigger than the
cluster never goes active+clean); the CRUSH rule must exist; an application once enabled is
not removed here; a pool is deleted only with delete_confirm naming it (and the mons must
allow pool deletion).
"""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import (
    CephCli,
    CephError,
    ceph_connection_argument_spec,
)

AUTOSCALE_MODES = ("on", "off", "warn")

ARGUMENT_SPEC = dict(
    ceph_connection_argument_spec(),
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    size=dict(type="int"),
    min_size=dict(type="int"),
    pg_autoscale_mode=dict(type="str", choices=list(AUTOSCALE_MODES)),
    pg_num=dict(type="int"),
    application=dict(type="str", choices=["rbd", "cephfs", "rgw"]),
    crush_rule=dict(type="str"),
    delete_confirm=dict(type="str"),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)


def pool_view(pool, rule_names):
    """The fields this module keeps, from one entry of `ceph osd pool ls detail`."""
    return dict(
        size=pool.get("size"),
        min_size=pool.get("min_size"),
        pg_autoscale_mode=pool.get("pg_autoscale_mode"),
        pg_num=pool.get("pg_num"),
        crush_rule=rule_names.get(pool.get("crush_rule"), str(pool.get("crush_rule"))),
        applications=sorted((pool.get("application_metadata") or {}).keys()),
    )


def plan_pool(wanted, current, rules, osds_in):
    """wanted: the module's params; current: pool_view() or None; rules: rule names; osds_in: int.

    Returns {commands: [[ceph args]...], before, after, errors}.
    """
    name = wanted["name"]
    errors, commands = [], []
    if wanted.get("state", "present") == "absent":
        if current is not None:
            if wanted.get("delete_confirm") != name:
                errors.append(
                    "delete_confirm: %r for pool %s; fix: set delete_confirm to the pool's name to delete it and "
                    "every object in it" % (wanted.get("delete_confirm"), name)
                )
            else:
                commands.append(["osd", "pool", "delete", name, name, "--yes-i-really-really-mean-it"])
        return dict(commands=[] if errors else commands, before=current, after=None, errors=errors)

    size, min_size = wanted.get("size"), wanted.get("min_size")
    have = current or {}
    eff_size = size if size is not None else have.get("size")
    eff_min = min_size if min_size is not None else have.get("min_size")
    if size is not None and size < 1:
        errors.append("size: %d for pool %s; fix: give 1 or more (3 for data that matters)" % (size, name))
    if size is not None and osds_in is not None and size > osds_in:
        errors.append(
            "size: %d for pool %s is above the %d OSDs that are in; fix: give at most %d, or add OSDs first "
            "(a pool larger than the cluster never becomes active+clean)" % (size, name, osds_in, osds_in)
        )
    if eff_size is not None and eff_min is not None and eff_min > eff_size:
        errors.append(
            "min_size: %d for pool %s is above its size %d; fix: give at most %d" % (eff_min, name, eff_size, eff_size)
        )
    if min_size is not None and min_size < 1:
        errors.append("min_size: %d for pool %s; fix: give 1 or more" % (min_size, name))
    rule = wanted.get("crush_rule")
    if rule is not None and rule not in rules:
        errors.append(
            "crush_rule: %r for pool %s does not exist (rules: %s); fix: create it first or name one of those"
            % (rule, name, ", ".join(sorted(rules)) or "none")
        )
    pg_num = wanted.get("pg_num")
    if pg_num is not None and (pg_num < 1 or pg_num & (pg_num - 1)):
        errors.append(
            "pg_num: %d for pool %s; fix: give a power of two (or leave it to the autoscaler)" % (pg_num, name)
        )
    if errors:
        return dict(commands=[], before=current, after=current, errors=errors)

    after = dict(have) if current else {}
    if current is None:
        create = ["osd", "pool", "create", name, str(pg_num or 32), str(pg_num or 32), "replicated"]
        if rule is not None:
            create.append(rule)
        commands.append(create)
        after = dict(
            size=None, min_size=None, pg_autoscale_mode=None, pg_num=pg_num or 32, crush_rule=rule, applications=[]
        )
    else:
        if rule is not None and rule != current["crush_rule"]:
            commands.append(["osd", "pool", "set", name, "crush_rule", rule])
            after["crush_rule"] = rule
        if pg_num is not None and pg_num != current["pg_num"]:
            commands.append(["osd", "pool", "set", name, "pg_num", str(pg_num)])
            after["pg_num"] = pg_num
    # size before min_size when growing, min_size first when shrinking (min_size <= size at each step)
    order = ["min_size", "size"] if size is not None and size < (have.get("size") or 0) else ["size", "min_size"]
    for field in order:
        value = wanted.get(field)
        if value is not None and (current is None or value != current[field]):
            commands.append(["osd", "pool", "set", name, field, str(value)])
            after[field] = value
    mode = wanted.get("pg_autoscale_mode")
    if mode is not None and (current is None or mode != current["pg_autoscale_mode"]):
        commands.append(["osd", "pool", "set", name, "pg_autoscale_mode", mode])
        after["pg_autoscale_mode"] = mode
    app = wanted.get("application")
    if app is not None and app not in after.get("applications", []):
        commands.append(["osd", "pool", "application", "enable", name, app])
        after["applications"] = sorted(set(after.get("applications", [])) | {app})
    return dict(commands=commands, before=current, after=after, errors=[])


def read_state(cli, name):
    pools = cli.run("osd", "pool", "ls", "detail") or []
    rules = {r["rule_id"]: r["rule_name"] for r in (cli.run("osd", "crush", "rule", "dump") or [])}
    stat = cli.run("osd", "stat") or {}
    osds_in = stat.get("num_in_osds", stat.get("osdmap", {}).get("num_in_osds"))
    pool = next((p for p in pools if p.get("pool_name") == name), None)
    return (pool_view(pool, rules) if pool else None), set(rules.values()), osds_in


def run_pool(run_command, params, check_mode=False, diff=False):
    cli = CephCli(run_command, params)
    current, rules, osds_in = read_state(cli, params["name"])
    plan = plan_pool(params, current, rules, osds_in)
    if plan["errors"]:
        raise CephError("; ".join(plan["errors"]))
    if not check_mode:
        for command in plan["commands"]:
            cli.run(*command, json_out=False)
    result = dict(
        changed=bool(plan["commands"]),
        commands=["ceph " + " ".join(c) for c in plan["commands"]],
        pool=plan["after"],
    )
    if diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    return result
