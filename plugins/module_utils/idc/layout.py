# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description laid out as an inventory: groups, child groups, host and group-all variables,
and the reverse (hosts read back from hostvars) for the filters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.idc.model import (
    PARENT_GROUPS,
    ROLE_GROUPS,
    Host,
    IdcDescription,
    Rack,
)


def inventory_layout(desc: IdcDescription) -> dict[str, Any]:
    """Groups, child groups, host variables and group-all variables for a description.

    Returns plain data: ``{"groups": {group: [host, ...]}, "children": {group:
    [child group, ...]}, "hostvars": {host: {var: value}}, "all_vars": {var: value}}``.
    Every group appears in ``groups`` (role groups even when empty); hosts are
    listed only in the groups they belong to directly.
    """
    groups: dict[str, list[str]] = {group: [] for group in ROLE_GROUPS.values()}
    groups.update({parent: [] for parent in PARENT_GROUPS})
    children: dict[str, list[str]] = {parent: list(kids) for parent, kids in PARENT_GROUPS.items()}
    hostvars: dict[str, dict[str, Any]] = {}
    for room in desc.rooms:
        groups[room.group] = []
        children[room.group] = [rack.group for rack in room.racks]
        for rack in room.racks:
            groups[rack.group] = [host.name for host in rack.hosts]
            for host in rack.hosts:
                for group in host.groups:
                    groups[group].append(host.name)
                hostvars[host.name] = _host_vars(desc, rack, host)
    all_vars = {
        "idc_cluster_name": desc.cluster_name,
        "idc_pod_cidr": desc.pod_cidr,
        "idc_service_cidr": desc.service_cidr,
        "idc_node_as": desc.node_as,
        "idc_cluster_domain": desc.domain,
        "idc_apiserver_vip": desc.apiserver_vip or "",
        "idc_apiserver_port": desc.apiserver_port,
        "idc_apiserver_url": desc.apiserver_url,
        "idc_pod_block_size": desc.pod_block_size,
        "idc_fixed_ip_cidr": desc.fixed_ip_cidr,
        "idc_advertise_service_cidr": desc.advertise_service_cidr,
        "idc_ceph": ceph_vars(desc),
    }
    all_vars.update(desc.vars)
    return {"groups": groups, "children": children, "hostvars": hostvars, "all_vars": all_vars}


def _host_vars(desc: IdcDescription, rack: Rack, host: Host) -> dict[str, Any]:
    hostvars = {
        "ansible_host": host.address,
        "idc_address": host.address,
        "idc_room": rack.room,
        "idc_rack": rack.name,
        "idc_rack_subnet": rack.subnet,
        "idc_rack_gateway": rack.gateway,
        "idc_tor_name": rack.tor_name,
        "idc_tor_as": rack.tor_as,
        "idc_tor_peer": rack.tor_peer,
        "idc_tor_uplink": dict(rack.tor_uplink) if rack.tor_uplink else None,
        "idc_node_as": desc.node_as,
        "idc_roles": list(host.roles),
        "idc_cpu": host.cpu,
        "idc_memory_gib": host.memory_gib,
        "idc_ceph_osd_devices": [device.as_var() for device in host.osd_devices],
    }
    # the host's own vars come last so they can point ansible_host at a management address
    hostvars.update(host.vars)
    return hostvars


def ceph_vars(desc: IdcDescription) -> dict[str, Any] | None:
    """idc_ceph: the ceph section with its defaults, the mon addresses and the CRUSH tree; None without Ceph."""
    if desc.ceph is None:
        return None
    return {
        "mode": desc.ceph.mode,
        "pool_size": desc.ceph.pool_size,
        "failure_domain": desc.ceph.failure_domain,
        "mons": desc.ceph_mons,
        "crush_tree": desc.crush_tree(),
    }


def hosts_from_hostvars(hosts: Any) -> list[dict[str, Any]]:
    """Hosts as the BGP filters take them, from hostvars (read back through the idc_* variables) or plain dicts.

    hosts: e.g. ``groups['kube_node'] | map('extract', hostvars)``, or [{name, address, rack,
    tor_as, tor_peer, ...}] as documented. Raises ValueError naming the fix on anything else.
    """
    if isinstance(hosts, Mapping) or not hasattr(hosts, "__iter__"):
        raise ValueError("expected a list of hosts; fix: pass e.g. groups['kube_node'] | map('extract', hostvars)")
    return [_host_from_vars(item, index) for index, item in enumerate(hosts)]


def _host_from_vars(item: Any, index: int) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise ValueError(
            f"host {index}: expected a mapping (a host's vars), got {type(item).__name__}; "
            "fix: pass e.g. groups['kube_node'] | map('extract', hostvars)"
        )
    if "idc_rack" not in item:
        # plain dicts as documented; copy so the caller's data stays as it was
        return dict(item)
    return {
        "name": item.get("inventory_hostname"),
        # the rack address: ansible_host may point at a management network
        "address": item.get("idc_address") or item.get("ansible_host"),
        "rack": item.get("idc_rack"),
        "tor_name": item.get("idc_tor_name"),
        "tor_as": item.get("idc_tor_as"),
        "tor_peer": item.get("idc_tor_peer"),
        "tor_uplink": item.get("idc_tor_uplink"),
        "node": "kube_node" in (item.get("group_names") or []),
    }
