# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the ceph_crush module: the CRUSH hierarchy and a replicated rule from the IDC description.

plan_crush() is pure (the wanted tree + the buckets as `ceph osd crush tree` reports them + the
rules as `ceph osd crush rule dump` does in, ceph commands or errors out) and unit-tested;
run_crush() reads through CephCli, plans, and outside check mode runs the planned commands in
order, then reads the map again for the result.

The wanted tree is the description's: a root (`default`), its rooms, their racks, the OSD hosts
in them ([{room, rack, host}], idc_ceph.crush_tree). Missing buckets are made with `ceph osd
crush add-bucket` (a new bucket hangs from nothing) and every bucket is put under its parent
with `ceph osd crush move`, top down, so a parent exists before its children move in. Host
buckets are made before their OSDs exist: an OSD that starts with crush location host=<name>
joins its host bucket wherever that hangs. Moving a host that holds OSDs moves their data.

Rules: a name must be a CRUSH name and have one type; a bucket of another type under a wanted
name, a rack in two rooms and a host listed twice are refused. A rule is made with `ceph osd
crush rule create-replicated` when missing; one that exists with another root, device class or
failure domain is refused, since a rule cannot be edited in place (the fix names the
migration). Buckets outside the tree are reported as unmanaged and never removed while they hold
OSDs; with prune the empty ones are removed (`ceph osd crush remove`), children first, unless a
rule takes them.
"""

from __future__ import annotations

import re

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import (
    CephCli,
    CephError,
    ceph_connection_argument_spec,
)

FAILURE_DOMAINS = ("host", "rack", "room")
# CrushWrapper::is_valid_crush_name
_CRUSH_NAME = re.compile(r"^[-_.0-9A-Za-z]+$")
# `ceph osd crush rule dump`: a rule's type (pg_pool_t::TYPE_REPLICATED)
REPLICATED = 1
_CHOOSE_OPS = ("chooseleaf_firstn", "chooseleaf_indep", "choose_firstn", "choose_indep")

ARGUMENT_SPEC = dict(
    ceph_connection_argument_spec(),
    tree=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            room=dict(type="str"),
            rack=dict(type="str", required=True),
            host=dict(type="str", required=True),
        ),
    ),
    root=dict(type="str", default="default"),
    rule=dict(type="str"),
    failure_domain=dict(type="str", default="rack", choices=list(FAILURE_DOMAINS)),
    prune=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)


# -- what Ceph reports, as this module keeps it


def buckets_view(crush_tree):
    """{name: {type, parent, osds}} from `ceph osd crush tree`, in its order; osds counts the devices
    directly in the bucket (osds_under() adds the subtree)."""
    nodes = {}
    for node in (crush_tree or {}).get("nodes") or []:
        # a bucket linked in two places is dumped twice: keep its first place
        nodes.setdefault(node["id"], node)
    parent_of = {}
    for node in nodes.values():
        for child in node.get("children") or []:
            parent_of.setdefault(child, node["id"])
    buckets = {}
    for ident, node in nodes.items():
        if ident >= 0:
            continue
        parent = nodes.get(parent_of.get(ident))
        buckets[node["name"]] = dict(
            type=node["type"],
            parent=parent["name"] if parent else None,
            osds=sum(1 for child in node.get("children") or [] if child >= 0),
        )
    return buckets


def osds_under(buckets, name):
    """The OSDs in a bucket and every bucket below it."""
    return buckets[name]["osds"] + sum(osds_under(buckets, child) for child in children_of(buckets, name))


def children_of(buckets, name):
    return [child for child, bucket in buckets.items() if bucket["parent"] == name]


def rule_view(rule):
    """{name, root, device_class, failure_domain, replicated} of one `ceph osd crush rule dump` entry."""
    steps = rule.get("steps") or []
    take = next((step for step in steps if step.get("op") == "take"), {})
    choose = next((step for step in steps if step.get("op") in _CHOOSE_OPS), {})
    # a rule for a device class takes the class's shadow tree, `default~ssd`
    root, _, device_class = (take.get("item_name") or "").partition("~")
    return dict(
        name=rule.get("rule_name"),
        root=root or None,
        device_class=device_class or None,
        failure_domain=choose.get("type"),
        replicated=rule.get("type", REPLICATED) == REPLICATED,
    )


def with_osds(buckets):
    """The result's view: every bucket with the OSDs in its whole subtree."""
    return {name: dict(bucket, osds=osds_under(buckets, name)) for name, bucket in buckets.items()}


# -- the plan


def wanted_tree(params, errors):
    """{name: (type, parent)} for the root, rooms, racks and hosts the tree asks for, top down."""
    root = params.get("root") or "default"
    wanted = {root: ("root", None)}
    where = {root: "root"}
    # name -> (parent, where it was first given), in the tree's order
    levels = {"room": {}, "rack": {}, "host": {}}
    for index, entry in enumerate(params.get("tree") or []):
        path = "tree[%d]" % index
        room, rack, host = entry.get("room"), entry.get("rack"), entry.get("host")
        bad = [
            (field, name)
            for field, name in (("room", room), ("rack", rack), ("host", host))
            if not (name is None and field == "room") and not _CRUSH_NAME.match(str(name or ""))
        ]
        for field, name in bad:
            errors.append(
                "%s.%s: %r is not a CRUSH name; fix: use letters, digits, '-', '_' and '.' only" % (path, field, name)
            )
        if bad:
            continue
        if params.get("failure_domain") == "room" and not room:
            errors.append(
                "%s.room: missing for host %s, and failure_domain is room; fix: give every entry its room, or choose "
                "failure_domain rack or host" % (path, host)
            )
        if host in levels["host"]:
            errors.append(
                "%s.host: %s is listed twice (also at %s); fix: list each host once"
                % (path, host, levels["host"][host][1])
            )
            continue
        if rack in levels["rack"] and levels["rack"][rack][0] != (room or root):
            first_parent, first = levels["rack"][rack]
            errors.append(
                "%s.rack: rack %s is under %s here and under %s at %s; fix: a bucket has one parent: give the rack one "
                "room everywhere, or two racks two names" % (path, rack, room or root, first_parent, first)
            )
            continue
        if room:
            levels["room"].setdefault(room, (root, path))
        levels["rack"].setdefault(rack, (room or root, path))
        levels["host"][host] = (rack, path)
    for kind in ("room", "rack", "host"):
        for name, (parent, path) in levels[kind].items():
            if name in wanted:
                errors.append(
                    "%s.%s: %s is also the name of the %s at %s; fix: rename one of them: CRUSH names the root, rooms, "
                    "racks and hosts in one name space" % (path, kind, name, wanted[name][0], where[name])
                )
                continue
            wanted[name] = (kind, parent)
            where[name] = "%s.%s" % (path, kind)
    return wanted


def plan_rule(params, rules, errors):
    """The rule command, or none; a rule that differs is refused with the migration as its fix."""
    name = params.get("rule")
    if not name:
        return [], None, None
    root, domain = params.get("root") or "default", params.get("failure_domain") or "rack"
    want = dict(name=name, root=root, device_class=None, failure_domain=domain, replicated=True)
    if not _CRUSH_NAME.match(name):
        errors.append("rule: %r is not a CRUSH name; fix: use letters, digits, '-', '_' and '.' only" % name)
        return [], None, None
    have = next((rule_view(rule) for rule in rules if rule.get("rule_name") == name), None)
    if have is None:
        return [["osd", "crush", "rule", "create-replicated", name, root, domain]], None, want
    if have != want:
        kind = "replicated" if have["replicated"] else "erasure-coded"
        root_shown = have["root"] + ("~" + have["device_class"] if have["device_class"] else "")
        errors.append(
            "rule: %s exists as a %s rule taking %s with failure domain %s, not a replicated rule taking %s with "
            "failure domain %s; fix: a CRUSH rule cannot be changed in place: create one under a new name (rule: "
            "%s_%s), point each pool at it (ceph_pool crush_rule, or ceph osd pool set <pool> crush_rule <rule>; the "
            "data moves), then remove the old rule once no pool uses it (ceph osd crush rule rm %s)"
            % (name, kind, root_shown, have["failure_domain"], root, domain, name, domain, name)
        )
    return [], have, have


def plan_crush(params, buckets, rules):
    """params: the module's; buckets: buckets_view(); rules: `ceph osd crush rule dump`.

    Returns {commands: [[ceph args]...], before, after, unmanaged, pruned, warnings, errors}; before and
    after are {buckets: with_osds(), rule: rule_view() or None}.
    """
    errors = []
    wanted = wanted_tree(params, errors)
    root = params.get("root") or "default"
    for name, (kind, _) in wanted.items():
        have = buckets.get(name)
        if have is not None and have["type"] != kind:
            errors.append(
                "tree: %s is wanted as a %s, and the CRUSH map has a %s of that name; fix: rename the %s in the "
                "description, or remove the %s (ceph osd crush remove %s, once it holds no OSDs)"
                % (name, kind, have["type"], kind, have["type"], name)
            )
    rule_commands, rule_before, rule_after = plan_rule(params, rules, errors)
    before = dict(buckets=with_osds(buckets), rule=rule_before)
    if errors:
        return dict(commands=[], before=before, after=before, unmanaged=[], pruned=[], warnings=[], errors=errors)

    after = {name: dict(bucket) for name, bucket in buckets.items()}
    commands = []
    # top down: the root, then rooms, racks and hosts (wanted_tree's order), so every parent is in place
    for name, (kind, parent) in wanted.items():
        if name not in after:
            commands.append(["osd", "crush", "add-bucket", name, kind])
            after[name] = dict(type=kind, parent=None, osds=0)
        if parent is not None and after[name]["parent"] != parent:
            commands.append(["osd", "crush", "move", name, "%s=%s" % (wanted[parent][0], parent)])
            after[name]["parent"] = parent

    taken = {rule_view(rule)["root"] for rule in rules} | {root}
    unmanaged, pruned = [], []
    for name in _bottom_up(after):
        if name in wanted or name not in after:
            continue
        held = osds_under(after, name)
        if params.get("prune") and not held and name not in taken and _all_unmanaged(after, name, wanted):
            commands.append(["osd", "crush", "remove", name])
            pruned.append(name)
            del after[name]
            continue
        unmanaged.append(dict(name=name, type=after[name]["type"], parent=after[name]["parent"], osds=held))
    # in the map's order (ceph osd crush tree's, new buckets last)
    order = list(after)
    unmanaged.sort(key=lambda bucket: order.index(bucket["name"]))
    kept = ": kept, prune removes empty buckets only" if params.get("prune") else ""
    warnings = [
        "%s %s is not in the tree and holds %d OSD%s%s; fix: add its host to the IDC description (with its room and "
        "rack), or move its OSDs to a host that is there"
        % (bucket["type"], bucket["name"], bucket["osds"], "" if bucket["osds"] == 1 else "s", kept)
        for bucket in unmanaged
        if bucket["osds"]
    ]
    commands += rule_commands
    return dict(
        commands=commands,
        before=before,
        after=dict(buckets=with_osds(after), rule=rule_after),
        unmanaged=unmanaged,
        pruned=pruned,
        warnings=warnings,
        errors=[],
    )


def _depth(buckets, name):
    depth, seen = 0, set()
    while buckets[name]["parent"] in buckets and name not in seen:
        seen.add(name)
        name = buckets[name]["parent"]
        depth += 1
    return depth


def _bottom_up(buckets):
    # the deepest buckets first, so a child is removed before its parent
    return sorted(buckets, key=lambda name: -_depth(buckets, name))


def _all_unmanaged(buckets, name, wanted):
    return all(child not in wanted and _all_unmanaged(buckets, child, wanted) for child in children_of(buckets, name))


# -- the run


def read_state(cli):
    """(buckets_view, the rule dump) of the cluster's CRUSH map."""
    return buckets_view(cli.run("osd", "crush", "tree")), cli.run("osd", "crush", "rule", "dump") or []


def run_crush(run_command, params, check_mode=False, diff=False):
    cli = CephCli(run_command, params)
    buckets, rules = read_state(cli)
    plan = plan_crush(params, buckets, rules)
    if plan["errors"]:
        raise CephError("; ".join(plan["errors"]))
    after = plan["after"]
    if not check_mode and plan["commands"]:
        for command in plan["commands"]:
            cli.run(*command, json_out=False)
        buckets, rules = read_state(cli)
        rule = next((rule_view(r) for r in rules if r.get("rule_name") == params.get("rule")), None)
        after = dict(buckets=with_osds(buckets), rule=rule)
    result = dict(
        changed=bool(plan["commands"]),
        commands=[cli.shown(c) for c in plan["commands"]],
        before=plan["before"],
        after=after,
        unmanaged=plan["unmanaged"],
        pruned=plan["pruned"],
        warnings=plan["warnings"],
    )
    if diff:
        result["diff"] = dict(before=plan["before"], after=after)
    return result
