# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description: the model of one data centre and its validation.

Ops describe a data centre once (cluster CIDRs, rooms, racks with their ToR
switch, hosts with roles and sizes). This module turns that plain data into
dataclasses, checks the whole of it and reports every problem at once, and
lays it out as inventory groups and variables. Pure Python (stdlib only) so
the inventory plugin, the lab tool and the unit tests share one definition.
The format reference is docs/idc-description.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import keyword
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ValidationError
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    DEFAULT_BLOCK_SIZE,
    FieldReader,
    block_count,
    pod_pools,
    shown,
    type_name,
)

__all__ = [
    "ALL_VAR_NAMES",
    "DEFAULT_APISERVER_PORT",
    "DEFAULT_DOMAIN",
    "DEFAULT_POD_BLOCK_SIZE",
    "HOST_VAR_NAMES",
    "KNOWN_ROLES",
    "PARENT_GROUPS",
    "PLUGIN_KEYS",
    "ROLE_GROUPS",
    "Host",
    "IdcDescription",
    "IdcValidationError",
    "Rack",
    "Room",
    "group_name",
    "hosts_from_hostvars",
    "inventory_layout",
    "parse_description",
]

# role in the description -> inventory group it puts the host in
ROLE_GROUPS: dict[str, str] = {
    "etcd": "etcd",
    "etcd_spare": "etcd_spare",
    "control_plane": "kube_control_plane",
    "worker": "kube_node",
    "lb": "lb",
    "ceph_mon": "ceph_mon",
    "ceph_mgr": "ceph_mgr",
    "ceph_osd": "ceph_osd",
    "ceph_mds": "ceph_mds",
    "gluster": "gluster",
    "kafka": "kafka",
}
KNOWN_ROLES: tuple[str, ...] = tuple(ROLE_GROUPS)

# groups made of role groups, so plays can target "the whole cluster" or "all storage"
PARENT_GROUPS: dict[str, tuple[str, ...]] = {
    "k8s_cluster": ("kube_control_plane", "kube_node"),
    "storage": ("ceph_mon", "ceph_mgr", "ceph_osd", "ceph_mds", "gluster"),
}

DEFAULT_DOMAIN = "cluster.local"
# the port clients reach the apiservers on (the VIP's HAProxy frontend, or an apiserver itself)
DEFAULT_APISERVER_PORT = 6443
# Calico IPAM's block size (common/fields.py), under the name of the description's field
DEFAULT_POD_BLOCK_SIZE = DEFAULT_BLOCK_SIZE

# top-level keys that belong to the inventory plugin (constructed options), not to the data centre
PLUGIN_KEYS: frozenset[str] = frozenset(
    {"plugin", "compose", "groups", "keyed_groups", "strict", "use_extra_vars", "leading_separator"}
)

_TOP_KEYS = ("cluster", "vars", "lab", "rooms")
_CLUSTER_KEYS = (
    "name", "pod_cidr", "service_cidr", "node_as", "domain", "apiserver_vip", "apiserver_port",
    "pod_block_size", "fixed_ip_cidr", "advertise_service_cidr",
)
_ROOM_KEYS = ("name", "racks")
_RACK_KEYS = ("name", "subnet", "gateway", "tor", "hosts")
_TOR_KEYS = ("name", "as", "peer", "uplink")
_UPLINK_KEYS = ("address", "peer", "as")
_HOST_KEYS = ("name", "address", "roles", "size", "vars")
_SIZE_KEYS = ("cpu", "memory_gib")

# variables the layout computes for each host and for group all
HOST_VAR_NAMES: tuple[str, ...] = (
    "ansible_host", "idc_address", "idc_room", "idc_rack", "idc_rack_subnet", "idc_rack_gateway", "idc_tor_name",
    "idc_tor_as", "idc_tor_peer", "idc_tor_uplink", "idc_node_as", "idc_roles", "idc_cpu", "idc_memory_gib",
)
ALL_VAR_NAMES: tuple[str, ...] = (
    "idc_cluster_name", "idc_pod_cidr", "idc_service_cidr", "idc_node_as", "idc_cluster_domain",
    "idc_apiserver_vip", "idc_apiserver_port", "idc_apiserver_url", "idc_pod_block_size", "idc_fixed_ip_cidr",
    "idc_advertise_service_cidr",
)
# letting vars set these would make the description lie; ansible_host may point at a management address
_RESERVED_VARS = frozenset(HOST_VAR_NAMES + ALL_VAR_NAMES) - {"ansible_host"}

_CLUSTER_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LOCATION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_GROUP_UNSAFE_RE = re.compile(r"[^a-z0-9_]")


class IdcValidationError(ValidationError):
    """The description is invalid; ``errors`` holds one message per problem found."""

    subject = "the IDC description"


@dataclass
class Host:
    name: str
    address: str
    roles: list[str]
    cpu: int
    memory_gib: float
    vars: dict[str, Any]
    rack: str
    room: str

    @property
    def groups(self) -> list[str]:
        return [ROLE_GROUPS[role] for role in self.roles]

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass
class Rack:
    name: str
    room: str
    # the rack's network, parsed once (subnet is its string form)
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    gateway: str
    tor_name: str
    tor_as: int
    tor_peer: str
    hosts: list[Host] = field(default_factory=list)
    # the ToR's link towards the spine: {"address": "10.210.0.11/24", "peer": "10.210.0.1", "as": 65000}
    tor_uplink: dict[str, Any] | None = None

    @property
    def subnet(self) -> str | None:
        return _cidr(self.network)

    @property
    def group(self) -> str:
        return group_name("rack", self.name)


@dataclass
class Room:
    name: str
    racks: list[Rack] = field(default_factory=list)

    @property
    def group(self) -> str:
        return group_name("room", self.name)


@dataclass
class IdcDescription:
    cluster_name: str
    # networks parsed once; pod_cidr, service_cidr and fixed_ip_cidr are their string forms
    pod_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    service_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    node_as: int
    domain: str
    vars: dict[str, Any]
    lab: dict[str, Any]
    rooms: list[Room]
    # the address clients reach the apiservers at: a VRRP VIP held by the lb hosts (or an external LB)
    apiserver_vip: str | None = None
    apiserver_port: int = DEFAULT_APISERVER_PORT
    # Calico IPAM: the prefix length of the blocks nodes take from pod_cidr (one route each at the ToR)
    pod_block_size: int = DEFAULT_POD_BLOCK_SIZE
    # the part of pod_cidr kept for pods that ask for a fixed address (each announced as a /32)
    fixed_ip_network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    advertise_service_cidr: bool = False

    @property
    def pod_cidr(self) -> str | None:
        return _cidr(self.pod_network)

    @property
    def service_cidr(self) -> str | None:
        return _cidr(self.service_network)

    @property
    def fixed_ip_cidr(self) -> str | None:
        return _cidr(self.fixed_ip_network)

    @property
    def apiserver_url(self) -> str:
        """https://VIP:port; without a VIP the first control plane's address; "" when there is neither."""
        address = self.apiserver_vip
        if address is None:
            control_planes = [host for host in self.iter_hosts() if host.roles and "control_plane" in host.roles]
            if not control_planes:
                return ""
            address = control_planes[0].address
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{self.apiserver_port}"

    def iter_racks(self) -> Iterator[Rack]:
        for room in self.rooms:
            yield from room.racks

    def iter_hosts(self) -> Iterator[Host]:
        for rack in self.iter_racks():
            yield from rack.hosts

    @property
    def racks(self) -> list[Rack]:
        return list(self.iter_racks())

    @property
    def hosts(self) -> list[Host]:
        return list(self.iter_hosts())

    def hosts_with_role(self, role: str) -> list[Host]:
        # a typo in a caller's role name must fail loudly, not return an empty list
        if role not in ROLE_GROUPS:
            raise ValueError(f"unknown role {role!r}; known roles: {', '.join(KNOWN_ROLES)}")
        return [host for host in self.iter_hosts() if role in host.roles]

    def host(self, name: str) -> Host:
        for host in self.iter_hosts():
            if host.name == name:
                return host
        raise KeyError(f"no host named {name!r} in the IDC description")

    def rack(self, name: str) -> Rack:
        for rack in self.iter_racks():
            if rack.name == name:
                return rack
        raise KeyError(f"no rack named {name!r} in the IDC description")


def _cidr(network) -> str | None:
    # the string templates, host vars and filters get: "10.244.0.0/16", or None when unset
    return str(network) if network is not None else None


def group_name(prefix: str, name: str) -> str:
    """Inventory group for a room or rack: ``room_<name>`` / ``rack_<name>``, normalised."""
    return f"{prefix}_{_GROUP_UNSAFE_RE.sub('_', name.lower())}"


def parse_description(data: Any) -> IdcDescription:
    """Validate a loaded IDC description and return its model.

    Raises IdcValidationError listing every problem found. The inventory
    plugin's own keys (PLUGIN_KEYS) are accepted at the top level and ignored.
    """
    checker = _Checker()
    description = checker.description(data)
    checker.raise_if_any()
    return description


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
    }
    # the host's own vars come last so they can point ansible_host at a management address
    hostvars.update(host.vars)
    return hostvars


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
        raise ValueError(f"host {index}: expected a mapping (a host's vars), got {type(item).__name__}; "
                         "fix: pass e.g. groups['kube_node'] | map('extract', hostvars)")
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


def _name_of(item: Any) -> str | None:
    if isinstance(item, Mapping):
        name = item.get("name")
        if isinstance(name, str) and name:
            return name
    return None


def _item_path(parent: str, key: str, items: list, index: int) -> str:
    # name an entry by its name; fall back to its position when it has none or repeats an earlier one
    name = _name_of(items[index])
    if name is None or name in (_name_of(item) for item in items[:index]):
        return f"{parent}.{key}[{index}]" if parent else f"{key}[{index}]"
    return f"{parent}.{key}[{name}]" if parent else f"{key}[{name}]"


class _Checker(FieldReader):
    """Walks a description, collecting every error instead of stopping at the first."""

    error_class = IdcValidationError

    def __init__(self) -> None:
        super().__init__(typed_values=True)
        # where each parsed room/rack/host came from, so cross checks can point at it
        self.paths: dict[int, str] = {}
        # a mistyped role leaves a member uncounted; a quorum error on top would only mislead
        self.role_errors = False

    # -- readers of the description's own fields (the generic ones are FieldReader's)

    def location_name(self, value: Any, path: str, example: str) -> str | None:
        name = self.text(value, path, example)
        if name is not None and not _LOCATION_NAME_RE.match(name):
            self.fail(path, f"{shown(name)} is not a valid name", "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit")
            return None
        return name

    def hostname(self, value: Any, path: str, example: str) -> str | None:
        name = self.text(value, path, example)
        if name is not None and (len(name) > 253 or not _HOSTNAME_RE.match(name)):
            self.fail(path, f"{shown(name)} is not a valid hostname",
                      "use lowercase DNS labels (a-z, 0-9, '-', each 1-63 characters, not starting or ending with '-'), "
                      "separated by dots; Kubernetes uses it as the node name")
            return None
        return name

    def variables(self, value: Any, path: str, example: str) -> dict[str, Any] | None:
        data = self.mapping(value, path, example)
        if data is None:
            return None
        good = True
        for key in data:
            where = f"{path}.{key}"
            if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
                self.fail(where, f"{shown(key)} is not a valid variable name", "use letters, digits and '_', not starting with a digit")
                good = False
            elif key in _RESERVED_VARS:
                self.fail(where, f"{key} is computed from the description and cannot be set in vars",
                          "change the description field it comes from, or use another variable name")
                good = False
        return dict(data) if good else None

    # -- the description, level by level

    def description(self, data: Any) -> IdcDescription:
        if not isinstance(data, Mapping):
            self.fail("(top level)", f"expected a mapping, got {type_name(data)}",
                      "start the file with plugin: idcloud.platform.idc, cluster: and rooms:")
            return None  # type: ignore[return-value]
        self.unknown_keys(data, _TOP_KEYS, "", also=PLUGIN_KEYS)
        cluster = self.take(data, "cluster", "", self.mapping, "{name: bj1-prod, pod_cidr: ..., service_cidr: ..., node_as: 64512}")
        name = pod = service = node_as = vip = fixed = None
        domain, port = DEFAULT_DOMAIN, DEFAULT_APISERVER_PORT
        block_size, advertise = DEFAULT_POD_BLOCK_SIZE, False
        if cluster is not None:
            name, pod, service, node_as, domain, vip, port = self.cluster(cluster)
            block_size, fixed, advertise = self.pod_network(cluster, pod)
        all_vars = self.take(data, "vars", "", self.variables, "{ntp_servers: [10.0.0.1]}", required=False)
        lab = self.take(data, "lab", "", self.mapping, "{name: idlab}", required=False)
        rooms = []
        raw_rooms = self.take(data, "rooms", "", self.seq, "[{name: room-a, racks: [...]}]")
        if raw_rooms is not None and not raw_rooms:
            self.fail("rooms", "is empty", "describe at least one room with its racks")
        for index, raw_room in enumerate(raw_rooms or []):
            room = self.room(raw_room, _item_path("", "rooms", raw_rooms, index))
            if room is not None:
                rooms.append(room)
        desc = IdcDescription(
            cluster_name=name, pod_network=pod, service_network=service,
            node_as=node_as, domain=domain, vars=all_vars or {}, lab=dict(lab or {}), rooms=rooms,
            apiserver_vip=str(vip) if vip else None, apiserver_port=port,
            pod_block_size=block_size, fixed_ip_network=fixed, advertise_service_cidr=advertise,
        )
        self.cross_checks(desc, pod, service, vip, cluster is not None and cluster.get("apiserver_vip") is not None)
        self.bgp_checks(desc, pod, service, fixed)
        return desc

    def cluster(self, data: Mapping):
        self.unknown_keys(data, _CLUSTER_KEYS, "cluster")
        name = self.take(data, "name", "cluster", self.text, "bj1-prod")
        if name is not None and not _CLUSTER_NAME_RE.match(name):
            self.fail("cluster.name", f"{shown(name)} is not a valid cluster name",
                      "use 1-63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit")
            name = None
        pod = self.take(data, "pod_cidr", "cluster", self.network, "10.244.0.0/16")
        service = self.take(data, "service_cidr", "cluster", self.network, "10.96.0.0/16")
        node_as = self.take(data, "node_as", "cluster", self.as_number, "64512")
        domain = self.take(data, "domain", "cluster", self.text, DEFAULT_DOMAIN, required=False)
        if domain is not None and (len(domain) > 253 or not _HOSTNAME_RE.match(domain)):
            self.fail("cluster.domain", f"{shown(domain)} is not a valid DNS domain", f"use lowercase DNS labels, e.g. {DEFAULT_DOMAIN}")
        vip = self.take(data, "apiserver_vip", "cluster", self.address, "10.10.1.10", required=False)
        if vip is not None and vip.version != 4:
            self.fail("cluster.apiserver_vip", f"{vip} is not an IPv4 address",
                      "use an IPv4 address in the lb hosts' rack subnet; the keepalived VIP is IPv4 only")
            vip = None
        port = self.take(data, "apiserver_port", "cluster", self.port, str(DEFAULT_APISERVER_PORT), required=False)
        return name, pod, service, node_as, domain or DEFAULT_DOMAIN, vip, port or DEFAULT_APISERVER_PORT

    def pod_network(self, data: Mapping, pod):
        """pod_block_size, fixed_ip_cidr and advertise_service_cidr: how Calico cuts and announces pod_cidr."""
        block_size = self.take(data, "pod_block_size", "cluster", self.block_size, str(DEFAULT_POD_BLOCK_SIZE), required=False)
        fixed = self.take(data, "fixed_ip_cidr", "cluster", self.network, "10.244.255.0/24", required=False)
        advertise = self.take(data, "advertise_service_cidr", "cluster", self.boolean, "true", required=False)
        if block_size is None:
            block_size = DEFAULT_POD_BLOCK_SIZE
        fixed = self.fixed_ip_range(fixed, pod, block_size, "cluster.fixed_ip_cidr", "cluster.pod_cidr", "pod_block_size")
        return block_size, fixed, bool(advertise)

    def room(self, data: Any, path: str) -> Room | None:
        data = self.mapping(data, path, "{name: room-a, racks: [...]}")
        if data is None:
            return None
        self.unknown_keys(data, _ROOM_KEYS, path)
        name = self.take(data, "name", path, self.location_name, "room-a")
        room = Room(name=name)
        self.paths[id(room)] = path
        racks = self.take(data, "racks", path, self.seq, "[{name: a01, subnet: ..., gateway: ..., tor: ..., hosts: [...]}]")
        if racks is not None and not racks:
            self.fail(f"{path}.racks", "is empty", "describe at least one rack in the room, or remove the room")
        for rack_index, raw_rack in enumerate(racks or []):
            rack = self.rack(raw_rack, _item_path(path, "racks", racks, rack_index), name)
            if rack is not None:
                room.racks.append(rack)
        return room

    def rack(self, data: Any, path: str, room: str | None) -> Rack | None:
        data = self.mapping(data, path, "{name: a01, subnet: 10.10.1.0/24, ...}")
        if data is None:
            return None
        self.unknown_keys(data, _RACK_KEYS, path)
        name = self.take(data, "name", path, self.location_name, "a01")
        subnet = self.take(data, "subnet", path, self.network, "10.10.1.0/24")
        gateway = self.take(data, "gateway", path, self.address, "10.10.1.1")
        if subnet is not None and gateway is not None:
            self.inside_subnet(f"{path}.gateway", gateway, subnet, name, "use an address inside the subnet, usually the first one")
        tor_name, tor_as, peer, uplink = self.tor(data, path, name, subnet, gateway)
        rack = Rack(
            name=name, room=room, network=subnet, gateway=str(gateway) if gateway else None,
            tor_name=tor_name, tor_as=tor_as, tor_peer=str(peer) if peer else None, tor_uplink=uplink,
        )
        self.paths[id(rack)] = path
        hosts = self.take(data, "hosts", path, self.seq, "[{name: m1, address: ..., roles: [...], size: ...}]", required=False)
        for host_index, raw_host in enumerate(hosts or []):
            host = self.host(raw_host, _item_path(path, "hosts", hosts, host_index), rack, subnet, gateway, peer)
            if host is not None:
                rack.hosts.append(host)
        return rack

    def tor(self, data: Mapping, path: str, rack: str | None, subnet, gateway):
        tor = self.take(data, "tor", path, self.mapping, "{name: tor-a01, as: 65101, peer: 10.10.1.254}")
        if tor is None:
            return None, None, None, None
        tor_path = f"{path}.tor"
        self.unknown_keys(tor, _TOR_KEYS, tor_path)
        default_name = f"tor-{rack}" if rack else None
        tor_name = self.take(tor, "name", tor_path, self.location_name, "tor-a01", required=False) or default_name
        tor_as = self.take(tor, "as", tor_path, self.as_number, "65101")
        peer = self.take(tor, "peer", tor_path, self.address, "10.10.1.254")
        uplink = self.take(tor, "uplink", tor_path, self.mapping, "{address: 10.10.0.11/24, peer: 10.10.0.1, as: 65000}",
                           required=False)
        if uplink is not None:
            uplink = self.uplink(uplink, f"{tor_path}.uplink", tor_as)
        if peer is None or subnet is None:
            return tor_name, tor_as, peer, uplink
        if not self.inside_subnet(f"{tor_path}.peer", peer, subnet, rack, "use the ToR's address inside the rack subnet"):
            return tor_name, tor_as, None, uplink
        if gateway is not None and peer == gateway:
            # the gateway may live on the ToR, but the BGP session needs the ToR's own peer address
            self.fail(f"{tor_path}.peer", f"{peer} is the rack gateway",
                      "use the ToR's BGP peering address, a different address from the gateway")
        return tor_name, tor_as, peer, uplink

    def uplink(self, data: Mapping, path: str, tor_as: int | None) -> dict[str, Any] | None:
        """The ToR's link to the spine: its own address with prefix, the spine's address and AS."""
        self.unknown_keys(data, _UPLINK_KEYS, path)
        errors_before = len(self.errors)
        address = self.take(data, "address", path, self.interface, "10.10.0.11/24")
        peer = self.take(data, "peer", path, self.address, "10.10.0.1")
        spine_as = self.take(data, "as", path, self.as_number, "65000")
        if address is not None and peer is not None:
            net = address.network
            if peer.version != net.version or peer not in net:
                self.fail(f"{path}.peer", f"{peer} is outside the uplink network {net} of address {address}",
                          f"use the spine's address on the uplink segment ({net}), or fix the prefix of uplink.address")
            elif peer == address.ip:
                self.fail(f"{path}.peer", f"{peer} is the ToR's own uplink address", "use the spine router's address on the segment")
            elif peer == net.network_address or (net.version == 4 and net.prefixlen < 31 and peer == net.broadcast_address):
                kind = "network" if peer == net.network_address else "broadcast"
                self.fail(f"{path}.peer", f"{peer} is the {kind} address of {net}", f"use the spine's host address in {net}")
        if spine_as is not None and tor_as is not None and spine_as == tor_as:
            self.fail(f"{path}.as", f"AS {spine_as} is the ToR's own AS (tor.as)",
                      "use the spine's AS, a different one: the ToR peers with the spine over eBGP")
        if len(self.errors) > errors_before:
            return None
        return {"address": str(address), "peer": str(peer), "as": spine_as}

    def inside_subnet(self, path: str, address, subnet, rack: str | None, fix: str) -> bool:
        if address.version != subnet.version or address not in subnet:
            self.fail(path, f"{address} is outside rack {rack}'s subnet {subnet}", f"{fix} ({subnet})")
            return False
        if address == subnet.network_address:
            self.fail(path, f"{address} is the network address of {subnet}", f"{fix}, not its network address")
            return False
        if subnet.version == 4 and address == subnet.broadcast_address:
            self.fail(path, f"{address} is the broadcast address of {subnet}", f"{fix}, not its broadcast address")
            return False
        return True

    def host(self, data: Any, path: str, rack: Rack, subnet, gateway, peer) -> Host | None:
        data = self.mapping(data, path, "{name: m1, address: 10.10.1.11, roles: [worker], size: {cpu: 16, memory_gib: 64}}")
        if data is None:
            return None
        self.unknown_keys(data, _HOST_KEYS, path)
        name = self.take(data, "name", path, self.hostname, "m1")
        address = self.take(data, "address", path, self.address, "10.10.1.11")
        if address is not None and subnet is not None:
            self.host_address(f"{path}.address", address, name, rack.name, subnet, gateway, peer)
        roles = self.take(data, "roles", path, self.roles, "[worker]")
        self.role_errors |= roles is None
        cpu, memory = self.size(data, path)
        host_vars = self.take(data, "vars", path, self.variables, "{node_labels: {disk: ssd}}", required=False)
        host = Host(
            name=name, address=str(address) if address else None, roles=roles, cpu=cpu, memory_gib=memory,
            vars=host_vars or {}, rack=rack.name, room=rack.room,
        )
        self.paths[id(host)] = path
        return host

    def host_address(self, path: str, address, host: str | None, rack: str | None, subnet, gateway, peer) -> None:
        if address.version != subnet.version or address not in subnet:
            self.fail(path, f"{address} is outside rack {rack}'s subnet {subnet}",
                      f"use an address in {subnet} or move {host or 'the host'} to the rack whose subnet holds it")
        elif address == subnet.network_address or (subnet.version == 4 and address == subnet.broadcast_address):
            kind = "network" if address == subnet.network_address else "broadcast"
            self.fail(path, f"{address} is the {kind} address of {subnet}", f"use a host address in {subnet}")
        elif address == gateway:
            self.fail(path, f"{address} is rack {rack}'s gateway", f"use a free host address in {subnet}")
        elif address == peer:
            self.fail(path, f"{address} is rack {rack}'s ToR peer address", f"use a free host address in {subnet}")

    def roles(self, value: Any, path: str, example: str) -> list[str] | None:
        roles = self.seq(value, path, example)
        if roles is None:
            return None
        if not roles:
            self.fail(path, "is empty", f"give the host at least one role: {', '.join(KNOWN_ROLES)}")
            return None
        good: list[str] = []
        errors_before = len(self.errors)
        for role in roles:
            if not isinstance(role, str) or role not in ROLE_GROUPS:
                close = difflib.get_close_matches(str(role), KNOWN_ROLES, n=1)
                hint = f"did you mean {close[0]}? " if close else ""
                self.fail(path, f"unknown role {shown(role)}", f"{hint}known roles: {', '.join(KNOWN_ROLES)}")
            elif role in good:
                self.fail(path, f"role {role} is listed twice", "list each role once")
            else:
                good.append(role)
        if "etcd" in good and "etcd_spare" in good:
            # a spare stands by to form a new cluster; it cannot also be a member of the live one
            self.fail(path, "a host cannot be both etcd and etcd_spare", "keep one of the two roles")
        return None if len(self.errors) > errors_before else good

    def size(self, data: Mapping, path: str):
        size = self.take(data, "size", path, self.mapping, "{cpu: 16, memory_gib: 64}")
        if size is None:
            return None, None
        size_path = f"{path}.size"
        self.unknown_keys(size, _SIZE_KEYS, size_path)
        cpu = self.take(size, "cpu", size_path, self.positive_int, "16")
        memory = self.take(size, "memory_gib", size_path, self.positive_number, "64")
        return cpu, memory

    def positive_int(self, value: Any, path: str, example: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(path, f"expected a positive integer, got {type_name(value)} {shown(value)}",
                      f"write the number of logical CPUs without quotes, e.g. {example}")
            return None
        return value

    def positive_number(self, value: Any, path: str, example: str) -> int | float | None:
        good_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not good_type or not math.isfinite(value) or value <= 0:
            self.fail(path, f"expected a positive number, got {type_name(value)} {shown(value)}",
                      f"write the memory in GiB without quotes, e.g. {example}")
            return None
        return value

    # -- rules that need the whole description

    def cross_checks(self, desc: IdcDescription, pod, service, vip, vip_given: bool) -> None:
        self.unique_rooms(desc)
        self.unique_racks(desc)
        self.unique_hosts(desc)
        self.unique_addresses(desc)
        self.disjoint_networks(desc, pod, service)
        if vip is not None:
            self.apiserver_vip_is_free(desc, vip, pod, service)
        # with no rooms or a host's roles unreadable the counts would only add noise
        if desc.rooms and not self.role_errors:
            self.quorum(desc, "etcd", allow_zero=False)
            self.quorum(desc, "etcd_spare", allow_zero=True)
            self.lb_segment(desc, vip, vip_given)

    def unique_names(self, items, what: str) -> None:
        # two names can differ yet normalise to the same group, which would merge two locations
        seen: dict[str, str] = {}
        groups: dict[str, str] = {}
        for path, name, group in items:
            if name is None:
                continue
            if name in seen:
                self.fail(path, f"duplicate {what} name {name} (also at {seen[name]})", f"give every {what} its own name")
                continue
            seen[name] = path
            if group in groups:
                self.fail(path, f"{what} name {name} becomes group {group}, like {groups[group]}",
                          "rename one of them; group names keep only a-z, 0-9 and '_'")
                continue
            groups[group] = path

    def unique_rooms(self, desc: IdcDescription) -> None:
        self.unique_names(
            ((f"{self.paths[id(room)]}.name", room.name, group_name("room", room.name or "")) for room in desc.rooms), "room"
        )

    def unique_racks(self, desc: IdcDescription) -> None:
        self.unique_names(
            ((f"{self.paths[id(rack)]}.name", rack.name, group_name("rack", rack.name or "")) for rack in desc.iter_racks()), "rack"
        )

    def unique_hosts(self, desc: IdcDescription) -> None:
        groups = set(ROLE_GROUPS.values()) | set(PARENT_GROUPS) | {"all", "ungrouped"}
        groups |= {room.group for room in desc.rooms if room.name} | {rack.group for rack in desc.iter_racks() if rack.name}
        seen: dict[str, str] = {}
        for host in desc.iter_hosts():
            if host.name is None:
                continue
            path = f"{self.paths[id(host)]}.name"
            if host.name in seen:
                self.fail(path, f"host {host.name} is already defined at {seen[host.name]}",
                          "a host lives in exactly one rack: remove one entry or rename the host")
            elif host.name in groups:
                # ansible would set the host's variables on the group of the same name
                self.fail(path, f"host name {host.name} is also an inventory group name", "rename the host")
            else:
                seen[host.name] = self.paths[id(host)]

    def unique_addresses(self, desc: IdcDescription) -> None:
        seen: dict[str, str] = {}
        for host in desc.iter_hosts():
            if host.address is None:
                continue
            if host.address in seen:
                self.fail(f"{self.paths[id(host)]}.address", f"{host.address} is already used by {seen[host.address]}",
                          "give every host its own address")
            else:
                seen[host.address] = self.paths[id(host)]

    def disjoint_networks(self, desc: IdcDescription, pod, service) -> None:
        networks = [("cluster.pod_cidr", pod), ("cluster.service_cidr", service)]
        networks += [(f"{self.paths[id(rack)]}.subnet", rack.network) for rack in desc.iter_racks() if rack.subnet]
        networks = [(path, net) for path, net in networks if net is not None]
        for later, (path, net) in enumerate(networks):
            for other_path, other in networks[:later]:
                if net.version == other.version and net.overlaps(other):
                    self.fail(path, f"{net} overlaps {other_path} {other}",
                              "pod_cidr, service_cidr and every rack subnet must be disjoint; pick a range that overlaps none")

    def quorum(self, desc: IdcDescription, role: str, allow_zero: bool) -> None:
        members = [host.name for host in desc.iter_hosts() if host.roles and role in host.roles]
        count = len(members)
        if count == 0 and not allow_zero:
            self.fail(f"role {role}", "no host has it",
                      f"give the {role} role to 3 (or 5) hosts, ideally in different racks")
        elif count % 2 == 0 and count:
            self.fail(f"role {role}", f"{count} hosts have it ({', '.join(members)}), an even number",
                      f"use an odd number of {role} hosts (e.g. {count - 1} or {count + 1}): "
                      "an even count survives no more failures than one member fewer, and a half/half split stops it")

    # -- the apiserver VIP

    def apiserver_vip_is_free(self, desc: IdcDescription, vip, pod, service) -> None:
        path = "cluster.apiserver_vip"
        # the VIP moves between the lb hosts, so no host, gateway or ToR may own it
        for rack in desc.iter_racks():
            if rack.gateway == str(vip):
                self.fail(path, f"{vip} is rack {rack.name}'s gateway", "use a free address that no host, gateway or ToR peer has")
            if rack.tor_peer == str(vip):
                self.fail(path, f"{vip} is rack {rack.name}'s ToR peer address",
                          "use a free address that no host, gateway or ToR peer has")
        for host in desc.iter_hosts():
            if host.address == str(vip):
                self.fail(path, f"{vip} is the address of host {host.name} ({self.paths[id(host)]})",
                          "use a free address that no host, gateway or ToR peer has: keepalived moves the VIP between the lb hosts")
        for where, net in (("cluster.pod_cidr", pod), ("cluster.service_cidr", service)):
            if net is not None and vip.version == net.version and vip in net:
                self.fail(path, f"{vip} is inside {where} {net}", "use an address in the lb hosts' rack subnet")

    def lb_segment(self, desc: IdcDescription, vip, vip_given: bool) -> None:
        lbs = [host for host in desc.iter_hosts() if "lb" in host.roles]
        if not lbs:
            return
        by_rack: dict[str, list[str]] = {}
        for host in lbs:
            by_rack.setdefault(host.rack, []).append(host.name)
        racks = [rack for rack in desc.iter_racks() if rack.name in by_rack]
        for host in lbs:
            if "control_plane" in host.roles and desc.apiserver_port == DEFAULT_APISERVER_PORT:
                # HAProxy's frontend and kube-apiserver would both listen on the port
                self.fail(f"{self.paths[id(host)]}.roles",
                          f"host {host.name} is lb and control_plane, and cluster.apiserver_port is {DEFAULT_APISERVER_PORT}, "
                          "the port kube-apiserver listens on",
                          "give the lb role to other hosts, or set cluster.apiserver_port to another port, e.g. 8443")
        listed = ", ".join(f"{', '.join(names)} in rack {rack}" for rack, names in by_rack.items())
        if len(by_rack) > 1:
            shown = f" for apiserver_vip {vip}" if vip is not None else ""
            self.fail("role lb", f"the lb hosts are in {len(by_rack)} racks ({listed}){shown}",
                      "put every lb host in one rack: the keepalived VRRP VIP (cluster.apiserver_vip) moves by ARP, "
                      "so all lb hosts must share one L2 segment (one rack subnet)")
        rack = racks[0]
        if vip is None:
            if not vip_given:
                example = ""
                if rack.subnet and rack.network.version == 4:
                    used = {h.address for h in rack.hosts} | {rack.gateway, rack.tor_peer}
                    free = next((str(a) for a in rack.network.hosts() if str(a) not in used), None)
                    example = f", e.g. apiserver_vip: {free}" if free and len(by_rack) == 1 else ""
                self.fail("cluster.apiserver_vip", f"missing, and the description has lb hosts ({listed})",
                          f"add a free address of the lb hosts' rack subnet {rack.subnet} under cluster{example}; "
                          "keepalived holds it on one lb host at a time")
            return
        if len(by_rack) > 1 or rack.subnet is None:
            return
        subnet = rack.network
        if vip not in subnet:
            self.fail("cluster.apiserver_vip", f"{vip} is outside rack {rack.name}'s subnet {subnet}, where the lb hosts are ({listed})",
                      f"use a free address in {subnet}: a VRRP VIP lives on the lb hosts' L2 segment")
        elif vip in (subnet.network_address, subnet.broadcast_address):
            kind = "network" if vip == subnet.network_address else "broadcast"
            self.fail("cluster.apiserver_vip", f"{vip} is the {kind} address of {subnet}", f"use a free host address in {subnet}")

    # -- BGP with the ToRs (Calico): AS numbers, uplinks, room for every node's block

    def bgp_checks(self, desc: IdcDescription, pod, service, fixed) -> None:
        racks = list(desc.iter_racks())
        for rack in racks:
            if desc.node_as is not None and rack.tor_as == desc.node_as:
                # iBGP would need a full mesh or route reflectors, and the ToR would re-announce nothing
                self.fail(f"{self.paths[id(rack)]}.tor.as", f"AS {rack.tor_as} is cluster.node_as",
                          "give the ToR its own AS: servers and ToR peer over eBGP (all servers share node_as, every ToR has another)")
        self.uplinks(desc, racks, pod, service)
        if pod is not None and pod.version == 4 and not self.role_errors:
            self.pod_capacity(desc, pod, fixed)

    def uplinks(self, desc: IdcDescription, racks: list[Rack], pod, service) -> None:
        seen: dict[str, str] = {}
        networks = [("cluster.pod_cidr", pod), ("cluster.service_cidr", service)]
        networks += [(f"{self.paths[id(rack)]}.subnet", rack.network) for rack in racks if rack.subnet]
        for rack in racks:
            if not rack.tor_uplink:
                continue
            path = f"{self.paths[id(rack)]}.tor.uplink"
            iface = ipaddress.ip_interface(rack.tor_uplink["address"])
            if str(iface.ip) in seen:
                self.fail(f"{path}.address", f"{iface.ip} is already the uplink address of {seen[str(iface.ip)]}",
                          "give every ToR its own address on the uplink segment")
            else:
                seen[str(iface.ip)] = path
            if desc.node_as is not None and rack.tor_uplink["as"] == desc.node_as:
                self.fail(f"{path}.as", f"AS {desc.node_as} is cluster.node_as",
                          "use the spine's own AS: a spine in node_as would drop every pod route as an AS-path loop")
            for where, net in networks:
                if net is not None and net.version == iface.version and iface.network.overlaps(net):
                    self.fail(f"{path}.address", f"the uplink network {iface.network} overlaps {where} {net}",
                              "use a separate segment between ToRs and spine")

    def pod_capacity(self, desc: IdcDescription, pod, fixed) -> None:
        workers = [host for host in desc.iter_hosts() if "worker" in host.roles]
        size = desc.pod_block_size
        blocks = block_count(pod_pools(pod, fixed), size)
        if len(workers) <= blocks:
            return
        minus = f" minus fixed_ip_cidr {fixed}" if fixed is not None else ""
        fixed_blocks = 2 ** (size - fixed.prefixlen) if fixed is not None else 0
        prefix = size - (len(workers) + fixed_blocks - 1).bit_length()
        self.fail("cluster.pod_cidr", f"{pod}{minus} holds {blocks} blocks of /{size} for {len(workers)} worker nodes",
                  f"use a pod_cidr of /{prefix} or larger, a larger pod_block_size (smaller blocks, e.g. {min(size + 1, 32)})"
                  f"{' or a smaller fixed_ip_cidr' if fixed is not None else ''}; "
"Calico gives every node at least one block")
