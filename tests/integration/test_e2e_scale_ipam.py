"""End to end, calico-kube-controllers releases the IPAM blocks of a deleted node, and a
re-converge brings the node back with a block and its BGP routes.

Marker `scale`: it takes e2e.ADDED_WORKER (w3) out of the cluster and back. It runs after
test_e2e_scale.py (file order), which adds w3; run alone, it adds w3 itself the same way.
"""

import ipaddress
import os
import time

import pytest
from kubernetes import client

from e2e import (
    ADDED_WORKER,
    CALICO,
    FIGURES,
    ctr,
    grown_description,
    rack_of,
    ready,
    tor_routes,
    wait_for,
    worker_addresses,
)
from lab_helpers import lab, playbook, podman_exec, write_inventory

pytestmark = pytest.mark.scale
NAMESPACE = "ipam-release"


def _ipam(cluster, node):
    """(block affinities, IPAM blocks) that name `node`."""
    custom = client.CustomObjectsApi(cluster["api"])
    affinities = {
        i["spec"]["cidr"]
        for i in custom.list_cluster_custom_object(*CALICO, "blockaffinities")["items"]
        if i["spec"]["node"] == node
    }
    blocks = {
        i["spec"]["cidr"]
        for i in custom.list_cluster_custom_object(*CALICO, "ipamblocks")["items"]
        if i["spec"].get("affinity") == f"host:{node}"
    }
    return affinities, blocks


def _pinned_pod(cluster, name, node):
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace=NAMESPACE),
        spec=client.V1PodSpec(
            node_name=node,
            enable_service_links=False,
            termination_grace_period_seconds=1,
            containers=[
                client.V1Container(name="web", image=f"{cluster['desc']['vars']['idcloud_registry']}/idcloud/web:1.0.0")
            ],
        ),
    )
    core = cluster["core"]
    core.create_namespaced_pod(NAMESPACE, pod)
    return wait_for(
        f"{name} to run on {node}",
        lambda: (lambda p: p if p.status.phase == "Running" and p.status.pod_ip else None)(
            core.read_namespaced_pod(name, NAMESPACE)
        ),
        180,
    )


def _ensure_added_worker(cluster, tmp_path):
    name = ADDED_WORKER["name"]
    if name in worker_addresses(cluster["desc"]):
        return
    desc = grown_description(cluster["desc"])
    idc = write_inventory(str(tmp_path / "grown"), desc)
    lab(idc, "up")
    playbook(idc, "scale.yml", "--limit", name, log=os.path.join(cluster["logs"], "ipam-add.log"))
    cluster["desc"], cluster["idc"] = desc, idc


def test_deleted_node_blocks_are_released_and_reconverge_restores_them(cluster, tmp_path):
    _ensure_added_worker(cluster, tmp_path)
    core, desc, node = cluster["core"], cluster["desc"], ADDED_WORKER["name"]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    try:
        pod = _pinned_pod(cluster, "before", node)
        affinities, blocks = _ipam(cluster, node)
        assert affinities and blocks, f"{node} holds no block with a pod running on it: {affinities}, {blocks}"
        FIGURES["ipam_release_blocks"] = sorted(affinities)

        # the node goes away for good: its kubelet stops, its Node is deleted
        podman_exec(ctr(node), "systemctl", "stop", "kubelet")
        core.delete_node(node)
        started = time.monotonic()
        wait_for(
            f"calico-kube-controllers to release {node}'s blocks",
            lambda: _ipam(cluster, node) == (set(), set()),
            300,
            interval=3,
        )
        FIGURES["ipam_release_s"] = round(time.monotonic() - started, 1)
        assert not [p for p in core.list_namespaced_pod(NAMESPACE).items if p.metadata.name == "before"], (
            "the deleted node's pod is still there"
        )

        # the documented way back: scale.yml for the host
        recap = playbook(
            cluster["idc"], "scale.yml", "--limit", node, log=os.path.join(cluster["logs"], "ipam-reconverge.log")
        )
        assert set(recap) == {node}, recap
        assert ready(core.read_node(node))
        pod = _pinned_pod(cluster, "after", node)
        affinities, _ = _ipam(cluster, node)
        assert affinities, f"{node} took no block again"
        rack = rack_of(desc, node)
        address = ADDED_WORKER["address"]
        table = wait_for(
            f"{rack['tor']['name']} to learn {node}'s block from it",
            lambda: (lambda t: t if affinities & {p for p, peers in t.items() if address in peers} else None)(
                tor_routes(desc, rack)
            ),
            90,
        )
        FIGURES["ipam_reconverged_routes"] = sorted(p for p, peers in table.items() if address in peers)
        assert any(ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(c) for c in affinities), (
            pod.status.pod_ip,
            affinities,
        )
    finally:
        core.delete_namespace(NAMESPACE)
