"""End to end, the control plane and nodes: on the session's converged cluster (conftest.py)."""

import json
import os
import sys
import time

import pytest

from e2e import FIGURES, _mib, _millicores, ctr, hosts_with, http_get, ready, web_pods
from lab_helpers import REPO, playbook, podman_exec


@pytest.mark.check_mode
def test_check_mode_on_fresh_hosts_completes_and_reports_changes(cluster):
    """site.yml --check --diff on hosts just made by `lab up` previews the first install."""
    rc, recap, log = cluster["check_fresh"]
    assert rc == 0, f"site.yml --check on fresh hosts failed (see {log})"
    FIGURES["check_fresh_changes"] = {host: r[1] for host, r in recap.items()}
    hosts = {h["name"] for room in cluster["desc"]["rooms"] for r in room["racks"] for h in r["hosts"]}
    assert set(recap) == hosts, (sorted(recap), sorted(hosts))
    assert all(r[3] == 0 and r[1] > 0 for r in recap.values()), recap


def test_nodes_ready_through_the_vip(cluster):
    vip = cluster["desc"]["cluster"]["apiserver_vip"]
    assert cluster["api"].configuration.host == f"https://{vip}:6443"
    nodes = {n.metadata.name: n for n in cluster["core"].list_node().items}
    workers = [h["name"] for h in hosts_with(cluster["desc"], "worker")]
    assert sorted(nodes) == sorted(workers)
    for name in workers:
        assert ready(nodes[name]), f"{name} is not Ready: {nodes[name].status.conditions}"
        rack = [
            r["name"]
            for room in cluster["desc"]["rooms"]
            for r in room["racks"]
            if any(h["name"] == name for h in r["hosts"])
        ][0]
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
        FIGURES[f"{name}_allocatable"] = {
            "capacity": cap["memory"],
            "allocatable": alloc["memory"],
            "cpu": f"{cap['cpu']} -> {alloc['cpu']}",
        }


def test_second_run_changes_nothing(cluster):
    started = time.monotonic()
    recap = playbook(cluster["idc"], "site.yml", log=os.path.join(cluster["logs"], "site-2.log"))
    FIGURES["site_noop_s"] = round(time.monotonic() - started, 1)
    changed = {host: r[1] for host, r in recap.items() if r[1]}
    assert changed == {}, f"second run changed: {changed} (see {cluster['logs']}/site-2.log)"


@pytest.mark.check_mode
def test_check_mode_on_the_converged_cluster_changes_nothing(cluster):
    started = time.monotonic()
    recap = playbook(cluster["idc"], "site.yml", "--check", "--diff", log=os.path.join(cluster["logs"], "check-2.log"))
    FIGURES["check_converged_s"] = round(time.monotonic() - started, 1)
    changed = {host: r[1] for host, r in recap.items() if r[1]}
    assert changed == {}, f"check mode on the converged cluster reports changes: {changed}"
