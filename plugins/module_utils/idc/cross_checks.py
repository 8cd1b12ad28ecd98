# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's rules that need the whole of it, as a mixin of the validator.

Each method reads the parsed model and reports through FieldReader.fail(path, problem, fix),
so a cross check points at the field to change, like a per-field error does.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    block_count,
    pod_pools,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.model import (
    DEFAULT_APISERVER_PORT,
    PARENT_GROUPS,
    ROLE_GROUPS,
    IdcDescription,
    Rack,
    group_name,
)

# roles a working cluster cannot do without, besides etcd (the quorum rule): who runs the
# apiservers and who runs the pods; cluster.partial: true lifts this for a deliberate part
REQUIRED_ROLES: dict[str, str] = {
    "control_plane": "give the control_plane role to 3 hosts (kube-apiserver, controller-manager and scheduler), "
    "ideally in different racks",
    "worker": "give the worker role to the hosts that run the pods: without one, CoreDNS and every workload stay Pending",
}


class CrossChecks:
    """Checks across rooms, racks and hosts (mixed into validation._Checker, a FieldReader)."""

    def who(self, host) -> str:
        # a host whose name was refused is still named in a cross check: by its path
        return host.name if host.name is not None else self.paths[id(host)]

    def cross_checks(self, desc: IdcDescription, pod, service, vip, vip_given: bool, partial: bool = False) -> None:
        self.unique_rooms(desc)
        self.unique_racks(desc)
        self.unique_hosts(desc)
        self.unique_tors(desc)
        self.unique_addresses(desc)
        self.disjoint_networks(desc, pod, service)
        self.address_families(desc, pod, service, vip)
        if vip is not None:
            self.apiserver_vip_is_free(desc, vip, pod, service)
        # with no rooms or a host's roles unreadable the counts would only add noise
        if desc.rooms and not self.role_errors:
            self.quorum(desc, "etcd", allow_zero=False)
            self.quorum(desc, "etcd_spare", allow_zero=True)
            # every kafka host is a KRaft controller: the same majority rule
            self.quorum(desc, "kafka", allow_zero=True)
            if not partial:
                self.required_roles(desc)
            self.lb_backends(desc)
            self.lb_segment(desc, vip, vip_given)

    def unique_names(self, items, what: str) -> None:
        # two names can differ yet normalise to the same group, which would merge two locations
        seen: dict[str, str] = {}
        groups: dict[str, str] = {}
        for path, name, group in items:
            if name is None:
                continue
            if name in seen:
                self.fail(
                    path, f"duplicate {what} name {name} (also at {seen[name]})", f"give every {what} its own name"
                )
                continue
            seen[name] = path
            if group in groups:
                self.fail(
                    path,
                    f"{what} name {name} becomes group {group}, like {groups[group]}",
                    "rename one of them; group names keep only a-z, 0-9 and '_'",
                )
                continue
            groups[group] = path

    def unique_rooms(self, desc: IdcDescription) -> None:
        self.unique_names(
            ((f"{self.paths[id(room)]}.name", room.name, group_name("room", room.name or "")) for room in desc.rooms),
            "room",
        )

    def unique_racks(self, desc: IdcDescription) -> None:
        self.unique_names(
            (
                (f"{self.paths[id(rack)]}.name", rack.name, group_name("rack", rack.name or ""))
                for rack in desc.iter_racks()
            ),
            "rack",
        )

    def unique_hosts(self, desc: IdcDescription) -> None:
        groups = set(ROLE_GROUPS.values()) | set(PARENT_GROUPS) | {"all", "ungrouped"}
        groups |= {room.group for room in desc.rooms if room.name} | {
            rack.group for rack in desc.iter_racks() if rack.name
        }
        seen: dict[str, str] = {}
        for host in desc.iter_hosts():
            if host.name is None:
                continue
            path = f"{self.paths[id(host)]}.name"
            if host.name in seen:
                self.fail(
                    path,
                    f"host {host.name} is already defined at {seen[host.name]}",
                    "a host lives in exactly one rack: remove one entry or rename the host",
                )
            elif host.name in groups:
                # ansible would set the host's variables on the group of the same name
                self.fail(path, f"host name {host.name} is also an inventory group name", "rename the host")
            else:
                seen[host.name] = self.paths[id(host)]

    def unique_tors(self, desc: IdcDescription) -> None:
        # a ToR is a router with its own FRR file and, in the lab, a container named after it
        hosts = {host.name: self.paths[id(host)] for host in desc.iter_hosts() if host.name is not None}
        seen: dict[str, str] = {}
        for rack in desc.iter_racks():
            if rack.tor_name is None:
                continue
            path = f"{self.paths[id(rack)]}.tor.name"
            if rack.tor_name in seen:
                self.fail(
                    path,
                    f"duplicate ToR name {rack.tor_name} (also at {seen[rack.tor_name]})",
                    "give every rack's ToR its own name (without tor.name it is tor-<rack>)",
                )
            elif rack.tor_name in hosts:
                self.fail(
                    path,
                    f"ToR name {rack.tor_name} is also the name of host {hosts[rack.tor_name]}",
                    "rename the ToR or the host: switches and servers share one name space (DNS, the lab's containers)",
                )
            else:
                seen[rack.tor_name] = path

    def unique_addresses(self, desc: IdcDescription) -> None:
        seen: dict[str, str] = {}
        for host in desc.iter_hosts():
            if host.address is None:
                continue
            if host.address in seen:
                self.fail(
                    f"{self.paths[id(host)]}.address",
                    f"{host.address} is already used by {seen[host.address]}",
                    "give every host its own address",
                )
            else:
                seen[host.address] = self.paths[id(host)]

    def disjoint_networks(self, desc: IdcDescription, pod, service) -> None:
        networks = [("cluster.pod_cidr", pod), ("cluster.service_cidr", service)]
        networks += [(f"{self.paths[id(rack)]}.subnet", rack.network) for rack in desc.iter_racks() if rack.subnet]
        networks = [(path, net) for path, net in networks if net is not None]
        for later, (path, net) in enumerate(networks):
            for other_path, other in networks[:later]:
                if net.version == other.version and net.overlaps(other):
                    self.fail(
                        path,
                        f"{net} overlaps {other_path} {other}",
                        "pod_cidr, service_cidr and every rack subnet must be disjoint; pick a range that overlaps none",
                    )

    def address_families(self, desc: IdcDescription, pod, service, vip) -> None:
        """One family for the whole cluster: the pod network's (or the service network's without it)."""
        if pod is not None:
            where, ref = "cluster.pod_cidr", pod
        elif service is not None:
            where, ref = "cluster.service_cidr", service
        else:
            return
        family = f"IPv{ref.version}"
        fix = (
            f"use {family} here too: the cluster is single-stack, so the pod and service networks, every rack subnet, "
            "the uplinks and the VIP share one address family (node addresses, kube-apiserver's service network and "
            "the BGP sessions to the ToRs all use it)"
        )
        checked = [("cluster.service_cidr", service)] if where == "cluster.pod_cidr" else []
        checked += [(f"{self.paths[id(rack)]}.subnet", rack.network) for rack in desc.iter_racks()]
        checked += [
            (f"{self.paths[id(rack)]}.tor.uplink.address", ipaddress.ip_interface(rack.tor_uplink["address"]))
            for rack in desc.iter_racks()
            if rack.tor_uplink
        ]
        # with lb hosts a VIP of the other family is already outside their rack's subnet
        if vip is not None and not any("lb" in (host.roles or ()) for host in desc.iter_hosts()):
            checked.append(("cluster.apiserver_vip", vip))
        for path, value in checked:
            if value is not None and value.version != ref.version:
                self.fail(path, f"{value} is IPv{value.version}, but {where} {ref} is {family}", fix)

    def required_roles(self, desc: IdcDescription) -> None:
        for role, fix in REQUIRED_ROLES.items():
            if not any(role in host.roles for host in desc.iter_hosts()):
                self.fail(
                    f"role {role}",
                    "no host has it, and a Kubernetes cluster cannot work without it",
                    f"{fix}; a description that is deliberately part of a cluster (a test scenario for one role) "
                    "says so with cluster.partial: true",
                )

    def lb_backends(self, desc: IdcDescription) -> None:
        lbs = [self.who(host) for host in desc.iter_hosts() if "lb" in host.roles]
        if lbs and not any("control_plane" in host.roles for host in desc.iter_hosts()):
            self.fail(
                "role lb",
                f"{len(lbs)} host{'s' if len(lbs) > 1 else ''} ({', '.join(lbs)}) "
                f"{'have' if len(lbs) > 1 else 'has'} it, and no host has control_plane",
                "give the control_plane role to the hosts that run kube-apiserver: HAProxy on the lb hosts sends "
                "to them and has no backend without one; or remove the lb role",
            )

    def quorum(self, desc: IdcDescription, role: str, allow_zero: bool) -> None:
        members = [self.who(host) for host in desc.iter_hosts() if host.roles and role in host.roles]
        count = len(members)
        if count == 0 and not allow_zero:
            self.fail(
                f"role {role}", "no host has it", f"give the {role} role to 3 (or 5) hosts, ideally in different racks"
            )
        elif count % 2 == 0 and count:
            self.fail(
                f"role {role}",
                f"{count} hosts have it ({', '.join(members)}), an even number",
                f"use an odd number of {role} hosts (e.g. {count - 1} or {count + 1}): "
                "an even count survives no more failures than one member fewer, and a half/half split stops it",
            )

    # -- the apiserver VIP

    def apiserver_vip_is_free(self, desc: IdcDescription, vip, pod, service) -> None:
        path = "cluster.apiserver_vip"
        # the VIP moves between the lb hosts, so no host, gateway or ToR may own it
        for rack in desc.iter_racks():
            if rack.gateway == str(vip):
                self.fail(
                    path,
                    f"{vip} is rack {rack.name}'s gateway",
                    "use a free address that no host, gateway or ToR peer has",
                )
            if rack.tor_peer == str(vip):
                self.fail(
                    path,
                    f"{vip} is rack {rack.name}'s ToR peer address",
                    "use a free address that no host, gateway or ToR peer has",
                )
        for host in desc.iter_hosts():
            if host.address == str(vip):
                self.fail(
                    path,
                    f"{vip} is the address of host {self.who(host)} ({self.paths[id(host)]})",
                    "use a free address that no host, gateway or ToR peer has: keepalived moves the VIP between the lb hosts",
                )
        for where, net in (("cluster.pod_cidr", pod), ("cluster.service_cidr", service)):
            if net is not None and vip.version == net.version and vip in net:
                self.fail(path, f"{vip} is inside {where} {net}", "use an address in the lb hosts' rack subnet")

    def lb_segment(self, desc: IdcDescription, vip, vip_given: bool) -> None:
        lbs = [host for host in desc.iter_hosts() if "lb" in host.roles]
        if not lbs:
            return
        by_rack: dict[str, list[str]] = {}
        for host in lbs:
            by_rack.setdefault(host.rack, []).append(self.who(host))
        racks = [rack for rack in desc.iter_racks() if rack.name in by_rack]
        for host in lbs:
            if "control_plane" in host.roles and desc.apiserver_port == DEFAULT_APISERVER_PORT:
                # HAProxy's frontend and kube-apiserver would both listen on the port
                self.fail(
                    f"{self.paths[id(host)]}.roles",
                    f"host {self.who(host)} is lb and control_plane, and cluster.apiserver_port is {DEFAULT_APISERVER_PORT}, "
                    "the port kube-apiserver listens on",
                    "give the lb role to other hosts, or set cluster.apiserver_port to another port, e.g. 8443",
                )
        listed = ", ".join(f"{', '.join(names)} in rack {rack}" for rack, names in by_rack.items())
        if len(by_rack) > 1:
            shown = f" for apiserver_vip {vip}" if vip is not None else ""
            self.fail(
                "role lb",
                f"the lb hosts are in {len(by_rack)} racks ({listed}){shown}",
                "put every lb host in one rack: the keepalived VRRP VIP (cluster.apiserver_vip) moves by ARP, "
                "so all lb hosts must share one L2 segment (one rack subnet)",
            )
        rack = racks[0]
        if vip is None:
            if not vip_given:
                example = ""
                if rack.subnet and rack.network.version == 4:
                    used = {h.address for h in rack.hosts} | {rack.gateway, rack.tor_peer}
                    free = next((str(a) for a in rack.network.hosts() if str(a) not in used), None)
                    example = f", e.g. apiserver_vip: {free}" if free and len(by_rack) == 1 else ""
                self.fail(
                    "cluster.apiserver_vip",
                    f"missing, and the description has lb hosts ({listed})",
                    f"add a free address of the lb hosts' rack subnet {rack.subnet} under cluster{example}; "
                    "keepalived holds it on one lb host at a time",
                )
            return
        if len(by_rack) > 1 or rack.subnet is None:
            return
        subnet = rack.network
        if vip not in subnet:
            self.fail(
                "cluster.apiserver_vip",
                f"{vip} is outside rack {rack.name}'s subnet {subnet}, where the lb hosts are ({listed})",
                f"use a free address in {subnet}: a VRRP VIP lives on the lb hosts' L2 segment",
            )
        elif vip in (subnet.network_address, subnet.broadcast_address):
            kind = "network" if vip == subnet.network_address else "broadcast"
            self.fail(
                "cluster.apiserver_vip",
                f"{vip} is the {kind} address of {subnet}",
                f"use a free host address in {subnet}",
            )

    # -- BGP with the ToRs (Calico): AS numbers, uplinks, room for every node's block

    def bgp_checks(self, desc: IdcDescription, pod, service, fixed) -> None:
        racks = list(desc.iter_racks())
        for rack in racks:
            if desc.node_as is not None and rack.tor_as == desc.node_as:
                # iBGP would need a full mesh or route reflectors, and the ToR would re-announce nothing
                self.fail(
                    f"{self.paths[id(rack)]}.tor.as",
                    f"AS {rack.tor_as} is cluster.node_as",
                    "give the ToR its own AS: servers and ToR peer over eBGP (all servers share node_as, every ToR has another)",
                )
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
                self.fail(
                    f"{path}.address",
                    f"{iface.ip} is already the uplink address of {seen[str(iface.ip)]}",
                    "give every ToR its own address on the uplink segment",
                )
            else:
                seen[str(iface.ip)] = path
            if desc.node_as is not None and rack.tor_uplink["as"] == desc.node_as:
                self.fail(
                    f"{path}.as",
                    f"AS {desc.node_as} is cluster.node_as",
                    "use the spine's own AS: a spine in node_as would drop every pod route as an AS-path loop",
                )
            for where, net in networks:
                if net is not None and net.version == iface.version and iface.network.overlaps(net):
                    self.fail(
                        f"{path}.address",
                        f"the uplink network {iface.network} overlaps {where} {net}",
                        "use a separate segment between ToRs and spine",
                    )
        self.fabric(racks, seen)

    def fabric(self, racks: list[Rack], uplink_addresses: dict[str, str]) -> None:
        """The uplinks against each other: a spine has one AS and one segment; the ToRs behind it differ in AS."""
        linked = [rack for rack in racks if rack.tor_uplink]
        if not linked:
            return
        path_of = {id(rack): f"{self.paths[id(rack)]}.tor.uplink" for rack in linked}
        spines: dict[str, tuple[str, int, object]] = {}
        segments: dict[object, str] = {}
        tor_ases = {rack.tor_as: rack for rack in racks if rack.tor_as is not None}
        for rack in linked:
            path = path_of[id(rack)]
            uplink = rack.tor_uplink
            iface = ipaddress.ip_interface(uplink["address"])
            net, peer, spine_as = iface.network, uplink["peer"], uplink["as"]
            if peer in uplink_addresses:
                self.fail(
                    f"{path}.peer",
                    f"{peer} is the uplink address of the ToR at {uplink_addresses[peer]}",
                    "use the spine router's address: a ToR cannot peer with another ToR's uplink address",
                )
            known = spines.get(peer)
            if known is None:
                spines[peer] = (path, spine_as, net)
            else:
                first, first_as, first_net = known
                if spine_as != first_as:
                    self.fail(
                        f"{path}.as",
                        f"AS {spine_as} for spine {peer}, but {first} gives that spine AS {first_as}",
                        f"one router has one AS: use as: {first_as} on every uplink to {peer}, or the spine's "
                        "real AS on all of them",
                    )
            # one segment written with two prefixes: the ToRs disagree on who is on-link
            clash = next(
                (other for other in segments if other != net and other.version == net.version and other.overlaps(net)),
                None,
            )
            if clash is not None:
                self.fail(
                    f"{path}.address",
                    f"the uplink network {net} overlaps {clash} of {segments[clash]}",
                    f"one segment has one prefix: write it the same on every ToR (e.g. {iface.ip}/{clash.prefixlen}), "
                    "or use segments that do not overlap",
                )
            segments.setdefault(net, path)
            owner = tor_ases.get(spine_as)
            if owner is not None and owner is not rack:
                self.fail(
                    f"{path}.as",
                    f"AS {spine_as} is the AS of ToR {owner.tor_name} ({self.paths[id(owner)]}.tor.as)",
                    "give the spine an AS no ToR has: the spine drops every route from a ToR in its own AS "
                    "as an AS-path loop",
                )
        by_as: dict[int, str] = {}
        for rack in linked:
            if rack.tor_as is None:
                continue
            path = f"{self.paths[id(rack)]}.tor.as"
            if rack.tor_as in by_as:
                self.fail(
                    path,
                    f"AS {rack.tor_as} is also the AS of {by_as[rack.tor_as]}, and both ToRs have an uplink",
                    "give every ToR with an uplink its own AS: a ToR drops the routes of another rack in its AS as "
                    "an AS-path loop (no allowas-in), so the two racks' pods cannot reach each other",
                )
            else:
                by_as[rack.tor_as] = path

    def pod_capacity(self, desc: IdcDescription, pod, fixed) -> None:
        workers = [host for host in desc.iter_hosts() if "worker" in host.roles]
        size = desc.pod_block_size
        blocks = block_count(pod_pools(pod, fixed), size)
        if len(workers) <= blocks:
            return
        minus = f" minus fixed_ip_cidr {fixed}" if fixed is not None else ""
        fixed_blocks = 2 ** (size - fixed.prefixlen) if fixed is not None else 0
        prefix = size - (len(workers) + fixed_blocks - 1).bit_length()
        self.fail(
            "cluster.pod_cidr",
            f"{pod}{minus} holds {blocks} blocks of /{size} for {len(workers)} worker nodes",
            f"use a pod_cidr of /{prefix} or larger, a larger pod_block_size (smaller blocks, e.g. {min(size + 1, 32)})"
            f"{' or a smaller fixed_ip_cidr' if fixed is not None else ''}; "
            "Calico gives every node at least one block",
        )
