"""ceph_pool: the plan (pure) and the run against a fake `ceph` command line."""

from __future__ import annotations

import json

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_pool import plan_pool, pool_view, run_pool
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError

RULES = {"replicated_rule", "replicated_rack"}


def wanted(**kw):
    base = dict(
        name="rbd",
        state="present",
        size=None,
        min_size=None,
        pg_autoscale_mode=None,
        pg_num=None,
        application=None,
        crush_rule=None,
        delete_confirm=None,
    )
    base.update(kw)
    return base


def current(**kw):
    base = dict(
        size=3, min_size=2, pg_autoscale_mode="on", pg_num=32, crush_rule="replicated_rack", applications=["rbd"]
    )
    base.update(kw)
    return base


def test_a_new_pool_is_created_then_set():
    plan = plan_pool(wanted(size=3, min_size=2, crush_rule="replicated_rack", application="rbd"), None, RULES, 3)
    assert plan["errors"] == []
    assert plan["commands"] == [
        ["osd", "pool", "create", "rbd", "32", "32", "replicated", "replicated_rack"],
        ["osd", "pool", "set", "rbd", "size", "3"],
        ["osd", "pool", "set", "rbd", "min_size", "2"],
        ["osd", "pool", "application", "enable", "rbd", "rbd"],
    ]


def test_a_pool_as_wanted_needs_nothing():
    plan = plan_pool(
        wanted(size=3, min_size=2, crush_rule="replicated_rack", application="rbd", pg_autoscale_mode="on"),
        current(),
        RULES,
        3,
    )
    assert plan["commands"] == [] and plan["errors"] == []


def test_shrinking_sets_min_size_first():
    plan = plan_pool(wanted(size=2, min_size=1), current(), RULES, 3)
    assert plan["commands"] == [
        ["osd", "pool", "set", "rbd", "min_size", "1"],
        ["osd", "pool", "set", "rbd", "size", "2"],
    ]


def test_a_size_above_the_osds_in_is_refused():
    plan = plan_pool(wanted(size=4), current(), RULES, 3)
    assert plan["commands"] == []
    assert plan["errors"][0].startswith("size: 4 for pool rbd is above the 3 OSDs that are in; fix: give at most 3")


def test_min_size_above_size_and_a_missing_rule_are_refused_together():
    plan = plan_pool(wanted(min_size=4, crush_rule="nope"), current(), RULES, 5)
    assert len(plan["errors"]) == 2
    assert "min_size: 4 for pool rbd is above its size 3" in plan["errors"][0]
    assert (
        "crush_rule: 'nope' for pool rbd does not exist (rules: replicated_rack, replicated_rule)" in plan["errors"][1]
    )


def test_pg_num_must_be_a_power_of_two():
    assert "power of two" in plan_pool(wanted(pg_num=48), current(), RULES, 3)["errors"][0]
    assert plan_pool(wanted(pg_num=64), current(), RULES, 3)["commands"] == [
        ["osd", "pool", "set", "rbd", "pg_num", "64"]
    ]


def test_deleting_needs_the_name_again():
    refused = plan_pool(wanted(state="absent"), current(), RULES, 3)
    assert refused["commands"] == [] and refused["errors"][0].startswith("delete_confirm: None for pool rbd")
    ok = plan_pool(wanted(state="absent", delete_confirm="rbd"), current(), RULES, 3)
    assert ok["commands"] == [["osd", "pool", "delete", "rbd", "rbd", "--yes-i-really-really-mean-it"]]
    assert plan_pool(wanted(state="absent"), None, RULES, 3)["commands"] == []


def test_the_view_names_the_rule_and_the_applications():
    pool = {
        "pool_name": "rbd",
        "size": 3,
        "min_size": 2,
        "crush_rule": 1,
        "pg_autoscale_mode": "on",
        "pg_num": 32,
        "application_metadata": {"rbd": {}},
    }
    assert pool_view(pool, {0: "replicated_rule", 1: "replicated_rack"}) == current()


class FakeCeph:
    """`ceph` with one pool; records the commands that change something."""

    def __init__(self, pools):
        self.pools, self.calls = pools, []

    def __call__(self, cmd):
        args = cmd[cmd.index("--connect-timeout") + 2 :]
        if args[-2:] == ["--format", "json"]:
            args = args[:-2]
            if args == ["osd", "pool", "ls", "detail"]:
                return 0, json.dumps(self.pools), ""
            if args == ["osd", "crush", "rule", "dump"]:
                return (
                    0,
                    json.dumps(
                        [{"rule_id": 0, "rule_name": "replicated_rule"}, {"rule_id": 1, "rule_name": "replicated_rack"}]
                    ),
                    "",
                )
            if args == ["osd", "stat"]:
                return 0, json.dumps({"num_osds": 3, "num_up_osds": 3, "num_in_osds": 3}), ""
        self.calls.append(args)
        return 0, "", ""


def params(**kw):
    return dict(wanted(**kw), cluster_conf="/etc/ceph/ceph.conf", user="admin", keyring=None, timeout=5)


def test_run_creates_and_check_mode_runs_nothing():
    fake = FakeCeph([])
    result = run_pool(fake, params(size=3, application="rbd"), check_mode=True, diff=True)
    assert result["changed"] and fake.calls == []
    assert result["commands"][0] == "ceph osd pool create rbd 32 32 replicated"
    run_pool(fake, params(size=3, application="rbd"))
    assert fake.calls == [
        ["osd", "pool", "create", "rbd", "32", "32", "replicated"],
        ["osd", "pool", "set", "rbd", "size", "3"],
        ["osd", "pool", "application", "enable", "rbd", "rbd"],
    ]


def test_a_refused_plan_raises_before_any_command():
    pools = [{"pool_name": "rbd", "size": 3, "min_size": 2, "crush_rule": 1, "pg_autoscale_mode": "on", "pg_num": 32}]
    fake = FakeCeph(pools)
    with pytest.raises(CephError, match="above the 3 OSDs"):
        run_pool(fake, params(size=9))
    assert fake.calls == []


def test_a_failed_command_raises_with_cephs_message():
    fake = FakeCeph([])
    fake.fail = "Error EPERM: pool deletion is disabled"

    def failing(cmd):
        rc, out, err = FakeCeph.__call__(fake, cmd)
        return (1, "", fake.fail) if fake.calls and fake.calls[-1][:3] == ["osd", "pool", "create"] else (rc, out, err)

    with pytest.raises(CephError, match=r"`ceph osd pool create rbd 32 32 replicated` failed \(rc 1\): Error EPERM"):
        run_pool(failing, params(size=3))
