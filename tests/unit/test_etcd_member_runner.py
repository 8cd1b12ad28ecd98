# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for the etcd_member planning and runner, with a fake client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.idcloud.platform.plugins.module_utils.etcd import etcd_member as r  # noqa: E402
from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import EtcdError  # noqa: E402
from ansible_collections.idcloud.platform.plugins.modules import etcd_member as etcd_member_module  # noqa: E402


def m(name, n, learner=False, started=True):
    return {
        "id": str(1000 + n),
        "id_hex": "%x" % (1000 + n),
        "name": name if started else "",
        "peer_urls": ["https://10.0.0.%d:2380" % n],
        "client_urls": ["https://10.0.0.%d:2379" % n] if started else [],
        "is_learner": learner,
    }


E1, E2, E3 = m("etcd1", 1), m("etcd2", 2), m("etcd3", 3)
THREE = [E1, E2, E3]
ALL_HEALTHY = {x["id"]: True for x in THREE}


# -- plan: present --------------------------------------------------------------
def test_present_adds_learner_when_unknown():
    plan = r.plan_member(THREE, "present", "etcd4", ["https://10.0.0.4:2380"], learner=True)
    assert plan.action == "add" and plan.member["is_learner"] is True
    assert "learner" in plan.reason


def test_present_adds_voter_when_asked():
    plan = r.plan_member(THREE, "present", "etcd4", ["https://10.0.0.4:2380"], learner=False)
    assert plan.action == "add" and plan.member["is_learner"] is False


def test_present_noop_when_name_and_urls_match():
    plan = r.plan_member(THREE, "present", "etcd2", ["https://10.0.0.2:2380/"])
    assert plan.action == "none" and plan.member is E2


def test_present_matches_unstarted_member_on_peer_urls():
    pending = m("etcd4", 4, learner=True, started=False)
    plan = r.plan_member(THREE + [pending], "present", "etcd4", ["https://10.0.0.4:2380"])
    assert plan.action == "none" and plan.member is pending


def test_present_refuses_changing_peer_urls():
    with pytest.raises(r.EtcdMemberError) as info:
        r.plan_member(THREE, "present", "etcd2", ["https://10.9.9.9:2380"])
    msg = str(info.value)
    assert "https://10.0.0.2:2380" in msg and "https://10.9.9.9:2380" in msg and "not supported" in msg


def test_present_refuses_peer_urls_of_another_member():
    with pytest.raises(r.EtcdMemberError, match="belong to member 'etcd2'"):
        r.plan_member(THREE, "present", "etcd9", ["https://10.0.0.2:2380"])


def test_present_without_peer_urls_for_unknown_member_fails():
    with pytest.raises(r.EtcdMemberError, match="peer_urls"):
        r.plan_member(THREE, "present", "etcd9", [])


def test_present_never_demotes():
    plan = r.plan_member(THREE, "present", "etcd1", ["https://10.0.0.1:2380"], learner=True)
    assert plan.action == "none"


# -- plan: promoted ---------------------------------------------------------------
def test_promote_learner():
    learner = m("etcd4", 4, learner=True)
    plan = r.plan_member(THREE + [learner], "promoted", "etcd4")
    assert plan.action == "promote" and plan.member is learner


def test_promote_unstarted_learner_found_by_peer_url():
    pending = m("", 4, learner=True, started=False)
    plan = r.plan_member(THREE + [pending], "promoted", "etcd4", ["https://10.0.0.4:2380"])
    assert plan.action == "promote" and plan.member is pending


def test_promote_voter_is_noop():
    assert r.plan_member(THREE, "promoted", "etcd1").action == "none"


def test_promote_missing_member_fails():
    with pytest.raises(r.EtcdMemberError, match="add it first"):
        r.plan_member(THREE, "promoted", "etcd9")


# -- plan: absent / quorum --------------------------------------------------------
def test_absent_missing_is_noop():
    plan = r.plan_member(THREE, "absent", "etcd9", health=ALL_HEALTHY)
    assert plan.action == "none" and plan.member is None


def test_absent_removes_healthy_member_of_healthy_cluster():
    plan = r.plan_member(THREE, "absent", "etcd3", health=ALL_HEALTHY)
    assert plan.action == "remove" and plan.member is E3


def test_absent_by_peer_url():
    plan = r.plan_member(THREE, "absent", None, ["https://10.0.0.2:2380"], health=ALL_HEALTHY)
    assert plan.member is E2


def test_absent_refuses_last_member():
    with pytest.raises(r.EtcdMemberError, match="last member"):
        r.plan_member([E1], "absent", "etcd1", health={E1["id"]: True})


def test_absent_refuses_breaking_quorum():
    health = {E1["id"]: True, E2["id"]: False, E3["id"]: True}
    with pytest.raises(r.EtcdMemberError) as info:
        r.plan_member(THREE, "absent", "etcd3", health=health)
    msg = str(info.value)
    assert "etcd2" in msg and "quorum" in msg and "needing 2" in msg


def test_absent_allows_removing_the_dead_member():
    health = {E1["id"]: True, E2["id"]: False, E3["id"]: True}
    plan = r.plan_member(THREE, "absent", "etcd2", health=health)
    assert plan.action == "remove" and plan.member is E2


def test_absent_refuses_without_quorum_now():
    health = {E1["id"]: True, E2["id"]: False, E3["id"]: False}
    with pytest.raises(r.EtcdMemberError, match="no quorum now"):
        r.plan_member(THREE, "absent", "etcd3", health=health)


def test_absent_learner_never_affects_quorum():
    learner = m("etcd4", 4, learner=True, started=False)
    health = {E1["id"]: True, E2["id"]: False, E3["id"]: False}
    plan = r.plan_member(THREE + [learner], "absent", None, ["https://10.0.0.4:2380"], health=health)
    assert plan.action == "remove" and plan.member is learner


def test_absent_two_member_cluster_needs_both_healthy():
    # 2 voters -> remove one -> 1 voter left with quorum 1: fine if that one is healthy.
    plan = r.plan_member([E1, E2], "absent", "etcd2", health={E1["id"]: True, E2["id"]: True})
    assert plan.action == "remove"
    with pytest.raises(r.EtcdMemberError):
        r.plan_member([E1, E2], "absent", "etcd1", health={E1["id"]: True, E2["id"]: False})


def test_name_and_peer_urls_pointing_at_different_members_fail():
    with pytest.raises(r.EtcdMemberError, match="give only one"):
        r.plan_member(THREE, "absent", "etcd1", ["https://10.0.0.2:2380"], health=ALL_HEALTHY)


def test_list_never_changes():
    assert r.plan_member(THREE, "list").action == "none"


def test_initial_cluster_for_new_member():
    pending = m("", 4, learner=True, started=False)
    assert r.initial_cluster_for(THREE + [pending], "etcd4", ["https://10.0.0.4:2380"]) == (
        "etcd1=https://10.0.0.1:2380,etcd2=https://10.0.0.2:2380,etcd3=https://10.0.0.3:2380,"
        "etcd4=https://10.0.0.4:2380"
    )


# -- runner with a fake client ----------------------------------------------------
class FakeClient:
    def __init__(self, members, healthy=None, promote_error=None):
        self.members = [dict(x) for x in members]
        self.healthy = healthy if healthy is not None else {u for x in members for u in x["client_urls"]}
        self.promote_error = promote_error
        self.writes = []

    def member_list(self):
        return [dict(x) for x in self.members]

    def health(self, url):
        return (url in self.healthy, "" if url in self.healthy else "connection refused")

    def member_add(self, peer_urls, is_learner=False):
        self.writes.append(("add", peer_urls, is_learner))
        new = {
            "id": "5555",
            "id_hex": "15b3",
            "name": "",
            "peer_urls": list(peer_urls),
            "client_urls": [],
            "is_learner": is_learner,
        }
        self.members.append(new)
        return dict(new), self.member_list()

    def member_remove(self, member_id):
        self.writes.append(("remove", member_id))
        self.members = [x for x in self.members if x["id"] != member_id]
        return self.member_list()

    def member_promote(self, member_id):
        self.writes.append(("promote", member_id))
        if self.promote_error:
            raise self.promote_error
        for x in self.members:
            if x["id"] == member_id:
                x["is_learner"] = False
        return self.member_list()


def params(**kw):
    base = {"state": "present", "name": None, "peer_urls": [], "learner": True, "check_health": False}
    base.update(kw)
    return base


def test_run_add_check_mode_writes_nothing_and_diffs():
    c = FakeClient(THREE)
    res = r.run_member(c, params(name="etcd4", peer_urls=["https://10.0.0.4:2380"]), check_mode=True, diff=True)
    assert res["changed"] is True and res["action"] == "add" and c.writes == []
    assert res["diff"]["before"] == {"members": ["etcd1", "etcd2", "etcd3"]}
    assert res["diff"]["after"]["members"][-1] == "<unstarted https://10.0.0.4:2380> (learner)"
    assert res["initial_cluster"].endswith("etcd4=https://10.0.0.4:2380")


def test_run_add_then_idempotent():
    c = FakeClient(THREE)
    p = params(name="etcd4", peer_urls=["https://10.0.0.4:2380"])
    res = r.run_member(c, p)
    assert res["changed"] is True and c.writes == [("add", ["https://10.0.0.4:2380"], True)]
    assert res["member"]["id"] == "5555" and len(res["members"]) == 4
    res2 = r.run_member(c, p)
    assert res2["changed"] is False and len(c.writes) == 1
    assert res2["member"]["id"] == "5555"


def test_run_absent_uses_live_health():
    c = FakeClient(THREE, healthy={"https://10.0.0.1:2379", "https://10.0.0.3:2379"})
    with pytest.raises(r.EtcdMemberError, match="quorum"):
        r.run_member(c, params(state="absent", name="etcd3"))
    res = r.run_member(c, params(state="absent", name="etcd2"))
    assert res["changed"] is True and res["member"]["name"] == "etcd2"
    assert [x["name"] for x in res["members"]] == ["etcd1", "etcd3"]
    assert c.writes == [("remove", E2["id"])]


def test_run_absent_check_mode():
    c = FakeClient(THREE)
    res = r.run_member(c, params(state="absent", name="etcd3"), check_mode=True, diff=True)
    assert res["changed"] is True and c.writes == []
    assert res["diff"]["after"] == {"members": ["etcd1", "etcd2"]}


def test_run_promote_not_in_sync_is_clear():
    err = EtcdError(
        "etcdserver: can only promote a learner member which is in sync with leader",
        endpoint="https://10.0.0.1:2379",
        code=9,
        http_status=400,
    )
    c = FakeClient(THREE + [m("etcd4", 4, learner=True)], promote_error=err)
    with pytest.raises(r.EtcdMemberError) as info:
        r.run_member(c, params(state="promoted", name="etcd4"))
    assert "in sync with leader" in str(info.value) and "retry" in str(info.value)


def test_run_promote_and_noop():
    c = FakeClient(THREE + [m("etcd4", 4, learner=True)])
    res = r.run_member(c, params(state="promoted", name="etcd4"), diff=True)
    assert res["changed"] is True and res["member"]["is_learner"] is False
    assert "etcd4 (learner)" in res["diff"]["before"]["members"] and "etcd4" in res["diff"]["after"]["members"]
    assert r.run_member(c, params(state="promoted", name="etcd4"))["changed"] is False


def test_run_promote_check_mode_reports_voter():
    c = FakeClient(THREE + [m("etcd4", 4, learner=True)])
    res = r.run_member(c, params(state="promoted", name="etcd4"), check_mode=True)
    assert res["changed"] is True and c.writes == [] and res["member"]["is_learner"] is False


def test_run_list_with_health():
    pending = m("", 4, learner=True, started=False)
    c = FakeClient(THREE + [pending], healthy={"https://10.0.0.1:2379", "https://10.0.0.2:2379"})
    res = r.run_member(c, params(state="list", check_health=True))
    assert res["changed"] is False
    assert [x["healthy"] for x in res["members"]] == [True, True, False, False]
    assert "not started" in res["members"][3]["health_reason"]


# -- the module itself, check mode ----------------------------------------------------
def test_module_check_mode_changes_nothing(monkeypatch, capsys):
    c = FakeClient(THREE)
    monkeypatch.setattr(etcd_member_module, "client_from_params", lambda p: c)
    args = {"name": "etcd4", "peer_urls": ["https://10.0.0.4:2380"], "_ansible_check_mode": True, "_ansible_diff": True}
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            etcd_member_module.main()
    assert info.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] is True and out["action"] == "add" and c.writes == []
    assert "diff" in out


def test_module_fails_with_field_names(monkeypatch, capsys):
    c = FakeClient(THREE)
    monkeypatch.setattr(etcd_member_module, "client_from_params", lambda p: c)
    with patch_module_args({"name": "etcd2", "peer_urls": ["https://10.9.9.9:2380"]}):
        with pytest.raises(SystemExit) as info:
            etcd_member_module.main()
    assert info.value.code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] is True and "peer_urls" in out["msg"] and c.writes == []
