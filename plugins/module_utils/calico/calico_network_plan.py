# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Calico in BGP mode with top-of-rack routers: the plan and the ToR side of it.

The design (docs/calico-bgp.md): every server runs Calico in one AS (cluster.node_as)
and peers over eBGP with its rack's ToR only; nodes announce the /27 (pod_block_size)
blocks Calico IPAM gives them and the /32 of every pod with a fixed address; the ToR
takes exactly those and announces nothing down, so servers keep their default route.

plan_network() turns the inventory's view of the nodes into the specs of the Calico
resources (crd.projectcalico.org/v1 field names), render_tor_frr() writes the same
design as a ToR's FRR configuration. Plain data in, plain data out: the filter plugins,
the lab tool and the unit tests share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from netaddr import AddrFormatError, IPAddress, IPNetwork, IPSet

__all__ = [
    "BLOCK_SIZE_MAX",
    "BLOCK_SIZE_MIN",
    "DEFAULT_BLOCK_SIZE",
    "NODE_RACK_LABEL",
    "TOR_IMPORT_FILTER",
    "CalicoPlanError",
    "hosts_from_description",
    "plan_network",
    "render_tor_frr",
    "tor_frr_configs",
    "tor_frr_configs_for_hosts",
]

DEFAULT_BLOCK_SIZE = 27
BLOCK_SIZE_MIN, BLOCK_SIZE_MAX = 20, 32
AS_MIN, AS_MAX = 1, 4294967295
# the node label the BGPPeers select a rack's nodes by (the calico role puts it on the Node objects)
NODE_RACK_LABEL = "idcloud.io/rack"
# BGPFilter on every ToR session: the nodes accept no route from the ToR
TOR_IMPORT_FILTER = "idcloud-tor-import-none"

_NODE_KEYS = ("name", "address", "rack", "tor_as", "tor_peer")


class CalicoPlanError(ValueError):
    """The input cannot give a working BGP design; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__(self.errors)

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"the Calico network plan has {count} error{'' if count == 1 else 's'}:"
        return "\n".join([head] + [f"  - {error}" for error in self.errors])


class _Errors:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, what: str, problem: str, fix: str) -> None:
        self.errors.append(f"{what}: {problem}; fix: {fix}")

    def raise_if_any(self) -> None:
        if self.errors:
            raise CalicoPlanError(self.errors)

    def as_number(self, value: Any, what: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(what, f"expected an AS number (integer), got {value!r}", "give a plain integer, e.g. 64512")
            return None
        if not AS_MIN <= value <= AS_MAX:
            self.fail(what, f"AS {value} is out of range {AS_MIN}..{AS_MAX}", "use a private AS, e.g. 64512..65534")
            return None
        return value

    def block_size(self, value: Any, what: str = "block_size") -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not BLOCK_SIZE_MIN <= value <= BLOCK_SIZE_MAX:
            self.fail(what, f"expected a prefix length {BLOCK_SIZE_MIN}..{BLOCK_SIZE_MAX}, got {value!r}",
                      f"use e.g. {DEFAULT_BLOCK_SIZE} (cluster.pod_block_size in the IDC description)")
            return None
        return value

    def cidr(self, value: Any, what: str, example: str) -> IPNetwork | None:
        if not isinstance(value, str) or "/" not in value:
            self.fail(what, f"expected an IPv4 CIDR, got {value!r}", f"write it as e.g. {example}")
            return None
        try:
            net = IPNetwork(value)
        except (AddrFormatError, ValueError, TypeError):
            self.fail(what, f"{value!r} is not a valid CIDR", f"write it as e.g. {example}")
            return None
        if net.version != 4:
            self.fail(what, f"{value} is not IPv4", "the ToR design here announces IPv4 pod blocks; use an IPv4 CIDR")
            return None
        if net.ip != net.network:
            self.fail(what, f"{value} has host bits set", f"use the network address: {net.cidr}")
            return None
        return net

    def address(self, value: Any, what: str) -> IPAddress | None:
        try:
            address = IPAddress(str(value))
        except (AddrFormatError, ValueError, TypeError):
            address = None
        if address is None or address.version != 4 or not isinstance(value, str):
            self.fail(what, f"{value!r} is not an IPv4 address", "give the address as a string, e.g. 10.10.1.11")
            return None
        return address

    def fixed(self, fixed_ip_cidr: Any, pod: IPNetwork | None, block_size: int | None) -> IPNetwork | None:
        if fixed_ip_cidr in (None, ""):
            return None
        fixed = self.cidr(fixed_ip_cidr, "fixed_ip_cidr", "10.244.255.0/24")
        if fixed is None or pod is None:
            return None
        if fixed not in pod:
            self.fail("fixed_ip_cidr", f"{fixed} is outside pod_cidr {pod}", f"use a range inside {pod}, e.g. its last /24")
            return None
        if fixed == pod:
            self.fail("fixed_ip_cidr", f"{fixed} is all of pod_cidr", f"use a smaller part of {pod}; the rest is cut into node blocks")
            return None
        if block_size is not None and fixed.prefixlen > block_size:
            self.fail("fixed_ip_cidr", f"{fixed} is smaller than one /{block_size} block",
                      f"use a /{block_size} or larger range, e.g. {fixed.supernet(block_size)[0]}")
            return None
        return fixed


def _peer_name(rack: str) -> str:
    # a rack name may hold capitals, '_' and '.'; a resource name is a lowercase DNS name
    return "tor-" + re.sub(r"[^a-z0-9-]", "-", rack.lower()).strip("-")


def _pool_name(prefix: str, net: IPNetwork) -> str:
    # DNS-safe and stable: the CIDR spelled with dashes
    return f"{prefix}-{str(net.ip).replace('.', '-')}-{net.prefixlen}"


def _blocks(pools: list[IPNetwork], block_size: int) -> int:
    return sum(2 ** (block_size - net.prefixlen) for net in pools if net.prefixlen <= block_size)


def plan_network(nodes, pod_cidr, node_as, block_size=DEFAULT_BLOCK_SIZE, fixed_ip_cidr=None, service_cidr=None,
                 advertise_service_cidr=False) -> dict[str, Any]:
    """The Calico resources for BGP with the ToRs, as plain data.

    nodes: [{name, address, rack, tor_as, tor_peer}, ...], one per Kubernetes node that runs
    Calico (the inventory's ansible_host/idc_address, idc_rack, idc_tor_as, idc_tor_peer).

    Returns {"bgp_configuration": {name, spec}, "ip_pools": [{name, spec}, ...],
    "bgp_filter": {name, spec}, "bgp_peers": [{name, spec}, ...], "summary": {...}}; specs
    use the crd.projectcalico.org/v1 field names. Raises CalicoPlanError listing every problem.
    """
    err = _Errors()
    size = err.block_size(block_size)
    pod = err.cidr(pod_cidr, "pod_cidr", "10.244.0.0/16")
    local_as = err.as_number(node_as, "node_as")
    fixed = err.fixed(fixed_ip_cidr, pod, size)
    service = None
    if advertise_service_cidr:
        service = err.cidr(service_cidr, "service_cidr", "10.96.0.0/16") if service_cidr not in (None, "") else None
        if service_cidr in (None, ""):
            err.fail("service_cidr", "missing while advertise_service_cidr is true",
                     "pass the service CIDR (idc_service_cidr), or set advertise_service_cidr to false")
    checked = _check_nodes(err, nodes, local_as)
    pools = []
    if pod is not None:
        pools = sorted((IPSet([pod]) - IPSet([fixed] if fixed is not None else [])).iter_cidrs())
    if size is not None and pod is not None and checked:
        blocks = _blocks(pools, size)
        if blocks < len(checked):
            minus = f" minus fixed_ip_cidr {fixed}" if fixed is not None else ""
            err.fail("pod_cidr", f"{pod}{minus} holds {blocks} blocks of /{size} for {len(checked)} nodes",
                     "use a larger pod_cidr or a larger block_size (smaller blocks): every node needs at least one block")
    err.raise_if_any()

    spec: dict[str, Any] = {"asNumber": local_as, "nodeToNodeMeshEnabled": False, "logSeverityScreen": "Info"}
    if service is not None:
        spec["serviceClusterIPs"] = [{"cidr": str(service)}]
    ip_pools = [
        {"name": _pool_name("pods", net), "spec": {
            "cidr": str(net), "blockSize": size, "ipipMode": "Never", "vxlanMode": "Never", "natOutgoing": True,
            "nodeSelector": "all()", "allowedUses": ["Workload", "Tunnel"], "disableBGPExport": False,
        }}
        for net in pools
    ]
    if fixed is not None:
        # blocks of one address that no node takes by itself: a pod asks for its address, and its node announces the /32
        ip_pools.append({"name": _pool_name("fixed", fixed), "spec": {
            "cidr": str(fixed), "blockSize": 32, "ipipMode": "Never", "vxlanMode": "Never", "natOutgoing": True,
            "nodeSelector": "!all()", "allowedUses": ["Workload"], "disableBGPExport": False,
        }})
    racks = _racks(checked)
    peers = [
        {"name": _peer_name(rack), "spec": {
            "peerIP": info["tor_peer"], "asNumber": info["tor_as"],
            "nodeSelector": f"{NODE_RACK_LABEL} == '{rack}'", "filters": [TOR_IMPORT_FILTER],
        }}
        for rack, info in racks.items()
    ]
    blocks = _blocks(pools, size) if pod is not None else 0
    summary = {
        "pod_cidr": str(pod),
        "block_size": size,
        "addresses_per_block": 2 ** (32 - size),
        "pools": [str(net) for net in pools],
        "fixed_ip_cidr": str(fixed) if fixed is not None else None,
        "blocks_available": blocks,
        "nodes": len(checked),
        "blocks_per_node": blocks // len(checked) if checked else None,
        "nodes_per_rack": {rack: info["nodes"] for rack, info in racks.items()},
    }
    return {
        "bgp_configuration": {"name": "default", "spec": spec},
        "ip_pools": ip_pools,
        "bgp_filter": {"name": TOR_IMPORT_FILTER, "spec": {"importV4": [{"action": "Reject"}]}},
        "bgp_peers": peers,
        "summary": summary,
    }


def _check_nodes(err: _Errors, nodes: Any, node_as: int | None) -> list[dict[str, Any]]:
    if not isinstance(nodes, (list, tuple)):
        err.fail("nodes", f"expected a list of nodes, got {type(nodes).__name__}",
                 "pass [{name, address, rack, tor_as, tor_peer}, ...], one per kube_node host")
        return []
    checked: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    addresses: dict[str, str] = {}
    for index, node in enumerate(nodes):
        what = f"nodes[{index}]"
        if not isinstance(node, Mapping):
            err.fail(what, f"expected a mapping, got {node!r}", "give {name, address, rack, tor_as, tor_peer}")
            continue
        missing = [key for key in _NODE_KEYS if node.get(key) in (None, "")]
        if missing:
            err.fail(what, f"missing {', '.join(missing)}", "give every node name, address, rack, tor_as and tor_peer")
            continue
        name = str(node["name"])
        what = f"nodes[{name}]"
        address = err.address(node["address"], f"{what}.address")
        tor_peer = err.address(node["tor_peer"], f"{what}.tor_peer")
        tor_as = err.as_number(node["tor_as"], f"{what}.tor_as")
        if name in names:
            err.fail(f"{what}.name", f"node {name} is listed twice (nodes[{names[name]}] and nodes[{index}])",
                     "list every node once")
            continue
        names[name] = index
        if address is not None:
            if str(address) in addresses:
                err.fail(f"{what}.address", f"{address} is also the address of node {addresses[str(address)]}",
                         "give every node its own address")
                continue
            addresses[str(address)] = name
        if None in (address, tor_peer, tor_as):
            continue
        checked.append({"name": name, "address": str(address), "rack": str(node["rack"]), "tor_as": tor_as,
                        "tor_peer": str(tor_peer)})
    by_rack: dict[str, dict[str, Any]] = {}
    for node in checked:
        first = by_rack.setdefault(node["rack"], node)
        for key in ("tor_as", "tor_peer"):
            if node[key] != first[key]:
                err.fail(f"nodes[{node['name']}].{key}", f"{node[key]} differs from {first[key]} of node {first['name']} "
                         f"in the same rack {node['rack']}", "a rack has one ToR: give its nodes the same tor_as and tor_peer")
    reported_as: set[str] = set()
    for node in checked:
        if node_as is not None and node["tor_as"] == node_as and node["rack"] not in reported_as:
            reported_as.add(node["rack"])
            err.fail(f"nodes[{node['name']}].tor_as", f"rack {node['rack']}'s ToR AS {node_as} is node_as",
                     "give the ToR its own AS: nodes and ToRs peer over eBGP")
        if node["tor_peer"] in addresses:
            err.fail(f"nodes[{node['name']}].tor_peer", f"{node['tor_peer']} is the address of node {addresses[node['tor_peer']]}",
                     "use the ToR's own peering address")
    return checked


def _racks(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    racks: dict[str, dict[str, Any]] = {}
    for node in nodes:
        info = racks.setdefault(node["rack"], {"tor_as": node["tor_as"], "tor_peer": node["tor_peer"], "nodes": []})
        info["nodes"].append(node["name"])
    return {rack: {**racks[rack], "nodes": sorted(racks[rack]["nodes"])} for rack in sorted(racks)}


# -- the ToR's side, in FRR syntax ------------------------------------------------------------


def render_tor_frr(rack, tor_name, tor_as, tor_peer, node_as, node_addresses, pod_cidr, fixed_ip_cidr=None,
                   service_cidr=None, advertise_service_cidr=False, uplink=None,
                   block_size=DEFAULT_BLOCK_SIZE) -> str:
    """The FRR 8.4 configuration of one ToR: the rack's servers, and the spine when there is an uplink.

    node_addresses: the addresses of the rack's Calico nodes. uplink: {"address":
    "10.210.0.11/24", "peer": "10.210.0.1", "as": 65000} or None. Same input, same bytes.
    """
    err = _Errors()
    size = err.block_size(block_size)
    pod = err.cidr(pod_cidr, "pod_cidr", "10.244.0.0/16")
    fixed = err.fixed(fixed_ip_cidr, pod, size)
    local_as = err.as_number(tor_as, f"rack {rack} tor_as")
    servers_as = err.as_number(node_as, "node_as")
    router_id = err.address(tor_peer, f"rack {rack} tor_peer")
    if local_as is not None and local_as == servers_as:
        err.fail(f"rack {rack} tor_as", f"AS {local_as} is node_as", "give the ToR its own AS: nodes and ToRs peer over eBGP")
    service = None
    if advertise_service_cidr:
        service = err.cidr(service_cidr, "service_cidr", "10.96.0.0/16")
    servers = [err.address(address, f"rack {rack} node address") for address in node_addresses or []]
    servers = sorted({address for address in servers if address is not None})
    if router_id is not None and router_id in servers:
        err.fail(f"rack {rack} tor_peer", f"{router_id} is also a node address", "use the ToR's own peering address")
    spine = None
    if uplink:
        spine_ip = err.address(uplink.get("peer"), f"rack {rack} uplink.peer")
        spine_as = err.as_number(uplink.get("as"), f"rack {rack} uplink.as")
        if spine_as is not None and spine_as in (local_as, servers_as):
            err.fail(f"rack {rack} uplink.as", f"AS {spine_as} is the ToR's or the servers' AS", "give the spine its own AS")
        spine = (spine_ip, spine_as, uplink.get("address"))
    err.raise_if_any()

    lines = [
        f"! {tor_name}: ToR of rack {rack}. Generated by idcloud.platform from the IDC description;",
        "! edit the description and generate again (playbooks/tor_config.yml), not this file.",
        f"! Servers of the rack (AS {servers_as}) announce their /{size} pod blocks"
        + (f" and the /32s of fixed addresses ({fixed} and borrowed ones)" if fixed is not None else " and /32s")
        + "; nothing is announced to them.",
        "frr defaults datacenter",
        f"hostname {tor_name}",
        "log syslog informational",
        "!",
        f"ip prefix-list SERVERS-IN seq 10 permit {pod} ge {size} le {size}",
    ]
    if size != 32:
        lines.append(f"ip prefix-list SERVERS-IN seq 20 permit {pod} ge 32 le 32")
    if service is not None:
        lines.append(f"ip prefix-list SERVERS-IN seq 30 permit {service}")
    if spine is not None:
        lines.append(f"ip prefix-list FABRIC seq 10 permit {pod} ge {size} le 32")
        if service is not None:
            lines.append(f"ip prefix-list FABRIC seq 20 permit {service}")
    lines += [
        "!",
        "route-map SERVERS-IN permit 10",
        " match ip address prefix-list SERVERS-IN",
        "exit",
        "!",
        "route-map SERVERS-OUT deny 10",
        "exit",
        "!",
    ]
    if spine is not None:
        lines += [
            "route-map SPINE-IN permit 10",
            " match ip address prefix-list FABRIC",
            "exit",
            "!",
            "route-map SPINE-OUT permit 10",
            " match ip address prefix-list FABRIC",
            "exit",
            "!",
        ]
    lines += [
        f"router bgp {local_as}",
        f" bgp router-id {router_id}",
        " bgp log-neighbor-changes",
        " neighbor SERVERS peer-group",
        f" neighbor SERVERS remote-as {servers_as}",
        f" neighbor SERVERS description Calico nodes of rack {rack}",
    ]
    lines += [f" neighbor {address} peer-group SERVERS" for address in servers]
    if spine is not None:
        lines += [
            f" neighbor {spine[0]} remote-as {spine[1]}",
            f" neighbor {spine[0]} description spine (uplink {spine[2]})",
        ]
    lines += [
        " !",
        " address-family ipv4 unicast",
        "  neighbor SERVERS activate",
        "  neighbor SERVERS route-map SERVERS-IN in",
        "  neighbor SERVERS route-map SERVERS-OUT out",
    ]
    if spine is not None:
        lines += [
            f"  neighbor {spine[0]} activate",
            f"  neighbor {spine[0]} route-map SPINE-IN in",
            f"  neighbor {spine[0]} route-map SPINE-OUT out",
        ]
    lines += [" exit-address-family", "exit", "!", ""]
    return "\n".join(lines)


def hosts_from_description(desc) -> list[dict[str, Any]]:
    """Every host of a parsed IdcDescription, in the shape tor_frr_configs_for_hosts takes."""
    return [
        {"name": host.name, "address": host.address, "rack": rack.name, "tor_name": rack.tor_name,
         "tor_as": rack.tor_as, "tor_peer": rack.tor_peer, "tor_uplink": rack.tor_uplink,
         "node": "worker" in host.roles}
        for rack in desc.iter_racks() for host in rack.hosts
    ]


def tor_frr_configs_for_hosts(hosts, pod_cidr, node_as, block_size=DEFAULT_BLOCK_SIZE, fixed_ip_cidr=None,
                              service_cidr=None, advertise_service_cidr=False) -> dict[str, str]:
    """{tor_name: FRR configuration} for every rack that has at least one host.

    hosts: [{name, address, rack, tor_name, tor_as, tor_peer, tor_uplink, node}, ...]; the
    rack's Calico nodes (node: true) become the ToR's neighbours.
    """
    racks: dict[str, dict[str, Any]] = {}
    for host in hosts:
        rack = racks.setdefault(str(host["rack"]), {"host": host, "nodes": []})
        if host.get("node"):
            rack["nodes"].append(host["address"])
    configs: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name, rack in sorted(racks.items()):
        first = rack["host"]
        tor_name = str(first["tor_name"])
        if tor_name in owner:
            raise CalicoPlanError([f"rack {name} tor_name: {tor_name} is also the ToR of rack {owner[tor_name]}; "
                                   "fix: give every rack's ToR its own name (tor.name in the IDC description)"])
        owner[tor_name] = name
        configs[tor_name] = render_tor_frr(
            name, tor_name, first["tor_as"], first["tor_peer"], node_as, rack["nodes"], pod_cidr,
            fixed_ip_cidr=fixed_ip_cidr, service_cidr=service_cidr, advertise_service_cidr=advertise_service_cidr,
            uplink=first.get("tor_uplink"), block_size=block_size,
        )
    return dict(sorted(configs.items()))


def tor_frr_configs(desc) -> dict[str, str]:
    """{tor_name: FRR configuration} of every rack with hosts in a parsed IdcDescription."""
    return tor_frr_configs_for_hosts(
        hosts_from_description(desc), desc.pod_cidr, desc.node_as, block_size=desc.pod_block_size,
        fixed_ip_cidr=desc.fixed_ip_cidr, service_cidr=desc.service_cidr,
        advertise_service_cidr=desc.advertise_service_cidr,
    )
