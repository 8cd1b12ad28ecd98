"""End to end, the drills: they stop real components of the session's cluster.

They run after every other e2e test (conftest.py orders the `drill` marker last), in the
order of this file; each but the last leaves the cluster as it found it (it restarts what
it stopped and waits until the state before is back). The last re-cables a worker into
another rack; the session fixture removes the lab after it.
"""

import copy
import datetime
import os
import subprocess
import threading
import time

import pytest

from e2e import (
    FIGURES,
    block_affinities,
    calico_pod,
    containerd_tasks,
    ctr,
    endpoint_addresses,
    hosts_with,
    http_get,
    pod_exec,
    rack_of,
    racks,
    ready,
    tor_neighbors,
    tor_routes,
    vip_holders,
    wait_for,
    web_pods,
    worker_addresses,
)
from lab_helpers import ENV, REPO, lab, lab_env, playbook, podman_exec, write_inventory

pytestmark = pytest.mark.drill


def test_stopping_bird_withdraws_routes_and_is_flagged(cluster):
    desc = cluster["desc"]
    addresses = worker_addresses(desc)
    victim, survivor = sorted(addresses)[0], sorted(addresses)[1]
    rack = rack_of(desc, victim)
    survivor_pod = next(p for p in web_pods(cluster["core"]) if p.spec.node_name == survivor)
    before = {p for p, peers in tor_routes(desc, rack).items() if addresses[victim] in peers}
    assert before
    failures, answers = [], [0]
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            if http_get(survivor, survivor_pod.status.pod_ip).returncode == 0:
                answers[0] += 1
            else:
                failures.append(time.monotonic())
            time.sleep(0.5)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    cpod = calico_pod(cluster, victim)
    started = time.monotonic()
    pod_exec(cluster, cpod, "sv", "down", "bird")
    try:
        wait_for(
            f"{victim}'s routes to leave {rack['tor']['name']}",
            lambda: not {p for p, peers in tor_routes(desc, rack).items() if addresses[victim] in peers},
            30,
            interval=0.5,
        )
        FIGURES["bird_down_routes_gone_s"] = round(time.monotonic() - started, 1)
        proc = subprocess.run(
            [
                os.path.join(REPO, ".venv", "bin", "ansible-playbook"),
                "-i",
                cluster["idc"],
                os.path.join(REPO, "playbooks", "inspect_network.yml"),
            ],
            cwd=REPO,
            env=lab_env(cluster["idc"]),
            text=True,
            capture_output=True,
        )
        with open(os.path.join(cluster["logs"], "inspect-down.log"), "w") as f:
            f.write(proc.stdout + proc.stderr)
        assert proc.returncode != 0, "the inspection did not fail with BIRD down"
        assert victim in proc.stdout and "down" in proc.stdout.lower(), proc.stdout[-3000:]
    finally:
        pod_exec(cluster, calico_pod(cluster, victim), "sv", "up", "bird")
    restarted = time.monotonic()
    wait_for(
        f"{victim}'s routes back on {rack['tor']['name']}",
        lambda: {p for p, peers in tor_routes(desc, rack).items() if addresses[victim] in peers} == before,
        90,
    )
    FIGURES["bird_up_routes_back_s"] = round(time.monotonic() - restarted, 1)
    stop.set()
    prober.join()
    FIGURES["bird_down_probes"] = {"answers": answers[0], "failures": len(failures)}
    assert failures == [], f"{len(failures)} probes to {survivor_pod.metadata.name} on {survivor} failed"
    playbook(cluster["idc"], "inspect_network.yml", log=os.path.join(cluster["logs"], "inspect-2.log"))


def test_stopped_apiserver_leaves_the_kubernetes_endpoints(cluster):
    cps = hosts_with(cluster["desc"], "control_plane")
    all_addresses = sorted(h["address"] for h in cps)
    assert endpoint_addresses(cluster) == all_addresses
    victim = cps[1]
    podman_exec(ctr(victim["name"]), "systemctl", "stop", "kube-apiserver")
    try:
        started = time.monotonic()
        wait_for(
            f"{victim['address']} to leave the endpoints",
            lambda: victim["address"] not in endpoint_addresses(cluster),
            60,
        )
        FIGURES["endpoint_removed_s"] = round(time.monotonic() - started, 1)
        assert endpoint_addresses(cluster) == [a for a in all_addresses if a != victim["address"]]
    finally:
        podman_exec(ctr(victim["name"]), "systemctl", "start", "kube-apiserver")
    wait_for("the apiserver to come back into the endpoints", lambda: endpoint_addresses(cluster) == all_addresses, 90)


def test_vip_moves_when_the_active_lb_host_stops(cluster):
    desc = cluster["desc"]
    holders = vip_holders(desc)
    assert len(holders) == 1, holders
    active = holders[0]
    failures = []
    stop = threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                cluster["core"].list_node(_request_timeout=3)
            except Exception as exc:
                failures.append((time.monotonic(), repr(exc)[:200]))
            time.sleep(0.5)

    prober = threading.Thread(target=keep_asking, daemon=True)
    prober.start()
    stopped = time.monotonic()
    subprocess.run(["podman", "stop", "-t", "5", ctr(active)], env=ENV, check=True, capture_output=True)
    try:
        new = wait_for(
            "the VIP on the other LB host", lambda: [h for h in vip_holders(desc) if h != active], 30, interval=0.5
        )
        FIGURES["vip_failover_s"] = round(time.monotonic() - stopped, 1)
        time.sleep(5)
        stop.set()
        prober.join()
        assert new and active not in new
        cluster["core"].list_node(_request_timeout=5)
        # kubectl-style requests keep working: at most the requests in flight while the
        # address moved may fail
        FIGURES["vip_failover_failed_requests"] = len(failures)
        assert all(t - stopped < FIGURES["vip_failover_s"] + 3 for t, _ in failures), failures
    finally:
        stop.set()
        subprocess.run(["podman", "start", ctr(active)], env=ENV, check=True, capture_output=True)
    wait_for(
        "haproxy back on the restarted LB host",
        lambda: podman_exec(ctr(active), "systemctl", "is-active", "haproxy", check=False).stdout.strip() == "active",
        60,
    )
    wait_for("exactly one VIP holder", lambda: len(vip_holders(desc)) == 1, 30)


def test_drill_etcd_then_apiservers_down_workload_unharmed(cluster):
    core, desc = cluster["core"], cluster["desc"]
    cps = [h["name"] for h in hosts_with(desc, "control_plane")]
    etcds = [h["name"] for h in hosts_with(desc, "etcd")]
    pods = web_pods(core)
    before = {
        p.metadata.uid: (
            p.metadata.name,
            p.spec.node_name,
            p.status.pod_ip,
            p.status.container_statuses[0].container_id.split("//")[1],
            p.status.container_statuses[0].restart_count,
        )
        for p in pods
    }
    tasks_before = {node: containerd_tasks(node) for node in {v[1] for v in before.values()}}
    # which pod each task belongs to, for the message if one of them changes
    names = {
        s.container_id.split("//")[1]: f"{p.metadata.namespace}/{p.metadata.name}/{s.name}"
        for p in core.list_pod_for_all_namespaces().items
        for s in (p.status.container_statuses or [])
        if s.container_id
    }
    for _uid, (name, node, _ip, cid, _) in before.items():
        assert tasks_before[node][cid][1] == "RUNNING", (name, tasks_before[node])

    # A prober on each worker asks every web pod every half second, independent of the
    # control plane, and logs every answer: its own pods directly, the other rack's through
    # the ToRs and the spine, so the BGP routes must stay up through the outage too.
    tor_tables = {r["name"]: tor_routes(desc, r) for r in racks(desc)}
    ips = " ".join(sorted(v[2] for v in before.values()))
    for node in tasks_before:
        script = (
            f"rm -f /tmp/drill.log; while [ ! -e /tmp/drill.stop ]; do for ip in {ips}; do "
            'if curl -sf --max-time 2 -o /dev/null http://$ip:8080/; then echo "$(date +%s.%N) $ip ok"; '
            'else echo "$(date +%s.%N) $ip FAIL"; fi; done >> /tmp/drill.log; sleep 0.5; done'
        )
        podman_exec(ctr(node), "rm", "-f", "/tmp/drill.stop")
        subprocess.run(["podman", "exec", "-d", ctr(node), "sh", "-c", script], env=ENV, check=True)

    outage = {}
    t0 = time.monotonic()
    # events from here on: earlier tests (the HPA's scale-down) stop pods of this namespace too
    outage_began = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    for host in etcds:
        podman_exec(ctr(host), "systemctl", "stop", "etcd")
    time.sleep(20)
    # all apiservers at once; without etcd each may take its whole stop timeout
    stops = [
        subprocess.Popen(["podman", "exec", ctr(host), "systemctl", "stop", "kube-apiserver"], env=ENV) for host in cps
    ]
    assert [p.wait(timeout=120) for p in stops] == [0] * len(cps)
    outage["apiservers_stopped_s"] = round(time.monotonic() - t0, 1)
    with pytest.raises(Exception):
        core.list_node(_request_timeout=3)
    time.sleep(20)
    outage["down_s"] = round(time.monotonic() - t0, 1)
    # members wait for each other's quorum before systemd reports them started: all at once
    starts = [subprocess.Popen(["podman", "exec", ctr(host), "systemctl", "start", "etcd"], env=ENV) for host in etcds]
    assert [p.wait(timeout=120) for p in starts] == [0] * len(etcds)
    for host in cps:
        podman_exec(ctr(host), "systemctl", "start", "kube-apiserver")
    wait_for("the API through the VIP", lambda: core.list_node(_request_timeout=3), 120)
    outage["api_back_s"] = round(time.monotonic() - t0, 1)
    wait_for("every node Ready", lambda: all(ready(n) for n in core.list_node().items), 180, interval=2)
    outage["nodes_ready_s"] = round(time.monotonic() - t0, 1)

    logs = {}
    for node in tasks_before:
        podman_exec(ctr(node), "touch", "/tmp/drill.stop")
        time.sleep(1)
        logs[node] = podman_exec(ctr(node), "cat", "/tmp/drill.log").stdout.splitlines()
    FIGURES["drill"] = outage | {
        "probes": sum(len(v) for v in logs.values()),
        "failed_probes": sum(1 for v in logs.values() for x in v if x.endswith("FAIL")),
    }

    after = {
        p.metadata.uid: (
            p.metadata.name,
            p.spec.node_name,
            p.status.pod_ip,
            p.status.container_statuses[0].container_id.split("//")[1],
            p.status.container_statuses[0].restart_count,
        )
        for p in web_pods(core)
    }
    # same pods (no eviction, no reschedule), same containers, no restarts
    assert after == before
    # calico-node kept running (its containerd task is among those checked below), and
    # the ToRs hold the same routes from the same peers as before
    assert {r["name"]: tor_routes(desc, r) for r in racks(desc)} == tor_tables
    for node, tasks in tasks_before.items():
        now = containerd_tasks(node)
        for cid, (pid, status) in tasks.items():
            assert now.get(cid) == (pid, status), (node, names.get(cid, "a pod sandbox"), cid, now.get(cid))
    # the pods answered throughout the outage
    assert FIGURES["drill"]["probes"] > 2 * 40, logs
    assert FIGURES["drill"]["failed_probes"] == 0, [x for v in logs.values() for x in v if x.endswith("FAIL")]
    evictions = [
        e
        for e in core.list_namespaced_event("idcloud-demo").items
        if e.reason in ("Evicted", "TaintManagerEviction", "Killing")
        and (e.last_timestamp or e.event_time or e.metadata.creation_timestamp) >= outage_began
    ]
    assert evictions == [], [(e.reason, e.message) for e in evictions]
    dep = cluster["apps"].read_namespaced_deployment("web", "idcloud-demo")
    assert dep.status.available_replicas == 2


@pytest.mark.long
@pytest.mark.last_drill
def test_moving_a_node_to_another_rack_moves_its_peering(cluster, tmp_path):
    """Re-cable a worker into another rack (new address there), re-run: it peers with the new ToR."""
    desc = copy.deepcopy(cluster["desc"])
    node = sorted(worker_addresses(desc))[-1]
    old_rack = rack_of(desc, node)
    new_rack = next(
        r for r in racks(desc) if r["name"] != old_rack["name"] and not any("worker" in h["roles"] for h in r["hosts"])
    )
    host = next(h for h in old_rack["hosts"] if h["name"] == node)
    old_address = host["address"]
    old_rack["hosts"].remove(host)
    host["address"] = new_rack["subnet"].rsplit(".", 1)[0] + "." + old_address.rsplit(".", 1)[1]
    new_rack["hosts"].append(host)
    idc = write_inventory(str(tmp_path), desc)
    lab(idc, "up")
    started = time.monotonic()
    playbook(idc, "kubernetes.yml", log=os.path.join(cluster["logs"], "move-1.log"))
    FIGURES["move_converge_s"] = round(time.monotonic() - started, 1)
    recap = playbook(idc, "kubernetes.yml", log=os.path.join(cluster["logs"], "move-2.log"))
    changed = {h: r[1] for h, r in recap.items() if r[1]}
    assert changed == {}, f"the run after the move changed: {changed}"
    labels = cluster["core"].read_node(node).metadata.labels
    assert labels["idcloud.io/rack"] == new_rack["name"]
    new_states = tor_neighbors(desc, new_rack)
    assert new_states.get(host["address"]) == "Established", new_states
    old_states = tor_neighbors(desc, old_rack)
    assert old_address not in old_states, old_states
    mine = {c for n, c in block_affinities(cluster) if n == node and not c.endswith("/32")}
    table = wait_for(
        f"{node}'s blocks on {new_rack['tor']['name']}",
        lambda: (lambda t: t if mine <= {p for p, peers in t.items() if host["address"] in peers} else None)(
            tor_routes(desc, new_rack)
        ),
        60,
    )
    assert not {p for p, peers in tor_routes(desc, old_rack).items() if old_address in peers}
    FIGURES["moved"] = {
        "node": node,
        "from": old_rack["name"],
        "to": new_rack["name"],
        "routes": sorted(p for p, peers in table.items() if host["address"] in peers),
    }
