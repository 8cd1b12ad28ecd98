# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""idcloud.platform.calico_resource against a real kube-apiserver with the Calico CRDs.

The fixture starts etcd and kube-apiserver on 127.0.0.1 (free ports, throwaway certificates, see
kube_apiserver_local.py), applies the Calico CRDs with kubectl --server-side, and stops both
processes at the end, whatever happens. The module runs through ansible-playbook
(playbooks/calico_resources.yml) and ad-hoc ``ansible``, with the venv's Python as the target
interpreter (it has the kubernetes client). Skipped, with the reason, when the cached binaries or
the Calico CRD manifests are missing. Takes about 30 s.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube_apiserver_local import LocalKubeApi, find_binaries  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "calico_resources.yml"
BINARIES, MISSING = find_binaries()
CRD_DIR = os.environ.get("IDCLOUD_CALICO_CRD_DIR") or next(
    iter(
        sorted(
            glob.glob(os.path.expanduser("~/go/pkg/mod/github.com/projectcalico/calico@*/libcalico-go/config/crd")),
            reverse=True,
        )
    ),
    None,
)
BIN_DIR = os.path.dirname(sys.executable)
ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook", path=BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
ANSIBLE = shutil.which("ansible", path=BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
OWNER = "idcloud.platform/owner=calico-test"

pytestmark = [
    pytest.mark.skipif(BINARIES is None, reason=str(MISSING)),
    pytest.mark.skipif(
        CRD_DIR is None,
        reason="no Calico CRD manifests (libcalico-go/config/crd) in the Go module cache; set IDCLOUD_CALICO_CRD_DIR",
    ),
    pytest.mark.skipif(ANSIBLE_PLAYBOOK is None, reason="ansible-playbook is not installed next to this python"),
]


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    api = LocalKubeApi(tmp_path_factory.mktemp("kube-api"), BINARIES)
    try:
        api.start()
        crds = sorted(glob.glob(os.path.join(CRD_DIR, "crd.projectcalico.org_*.yaml")))
        api.kubectl("apply", "--server-side", *[a for f in crds for a in ("-f", f)])
        api.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
        deadline = time.monotonic() + 20
        while api.kubectl("get", "bgppeers.crd.projectcalico.org", check=False).returncode != 0:
            assert time.monotonic() < deadline, "Calico CRDs not served after 20 s"
            time.sleep(0.3)
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def ansible_env(kube, tmp_path_factory):
    base = tmp_path_factory.mktemp("ansible")
    config = base / "ansible.cfg"
    # the repository's ansible.cfg, minus the lab inventory and the timing callback; JSON on stdout
    config.write_text(
        "[defaults]\ncollections_path = %s\nstdout_callback = ansible.builtin.json\n"
        "retry_files_enabled = false\ninterpreter_python = %s\n"
        "[connection]\npipelining = true\n" % (REPO / "collections", sys.executable)
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_LOCAL_TEMP=str(base / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
        LANG="C.UTF-8",
    )
    env.pop("KUBECONFIG", None)
    return env


def play(env, kube, *extra, **variables):
    """ansible-playbook calico_resources.yml -> (rc, {task name: result}, changed count)."""
    variables.setdefault("calico_test_kubeconfig", str(kube.kubeconfig))
    cmd = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(PLAYBOOK), "-e", json.dumps(variables), *extra]
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            "no JSON from ansible-playbook (rc=%s):\n%s\n%s"
            % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
        )
    results = {t["task"]["name"]: t["hosts"]["localhost"] for p in out["plays"] for t in p["tasks"]}
    return proc.returncode, results, out["stats"]["localhost"]["changed"]


def adhoc(env, kube, tmp_path, args):
    tree = tmp_path / ("tree-%d" % time.monotonic_ns())
    args = dict(args, kubeconfig=str(kube.kubeconfig))
    proc = subprocess.run(
        [
            ANSIBLE,
            "localhost",
            "-i",
            "localhost,",
            "-c",
            "local",
            "-m",
            "idcloud.platform.calico_resource",
            "-a",
            json.dumps(args),
            "--tree",
            str(tree),
        ],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads((tree / "localhost").read_text())


def live(kube, plural):
    out = json.loads(kube.kubectl("get", plural + ".crd.projectcalico.org", "-o", "json").stdout)
    return {o["metadata"]["name"]: o for o in out["items"]}


def test_create_then_second_run_changes_nothing(kube, ansible_env):
    rc, res, changed = play(ansible_env, kube)
    assert rc == 0 and changed == 4, res
    assert [r["action"] for r in res["ToR peers (pruned to calico_test_peers)"]["resources"]] == ["create", "create"]
    pool = live(kube, "ippools")["pods-v4"]
    assert pool["spec"] == {
        "cidr": "10.233.0.0/19",
        "blockSize": 27,
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": True,
        "nodeSelector": "all()",
        "allowedUses": ["Workload", "Tunnel"],
    }
    assert pool["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "idcloud.platform"}
    assert live(kube, "bgpfilters")["no-import"]["spec"]["importV4"] == [{"action": "Reject"}]
    peers = live(kube, "bgppeers")
    assert sorted(peers) == ["tor-a", "tor-b"] and peers["tor-a"]["spec"]["asNumber"] == 65101
    assert peers["tor-a"]["metadata"]["labels"]["idcloud.platform/owner"] == "calico-test"
    bgp = live(kube, "bgpconfigurations")["default"]["spec"]
    # the CRD defaults serviceLoadBalancerAggregation: the second run must not see that as a change
    assert bgp["asNumber"] == 64512 and bgp["nodeToNodeMeshEnabled"] is False
    assert bgp.get("serviceLoadBalancerAggregation") == "Enabled"
    assert res["BGP configuration"]["resources"][0]["after"]["serviceLoadBalancerAggregation"] == "Enabled"

    rc, res, changed = play(ansible_env, kube)
    assert rc == 0 and changed == 0, res
    assert all(r["action"] == "none" for t in res.values() for r in t["resources"])


def test_check_mode_with_diff_writes_nothing(kube, ansible_env):
    before = {p: live(kube, p) for p in ("bgppeers", "ippools", "bgpconfigurations", "bgpfilters")}
    rc, res, changed = play(ansible_env, kube, "--check", "--diff", calico_test_as=65111, calico_test_peers=["tor-a"])
    assert rc == 0 and changed == 1, res
    peers = res["ToR peers (pruned to calico_test_peers)"]
    assert [(r["name"], r["action"]) for r in peers["resources"]] == [("tor-a", "update"), ("tor-b", "delete")]
    assert peers["resources"][0]["changed_keys"] == ["asNumber"]
    assert "asNumber: 65101" in peers["diff"]["before"] and "asNumber: 65111" in peers["diff"]["after"]
    assert "name: tor-b" in peers["diff"]["before"] and "name: tor-b" not in peers["diff"]["after"]
    after = {p: live(kube, p) for p in before}
    assert after == before, "check mode changed nothing, not even a resourceVersion"


def test_update_and_prune_leave_unowned_objects_alone(kube, ansible_env):
    hand_made = subprocess.run(
        [str(kube.bins["kubectl"]), "--kubeconfig", str(kube.kubeconfig), "create", "-f", "-"],
        input=json.dumps(
            {
                "apiVersion": "crd.projectcalico.org/v1",
                "kind": "BGPPeer",
                "metadata": {"name": "hand-made"},
                "spec": {"peerIP": "10.9.9.9", "asNumber": 65000},
            }
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert hand_made.returncode == 0, hand_made.stderr
    rc, res, changed = play(ansible_env, kube, calico_test_as=65111, calico_test_peers=["tor-a"])
    assert rc == 0 and changed == 1, res
    peers = live(kube, "bgppeers")
    assert sorted(peers) == ["hand-made", "tor-a"] and peers["tor-a"]["spec"]["asNumber"] == 65111
    assert res["ToR peers (pruned to calico_test_peers)"]["resources"][1] == {
        "name": "tor-b",
        "action": "delete",
        "before": {
            "peerIP": "10.10.2.254",
            "asNumber": 65102,
            "nodeSelector": "rack == 'b01'",
            "filters": ["no-import"],
        },
        "after": None,
        "changed_keys": ["asNumber", "filters", "nodeSelector", "peerIP"],
        "pruned": True,
    }


def test_ippool_block_size_change_is_refused(kube, ansible_env, tmp_path):
    version = live(kube, "ippools")["pods-v4"]["metadata"]["resourceVersion"]
    spec = dict(live(kube, "ippools")["pods-v4"]["spec"], blockSize=26)
    rc, res = adhoc(ansible_env, kube, tmp_path, {"kind": "IPPool", "name": "pods-v4", "spec": spec})
    assert rc != 0
    msg = res["msg"]
    assert "IPPool 'pods-v4': spec.blockSize cannot change in place (live 27, given 26)" in msg and "new IPPool" in msg
    assert live(kube, "ippools")["pods-v4"]["metadata"]["resourceVersion"] == version


def test_unknown_field_fails_before_writing(kube, ansible_env, tmp_path):
    rc, res = adhoc(
        ansible_env,
        kube,
        tmp_path,
        {"kind": "BGPPeer", "name": "typo", "spec": {"peerIP": "10.1.1.1", "asNumbr": 65001}},
    )
    assert rc != 0 and res["error"]["status"] == 400 and "asNumbr" in res["msg"], res
    assert "typo" not in live(kube, "bgppeers")
    rc, res = adhoc(
        ansible_env,
        kube,
        tmp_path,
        {"kind": "BGPPeer", "name": "bad-as", "spec": {"peerIP": "10.1.1.1", "asNumber": "sixty-five"}},
    )
    assert rc != 0 and res["error"]["status"] == 422 and "asNumber" in res["msg"], res


def test_missing_crd_is_named(kube, ansible_env, tmp_path):
    kube.kubectl("delete", "crd", "ipreservations.crd.projectcalico.org", "--wait=true")
    rc, res = adhoc(
        ansible_env,
        kube,
        tmp_path,
        {"kind": "IPReservation", "name": "lb", "spec": {"reservedCIDRs": ["10.233.31.0/24"]}},
    )
    assert rc != 0 and "the Calico CRDs are not installed" in res["msg"], res
