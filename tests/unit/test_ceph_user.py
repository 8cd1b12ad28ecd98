"""ceph_user: the plan (pure) and the run against a fake `ceph auth` command line."""

from __future__ import annotations

import json

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_user import (
    NO_LOG_WARNING,
    plan_user,
    run_user,
    user_view,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError

# shaped like cephx keys (base64 of 28 bytes); the fake hands them out
OLD_KEY = "AQDmWjBlAAAAABAAc3RvcmFnZS10ZWFtLW9sZC1rZXk="
NEW_KEY = "AQBnWjBlAAAAABAAaWRjbG91ZC1uZXcta2V5LTAwMQ=="

CSI_CAPS = {"mon": "profile rbd", "osd": "profile rbd pool=kubernetes", "mgr": "profile rbd pool=kubernetes"}
# the same caps as ceph's arguments, services in the order `ceph auth get` prints them
CSI_CAPS_ARGS = ["mgr", "profile rbd pool=kubernetes", "mon", "profile rbd", "osd", "profile rbd pool=kubernetes"]


def wanted(**kw):
    base = dict(name="client.csi-rbd", state="present", caps=None, allow_client_admin=False, return_key=False)
    base.update(kw)
    return base


def current(**caps):
    return dict(entity="client.csi-rbd", caps=caps or dict(CSI_CAPS))


def test_a_new_user_is_created_with_all_its_caps():
    plan = plan_user(wanted(caps=CSI_CAPS), None)
    assert plan["errors"] == []
    assert plan["commands"] == [["auth", "get-or-create", "client.csi-rbd"] + CSI_CAPS_ARGS]
    assert plan["after"] == dict(entity="client.csi-rbd", caps=CSI_CAPS)


def test_a_user_as_wanted_needs_nothing():
    plan = plan_user(wanted(caps=dict(CSI_CAPS)), current())
    assert plan["commands"] == [] and plan["errors"] == []
    assert plan["before"] == plan["after"]


def test_caps_left_unset_are_not_managed():
    assert plan_user(wanted(), current(mon="allow r"))["commands"] == []
    # a new user without caps has none
    assert plan_user(wanted(), None)["commands"] == [["auth", "get-or-create", "client.csi-rbd"]]


def test_changed_caps_are_given_whole_and_the_diff_shows_the_dropped_one():
    plan = plan_user(wanted(caps={"mon": "profile rbd", "osd": "profile rbd pool=k8s"}), current())
    # `ceph auth caps` replaces all caps: both wanted caps go in the command, mgr is dropped
    assert plan["commands"] == [["auth", "caps", "client.csi-rbd", "mon", "profile rbd", "osd", "profile rbd pool=k8s"]]
    assert plan["before"]["caps"]["mgr"] == "profile rbd pool=kubernetes"
    assert "mgr" not in plan["after"]["caps"]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("csi-rbd", "name: 'csi-rbd' is not a cephx entity (<type>.<id>); fix: give the type too, like client.csi-rbd"),
        ("cilent.csi", "name: 'cilent.csi' has the type 'cilent' (did you mean client?); fix: use one of client, mds"),
        ("client.", "name: 'client.' has no usable id after 'client.'; fix: give letters, digits"),
        ("client.csi rbd", "name: 'client.csi rbd' has no usable id after 'client.'; fix:"),
    ],
)
def test_a_name_that_is_not_an_entity_is_refused(name, expected):
    plan = plan_user(wanted(name=name, caps={"mon": "allow r"}), None)
    assert plan["commands"] == []
    assert plan["errors"][0].startswith(expected)


def test_client_admin_is_managed_only_when_allowed():
    for state in ("present", "absent"):
        refused = plan_user(wanted(name="client.admin", state=state, caps={"mon": "allow *"}), None)
        assert refused["errors"] == [
            "name: client.admin is the cluster's admin user (every admin tool and the orchestrator use it); "
            "fix: set allow_client_admin: true to manage it here"
        ]
    allowed = plan_user(wanted(name="client.admin", caps={"mon": "allow *"}, allow_client_admin=True), None)
    assert allowed["errors"] == [] and allowed["commands"][0][:3] == ["auth", "get-or-create", "client.admin"]


def test_cap_services_and_values_are_checked_together():
    plan = plan_user(wanted(caps={"mon": "profile rbd", "osds": "profile rbd", "mgr": " "}), current())
    assert plan["commands"] == []
    assert plan["errors"] == [
        "caps.mgr: ' ' for client.csi-rbd is not a cap; fix: give a cap string like 'profile rbd' or 'allow r', "
        "or leave mgr out of caps",
        "caps: 'osds' for client.csi-rbd is not a cephx service (did you mean osd?); fix: use mds, mgr, mon, osd",
    ]


def test_empty_caps_cannot_strip_an_existing_user():
    plan = plan_user(wanted(caps={}), current())
    assert plan["errors"] == [
        "caps: {} for client.csi-rbd, which has caps for mgr, mon, osd; fix: give at least one cap, or delete the "
        "entity with state: absent"
    ]


def test_absent_deletes_and_a_missing_user_needs_nothing():
    plan = plan_user(wanted(state="absent"), current())
    assert plan["commands"] == [["auth", "del", "client.csi-rbd"]]
    assert plan["after"] is None and plan["before"] == current()
    assert plan_user(wanted(state="absent"), None)["commands"] == []


def test_the_view_keeps_the_entity_and_caps_but_never_the_key():
    entry = {"entity": "client.csi-rbd", "key": OLD_KEY, "caps": dict(CSI_CAPS)}
    assert user_view(entry) == current()
    assert OLD_KEY not in json.dumps(user_view(entry))


class FakeCeph:
    """`ceph auth` over a dict of entities, printing what Ceph prints; records the commands that change something."""

    def __init__(self, entities=None):
        self.entities = {name: dict(key=OLD_KEY, caps=dict(caps)) for name, caps in (entities or {}).items()}
        self.calls, self.reads = [], []

    def __call__(self, cmd):
        args = cmd[cmd.index("--connect-timeout") + 2 :]
        if args[-2:] == ["--format", "json"]:
            args = args[:-2]
        verb, name, rest = args[1], args[2], args[3:]
        if verb == "get":
            self.reads.append(args)
            if name not in self.entities:
                return 2, "", "Error ENOENT: failed to find %s in keyring" % name
            entity = self.entities[name]
            # `ceph auth get --format json` prints a keyring: a list with the one entity
            return 0, json.dumps([{"entity": name, "key": entity["key"], "caps": entity["caps"]}]), ""
        self.calls.append(args)
        caps = dict(zip(rest[::2], rest[1::2]))
        if verb == "get-or-create":
            entity = self.entities.setdefault(name, dict(key=NEW_KEY, caps=caps))
            return 0, "[%s]\n\tkey = %s\n" % (name, entity["key"]), ""
        if verb == "caps":
            self.entities[name]["caps"] = caps
            return 0, "", "updated caps for %s" % name
        if verb == "del":
            del self.entities[name]
            return 0, "", "updated"
        raise AssertionError("unexpected command %s" % args)


def params(**kw):
    return dict(wanted(**kw), cluster_conf="/etc/ceph/ceph.conf", user="admin", keyring=None, timeout=5)


def test_run_creates_once_and_check_mode_runs_nothing():
    fake = FakeCeph()
    preview = run_user(fake, params(caps=CSI_CAPS), check_mode=True, diff=True)
    assert preview["changed"] and fake.calls == [] and fake.entities == {}
    assert preview["diff"] == dict(before={}, after=dict(entity="client.csi-rbd", caps=CSI_CAPS))
    assert run_user(fake, params(caps=CSI_CAPS))["changed"]
    assert fake.calls == [["auth", "get-or-create", "client.csi-rbd"] + CSI_CAPS_ARGS]
    again = run_user(fake, params(caps=CSI_CAPS))
    assert not again["changed"] and again["commands"] == [] and len(fake.calls) == 1


def test_run_shows_commands_as_a_shell_takes_them():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})
    result = run_user(fake, params(caps={"mon": "profile rbd"}), check_mode=True)
    assert result["commands"] == ["ceph auth caps client.csi-rbd mon 'profile rbd'"]
    assert fake.calls == []


def test_run_changes_caps_and_the_diff_has_both_sets():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})
    result = run_user(fake, params(caps={"mon": "profile rbd", "osd": "profile rbd pool=k8s"}), diff=True)
    assert fake.calls == [["auth", "caps", "client.csi-rbd", "mon", "profile rbd", "osd", "profile rbd pool=k8s"]]
    assert result["diff"]["before"]["caps"] == CSI_CAPS
    assert result["diff"]["after"]["caps"] == {"mon": "profile rbd", "osd": "profile rbd pool=k8s"}
    assert fake.entities["client.csi-rbd"]["caps"] == result["user"]["caps"]


def test_the_key_is_returned_only_when_asked_and_nowhere_else():
    fake = FakeCeph({"client.csi-rbd": {"mon": "allow r"}})
    plain = run_user(fake, params(caps=CSI_CAPS), diff=True)
    assert "key" not in plain and OLD_KEY not in json.dumps(plain)

    fake = FakeCeph()
    asked = run_user(fake, params(caps=CSI_CAPS, return_key=True), diff=True, task_no_log=True)
    assert asked["key"] == NEW_KEY
    rest = dict(asked, key=None)
    assert NEW_KEY not in json.dumps(rest), "the key leaked into the diff, the commands or the user"
    assert "warnings" not in asked


def test_return_key_on_a_task_without_no_log_warns():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})
    result = run_user(fake, params(return_key=True), task_no_log=False)
    assert result["key"] == OLD_KEY and result["warnings"] == [NO_LOG_WARNING]
    assert NO_LOG_WARNING.startswith("return_key: true on a task without no_log; fix: add `no_log: true`")


def test_check_mode_has_no_key_for_a_user_it_would_create():
    fake = FakeCeph()
    result = run_user(fake, params(caps=CSI_CAPS, return_key=True), check_mode=True, task_no_log=True)
    assert result["key"] is None and fake.calls == []


def test_absent_deletes_once_and_returns_no_key():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})
    result = run_user(fake, params(state="absent", return_key=True), diff=True, task_no_log=True)
    assert fake.calls == [["auth", "del", "client.csi-rbd"]] and result["key"] is None
    assert result["diff"] == dict(before=current(), after={})
    assert not run_user(fake, params(state="absent"))["changed"]


def test_a_malformed_name_is_refused_before_ceph_is_asked():
    fake = FakeCeph()
    with pytest.raises(CephError, match=r"^name: 'csi-rbd' is not a cephx entity"):
        run_user(fake, params(name="csi-rbd", caps=CSI_CAPS))
    assert fake.reads == [] and fake.calls == []


def test_a_refused_plan_raises_before_any_command_and_names_no_key():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})
    with pytest.raises(CephError) as refused:
        run_user(fake, params(caps={}, return_key=True))
    assert fake.calls == []
    assert str(refused.value).startswith("caps: {} for client.csi-rbd") and OLD_KEY not in str(refused.value)


def test_a_failed_command_raises_with_cephs_message_and_no_key():
    fake = FakeCeph({"client.csi-rbd": CSI_CAPS})

    def failing(cmd):
        if "caps" in cmd and "auth" in cmd:
            return 22, "", "Error EINVAL: mon capability parse failed, stopped at 'bogus' of 'profile bogus'"
        return fake(cmd)

    with pytest.raises(CephError, match=r"`ceph auth caps client.csi-rbd mon profile bogus` failed \(rc 22\)") as exc:
        run_user(failing, params(caps={"mon": "profile bogus"}, return_key=True))
    assert OLD_KEY not in str(exc.value)
