"""End to end: site.yml on a copy of the lab IDC brings up a real Kubernetes cluster.

The description is inventories/lab/idc.yml itself (3 etcd + control-plane hosts, the LB
pair with the VIP, 2 workers, the etcd spares, the mirror with its registry), moved to
10.219.x so it cannot meet the main lab. Everything below reads real state: the Node
objects the kubelets report, the kubernetes EndpointSlice the apiservers' lease
reconciler writes, the address keepalived holds, containerd's tasks on the workers.
Tests run in file order and share one cluster.
"""
import copy
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from lab_helpers import ENV, REPO, lab, playbook, podman_exec, write_inventory

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402

LAB = "it-k8s"
CLUSTER = "itk8s"
NET_FROM, NET_TO = "10.210.", "10.219."
FIGURES = {}


def _moved(node):
    """The lab description with every 10.210.x address moved to 10.219.x."""
    if isinstance(node, dict):
        return {k: _moved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_moved(v) for v in node]
    if isinstance(node, str):
        return node.replace(NET_FROM, NET_TO)
    return node


def ctr(host):
    return f"{LAB}-{host}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with open(os.path.join(REPO, "inventories", "lab", "idc.yml")) as f:
        desc = _moved(yaml.safe_load(f))
    desc["cluster"]["name"] = CLUSTER
    desc["lab"]["name"] = LAB
    idc = write_inventory(str(tmp_path_factory.mktemp("k8s")), desc)
    logs = os.path.join(os.path.dirname(idc), "logs")
    os.makedirs(logs)
    lab(idc, "up")
    try:
        started = time.monotonic()
        recap = playbook(idc, "site.yml", log=os.path.join(logs, "site-1.log"))
        FIGURES["site_first_s"] = round(time.monotonic() - started, 1)
        kubeconfig = os.path.expanduser(f"~/.idcloud/{CLUSTER}/admin.conf")
        api = config.new_client_from_config(config_file=kubeconfig)
        yield {"idc": idc, "desc": desc, "recap": recap, "logs": logs, "api": api,
               "core": client.CoreV1Api(api), "apps": client.AppsV1Api(api),
               "discovery": client.DiscoveryV1Api(api)}
    finally:
        print("figures:", json.dumps(FIGURES))
        lab(idc, "down")


def hosts_with(desc, role):
    return [h for room in desc["rooms"] for rack in room["racks"] for h in rack["hosts"] if role in h["roles"]]


def ready(node):
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def web_pods(core):
    pods = core.list_namespaced_pod("idcloud-demo", label_selector="app.kubernetes.io/name=web").items
    return sorted(pods, key=lambda p: p.metadata.name)


def http_get(node, ip, port=8080):
    return podman_exec(ctr(node), "curl", "-sf", "--max-time", "3", f"http://{ip}:{port}/", check=False)


def wait_for(what, predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # the API may be down for a moment in a drill
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def test_nodes_ready_through_the_vip(cluster):
    vip = cluster["desc"]["cluster"]["apiserver_vip"]
    assert cluster["api"].configuration.host == f"https://{vip}:6443"
    nodes = {n.metadata.name: n for n in cluster["core"].list_node().items}
    workers = [h["name"] for h in hosts_with(cluster["desc"], "worker")]
    assert sorted(nodes) == sorted(workers)
    for name in workers:
        assert ready(nodes[name]), f"{name} is not Ready: {nodes[name].status.conditions}"
        rack = [r["name"] for room in cluster["desc"]["rooms"] for r in room["racks"]
                if any(h["name"] == name for h in r["hosts"])][0]
        assert nodes[name].metadata.labels["idcloud.io/rack"] == rack


def test_workload_runs_on_the_workers_and_answers(cluster):
    pods = web_pods(cluster["core"])
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        out = http_get(pod.spec.node_name, pod.status.pod_ip)
        assert out.returncode == 0, out.stderr
        assert pod.metadata.name in out.stdout, out.stdout
    assert {p.spec.node_name for p in pods} <= {h["name"] for h in hosts_with(cluster["desc"], "worker")}


def _mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[:-2]) * factor
    return float(quantity) / (1024 * 1024)


def _millicores(quantity):
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


def test_allocatable_is_capacity_minus_reservation_and_eviction(cluster):
    sys.path.insert(0, os.path.join(REPO, "collections"))
    from ansible_collections.idcloud.platform.plugins.filter.node_reservation import node_reservation

    for node in cluster["core"].list_node().items:
        name = node.metadata.name
        # what the running kubelet uses, read back through the apiserver's node proxy
        raw = cluster["core"].connect_get_node_proxy_with_path(name, "configz", _preload_content=False)
        kc = json.loads(raw.data)["kubeletconfig"]
        meminfo = podman_exec(ctr(name), "awk", "/MemTotal/ {print $2}", "/proc/meminfo").stdout
        cpus = int(podman_exec(ctr(name), "nproc").stdout)
        # the role's arithmetic: GKE tiers for this node's CPUs and memory (MiB from facts)
        expected = node_reservation({"cpu": cpus, "memory_mib": int(meminfo) // 1024})
        assert kc["kubeReserved"] == expected["kube_reserved"]
        assert kc["systemReserved"] == expected["system_reserved"]
        assert kc["evictionHard"]["memory.available"] == "100Mi"
        cap, alloc = node.status.capacity, node.status.allocatable
        reserved_mib = _mib(kc["kubeReserved"]["memory"]) + _mib(kc["systemReserved"]["memory"])
        assert _mib(alloc["memory"]) == pytest.approx(_mib(cap["memory"]) - reserved_mib - 100, abs=1e-6)
        reserved_m = _millicores(kc["kubeReserved"]["cpu"]) + _millicores(kc["systemReserved"]["cpu"])
        assert _millicores(alloc["cpu"]) == _millicores(cap["cpu"]) - reserved_m
        assert _mib(cap["memory"]) == int(meminfo) / 1024
        FIGURES[f"{name}_allocatable"] = {"capacity": cap["memory"], "allocatable": alloc["memory"],
                                          "cpu": f"{cap['cpu']} -> {alloc['cpu']}"}


def test_second_run_changes_nothing(cluster):
    started = time.monotonic()
    recap = playbook(cluster["idc"], "site.yml", log=os.path.join(cluster["logs"], "site-2.log"))
    FIGURES["site_noop_s"] = round(time.monotonic() - started, 1)
    changed = {host: r[1] for host, r in recap.items() if r[1]}
    assert changed == {}, f"second run changed: {changed} (see {cluster['logs']}/site-2.log)"


def endpoint_addresses(cluster):
    slices = cluster["discovery"].list_namespaced_endpoint_slice(
        "default", label_selector="kubernetes.io/service-name=kubernetes").items
    return sorted(a for s in slices for e in s.endpoints or [] for a in e.addresses)


def test_stopped_apiserver_leaves_the_kubernetes_endpoints(cluster):
    cps = hosts_with(cluster["desc"], "control_plane")
    all_addresses = sorted(h["address"] for h in cps)
    assert endpoint_addresses(cluster) == all_addresses
    victim = cps[1]
    podman_exec(ctr(victim["name"]), "systemctl", "stop", "kube-apiserver")
    try:
        started = time.monotonic()
        wait_for(f"{victim['address']} to leave the endpoints",
                 lambda: victim["address"] not in endpoint_addresses(cluster), 60)
        FIGURES["endpoint_removed_s"] = round(time.monotonic() - started, 1)
        assert endpoint_addresses(cluster) == [a for a in all_addresses if a != victim["address"]]
    finally:
        podman_exec(ctr(victim["name"]), "systemctl", "start", "kube-apiserver")
    wait_for("the apiserver to come back into the endpoints",
             lambda: endpoint_addresses(cluster) == all_addresses, 90)


def vip_holders(desc):
    vip = desc["cluster"]["apiserver_vip"]
    return [h["name"] for h in hosts_with(desc, "lb")
            if f" {vip}/" in podman_exec(ctr(h["name"]), "ip", "-o", "-4", "addr", check=False).stdout]


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
        new = wait_for("the VIP on the other LB host",
                       lambda: [h for h in vip_holders(desc) if h != active], 30, interval=0.5)
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
    wait_for("haproxy back on the restarted LB host",
             lambda: podman_exec(ctr(active), "systemctl", "is-active", "haproxy", check=False).stdout.strip() == "active",
             60)
    wait_for("exactly one VIP holder", lambda: len(vip_holders(desc)) == 1, 30)


def containerd_tasks(node):
    out = podman_exec(ctr(node), "ctr", "-n", "k8s.io", "tasks", "ls").stdout
    return {line.split()[0]: (line.split()[1], line.split()[2]) for line in out.splitlines()[1:] if line.strip()}


def test_drill_etcd_then_apiservers_down_workload_unharmed(cluster):
    core, desc = cluster["core"], cluster["desc"]
    cps = [h["name"] for h in hosts_with(desc, "control_plane")]
    etcds = [h["name"] for h in hosts_with(desc, "etcd")]
    pods = web_pods(core)
    before = {p.metadata.uid: (p.metadata.name, p.spec.node_name, p.status.pod_ip,
                               p.status.container_statuses[0].container_id.split("//")[1],
                               p.status.container_statuses[0].restart_count) for p in pods}
    tasks_before = {node: containerd_tasks(node) for node in {v[1] for v in before.values()}}
    for uid, (name, node, ip, cid, _) in before.items():
        assert tasks_before[node][cid][1] == "RUNNING", (name, tasks_before[node])

    # A prober on each worker asks its own pods every half second, independent of the
    # control plane, and logs every answer.
    for node in tasks_before:
        ips = " ".join(v[2] for v in before.values() if v[1] == node)
        script = (f"rm -f /tmp/drill.log; while [ ! -e /tmp/drill.stop ]; do for ip in {ips}; do "
                  "if curl -sf --max-time 2 -o /dev/null http://$ip:8080/; then echo \"$(date +%s.%N) $ip ok\"; "
                  "else echo \"$(date +%s.%N) $ip FAIL\"; fi; done >> /tmp/drill.log; sleep 0.5; done")
        podman_exec(ctr(node), "rm", "-f", "/tmp/drill.stop")
        subprocess.run(["podman", "exec", "-d", ctr(node), "sh", "-c", script], env=ENV, check=True)

    outage = {}
    t0 = time.monotonic()
    for host in etcds:
        podman_exec(ctr(host), "systemctl", "stop", "etcd")
    time.sleep(20)
    # all apiservers at once; without etcd each may take its whole stop timeout
    stops = [subprocess.Popen(["podman", "exec", ctr(host), "systemctl", "stop", "kube-apiserver"], env=ENV)
             for host in cps]
    assert [p.wait(timeout=120) for p in stops] == [0] * len(cps)
    outage["apiservers_stopped_s"] = round(time.monotonic() - t0, 1)
    with pytest.raises(Exception):
        core.list_node(_request_timeout=3)
    time.sleep(20)
    outage["down_s"] = round(time.monotonic() - t0, 1)
    # members wait for each other's quorum before systemd reports them started: all at once
    starts = [subprocess.Popen(["podman", "exec", ctr(host), "systemctl", "start", "etcd"], env=ENV)
              for host in etcds]
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
    FIGURES["drill"] = outage | {"probes": sum(len(v) for v in logs.values()),
                                 "failed_probes": sum(1 for v in logs.values() for x in v if x.endswith("FAIL"))}

    after = {p.metadata.uid: (p.metadata.name, p.spec.node_name, p.status.pod_ip,
                              p.status.container_statuses[0].container_id.split("//")[1],
                              p.status.container_statuses[0].restart_count) for p in web_pods(core)}
    # same pods (no eviction, no reschedule), same containers, no restarts
    assert after == before
    for node, tasks in tasks_before.items():
        now = containerd_tasks(node)
        for cid, (pid, status) in tasks.items():
            assert now.get(cid) == (pid, status), (node, cid, now.get(cid))
    # the pods answered throughout the outage
    assert FIGURES["drill"]["probes"] > 2 * 40, logs
    assert FIGURES["drill"]["failed_probes"] == 0, [x for v in logs.values() for x in v if x.endswith("FAIL")]
    evictions = [e for e in core.list_namespaced_event("idcloud-demo").items
                 if e.reason in ("Evicted", "TaintManagerEviction", "Killing")]
    assert evictions == [], [(e.reason, e.message) for e in evictions]
    dep = cluster["apps"].read_namespaced_deployment("web", "idcloud-demo")
    assert dep.status.available_replicas == 2
