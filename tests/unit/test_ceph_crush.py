"""ceph_crush: the plan (pure) and the run against a fake `ceph` command line that keeps a CRUSH map."""

from __future__ import annotations

import json

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_crush import (
    buckets_view,
    plan_crush,
    rule_view,
    run_crush,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError

# the default CRUSH types' ids (CrushWrapper's defaults since Luminous)
TYPE_IDS = {"osd": 0, "host": 1, "chassis": 2, "rack": 3, "row": 4, "pdu": 5, "pod": 6, "room": 7, "root": 11}

TREE = [
    {"room": "room-a", "rack": "a01", "host": "st01"},
    {"room": "room-a", "rack": "a02", "host": "st02"},
    {"room": "room-b", "rack": "b01", "host": "st03"},
]


def rule_json(rule_id, name, root_id, root_name, domain, kind=1, pacific=False):
    """One entry of `ceph osd crush rule dump --format json` (Pacific still has ruleset, min_size, max_size)."""
    rule = {"rule_id": rule_id, "rule_name": name, "type": kind}
    if pacific:
        rule.update(ruleset=rule_id, min_size=1, max_size=10)
    rule["steps"] = [
        {"op": "take", "item": root_id, "item_name": root_name},
        {"op": "chooseleaf_firstn" if kind == 1 else "chooseleaf_indep", "num": 0, "type": domain},
        {"op": "emit"},
    ]
    return rule


class FakeCeph:
    """`ceph` with a CRUSH map it changes as the real one would; records the commands that change something."""

    def __init__(self):
        self.buckets = {}  # id -> {name, type, items}
        self.rules = []
        self.calls = []
        self.fail = None

    # -- building the map a test starts from

    def bucket(self, name, kind, parent=None, osds=()):
        ident = -1 - len(self.buckets)
        self.buckets[ident] = {"name": name, "type": kind, "items": list(osds)}
        if parent is not None:
            self.buckets[self.id_of(parent)]["items"].append(ident)
        return self

    def rule(self, name, root, domain, kind=1, device_class=None):
        item_name = root + ("~" + device_class if device_class else "")
        self.rules.append(rule_json(len(self.rules), name, self.id_of(root), item_name, domain, kind, pacific=True))
        return self

    def id_of(self, name):
        return next((ident for ident, b in self.buckets.items() if b["name"] == name), None)

    def parent_of(self, ident):
        return next((pid for pid, b in self.buckets.items() if ident in b["items"]), None)

    # -- what `ceph osd crush tree --format json` prints: {"nodes": [...], "stray": [...]}

    def tree(self):
        nodes = []

        def dump(ident, depth):
            if ident >= 0:
                nodes.append(
                    {
                        "id": ident,
                        "device_class": "hdd",
                        "name": "osd.%d" % ident,
                        "type": "osd",
                        "type_id": 0,
                        "crush_weight": 0.0195,
                        "depth": depth,
                        "pool_weights": {},
                    }
                )
                return
            bucket = self.buckets[ident]
            node = {"id": ident, "name": bucket["name"], "type": bucket["type"], "type_id": TYPE_IDS[bucket["type"]]}
            if depth:
                node["pool_weights"] = {}
            # CrushTreeDumper lists a bucket's children last item first
            node["children"] = list(reversed(bucket["items"]))
            nodes.append(node)
            for child in bucket["items"]:
                dump(child, depth + 1)

        for root in sorted(ident for ident in self.buckets if self.parent_of(ident) is None):
            dump(root, 0)
        return {"nodes": nodes, "stray": []}

    # -- the command line

    def __call__(self, cmd):
        args = cmd[cmd.index("--connect-timeout") + 2 :]
        if args[-2:] == ["--format", "json"]:
            args = args[:-2]
            if args == ["osd", "crush", "tree"]:
                return 0, json.dumps(self.tree()), ""
            if args == ["osd", "crush", "rule", "dump"]:
                return 0, json.dumps(self.rules), ""
            return 22, "", "Error EINVAL: unexpected read %s" % args
        self.calls.append(args)
        if self.fail and args[:3] == self.fail[0]:
            return 1, "", self.fail[1]
        verb = args[2] if args[:2] == ["osd", "crush"] else None
        if verb == "add-bucket":
            name, kind = args[3:5]
            if self.id_of(name) is None:
                self.bucket(name, kind)
            return 0, "", "added bucket %s type %s to crush map" % (name, kind)
        if verb == "move":
            name, (kind, parent) = args[3], args[4].split("=")
            ident, target = self.id_of(name), self.id_of(parent)
            if ident is None or target is None or self.buckets[target]["type"] != kind:
                return 2, "", "Error ENOENT: no bucket for %s" % args[3:]
            old = self.parent_of(ident)
            if old is not None:
                self.buckets[old]["items"].remove(ident)
            self.buckets[target]["items"].append(ident)
            return 0, "", "moved item id %d name '%s' to location {%s}" % (ident, name, args[4])
        if verb == "remove":
            ident = self.id_of(args[3])
            if self.buckets[ident]["items"]:
                return 39, "", "Error ENOTEMPTY: (39) Directory not empty"
            old = self.parent_of(ident)
            if old is not None:
                self.buckets[old]["items"].remove(ident)
            del self.buckets[ident]
            return 0, "", "removed item id %d name '%s' from crush map" % (ident, args[3])
        if args[:4] == ["osd", "crush", "rule", "create-replicated"]:
            name, root, domain = args[4:7]
            if not any(r["rule_name"] == name for r in self.rules):
                self.rule(name, root, domain)
            return 0, "", ""
        return 22, "", "Error EINVAL: unexpected command %s" % args


def params(**kw):
    base = dict(
        tree=[dict(entry) for entry in TREE],
        root="default",
        rule="replicated_rack",
        failure_domain="rack",
        prune=False,
        cluster_conf="/etc/ceph/ceph.conf",
        user="admin",
        keyring=None,
        timeout=5,
    )
    base.update(kw)
    return base


def fresh_cluster():
    """A cluster after its first OSDs started: their hosts under the root, the default rule by host."""
    return (
        FakeCeph()
        .bucket("default", "root")
        .bucket("st01", "host", "default", osds=[0, 1])
        .bucket("st02", "host", "default", osds=[2, 3])
        .bucket("st03", "host", "default", osds=[4, 5])
        .rule("replicated_rule", "default", "host")
    )


def as_wanted():
    """The map TREE asks for, with the rule."""
    fake = FakeCeph().bucket("default", "root")
    for room in ("room-a", "room-b"):
        fake.bucket(room, "room", "default")
    fake.bucket("a01", "rack", "room-a").bucket("a02", "rack", "room-a").bucket("b01", "rack", "room-b")
    fake.bucket("st01", "host", "a01", osds=[0, 1]).bucket("st02", "host", "a02", osds=[2, 3])
    fake.bucket("st03", "host", "b01", osds=[4, 5])
    return fake.rule("replicated_rule", "default", "host").rule("replicated_rack", "default", "rack")


def plan_of(fake, **kw):
    return plan_crush(params(**kw), buckets_view(fake.tree()), fake.rules)


# -- the real JSON shapes ---------------------------------------------------------------------


def test_the_view_reads_crush_tree_json_as_ceph_prints_it():
    # `ceph osd crush tree --format json` of a small Reef cluster: buckets with children, devices with a class
    printed = {
        "nodes": [
            {"id": -1, "name": "default", "type": "root", "type_id": 11, "children": [-7, -3]},
            {"id": -3, "name": "room-a", "type": "room", "type_id": 7, "pool_weights": {}, "children": [-5]},
            {"id": -5, "name": "a01", "type": "rack", "type_id": 3, "pool_weights": {}, "children": [-2]},
            {"id": -2, "name": "st01", "type": "host", "type_id": 1, "pool_weights": {}, "children": [1, 0]},
            {
                "id": 0,
                "device_class": "hdd",
                "name": "osd.0",
                "type": "osd",
                "type_id": 0,
                "crush_weight": 0.0194854736328125,
                "depth": 4,
                "pool_weights": {},
            },
            {
                "id": 1,
                "device_class": "hdd",
                "name": "osd.1",
                "type": "osd",
                "type_id": 0,
                "crush_weight": 0.01,
                "depth": 4,
            },
            {"id": -7, "name": "st09", "type": "host", "type_id": 1, "pool_weights": {}, "children": []},
        ],
        "stray": [{"id": 5, "name": "osd.5", "type": "osd", "type_id": 0, "crush_weight": 0, "depth": 0}],
    }
    assert buckets_view(printed) == {
        "default": {"type": "root", "parent": None, "osds": 0},
        "room-a": {"type": "room", "parent": "default", "osds": 0},
        "a01": {"type": "rack", "parent": "room-a", "osds": 0},
        "st01": {"type": "host", "parent": "a01", "osds": 2},
        "st09": {"type": "host", "parent": "default", "osds": 0},
    }
    assert buckets_view(None) == {} and buckets_view({"nodes": [], "stray": []}) == {}


def test_the_rule_view_reads_rule_dump_entries():
    assert rule_view(rule_json(1, "replicated_rack", -1, "default", "rack", pacific=True)) == {
        "name": "replicated_rack",
        "root": "default",
        "device_class": None,
        "failure_domain": "rack",
        "replicated": True,
    }
    ssd = rule_view(rule_json(2, "fast", -12, "default~ssd", "host"))
    assert (ssd["root"], ssd["device_class"], ssd["failure_domain"]) == ("default", "ssd", "host")
    assert rule_view(rule_json(3, "ec", -1, "default", "host", kind=3))["replicated"] is False


# -- plans --------------------------------------------------------------------------------------


def test_a_fresh_cluster_gets_rooms_racks_its_hosts_moved_in_and_the_rule():
    plan = plan_of(fresh_cluster())
    assert plan["errors"] == [] and plan["unmanaged"] == []
    assert plan["commands"] == [
        ["osd", "crush", "add-bucket", "room-a", "room"],
        ["osd", "crush", "move", "room-a", "root=default"],
        ["osd", "crush", "add-bucket", "room-b", "room"],
        ["osd", "crush", "move", "room-b", "root=default"],
        ["osd", "crush", "add-bucket", "a01", "rack"],
        ["osd", "crush", "move", "a01", "room=room-a"],
        ["osd", "crush", "add-bucket", "a02", "rack"],
        ["osd", "crush", "move", "a02", "room=room-a"],
        ["osd", "crush", "add-bucket", "b01", "rack"],
        ["osd", "crush", "move", "b01", "room=room-b"],
        ["osd", "crush", "move", "st01", "rack=a01"],
        ["osd", "crush", "move", "st02", "rack=a02"],
        ["osd", "crush", "move", "st03", "rack=b01"],
        ["osd", "crush", "rule", "create-replicated", "replicated_rack", "default", "rack"],
    ]
    assert plan["after"]["buckets"]["room-a"] == {"type": "room", "parent": "default", "osds": 4}
    assert plan["after"]["buckets"]["st03"] == {"type": "host", "parent": "b01", "osds": 2}
    assert plan["after"]["rule"]["failure_domain"] == "rack" and plan["before"]["rule"] is None


def test_an_empty_map_gets_the_root_and_host_buckets_before_any_osd():
    plan = plan_of(FakeCeph(), tree=TREE[:1], rule=None)
    assert plan["commands"] == [
        ["osd", "crush", "add-bucket", "default", "root"],
        ["osd", "crush", "add-bucket", "room-a", "room"],
        ["osd", "crush", "move", "room-a", "root=default"],
        ["osd", "crush", "add-bucket", "a01", "rack"],
        ["osd", "crush", "move", "a01", "room=room-a"],
        ["osd", "crush", "add-bucket", "st01", "host"],
        ["osd", "crush", "move", "st01", "rack=a01"],
    ]


def test_a_map_as_wanted_needs_nothing():
    plan = plan_of(as_wanted())
    assert plan["commands"] == [] and plan["errors"] == [] and plan["warnings"] == []
    assert plan["before"] == plan["after"]
    # the rule the cluster came with is not ours to report: rules are not buckets
    assert plan["unmanaged"] == []


def test_a_host_moved_to_another_rack_is_one_move_and_its_osds_go_with_it():
    tree = [dict(entry) for entry in TREE]
    tree[1]["rack"] = "a01"
    plan = plan_of(as_wanted(), tree=tree)
    assert plan["commands"] == [["osd", "crush", "move", "st02", "rack=a01"]]
    assert plan["after"]["buckets"]["a01"]["osds"] == 4 and plan["after"]["buckets"]["a02"]["osds"] == 0
    # the rack it left is still in the map and no longer in the tree
    assert plan["unmanaged"] == [{"name": "a02", "type": "rack", "parent": "room-a", "osds": 0}]


def test_a_new_rack_is_added_under_its_room():
    tree = TREE + [{"room": "room-b", "rack": "b02", "host": "st04"}]
    assert plan_of(as_wanted(), tree=tree)["commands"] == [
        ["osd", "crush", "add-bucket", "b02", "rack"],
        ["osd", "crush", "move", "b02", "room=room-b"],
        ["osd", "crush", "add-bucket", "st04", "host"],
        ["osd", "crush", "move", "st04", "rack=b02"],
    ]


def test_a_rack_moved_to_another_room_takes_its_hosts_along():
    tree = [dict(entry) for entry in TREE]
    tree[1]["room"] = "room-b"
    plan = plan_of(as_wanted(), tree=tree)
    assert plan["commands"] == [["osd", "crush", "move", "a02", "room=room-b"]]
    assert plan["after"]["buckets"]["st02"]["parent"] == "a02"


def test_racks_without_a_room_hang_from_the_root():
    tree = [{"rack": "r1", "host": "st01"}, {"room": None, "rack": "r2", "host": "st02"}]
    plan = plan_of(FakeCeph().bucket("default", "root"), tree=tree, rule=None)
    assert plan["commands"] == [
        ["osd", "crush", "add-bucket", "r1", "rack"],
        ["osd", "crush", "move", "r1", "root=default"],
        ["osd", "crush", "add-bucket", "r2", "rack"],
        ["osd", "crush", "move", "r2", "root=default"],
        ["osd", "crush", "add-bucket", "st01", "host"],
        ["osd", "crush", "move", "st01", "rack=r1"],
        ["osd", "crush", "add-bucket", "st02", "host"],
        ["osd", "crush", "move", "st02", "rack=r2"],
    ]


def test_another_root_and_failure_domain():
    plan = plan_of(FakeCeph(), tree=TREE[:1], root="idc", rule="replicated_room", failure_domain="room")
    assert plan["commands"][0] == ["osd", "crush", "add-bucket", "idc", "root"]
    assert plan["commands"][2] == ["osd", "crush", "move", "room-a", "root=idc"]
    assert plan["commands"][-1] == ["osd", "crush", "rule", "create-replicated", "replicated_room", "idc", "room"]


# -- the rule -----------------------------------------------------------------------------------


def test_a_rule_with_another_failure_domain_is_refused_with_the_migration():
    fake = as_wanted()
    plan = plan_of(fake, rule="replicated_rule")
    assert plan["commands"] == []
    assert plan["errors"] == [
        "rule: replicated_rule exists as a replicated rule taking default with failure domain host, not a replicated "
        "rule taking default with failure domain rack; fix: a CRUSH rule cannot be changed in place: create one under "
        "a new name (rule: replicated_rule_rack), point each pool at it (ceph_pool crush_rule, or ceph osd pool set "
        "<pool> crush_rule <rule>; the data moves), then remove the old rule once no pool uses it (ceph osd crush "
        "rule rm replicated_rule)"
    ]


def test_a_rule_with_a_device_class_or_erasure_coding_is_refused():
    fake = as_wanted().rule("fast", "default", "rack", device_class="ssd").rule("ec", "default", "rack", kind=3)
    assert plan_of(fake, rule="fast")["errors"][0].startswith(
        "rule: fast exists as a replicated rule taking default~ssd with failure domain rack, not a replicated rule "
        "taking default with failure domain rack; fix:"
    )
    assert plan_of(fake, rule="ec")["errors"][0].startswith("rule: ec exists as a erasure-coded rule taking default")


def test_a_rule_under_another_root_is_refused():
    fake = as_wanted().bucket("old", "root").rule("replicated_rack_old", "old", "rack")
    error = plan_of(fake, rule="replicated_rack_old")["errors"][0]
    assert "taking old with failure domain rack, not a replicated rule taking default" in error


def test_without_a_rule_name_rules_are_left_alone():
    plan = plan_of(as_wanted(), rule=None)
    assert plan["commands"] == [] and plan["after"]["rule"] is None


# -- refused trees ------------------------------------------------------------------------------


def test_a_bucket_of_another_type_under_a_wanted_name_is_refused():
    fake = fresh_cluster().bucket("a01", "host", "default")
    plan = plan_of(fake)
    assert plan["commands"] == []
    assert plan["errors"] == [
        "tree: a01 is wanted as a rack, and the CRUSH map has a host of that name; fix: rename the rack in the "
        "description, or remove the host (ceph osd crush remove a01, once it holds no OSDs)"
    ]


def test_one_name_for_two_types_in_the_tree_is_refused():
    tree = TREE + [{"room": "room-b", "rack": "b02", "host": "a01"}]
    assert plan_of(fresh_cluster(), tree=tree)["errors"] == [
        "tree[3].host: a01 is also the name of the rack at tree[0].rack; fix: rename one of them: CRUSH names the "
        "root, rooms, racks and hosts in one name space"
    ]


def test_a_rack_in_two_rooms_and_a_host_twice_are_refused():
    tree = TREE + [{"room": "room-b", "rack": "a01", "host": "st04"}, {"room": "room-a", "rack": "a01", "host": "st01"}]
    assert plan_of(fresh_cluster(), tree=tree)["errors"] == [
        "tree[3].rack: rack a01 is under room-b here and under room-a at tree[0]; fix: a bucket has one parent: give "
        "the rack one room everywhere, or two racks two names",
        "tree[4].host: st01 is listed twice (also at tree[0]); fix: list each host once",
    ]


@pytest.mark.parametrize("field, value", [("host", "st 01"), ("rack", "a/01"), ("host", ""), ("room", "room:a")])
def test_names_must_be_crush_names(field, value):
    tree = [dict(entry) for entry in TREE]
    tree[0][field] = value
    assert plan_of(fresh_cluster(), tree=tree)["errors"] == [
        "tree[0].%s: %r is not a CRUSH name; fix: use letters, digits, '-', '_' and '.' only" % (field, value)
    ]


def test_the_room_failure_domain_needs_every_room():
    tree = [{"rack": "r1", "host": "st01"}]
    assert plan_of(FakeCeph(), tree=tree, failure_domain="room")["errors"] == [
        "tree[0].room: missing for host st01, and failure_domain is room; fix: give every entry its room, or choose "
        "failure_domain rack or host"
    ]


# -- buckets outside the tree -------------------------------------------------------------------


def stale_map():
    """as_wanted plus an empty old rack with an empty host in it, and a host of a machine not in the tree."""
    return as_wanted().bucket("old-rack", "rack", "room-a").bucket("old-host", "host", "old-rack")


def test_buckets_outside_the_tree_are_reported_not_removed():
    fake = stale_map().bucket("st09", "host", "default", osds=[9])
    plan = plan_of(fake)
    assert plan["commands"] == []
    assert plan["unmanaged"] == [
        {"name": "old-rack", "type": "rack", "parent": "room-a", "osds": 0},
        {"name": "old-host", "type": "host", "parent": "old-rack", "osds": 0},
        {"name": "st09", "type": "host", "parent": "default", "osds": 1},
    ]
    assert plan["warnings"] == [
        "host st09 is not in the tree and holds 1 OSD; fix: add its host to the IDC description (with its room and "
        "rack), or move its OSDs to a host that is there"
    ]


def test_prune_removes_empty_buckets_children_first():
    plan = plan_of(stale_map(), prune=True)
    assert plan["commands"] == [["osd", "crush", "remove", "old-host"], ["osd", "crush", "remove", "old-rack"]]
    assert plan["pruned"] == ["old-host", "old-rack"] and plan["unmanaged"] == []
    assert "old-rack" not in plan["after"]["buckets"]


def test_prune_never_removes_a_bucket_holding_osds():
    fake = stale_map().bucket("st09", "host", "old-rack", osds=[9])
    plan = plan_of(fake, prune=True)
    # old-host goes; old-rack holds st09 and its OSD, so both stay
    assert plan["commands"] == [["osd", "crush", "remove", "old-host"]]
    assert [(b["name"], b["osds"]) for b in plan["unmanaged"]] == [("old-rack", 1), ("st09", 1)]
    assert plan["warnings"] == [
        "rack old-rack is not in the tree and holds 1 OSD: kept, prune removes empty buckets only; fix: add its host "
        "to the IDC description (with its room and rack), or move its OSDs to a host that is there",
        "host st09 is not in the tree and holds 1 OSD: kept, prune removes empty buckets only; fix: add its host to "
        "the IDC description (with its room and rack), or move its OSDs to a host that is there",
    ]


def test_prune_keeps_a_bucket_that_a_rule_takes():
    fake = as_wanted().bucket("ssd-root", "root").rule("fast", "ssd-root", "host").bucket("spare", "root")
    plan = plan_of(fake, prune=True)
    assert plan["commands"] == [["osd", "crush", "remove", "spare"]]
    assert plan["unmanaged"] == [{"name": "ssd-root", "type": "root", "parent": None, "osds": 0}]


def test_prune_empties_a_room_after_its_rack_moved_out():
    fake = as_wanted().bucket("room-c", "room", "default")
    fake.buckets[fake.id_of("room-b")]["items"].remove(fake.id_of("b01"))
    fake.buckets[fake.id_of("room-c")]["items"].append(fake.id_of("b01"))
    plan = plan_of(fake, prune=True)
    assert plan["commands"] == [["osd", "crush", "move", "b01", "room=room-b"], ["osd", "crush", "remove", "room-c"]]


# -- runs against the fake ----------------------------------------------------------------------


def test_check_mode_runs_no_mutating_command_and_reports_the_plan():
    fake = fresh_cluster()
    result = run_crush(fake, params(prune=True), check_mode=True, diff=True)
    assert fake.calls == []
    assert result["changed"] and len(result["commands"]) == 14
    assert result["commands"][0] == "ceph osd crush add-bucket room-a room"
    assert result["after"]["buckets"]["st01"]["parent"] == "a01"
    assert result["diff"]["before"]["buckets"]["st01"]["parent"] == "default"


def test_a_run_builds_the_tree_and_a_second_run_changes_nothing():
    fake = fresh_cluster()
    result = run_crush(fake, params(), diff=True)
    assert result["changed"] and len(fake.calls) == 14
    assert result["after"]["buckets"]["a01"] == {"type": "rack", "parent": "room-a", "osds": 2}
    assert result["after"]["rule"] == {
        "name": "replicated_rack",
        "root": "default",
        "device_class": None,
        "failure_domain": "rack",
        "replicated": True,
    }
    calls = len(fake.calls)
    again = run_crush(fake, params())
    assert not again["changed"] and again["commands"] == [] and len(fake.calls) == calls
    assert again["before"] == again["after"]


def test_a_run_prunes_what_the_plan_said():
    fake = stale_map()
    result = run_crush(fake, params(prune=True))
    assert result["pruned"] == ["old-host", "old-rack"]
    assert fake.calls == [["osd", "crush", "remove", "old-host"], ["osd", "crush", "remove", "old-rack"]]
    assert fake.id_of("old-rack") is None


def test_the_commands_are_shown_as_a_shell_takes_them():
    result = run_crush(FakeCeph(), params(tree=TREE[:1], rule=None), check_mode=True)
    assert result["commands"][:2] == ["ceph osd crush add-bucket default root", "ceph osd crush add-bucket room-a room"]


def test_a_refused_plan_raises_before_any_command():
    fake = as_wanted()
    with pytest.raises(CephError, match="rule: replicated_rule exists as a replicated rule"):
        run_crush(fake, params(rule="replicated_rule"))
    assert fake.calls == []


def test_a_failed_command_raises_with_cephs_message():
    fake = fresh_cluster()
    fake.fail = (["osd", "crush", "move"], "Error EINVAL: bad location")
    with pytest.raises(CephError, match=r"`ceph osd crush move room-a root=default` failed \(rc 1\): Error EINVAL"):
        run_crush(fake, params())
    assert fake.calls == [
        ["osd", "crush", "add-bucket", "room-a", "room"],
        ["osd", "crush", "move", "room-a", "root=default"],
    ]
