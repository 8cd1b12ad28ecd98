# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's model: rooms, racks, hosts and the cluster's networks, as dataclasses.

Built only by validation.parse_description (which checks every field first); read by the
inventory layout (layout.py), the lab tool and the filters. The names of the roles, the
groups they make and the variables the layout sets are defined here once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ValidationError
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    DEFAULT_BLOCK_SIZE,
)

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

# the roles that place Ceph daemons; with any of them the description deploys a Ceph cluster
CEPH_DAEMON_ROLES: tuple[str, ...] = ("ceph_mon", "ceph_mgr", "ceph_osd", "ceph_mds")
# ceph.mode: a cluster the collection deploys on the description's hosts, or the storage team's
CEPH_MODES: tuple[str, ...] = ("internal", "external")
# ceph.failure_domain: the CRUSH level each replica of a pool goes to a different one of
CEPH_FAILURE_DOMAINS: tuple[str, ...] = ("host", "rack", "room")
DEFAULT_CEPH_POOL_SIZE = 3
DEFAULT_CEPH_FAILURE_DOMAIN = "rack"
# Ceph refuses a pool size outside 1..10
CEPH_POOL_SIZE_MAX = 10
# the CRUSH root the hierarchy (room -> rack -> host) hangs from; no room, rack or host may take its name
CEPH_CRUSH_ROOT = "default"

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

# variables the layout computes for each host and for group all
HOST_VAR_NAMES: tuple[str, ...] = (
    "ansible_host",
    "idc_address",
    "idc_room",
    "idc_rack",
    "idc_rack_subnet",
    "idc_rack_gateway",
    "idc_tor_name",
    "idc_tor_as",
    "idc_tor_peer",
    "idc_tor_uplink",
    "idc_node_as",
    "idc_roles",
    "idc_cpu",
    "idc_memory_gib",
    "idc_ceph_osd_devices",
)
ALL_VAR_NAMES: tuple[str, ...] = (
    "idc_cluster_name",
    "idc_pod_cidr",
    "idc_service_cidr",
    "idc_node_as",
    "idc_cluster_domain",
    "idc_apiserver_vip",
    "idc_apiserver_port",
    "idc_apiserver_url",
    "idc_pod_block_size",
    "idc_fixed_ip_cidr",
    "idc_advertise_service_cidr",
    "idc_ceph",
)

_GROUP_UNSAFE_RE = re.compile(r"[^a-z0-9_]")


class IdcValidationError(ValidationError):
    """The description is invalid; ``errors`` holds one message per problem found."""

    subject = "the IDC description"


@dataclass
class OsdDevice:
    """One OSD's device: a block device (/dev/...), or a file the role makes and attaches (size_gib)."""

    path: str
    # set for a file-backed device (a lab, a test); None for a block device
    size_gib: float | None = None

    @property
    def file(self) -> bool:
        return self.size_gib is not None

    def as_var(self) -> dict[str, Any]:
        return {"path": self.path, "file": self.file, "size_gib": self.size_gib}


@dataclass
class Ceph:
    """The ceph section with its defaults filled in; implied (declared False) by Ceph roles without one."""

    mode: str = "internal"
    pool_size: int = DEFAULT_CEPH_POOL_SIZE
    # None in external mode: the storage team's CRUSH map decides
    failure_domain: str | None = DEFAULT_CEPH_FAILURE_DOMAIN
    # mode external: the storage team's mon addresses
    external_mons: list[str] = field(default_factory=list)
    declared: bool = True


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
    osd_devices: list[OsdDevice] = field(default_factory=list)

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
    # None: no Ceph (no ceph section and no Ceph role)
    ceph: Ceph | None = None
    # what validation accepted but advises against, as "path: problem; fix: ..."
    warnings: list[str] = field(default_factory=list)

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

    @property
    def ceph_mons(self) -> list[str]:
        """The addresses Ceph clients reach the mons at: the ceph_mon hosts' (internal) or ceph.external.mons."""
        if self.ceph is None:
            return []
        if self.ceph.mode == "external":
            return list(self.ceph.external_mons)
        return [host.address for host in self.iter_hosts() if "ceph_mon" in (host.roles or ())]

    def crush_tree(self) -> list[dict[str, str]]:
        """Where each OSD host sits, as the CRUSH hierarchy mirrors it: [{room, rack, host}], in description order."""
        if self.ceph is None or self.ceph.mode != "internal":
            return []
        return [
            {"room": host.room, "rack": host.rack, "host": host.name}
            for host in self.iter_hosts()
            if "ceph_osd" in (host.roles or ())
        ]

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
