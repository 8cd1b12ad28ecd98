# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for idcloud.platform.calico_resource: planning and runner with a fake Kubernetes API,
the CustomObjectsApi adapter with a mock, and the module entry point."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

from ansible_collections.idcloud.platform.plugins.module_utils.calico import calico_resource as cc  # noqa: E402
from ansible_collections.idcloud.platform.plugins.modules import calico_resource as module  # noqa: E402

MANAGED = {"app.kubernetes.io/managed-by": "idcloud.platform"}
POOL_SPEC = {
    "cidr": "10.233.0.0/19",
    "blockSize": 27,
    "ipipMode": "Never",
    "vxlanMode": "Never",
    "natOutgoing": True,
    "nodeSelector": "all()",
    "allowedUses": ["Workload", "Tunnel"],
}


class FakeApi:
    """In-memory cluster-scoped custom objects with resourceVersions, dry runs, CRD defaults and conflicts."""

    def __init__(self, objects=(), defaults=None, crd_missing=False, conflicts=0, kind="BGPPeer"):
        self.kind = kind
        self.rv = 100
        self.store = {}
        for obj in objects:
            self._put(copy.deepcopy(obj))
        self.defaults = defaults or {}
        self.crd_missing = crd_missing
        self.conflicts = conflicts
        self.writes = []  # (verb, name) of writes that were persisted
        self.dry_runs = []

    def _put(self, obj):
        self.rv += 1
        obj.setdefault("apiVersion", cc.API_VERSION)
        obj.setdefault("kind", self.kind)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        obj["metadata"].setdefault("uid", "uid-" + obj["metadata"]["name"])
        self.store[obj["metadata"]["name"]] = obj
        return copy.deepcopy(obj)

    def _check_crd(self):
        if self.crd_missing:
            raise cc.KubeApiError(
                "list: HTTP 404 the server could not find the requested resource", status=404, reason="NotFound"
            )

    def list(self, plural, label_selector=None):
        self._check_crd()
        items = list(self.store.values())
        if label_selector:
            key, value = label_selector.split("=")
            items = [o for o in items if (o["metadata"].get("labels") or {}).get(key) == value]
        return copy.deepcopy(items)

    def get(self, plural, name):
        self._check_crd()
        return copy.deepcopy(self.store.get(name))

    def _stored(self, body):
        obj = copy.deepcopy(body)
        for key, value in self.defaults.items():
            obj["spec"].setdefault(key, value)
        return obj

    def create(self, plural, body, dry_run=False):
        name = body["metadata"]["name"]
        if name in self.store:
            raise cc.KubeApiError("create: HTTP 409 already exists", status=409, reason="AlreadyExists")
        if dry_run:
            self.dry_runs.append(("create", name))
            return self._stored(body)
        self.writes.append(("create", name))
        return self._put(self._stored(body))

    def replace(self, plural, name, body, dry_run=False):
        live = self.store[name]
        if dry_run:
            self.dry_runs.append(("replace", name))
            return self._stored(body)
        if self.conflicts:
            # another writer changes a label in between
            self.conflicts -= 1
            live["metadata"].setdefault("labels", {})["other"] = "writer-%d" % self.conflicts
            self._put(live)
        if body["metadata"].get("resourceVersion") != live["metadata"]["resourceVersion"]:
            raise cc.KubeApiError("replace: HTTP 409 the object has been modified", status=409, reason="Conflict")
        self.writes.append(("replace", name))
        return self._put(self._stored(body))

    def delete(self, plural, name, resource_version=None, dry_run=False):
        if name not in self.store:
            return False
        if resource_version and resource_version != self.store[name]["metadata"]["resourceVersion"]:
            raise cc.KubeApiError("delete: HTTP 409 precondition failed", status=409, reason="Conflict")
        if not dry_run:
            self.writes.append(("delete", name))
            del self.store[name]
        return True


def obj(name, spec, labels=None, annotations=None):
    meta = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"metadata": meta, "spec": copy.deepcopy(spec)}


def params(**kw):
    base = {
        "kind": "BGPPeer",
        "resources": None,
        "name": None,
        "spec": None,
        "labels": {},
        "state": "present",
        "prune": False,
        "prune_label": None,
        "kubeconfig": None,
        "context": None,
        "validate_certs": True,
    }
    base.update(kw)
    return base


PEER_A = {"peerIP": "10.10.1.254", "asNumber": 65101}
PEER_B = {"peerIP": "10.10.2.254", "asNumber": 65102}


# -- create / update / no-op / delete ---------------------------------------------------------
def test_create_then_second_run_is_unchanged():
    api = FakeApi()
    p = params(resources=[{"name": "tor-a", "spec": PEER_A}], labels=MANAGED)
    res = cc.run_calico_resource(api, p)
    assert res["changed"] is True and res["kind"] == "BGPPeer"
    assert res["resources"] == [
        {
            "name": "tor-a",
            "action": "create",
            "before": None,
            "after": PEER_A,
            "changed_keys": ["asNumber", "peerIP"],
            "pruned": False,
        }
    ]
    assert api.writes == [("create", "tor-a")] and api.dry_runs == [("create", "tor-a")]
    assert api.store["tor-a"]["metadata"]["labels"] == MANAGED
    assert api.store["tor-a"]["apiVersion"] == "crd.projectcalico.org/v1"

    res = cc.run_calico_resource(api, p)
    assert res["changed"] is False and res["resources"][0]["action"] == "none"
    assert api.writes == [("create", "tor-a")] and len(api.dry_runs) == 1, "an equal spec needs no dry run"


def test_update_replaces_whole_spec_and_keeps_other_metadata():
    live = obj(
        "tor-a",
        dict(PEER_A, keepOriginalNextHop=True),
        labels={"team": "net"},
        annotations={"projectcalico.org/metadata": '{"uid":"x"}'},
    )
    api = FakeApi([live])
    res = cc.run_calico_resource(
        api, params(name="tor-a", spec={"peerIP": "10.10.1.254", "asNumber": 65199}, labels=MANAGED)
    )
    entry = res["resources"][0]
    assert res["changed"] and entry["action"] == "update"
    assert entry["changed_keys"] == ["asNumber", "keepOriginalNextHop", "metadata.labels"]
    assert entry["before"] == dict(PEER_A, keepOriginalNextHop=True)
    assert entry["after"] == {"peerIP": "10.10.1.254", "asNumber": 65199}
    stored = api.store["tor-a"]
    assert stored["spec"] == {"peerIP": "10.10.1.254", "asNumber": 65199}, "fields left out are removed"
    assert stored["metadata"]["labels"] == dict(MANAGED, team="net"), "labels are merged"
    assert stored["metadata"]["annotations"] == {"projectcalico.org/metadata": '{"uid":"x"}'}
    assert stored["metadata"]["uid"] == "uid-tor-a"


def test_only_labels_differ_is_an_update():
    api = FakeApi([obj("tor-a", PEER_A)])
    res = cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A, labels=MANAGED))
    assert res["resources"][0]["changed_keys"] == ["metadata.labels"] and api.writes == [("replace", "tor-a")]


def test_null_and_absent_are_the_same():
    api = FakeApi([obj("tor-a", PEER_A)])
    res = cc.run_calico_resource(api, params(name="tor-a", spec=dict(PEER_A, password=None, filters=None)))
    assert res["changed"] is False and api.writes == []


def test_values_compare_as_given():
    api = FakeApi([obj("tor-a", PEER_A)])
    res = cc.run_calico_resource(api, params(name="tor-a", spec={"peerIP": "10.10.1.254", "asNumber": "65101"}))
    assert res["changed"] is True and res["resources"][0]["changed_keys"] == ["asNumber"]


def test_server_defaults_are_not_a_change():
    live = obj(
        "default", {"asNumber": 64512, "nodeToNodeMeshEnabled": False, "serviceLoadBalancerAggregation": "Enabled"}
    )
    api = FakeApi([live], defaults={"serviceLoadBalancerAggregation": "Enabled"}, kind="BGPConfiguration")
    res = cc.run_calico_resource(
        api, params(kind="BGPConfiguration", name="default", spec={"asNumber": 64512, "nodeToNodeMeshEnabled": False})
    )
    assert res["changed"] is False and res["resources"][0]["action"] == "none"
    assert api.dry_runs == [("replace", "default")] and api.writes == []


def test_create_reports_what_the_server_stores():
    api = FakeApi(defaults={"serviceLoadBalancerAggregation": "Enabled"}, kind="BGPConfiguration")
    res = cc.run_calico_resource(api, params(kind="BGPConfiguration", name="default", spec={"asNumber": 64512}))
    assert res["resources"][0]["after"] == {"asNumber": 64512, "serviceLoadBalancerAggregation": "Enabled"}


def test_absent_deletes_and_is_then_unchanged():
    api = FakeApi([obj("tor-a", PEER_A), obj("tor-b", PEER_B)])
    p = params(resources=[{"name": "tor-a"}, {"name": "gone"}], state="absent")
    res = cc.run_calico_resource(api, p)
    assert [(r["name"], r["action"]) for r in res["resources"]] == [("tor-a", "delete"), ("gone", "none")]
    assert res["resources"][0]["before"] == PEER_A and res["resources"][0]["after"] is None
    assert api.writes == [("delete", "tor-a")] and list(api.store) == ["tor-b"]
    assert cc.run_calico_resource(api, p)["changed"] is False


# -- prune ------------------------------------------------------------------------------------
def test_prune_deletes_only_labelled_objects_not_listed():
    owner = {"app.kubernetes.io/managed-by": "idcloud.platform"}
    api = FakeApi([obj("tor-a", PEER_A, labels=owner), obj("old-rack", PEER_B, labels=owner), obj("hand-made", PEER_B)])
    p = params(
        resources=[{"name": "tor-a", "spec": PEER_A}],
        prune=True,
        prune_label="app.kubernetes.io/managed-by=idcloud.platform",
    )
    res = cc.run_calico_resource(api, p, diff=True)
    assert [(r["name"], r["action"], r["pruned"]) for r in res["resources"]] == [
        ("tor-a", "none", False),
        ("old-rack", "delete", True),
    ]
    assert sorted(api.store) == ["hand-made", "tor-a"] and api.writes == [("delete", "old-rack")]
    assert "old-rack" in res["diff"]["before"] and res["diff"]["after"] == ""
    assert cc.run_calico_resource(api, p)["changed"] is False


def test_prune_label_is_put_on_what_is_created_and_wins():
    api = FakeApi()
    p = params(
        resources=[{"name": "tor-a", "spec": PEER_A, "labels": {"owner": "someone-else"}}],
        prune=True,
        prune_label="owner=idcloud",
    )
    cc.run_calico_resource(api, p)
    assert api.store["tor-a"]["metadata"]["labels"] == {"owner": "idcloud"}


def test_prune_with_empty_list_removes_all_owned():
    api = FakeApi([obj("a", PEER_A, labels={"o": "x"}), obj("b", PEER_B, labels={"o": "x"}), obj("c", PEER_B)])
    res = cc.run_calico_resource(api, params(resources=[], prune=True, prune_label="o=x"))
    assert [r["name"] for r in res["resources"]] == ["a", "b"] and list(api.store) == ["c"]


# -- check mode and diff --------------------------------------------------------------------
def test_check_mode_writes_nothing_and_reports_everything():
    api = FakeApi([obj("tor-a", PEER_A, labels={"o": "x"}), obj("stale", PEER_B, labels={"o": "x"})])
    before = copy.deepcopy(api.store)
    p = params(
        resources=[{"name": "tor-a", "spec": dict(PEER_A, asNumber=65111)}, {"name": "tor-b", "spec": PEER_B}],
        prune=True,
        prune_label="o=x",
    )
    res = cc.run_calico_resource(api, p, check_mode=True, diff=True)
    assert [(r["name"], r["action"]) for r in res["resources"]] == [
        ("tor-a", "update"),
        ("tor-b", "create"),
        ("stale", "delete"),
    ]
    assert res["changed"] is True and api.writes == [] and api.store == before
    assert sorted(api.dry_runs) == [("create", "tor-b"), ("replace", "tor-a")]
    before_docs = list(yaml.safe_load_all(res["diff"]["before"]))
    after_docs = list(yaml.safe_load_all(res["diff"]["after"]))
    assert [d["metadata"]["name"] for d in before_docs] == ["tor-a", "stale"]
    assert [d["metadata"]["name"] for d in after_docs] == ["tor-a", "tor-b"]
    assert before_docs[0]["spec"]["asNumber"] == 65101 and after_docs[0]["spec"]["asNumber"] == 65111
    assert after_docs[1] == {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BGPPeer",
        "metadata": {"name": "tor-b", "labels": {"o": "x"}},
        "spec": PEER_B,
    }


def test_no_diff_unless_asked_and_empty_diff_when_unchanged():
    api = FakeApi([obj("tor-a", PEER_A)])
    assert "diff" not in cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A))
    res = cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A), diff=True)
    assert res["diff"]["before"] == "" and res["diff"]["after"] == ""


# -- IPPool safety -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, field",
    [({"cidr": "10.234.0.0/19"}, "cidr"), ({"blockSize": 26}, "blockSize"), ({"blockSize": None}, "blockSize")],
)
def test_ippool_cidr_and_block_size_are_immutable(change, field):
    api = FakeApi([obj("pods-v4", POOL_SPEC)], kind="IPPool")
    spec = dict(POOL_SPEC, **change)
    with pytest.raises(cc.CalicoResourceError) as info:
        cc.run_calico_resource(api, params(kind="IPPool", name="pods-v4", spec=spec), check_mode=True)
    msg = str(info.value)
    assert "IPPool 'pods-v4'" in msg and "spec.%s" % field in msg and "new IPPool" in msg and "disabled" in msg
    assert info.value.name == "pods-v4" and api.writes == [] and api.dry_runs == []


def test_ippool_other_fields_may_change_and_equal_cidr_spelling_is_fine():
    api = FakeApi([obj("pods-v4", POOL_SPEC)], kind="IPPool")
    res = cc.run_calico_resource(
        api, params(kind="IPPool", name="pods-v4", spec=dict(POOL_SPEC, cidr="10.233.0.1/19", natOutgoing=False))
    )
    assert res["resources"][0]["changed_keys"] == ["cidr", "natOutgoing"]


def test_ippool_refusal_happens_before_any_write():
    api = FakeApi([obj("pods-v4", POOL_SPEC)], kind="IPPool")
    with pytest.raises(cc.CalicoResourceError):
        cc.run_calico_resource(
            api,
            params(
                kind="IPPool",
                resources=[
                    {"name": "new-pool", "spec": dict(POOL_SPEC, cidr="10.240.0.0/19")},
                    {"name": "pods-v4", "spec": dict(POOL_SPEC, blockSize=26)},
                ],
            ),
        )
    assert api.writes == [], "planned first: the first pool is not created either"


# -- conflicts --------------------------------------------------------------------------------
def test_conflict_rereads_and_retries():
    api = FakeApi([obj("tor-a", PEER_A)], conflicts=2)
    res = cc.run_calico_resource(api, params(name="tor-a", spec=PEER_B))
    assert res["resources"][0]["action"] == "update" and api.writes == [("replace", "tor-a")]
    assert api.store["tor-a"]["spec"] == PEER_B
    assert api.store["tor-a"]["metadata"]["labels"] == {"other": "writer-0"}, "the other writer's label survives"


def test_endless_conflicts_fail_clearly():
    api = FakeApi([obj("tor-a", PEER_A)], conflicts=99)
    with pytest.raises(cc.CalicoResourceError, match="conflicts in a row"):
        cc.run_calico_resource(api, params(name="tor-a", spec=PEER_B))


def test_create_conflict_becomes_update():
    api = FakeApi()
    real_create = api.create

    def racing_create(plural, body, dry_run=False):
        if not dry_run and body["metadata"]["name"] not in api.store:
            api._put(obj("tor-a", PEER_B))  # someone else created it first
        return real_create(plural, body, dry_run)

    api.create = racing_create
    res = cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A))
    assert res["resources"][0]["action"] == "update" and api.store["tor-a"]["spec"] == PEER_A


def test_prune_conflict_deletes_the_new_version():
    api = FakeApi([obj("stale", PEER_A, labels={"o": "x"})])
    real_delete = api.delete
    calls = []

    def racing_delete(plural, name, resource_version=None, dry_run=False):
        if not calls:
            api._put(api.store[name])  # bumped by someone else
        calls.append(resource_version)
        return real_delete(plural, name, resource_version, dry_run)

    api.delete = racing_delete
    res = cc.run_calico_resource(api, params(resources=[], prune=True, prune_label="o=x"))
    assert res["resources"][0]["action"] == "delete" and api.store == {} and len(calls) == 2


# -- errors and bad input ----------------------------------------------------------------------
def test_missing_crd_says_so():
    api = FakeApi(crd_missing=True)
    with pytest.raises(cc.CalicoResourceError) as info:
        cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A))
    assert "Calico CRDs are not installed" in str(info.value) and "bgppeers.crd.projectcalico.org" in str(info.value)


def test_other_api_errors_pass_through():
    api = FakeApi()
    api.list = mock.Mock(side_effect=cc.KubeApiError("list bgppeers: HTTP 403 forbidden", status=403))
    with pytest.raises(cc.KubeApiError):
        cc.run_calico_resource(api, params(name="tor-a", spec=PEER_A))


@pytest.mark.parametrize(
    "kw, needle",
    [
        (dict(name="Tor_A", spec=PEER_A), "name 'Tor_A' is not a valid object name"),
        (dict(name="tor-a"), "spec is required with state=present"),
        (dict(name="tor-a", spec=["x"]), "spec must be a mapping"),
        (dict(resources=[{"name": "a", "spec": {}}, {"name": "a", "spec": {}}]), "given twice"),
        (dict(resources=[{"name": "a", "spec": {}, "labels": {"rack": 1}}]), "key 'rack' has value 1"),
        (dict(name="a", spec={}, labels={"x": True}), "labels: key 'x' has value True"),
        (dict(name="a", spec={}, prune=True, prune_label="managed"), "prune_label must be one label as key=value"),
        (dict(name="a", spec={}, prune=True, prune_label="a=b", state="absent"), "prune works with state=present"),
        (dict(name="a", spec={}, resources=[]), "not both"),
        (dict(), "give resources"),
        (dict(kind="IPAMBlock", name="a", spec={}), "kind 'IPAMBlock' is not handled"),
    ],
)
def test_bad_input_names_the_field(kw, needle):
    api = FakeApi()
    with pytest.raises(cc.CalicoResourceError) as info:
        cc.run_calico_resource(api, params(**kw))
    assert needle in str(info.value)
    assert api.writes == []


def test_every_mapped_kind_has_a_plural():
    assert cc.KIND_PLURALS["IPPool"] == "ippools" and cc.KIND_PLURALS["BGPFilter"] == "bgpfilters"
    assert all(
        v == (k.lower()[:-1] + "ies" if k.endswith("y") else k.lower() + "s") for k, v in cc.KIND_PLURALS.items()
    )


# -- the CustomObjectsApi adapter --------------------------------------------------------------
def api_exception(status, reason, message):
    return ApiException(
        status=status, reason=reason, body=json.dumps({"kind": "Status", "reason": reason, "message": message})
    )


def test_adapter_passes_dry_run_strict_validation_and_field_manager():
    raw = mock.Mock()
    raw.create_cluster_custom_object.return_value = {"spec": {}}
    api = cc.CrdApi(raw)
    body = {"metadata": {"name": "x"}, "spec": {}}
    api.create("bgppeers", body, dry_run=True)
    raw.create_cluster_custom_object.assert_called_once_with(
        "crd.projectcalico.org",
        "v1",
        "bgppeers",
        body,
        field_manager="idcloud.platform.calico_resource",
        field_validation="Strict",
        dry_run="All",
    )
    api.replace("bgppeers", "x", body)
    assert "dry_run" not in raw.replace_cluster_custom_object.call_args.kwargs


def test_adapter_translates_errors():
    raw = mock.Mock()
    raw.get_cluster_custom_object.side_effect = api_exception(404, "NotFound", 'bgppeers "x" not found')
    raw.replace_cluster_custom_object.side_effect = api_exception(
        422, "Invalid", 'BGPPeer.crd.projectcalico.org "x" is invalid: spec.asNumber: Invalid value: "string"'
    )
    raw.delete_cluster_custom_object.side_effect = api_exception(404, "NotFound", "gone")
    api = cc.CrdApi(raw)
    assert api.get("bgppeers", "x") is None
    assert api.delete("bgppeers", "x", resource_version="7") is False
    opts = raw.delete_cluster_custom_object.call_args.kwargs["body"]
    assert opts.preconditions.resource_version == "7"
    with pytest.raises(cc.KubeApiError) as info:
        api.replace("bgppeers", "x", {"metadata": {"name": "x"}})
    assert info.value.status == 422 and "spec.asNumber" in info.value.message
    assert info.value.to_dict()["reason"] == "Invalid"


def test_adapter_connection_error_names_the_host():
    raw = mock.Mock()
    raw.list_cluster_custom_object.side_effect = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(cc.KubeApiError) as info:
        cc.CrdApi(raw, host="https://127.0.0.1:1").list("bgppeers")
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in str(info.value) and info.value.status is None


def test_missing_kubeconfig_is_a_clear_error(tmp_path):
    with pytest.raises(cc.CalicoResourceError, match="cannot load kubeconfig"):
        cc.api_from_params({"kubeconfig": str(tmp_path / "nope"), "context": None, "validate_certs": True})


# -- the module -------------------------------------------------------------------------------
def run_main(monkeypatch, capsys, api, args):
    monkeypatch.setattr(module, "api_from_params", lambda p: api)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_module_check_mode_and_diff(monkeypatch, capsys):
    api = FakeApi()
    rc, out = run_main(
        monkeypatch,
        capsys,
        api,
        {"kind": "BGPPeer", "name": "tor-a", "spec": PEER_A, "_ansible_check_mode": True, "_ansible_diff": True},
    )
    assert rc == 0 and out["changed"] is True and api.writes == []
    assert "tor-a" in out["diff"]["after"] and out["resources"][0]["action"] == "create"


def test_module_fails_on_missing_crd(monkeypatch, capsys):
    rc, out = run_main(monkeypatch, capsys, FakeApi(crd_missing=True), {"kind": "IPPool", "name": "p", "spec": {}})
    assert rc == 1 and "Calico CRDs are not installed" in out["msg"]


def test_module_argspec_rejects_prune_without_label(monkeypatch, capsys):
    rc, out = run_main(monkeypatch, capsys, FakeApi(), {"kind": "BGPPeer", "resources": [], "prune": True})
    assert rc == 1 and "prune_label" in out["msg"]


def test_module_api_error_is_reported(monkeypatch, capsys):
    api = FakeApi()
    api.list = mock.Mock(
        side_effect=cc.KubeApiError("list bgppeers: HTTP 403 forbidden", status=403, reason="Forbidden")
    )
    rc, out = run_main(monkeypatch, capsys, api, {"kind": "BGPPeer", "name": "a", "spec": {}})
    assert rc == 1 and out["error"]["status"] == 403 and "forbidden" in out["msg"]


def _doc_options(doc_text):
    return yaml.safe_load(doc_text)["options"]


def _compare(doc_opts, spec, where):
    assert set(doc_opts) == set(spec), where
    for name, s in spec.items():
        d = doc_opts[name]
        assert d["type"] == s["type"], (where, name)
        assert d.get("default") == s.get("default"), (where, name)
        assert d.get("choices") == s.get("choices"), (where, name)
        assert bool(d.get("required")) == bool(s.get("required")), (where, name)
        assert d.get("elements") == s.get("elements"), (where, name)
        if "options" in s:
            _compare(d["suboptions"], s["options"], "%s.%s" % (where, name))


def test_documentation_matches_argument_spec():
    from ansible_collections.idcloud.platform.plugins.doc_fragments import kube_client

    doc = _doc_options(module.DOCUMENTATION)
    doc.update(_doc_options(kube_client.ModuleDocFragment.DOCUMENTATION))
    _compare(doc, module.ARGUMENT_SPEC, "calico_resource")
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def test_module_empty_resources_with_prune_is_accepted(monkeypatch, capsys):
    api = FakeApi([obj("old", PEER_A, labels={"o": "x"})])
    rc, out = run_main(
        monkeypatch, capsys, api, {"kind": "BGPPeer", "resources": [], "prune": True, "prune_label": "o=x"}
    )
    assert rc == 0 and out["changed"] is True and api.store == {}


# -- merge_spec: fields another writer owns are kept ------------------------------------------
FELIX_BY_NODE = {"reportingInterval": "0s", "logSeverityScreen": "Info"}  # what calico-node fills in


def test_merge_spec_sets_only_the_given_fields_and_then_converges():
    api = FakeApi(kind="FelixConfiguration")
    p = params(kind="FelixConfiguration", name="default", spec={"usageReportingEnabled": False}, merge_spec=True)
    assert cc.run_calico_resource(api, p)["resources"][0]["action"] == "create"
    # calico-node starts and adds its defaults to the object
    api.store["default"]["spec"].update(FELIX_BY_NODE)
    res = cc.run_calico_resource(api, p)
    assert res["changed"] is False and api.writes == [("create", "default")]
    assert api.store["default"]["spec"] == dict(FELIX_BY_NODE, usageReportingEnabled=False)


def test_merge_spec_changes_a_wrong_value_and_keeps_the_rest():
    api = FakeApi([obj("default", dict(FELIX_BY_NODE, usageReportingEnabled=True))], kind="FelixConfiguration")
    res = cc.run_calico_resource(
        api, params(kind="FelixConfiguration", name="default", spec={"usageReportingEnabled": False}, merge_spec=True)
    )
    assert res["resources"][0]["changed_keys"] == ["usageReportingEnabled"]
    assert api.store["default"]["spec"] == dict(FELIX_BY_NODE, usageReportingEnabled=False)


def test_without_merge_spec_the_other_writers_fields_are_removed():
    api = FakeApi([obj("default", dict(FELIX_BY_NODE, usageReportingEnabled=False))], kind="FelixConfiguration")
    res = cc.run_calico_resource(
        api, params(kind="FelixConfiguration", name="default", spec={"usageReportingEnabled": False})
    )
    assert res["resources"][0]["changed_keys"] == ["logSeverityScreen", "reportingInterval"]


def test_merge_specs_merges_mappings_at_every_depth_and_replaces_lists():
    live = {"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2], "x": 1}
    assert cc.merge_specs(live, {"a": {"c": {"e": 3}}, "l": [3]}) == {
        "a": {"b": 1, "c": {"d": 2, "e": 3}},
        "l": [3],
        "x": 1,
    }
    assert live == {"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2], "x": 1}, "the live spec is not modified"


def test_merge_spec_and_prune_are_refused_together():
    with pytest.raises(cc.CalicoResourceError, match="merge_spec and prune"):
        cc.run_calico_resource(FakeApi(), params(name="x", spec={}, merge_spec=True, prune=True, prune_label="a=b"))


def test_global_network_policy_is_a_known_kind():
    assert cc.KIND_PLURALS["GlobalNetworkPolicy"] == "globalnetworkpolicies"
