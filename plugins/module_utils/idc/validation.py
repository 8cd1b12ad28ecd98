# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Validation of an IDC description: every field read and checked, every problem reported at once.

parse_description() is the only way to a model (model.IdcDescription). The per-field readers
live here (_Checker); the rules that need the whole description (unique names and addresses,
disjoint networks, quorum, the VIP's segment, BGP) are cross_checks.CrossChecks, and the Ceph
section with its rules is ceph_section.CephSection.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    FieldReader,
    shown,
    type_name,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.ceph_section import CephSection
from ansible_collections.idcloud.platform.plugins.module_utils.idc.cross_checks import CrossChecks
from ansible_collections.idcloud.platform.plugins.module_utils.idc.model import (
    ALL_VAR_NAMES,
    CEPH_DAEMON_ROLES,
    DEFAULT_APISERVER_PORT,
    DEFAULT_DOMAIN,
    DEFAULT_POD_BLOCK_SIZE,
    HOST_VAR_NAMES,
    KNOWN_ROLES,
    PLUGIN_KEYS,
    ROLE_GROUPS,
    Ceph,
    Host,
    IdcDescription,
    IdcValidationError,
    Rack,
    Room,
)

_TOP_KEYS = ("cluster", "vars", "lab", "ceph", "rooms")
_CLUSTER_KEYS = (
    "name",
    "pod_cidr",
    "service_cidr",
    "node_as",
    "domain",
    "apiserver_vip",
    "apiserver_port",
    "pod_block_size",
    "fixed_ip_cidr",
    "advertise_service_cidr",
    "partial",
)
_ROOM_KEYS = ("name", "racks")
_RACK_KEYS = ("name", "subnet", "gateway", "tor", "hosts")
_TOR_KEYS = ("name", "as", "peer", "uplink")
_UPLINK_KEYS = ("address", "peer", "as")
_HOST_KEYS = ("name", "address", "roles", "size", "osd_devices", "vars")
_SIZE_KEYS = ("cpu", "memory_gib")
# letting vars set these would make the description lie; ansible_host may point at a management address
_RESERVED_VARS = frozenset(HOST_VAR_NAMES + ALL_VAR_NAMES) - {"ansible_host"}

_CLUSTER_NAME_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LOCATION_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def parse_description(data: Any) -> IdcDescription:
    """Validate a loaded IDC description and return its model.

    Raises IdcValidationError listing every problem found. The inventory
    plugin's own keys (PLUGIN_KEYS) are accepted at the top level and ignored.
    What is valid but advised against is in the model's ``warnings``.
    """
    checker = _Checker()
    description = checker.description(data)
    checker.raise_if_any()
    description.warnings = list(checker.warnings)
    return description


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


class _Checker(CephSection, CrossChecks, FieldReader):
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
            self.fail(
                path,
                f"{shown(name)} is not a valid name",
                "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
            )
            return None
        return name

    def hostname(self, value: Any, path: str, example: str) -> str | None:
        name = self.text(value, path, example)
        if name is not None and (len(name) > 253 or not _HOSTNAME_RE.match(name)):
            self.fail(
                path,
                f"{shown(name)} is not a valid hostname",
                "use lowercase DNS labels (a-z, 0-9, '-', each 1-63 characters, not starting or ending with '-'), "
                "separated by dots; Kubernetes uses it as the node name",
            )
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
                self.fail(
                    where,
                    f"{shown(key)} is not a valid variable name",
                    "use letters, digits and '_', not starting with a digit",
                )
                good = False
            elif key in _RESERVED_VARS:
                self.fail(
                    where,
                    f"{key} is computed from the description and cannot be set in vars",
                    "change the description field it comes from, or use another variable name",
                )
                good = False
        return dict(data) if good else None

    # -- the description, level by level

    def description(self, data: Any) -> IdcDescription:
        if not isinstance(data, Mapping):
            self.fail(
                "(top level)",
                f"expected a mapping, got {type_name(data)}",
                "start the file with plugin: idcloud.platform.idc, cluster: and rooms:",
            )
            return None  # type: ignore[return-value]
        self.unknown_keys(data, _TOP_KEYS, "", also=PLUGIN_KEYS)
        cluster = self.take(
            data, "cluster", "", self.mapping, "{name: bj1-prod, pod_cidr: ..., service_cidr: ..., node_as: 64512}"
        )
        name = pod = service = node_as = vip = fixed = None
        domain, port = DEFAULT_DOMAIN, DEFAULT_APISERVER_PORT
        block_size, advertise, partial = DEFAULT_POD_BLOCK_SIZE, False, False
        if cluster is not None:
            name, pod, service, node_as, domain, vip, port = self.cluster(cluster)
            block_size, fixed, advertise = self.pod_network(cluster, pod)
            # a deliberate part of a cluster (a molecule scenario for one role): no required roles
            partial = bool(self.take(cluster, "partial", "cluster", self.boolean, "true", required=False))
        all_vars = self.take(data, "vars", "", self.variables, "{ntp_servers: [10.0.0.1]}", required=False)
        lab = self.take(data, "lab", "", self.mapping, "{name: idlab}", required=False)
        ceph = self.take(data, "ceph", "", self.mapping, "{mode: internal, pool_size: 3}", required=False)
        if ceph is not None:
            ceph = self.ceph_section(ceph)
        elif data.get("ceph") is not None:
            self.ceph_errors = True
        rooms = []
        raw_rooms = self.take(data, "rooms", "", self.seq, "[{name: room-a, racks: [...]}]")
        if raw_rooms is not None and not raw_rooms:
            self.fail("rooms", "is empty", "describe at least one room with its racks")
        for index, raw_room in enumerate(raw_rooms or []):
            room = self.room(raw_room, _item_path("", "rooms", raw_rooms, index))
            if room is not None:
                rooms.append(room)
        desc = IdcDescription(
            cluster_name=name,
            pod_network=pod,
            service_network=service,
            node_as=node_as,
            domain=domain,
            vars=all_vars or {},
            lab=dict(lab or {}),
            rooms=rooms,
            apiserver_vip=str(vip) if vip else None,
            apiserver_port=port,
            pod_block_size=block_size,
            fixed_ip_network=fixed,
            advertise_service_cidr=advertise,
            ceph=ceph,
        )
        self.cross_checks(
            desc, pod, service, vip, cluster is not None and cluster.get("apiserver_vip") is not None, partial
        )
        self.bgp_checks(desc, pod, service, fixed)
        # like the quorum rules: only when every host's roles (and every Ceph field) could be read
        if desc.rooms and not self.role_errors and not self.ceph_errors:
            if data.get("ceph") is None and any(
                role in CEPH_DAEMON_ROLES for host in desc.iter_hosts() for role in host.roles
            ):
                # Ceph roles without a ceph section: a cluster the collection deploys, with the defaults
                desc.ceph = Ceph(declared=False)
            self.ceph_checks(desc)
        return desc

    def cluster(self, data: Mapping):
        self.unknown_keys(data, _CLUSTER_KEYS, "cluster")
        name = self.take(data, "name", "cluster", self.text, "bj1-prod")
        if name is not None and not _CLUSTER_NAME_RE.match(name):
            self.fail(
                "cluster.name",
                f"{shown(name)} is not a valid cluster name",
                "use 1-63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
            )
            name = None
        pod = self.take(data, "pod_cidr", "cluster", self.network, "10.244.0.0/16")
        service = self.take(data, "service_cidr", "cluster", self.network, "10.96.0.0/16")
        node_as = self.take(data, "node_as", "cluster", self.as_number, "64512")
        domain = self.take(data, "domain", "cluster", self.text, DEFAULT_DOMAIN, required=False)
        if domain is not None and (len(domain) > 253 or not _HOSTNAME_RE.match(domain)):
            self.fail(
                "cluster.domain",
                f"{shown(domain)} is not a valid DNS domain",
                f"use lowercase DNS labels, e.g. {DEFAULT_DOMAIN}",
            )
        vip = self.take(data, "apiserver_vip", "cluster", self.address, "10.10.1.10", required=False)
        if vip is not None and vip.version != 4:
            self.fail(
                "cluster.apiserver_vip",
                f"{vip} is not an IPv4 address",
                "use an IPv4 address in the lb hosts' rack subnet; the keepalived VIP is IPv4 only",
            )
            vip = None
        port = self.take(data, "apiserver_port", "cluster", self.port, str(DEFAULT_APISERVER_PORT), required=False)
        return name, pod, service, node_as, domain or DEFAULT_DOMAIN, vip, port or DEFAULT_APISERVER_PORT

    def pod_network(self, data: Mapping, pod):
        """pod_block_size, fixed_ip_cidr and advertise_service_cidr: how Calico cuts and announces pod_cidr."""
        block_size = self.take(
            data, "pod_block_size", "cluster", self.block_size, str(DEFAULT_POD_BLOCK_SIZE), required=False
        )
        fixed = self.take(data, "fixed_ip_cidr", "cluster", self.network, "10.244.255.0/24", required=False)
        advertise = self.take(data, "advertise_service_cidr", "cluster", self.boolean, "true", required=False)
        if block_size is None:
            block_size = DEFAULT_POD_BLOCK_SIZE
        fixed = self.fixed_ip_range(
            fixed, pod, block_size, "cluster.fixed_ip_cidr", "cluster.pod_cidr", "pod_block_size"
        )
        return block_size, fixed, bool(advertise)

    def room(self, data: Any, path: str) -> Room | None:
        data = self.mapping(data, path, "{name: room-a, racks: [...]}")
        if data is None:
            return None
        self.unknown_keys(data, _ROOM_KEYS, path)
        name = self.take(data, "name", path, self.location_name, "room-a")
        room = Room(name=name)
        self.paths[id(room)] = path
        racks = self.take(
            data, "racks", path, self.seq, "[{name: a01, subnet: ..., gateway: ..., tor: ..., hosts: [...]}]"
        )
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
            self.inside_subnet(
                f"{path}.gateway", gateway, subnet, name, "use an address inside the subnet, usually the first one"
            )
        tor_name, tor_as, peer, uplink = self.tor(data, path, name, subnet, gateway)
        rack = Rack(
            name=name,
            room=room,
            network=subnet,
            gateway=str(gateway) if gateway else None,
            tor_name=tor_name,
            tor_as=tor_as,
            tor_peer=str(peer) if peer else None,
            tor_uplink=uplink,
        )
        self.paths[id(rack)] = path
        hosts = self.take(
            data, "hosts", path, self.seq, "[{name: m1, address: ..., roles: [...], size: ...}]", required=False
        )
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
        uplink = self.take(
            tor,
            "uplink",
            tor_path,
            self.mapping,
            "{address: 10.10.0.11/24, peer: 10.10.0.1, as: 65000}",
            required=False,
        )
        if uplink is not None:
            uplink = self.uplink(uplink, f"{tor_path}.uplink", tor_as)
        if peer is None or subnet is None:
            return tor_name, tor_as, peer, uplink
        if not self.inside_subnet(
            f"{tor_path}.peer", peer, subnet, rack, "use the ToR's address inside the rack subnet"
        ):
            return tor_name, tor_as, None, uplink
        if gateway is not None and peer == gateway:
            # the gateway may live on the ToR, but the BGP session needs the ToR's own peer address
            self.fail(
                f"{tor_path}.peer",
                f"{peer} is the rack gateway",
                "use the ToR's BGP peering address, a different address from the gateway",
            )
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
                self.fail(
                    f"{path}.peer",
                    f"{peer} is outside the uplink network {net} of address {address}",
                    f"use the spine's address on the uplink segment ({net}), or fix the prefix of uplink.address",
                )
            elif peer == address.ip:
                self.fail(
                    f"{path}.peer",
                    f"{peer} is the ToR's own uplink address",
                    "use the spine router's address on the segment",
                )
            elif peer == net.network_address or (
                net.version == 4 and net.prefixlen < 31 and peer == net.broadcast_address
            ):
                kind = "network" if peer == net.network_address else "broadcast"
                self.fail(
                    f"{path}.peer", f"{peer} is the {kind} address of {net}", f"use the spine's host address in {net}"
                )
        if spine_as is not None and tor_as is not None and spine_as == tor_as:
            self.fail(
                f"{path}.as",
                f"AS {spine_as} is the ToR's own AS (tor.as)",
                "use the spine's AS, a different one: the ToR peers with the spine over eBGP",
            )
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
        data = self.mapping(
            data, path, "{name: m1, address: 10.10.1.11, roles: [worker], size: {cpu: 16, memory_gib: 64}}"
        )
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
        devices = self.take(data, "osd_devices", path, self.osd_devices, "[/dev/sdb, /dev/sdc]", required=False)
        host_vars = self.take(data, "vars", path, self.variables, "{node_labels: {disk: ssd}}", required=False)
        host = Host(
            name=name,
            address=str(address) if address else None,
            roles=roles,
            cpu=cpu,
            memory_gib=memory,
            vars=host_vars or {},
            rack=rack.name,
            room=rack.room,
            osd_devices=devices or [],
        )
        self.paths[id(host)] = path
        return host

    def host_address(self, path: str, address, host: str | None, rack: str | None, subnet, gateway, peer) -> None:
        if address.version != subnet.version or address not in subnet:
            self.fail(
                path,
                f"{address} is outside rack {rack}'s subnet {subnet}",
                f"use an address in {subnet} or move {host or 'the host'} to the rack whose subnet holds it",
            )
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
            self.fail(
                path,
                f"expected a positive integer, got {type_name(value)} {shown(value)}",
                f"write the number of logical CPUs without quotes, e.g. {example}",
            )
            return None
        return value

    def positive_number(self, value: Any, path: str, example: str) -> int | float | None:
        good_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not good_type or not math.isfinite(value) or value <= 0:
            self.fail(
                path,
                f"expected a positive number, got {type_name(value)} {shown(value)}",
                f"write the memory in GiB without quotes, e.g. {example}",
            )
            return None
        return value
