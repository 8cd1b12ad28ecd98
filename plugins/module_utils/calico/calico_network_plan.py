# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Calico in BGP mode with top-of-rack routers: the Calico side (filter calico_network_plan).

The design (docs/calico-bgp.md): every server runs Calico in one AS (cluster.node_as)
and peers over eBGP with its rack's ToR only; nodes announce the /27 (pod_block_size)
blocks Calico IPAM gives them and the /32 of every pod with a fixed address; the ToR
takes exactly those and announces nothing down, so servers keep their default route.

plan_network() turns the inventory's view of the nodes into the specs of the Calico
resources (crd.projectcalico.org/v1 field names). The ToR side of the same design, in FRR
syntax, is module_utils/tor/tor_frr_config.py. Plain data in, plain data out: the filter
plugins, the lab tool and the unit tests share it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ValidationError
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    AS_MAX,
    AS_MIN,
    BLOCK_SIZE_MAX,
    BLOCK_SIZE_MIN,
    DEFAULT_BLOCK_SIZE,
    FieldReader,
    block_count,
    pod_pools,
)

__all__ = [
    "BLOCK_SIZE_MAX",
    "BLOCK_SIZE_MIN",
    "DEFAULT_BLOCK_SIZE",
    "NODE_RACK_LABEL",
    "TOR_IMPORT_FILTER",
    "AS_MAX",
    "AS_MIN",
    "CalicoPlanError",
    "PlanReader",
    "plan_network",
]

# the node label the BGPPeers select a rack's nodes by (the calico role puts it on the Node objects)
NODE_RACK_LABEL = "idcloud.io/rack"
# BGPFilter on every ToR session: the nodes accept no route from the ToR
TOR_IMPORT_FILTER = "idcloud-tor-import-none"

_NODE_KEYS = ("name", "address", "rack", "tor_as", "tor_peer")


class CalicoPlanError(ValidationError):
    """The input cannot give a working BGP design; ``errors`` holds one message per problem."""

    subject = "the Calico network plan"


class PlanReader(FieldReader):
    """The shared readers as the BGP design reads its (filter) arguments: IPv4 only, values shown by repr."""

    error_class = CalicoPlanError

    def __init__(self) -> None:
        super().__init__(typed_values=False)

    def cidr(self, value: Any, what: str, example: str):
        return self.network(value, what, example, ipv4_only=True)

    def ipv4(self, value: Any, what: str):
        return self.address(value, what, "10.10.1.11", ipv4_only=True)

    def fixed(self, fixed_ip_cidr: Any, pod, block_size: int | None):
        if fixed_ip_cidr in (None, ""):
            return None
        fixed = self.cidr(fixed_ip_cidr, "fixed_ip_cidr", "10.244.255.0/24")
        if fixed is None or pod is None:
            return None
        return self.fixed_ip_range(fixed, pod, block_size, "fixed_ip_cidr", "pod_cidr")


def _peer_name(rack: str) -> str:
    # a rack name may hold capitals, '_' and '.'; a resource name is a lowercase DNS name
    return "tor-" + re.sub(r"[^a-z0-9-]", "-", rack.lower()).strip("-")


def _pool_name(prefix: str, net) -> str:
    # DNS-safe and stable: the CIDR spelled with dashes
    return f"{prefix}-{str(net.network_address).replace('.', '-')}-{net.prefixlen}"


def plan_network(
    nodes,
    pod_cidr,
    node_as,
    block_size=DEFAULT_BLOCK_SIZE,
    fixed_ip_cidr=None,
    service_cidr=None,
    advertise_service_cidr=False,
) -> dict[str, Any]:
    """The Calico resources for BGP with the ToRs, as plain data.

    nodes: [{name, address, rack, tor_as, tor_peer}, ...], one per Kubernetes node that runs
    Calico (the inventory's ansible_host/idc_address, idc_rack, idc_tor_as, idc_tor_peer).

    Returns {"bgp_configuration": {name, spec}, "ip_pools": [{name, spec}, ...],
    "bgp_filter": {name, spec}, "bgp_peers": [{name, spec}, ...], "summary": {...}}; specs
    use the crd.projectcalico.org/v1 field names. Raises CalicoPlanError listing every problem.
    """
    err = PlanReader()
    size = err.block_size(block_size, "block_size")
    pod = err.cidr(pod_cidr, "pod_cidr", "10.244.0.0/16")
    local_as = err.as_number(node_as, "node_as")
    fixed = err.fixed(fixed_ip_cidr, pod, size)
    service = None
    if advertise_service_cidr:
        service = err.cidr(service_cidr, "service_cidr", "10.96.0.0/16") if service_cidr not in (None, "") else None
        if service_cidr in (None, ""):
            err.fail(
                "service_cidr",
                "missing while advertise_service_cidr is true",
                "pass the service CIDR (idc_service_cidr), or set advertise_service_cidr to false",
            )
    checked = _check_nodes(err, nodes, local_as)
    pools = []
    if pod is not None:
        pools = pod_pools(pod, fixed)
    if size is not None and pod is not None and checked:
        blocks = block_count(pools, size)
        if blocks < len(checked):
            minus = f" minus fixed_ip_cidr {fixed}" if fixed is not None else ""
            err.fail(
                "pod_cidr",
                f"{pod}{minus} holds {blocks} blocks of /{size} for {len(checked)} nodes",
                "use a larger pod_cidr or a larger block_size (smaller blocks): every node needs at least one block",
            )
    err.raise_if_any()

    spec: dict[str, Any] = {"asNumber": local_as, "nodeToNodeMeshEnabled": False, "logSeverityScreen": "Info"}
    if service is not None:
        spec["serviceClusterIPs"] = [{"cidr": str(service)}]
    ip_pools = [
        {
            "name": _pool_name("pods", net),
            "spec": {
                "cidr": str(net),
                "blockSize": size,
                "ipipMode": "Never",
                "vxlanMode": "Never",
                "natOutgoing": True,
                "nodeSelector": "all()",
                "allowedUses": ["Workload", "Tunnel"],
                "disableBGPExport": False,
            },
        }
        for net in pools
    ]
    if fixed is not None:
        # blocks of one address that no node takes by itself: a pod asks for its address, and its node announces the /32
        ip_pools.append(
            {
                "name": _pool_name("fixed", fixed),
                "spec": {
                    "cidr": str(fixed),
                    "blockSize": 32,
                    "ipipMode": "Never",
                    "vxlanMode": "Never",
                    "natOutgoing": True,
                    "nodeSelector": "!all()",
                    "allowedUses": ["Workload"],
                    "disableBGPExport": False,
                },
            }
        )
    racks = _racks(checked)
    peers = [
        {
            "name": _peer_name(rack),
            "spec": {
                "peerIP": info["tor_peer"],
                "asNumber": info["tor_as"],
                "nodeSelector": f"{NODE_RACK_LABEL} == '{rack}'",
                "filters": [TOR_IMPORT_FILTER],
            },
        }
        for rack, info in racks.items()
    ]
    blocks = block_count(pools, size) if pod is not None else 0
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


def _check_nodes(err: PlanReader, nodes: Any, node_as: int | None) -> list[dict[str, Any]]:
    if not isinstance(nodes, (list, tuple)):
        err.fail(
            "nodes",
            f"expected a list of nodes, got {type(nodes).__name__}",
            "pass [{name, address, rack, tor_as, tor_peer}, ...], one per kube_node host",
        )
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
        address = err.ipv4(node["address"], f"{what}.address")
        tor_peer = err.ipv4(node["tor_peer"], f"{what}.tor_peer")
        tor_as = err.as_number(node["tor_as"], f"{what}.tor_as")
        if name in names:
            err.fail(
                f"{what}.name",
                f"node {name} is listed twice (nodes[{names[name]}] and nodes[{index}])",
                "list every node once",
            )
            continue
        names[name] = index
        if address is not None:
            if str(address) in addresses:
                err.fail(
                    f"{what}.address",
                    f"{address} is also the address of node {addresses[str(address)]}",
                    "give every node its own address",
                )
                continue
            addresses[str(address)] = name
        if None in (address, tor_peer, tor_as):
            continue
        checked.append(
            {
                "name": name,
                "address": str(address),
                "rack": str(node["rack"]),
                "tor_as": tor_as,
                "tor_peer": str(tor_peer),
            }
        )
    by_rack: dict[str, dict[str, Any]] = {}
    for node in checked:
        first = by_rack.setdefault(node["rack"], node)
        for key in ("tor_as", "tor_peer"):
            if node[key] != first[key]:
                err.fail(
                    f"nodes[{node['name']}].{key}",
                    f"{node[key]} differs from {first[key]} of node {first['name']} in the same rack {node['rack']}",
                    "a rack has one ToR: give its nodes the same tor_as and tor_peer",
                )
    reported_as: set[str] = set()
    for node in checked:
        if node_as is not None and node["tor_as"] == node_as and node["rack"] not in reported_as:
            reported_as.add(node["rack"])
            err.fail(
                f"nodes[{node['name']}].tor_as",
                f"rack {node['rack']}'s ToR AS {node_as} is node_as",
                "give the ToR its own AS: nodes and ToRs peer over eBGP",
            )
        if node["tor_peer"] in addresses:
            err.fail(
                f"nodes[{node['name']}].tor_peer",
                f"{node['tor_peer']} is the address of node {addresses[node['tor_peer']]}",
                "use the ToR's own peering address",
            )
    return checked


def _racks(nodes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    racks: dict[str, dict[str, Any]] = {}
    for node in nodes:
        info = racks.setdefault(node["rack"], {"tor_as": node["tor_as"], "tor_peer": node["tor_peer"], "nodes": []})
        info["nodes"].append(node["name"])
    return {rack: {**racks[rack], "nodes": sorted(racks[rack]["nodes"])} for rack in sorted(racks)}
