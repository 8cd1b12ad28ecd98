"""End to end, Calico with the ToRs: on the session's converged cluster (conftest.py)."""

import ipaddress
import json
import os

from kubernetes import client

from e2e import (
    FIGURES,
    FIXED_POD,
    LAB,
    block_affinities,
    ctr,
    hosts_with,
    pod_http,
    rack_of,
    racks,
    tor_neighbors,
    tor_routes,
    wait_for,
    web_pods,
    worker_addresses,
)
from lab_helpers import egress_log, kmsg_mark, playbook, podman_exec


def test_every_node_peers_with_its_own_rack_tor(cluster):
    desc = cluster["desc"]
    addresses = worker_addresses(desc)
    for rack in racks(desc):
        states = tor_neighbors(desc, rack)
        mine = sorted(a for n, a in addresses.items() if rack_of(desc, n)["name"] == rack["name"])
        servers = {a: s for a, s in states.items() if a.startswith(rack["subnet"].rsplit(".", 1)[0] + ".")}
        # the ToR's neighbours are exactly its rack's nodes, each Established
        assert sorted(servers) == mine, (rack["name"], states)
        assert all(s == "Established" for s in servers.values()), (rack["name"], states)
        FIGURES[f"{rack['name']}_tor_neighbors"] = states
    # the nodes' own view, from BIRD's control socket (the inspection playbook)
    recap = playbook(cluster["idc"], "inspect_network.yml", log=os.path.join(cluster["logs"], "inspect-1.log"))
    assert all(r[3] == 0 for r in recap.values()), recap


def test_each_tor_holds_exactly_its_racks_blocks(cluster):
    desc = cluster["desc"]
    affinities = wait_for(
        "every node to own a block",
        lambda: (
            block_affinities(cluster)
            if {n for n, _ in block_affinities(cluster)} == set(worker_addresses(desc))
            else None
        ),
        60,
    )
    addresses = worker_addresses(desc)
    FIGURES["block_affinities"] = sorted(f"{n} {c}" for n, c in affinities)
    for rack in racks(desc):
        in_rack = {n for n in addresses if rack_of(desc, n)["name"] == rack["name"]}
        expected = {c for n, c in affinities if n in in_rack and not c.endswith("/32")}
        table = wait_for(
            f"{rack['tor']['name']} to hold its rack's blocks",
            lambda: (
                lambda t: (
                    t
                    if {
                        p for p, peers in t.items() if peers & {addresses[n] for n in in_rack} and not p.endswith("/32")
                    }
                    == expected
                    else None
                )
            )(tor_routes(desc, rack)),
            60,
        )
        from_servers = {p for p, peers in table.items() if peers & {addresses[n] for n in in_rack}}
        assert {p for p in from_servers if not p.endswith("/32")} == expected, (rack["name"], table)
        # every /27 is a block of the pod network; /32s only from the fixed-address pool
        assert all(p.endswith("/27") or p.endswith("/32") for p in table), table
        others = {c for n, c in affinities if n not in in_rack and not c.endswith("/32")}
        # the other racks' blocks arrive from the spine, not from this rack's servers
        uplink = rack["tor"].get("uplink")
        if uplink:
            assert others <= {p for p, peers in table.items() if uplink["peer"] in peers}, (rack["name"], table)
        FIGURES[f"{rack['tor']['name']}_routes"] = {p: sorted(v) for p, v in table.items()}


def test_nodes_learn_nothing_from_their_tor(cluster):
    desc = cluster["desc"]
    for node, _address in worker_addresses(desc).items():
        tor = rack_of(desc, node)["tor"]["peer"]
        routes = podman_exec(ctr(node), "ip", "-4", "route", "show").stdout
        # nothing installed through the ToR except the lab's own static pod route
        via_tor = [l for l in routes.splitlines() if f"via {tor}" in l and "proto bird" in l]
        assert via_tor == [], (node, routes)
        default = [l for l in routes.splitlines() if l.startswith("default")]
        # the node keeps its own default route: the rack gateway, not learned by BIRD
        gateway = rack_of(desc, node)["gateway"]
        assert default and all(f"via {gateway} " in l and "proto bird" not in l for l in default), (node, default)


def test_nat_outgoing_uses_fully_random_ports(cluster):
    for node in worker_addresses(cluster["desc"]):
        nat = podman_exec(ctr(node), "iptables-save", "-t", "nat").stdout
        calico = [l for l in nat.splitlines() if l.startswith("-A cali-nat-outgoing") and "MASQUERADE" in l]
        assert calico and all("--random-fully" in l for l in calico), calico
        kube = [l for l in nat.splitlines() if l.startswith("-A KUBE-POSTROUTING") and "MASQUERADE" in l]
        assert kube and all("--random-fully" in l for l in kube), kube
        FIGURES["nat_rules"] = calico + kube


def test_fixed_ip_pod_is_a_32_on_its_tor(cluster):
    desc, core = cluster["desc"], cluster["core"]
    fixed = ipaddress.ip_network(desc["cluster"]["fixed_ip_cidr"])
    address = str(fixed.network_address + 10)
    node = sorted(worker_addresses(desc))[-1]
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=FIXED_POD,
            namespace="idcloud-demo",
            annotations={"cni.projectcalico.org/ipAddrs": json.dumps([address])},
        ),
        spec=client.V1PodSpec(
            node_name=node,
            enable_service_links=False,
            containers=[client.V1Container(name="web", image=f"{desc['vars']['idcloud_registry']}/idcloud/web:1.0.0")],
        ),
    )
    core.create_namespaced_pod("idcloud-demo", pod)
    got = wait_for(
        "the fixed-address pod to run",
        lambda: (lambda p: p if p.status.phase == "Running" else None)(
            core.read_namespaced_pod(FIXED_POD, "idcloud-demo")
        ),
        120,
    )
    assert got.status.pod_ip == address
    rack = rack_of(desc, node)
    table = wait_for(
        f"{address}/32 on {rack['tor']['name']}",
        lambda: (lambda t: t if f"{address}/32" in t else None)(tor_routes(desc, rack)),
        60,
    )
    assert table[f"{address}/32"] == {worker_addresses(desc)[node]}
    for other in racks(desc):
        if other["name"] != rack["name"] and other["tor"].get("uplink"):
            wait_for(
                f"{address}/32 on {other['tor']['name']} through the spine",
                lambda: f"{address}/32" in tor_routes(desc, other),
                30,
            )
    FIGURES["fixed_ip"] = {"pod": address, "node": node, "tor": rack["tor"]["name"]}


def test_pod_in_one_rack_reaches_a_pod_in_another(cluster):
    desc, core = cluster["desc"], cluster["core"]
    pods = web_pods(core)
    by_rack = {}
    for p in pods:
        by_rack.setdefault(rack_of(desc, p.spec.node_name)["name"], p)
    assert len(by_rack) >= 2, {p.metadata.name: p.spec.node_name for p in pods}
    (rack_a, pod_a), (rack_b, pod_b) = sorted(by_rack.items())[:2]
    out = pod_http(cluster, pod_a, pod_b.status.pod_ip)
    assert pod_b.metadata.name in out, out
    back = pod_http(cluster, pod_b, pod_a.status.pod_ip)
    assert pod_a.metadata.name in back, back
    FIGURES["cross_rack"] = f"{pod_a.metadata.name} ({rack_a}) <-> {pod_b.metadata.name} ({rack_b})"


# --- packets for the cluster's ranges that nothing answers die in the lab (docs/air-gap.md)
PROBE = """
import socket, sys
s = socket.socket(); s.settimeout(5)
try:
    s.connect((sys.argv[1], int(sys.argv[2]))); print("connected")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


def _guard_count(host):
    out = podman_exec(ctr(host), "nft", "-j", "list", "counter", "inet", "idcloud_guard", "untranslated").stdout
    return next(i["counter"]["packets"] for i in json.loads(out)["nftables"] if "counter" in i)


def _unused_service_address(cluster):
    """An address of the service network that no Service holds."""
    used = {s.spec.cluster_ip for s in cluster["core"].list_service_for_all_namespaces().items}
    net = ipaddress.ip_network(cluster["desc"]["cluster"]["service_cidr"])
    return next(str(a) for a in reversed(list(net.hosts())) if str(a) not in used)


def test_an_unused_service_address_is_refused_at_the_host(cluster):
    desc = cluster["desc"]
    address = _unused_service_address(cluster)
    # a worker (kube-proxy there programs every Service) and a control-plane host (no kube-proxy)
    hosts = [sorted(worker_addresses(desc))[0], hosts_with(desc, "control_plane")[0]["name"]]
    mark = kmsg_mark()
    seen = {}
    for host in hosts:
        before = _guard_count(host)
        probe = podman_exec(ctr(host), "python3", "-c", PROBE, address, "4711").stdout.strip()
        seen[host] = {"probe": probe, "counted": _guard_count(host) - before}
    FIGURES["network_guard"] = {"address": address, "hosts": seen}
    # refused at once (a TCP reset from the host itself), and counted by the guard
    assert all(s["probe"] == "refused" and s["counted"] >= 1 for s in seen.values()), seen
    # nothing reached the lab's containment on the VM
    to_it = [line for line in egress_log(LAB, since=mark) if f"DST={address} " in line]
    assert to_it == [], to_it


def test_an_unclaimed_pod_address_dies_at_the_tor(cluster):
    desc = cluster["desc"]
    pod = ipaddress.ip_network(desc["cluster"]["pod_cidr"])
    service = desc["cluster"]["service_cidr"]
    worker = sorted(worker_addresses(desc))[0]
    rack = rack_of(desc, worker)
    claimed = [ipaddress.ip_network(p) for p in tor_routes(desc, rack)]
    address = next(str(a) for a in reversed(list(pod.hosts())) if not any(a in c for c in claimed))
    for r in racks(desc):
        if not any(h for h in r.get("hosts", []) if "worker" in h["roles"]):
            continue
        tor = ctr(r["tor"]["name"])
        blackholes = podman_exec(tor, "ip", "-4", "route", "show", "type", "blackhole").stdout
        # both ranges, installed in the ToR's kernel by FRR's staticd
        assert {str(pod), service} <= {line.split()[1] for line in blackholes.splitlines()}, (r["name"], blackholes)
        chosen = json.loads(podman_exec(tor, "vtysh", "-c", f"show ip route {address} json").stdout)
        best = [route for routes in chosen.values() for route in routes if route.get("selected")]
        assert [(b["prefix"], b["protocol"], b["distance"]) for b in best] == [(str(pod), "static", 250)], chosen
    # a worker's packet for it goes to its ToR by the pod route and ends there
    mark = kmsg_mark()
    probe = podman_exec(ctr(worker), "python3", "-c", PROBE, address, "4712").stdout.strip()
    FIGURES["tor_null_route"] = {"address": address, "probe_from": worker, "probe": probe}
    assert probe == "timeout", probe
    to_it = [line for line in egress_log(LAB, since=mark) if f"DST={address} " in line]
    assert to_it == [], to_it
