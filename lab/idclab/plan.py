"""What an IDC description asks the lab to make: pure, no command runs here (tests: test_lab_plan.py).

Networks, containers with their names and addresses, the podman arguments that make them,
the iptables rules (NAT exemptions, pod FORWARD rules, egress containment), the FRR files of
the ToRs and the spine, and the files the lab writes into its containers. Every check that
stops `lab up` raises LabError naming the field, the value and the fix.
"""

import hashlib
import ipaddress
import os
from dataclasses import dataclass, field
from string import Template

from .common import LabError, cache_dir, lab_file
from .description import CalicoPlanError, IdcValidationError, parse_description, render_tor_frr, tor_frr_configs

NODE_IMAGE = "localhost/idcloud-node:bookworm"
TOR_IMAGE = "localhost/idcloud-tor:bookworm"
MIRROR_IMAGE = "localhost/idcloud-mirror:bookworm"
LABEL = "idcloud.lab"
KIND_LABEL = "idcloud.lab.kind"
SSH_KEY = cache_dir("lab", "ssh", "id_ed25519")
MIRROR_ROOT = cache_dir("artifacts")
REGISTRY_PORT = 5000
# The mirror's resolver (the lab's "IDC resolver"): CoreDNS from the artifacts, answering for
# <host>.<lab name>.idc and refusing every other name (the lab is air-gapped).
DNS_DOMAIN = "idc"
MIRROR_COREDNS = "/srv/mirror/coredns/{version}/bin/linux/amd64/coredns"
# Containment (see egress_rules): the mirror's apt-cacher-ng is the lab's only way to
# Debian packages, and the mirror may leave the lab on these ports only.
APT_CACHER_PORT = 3142
MIRROR_EGRESS_PORTS = "80,443"
APT_PROXY_PATH = "/etc/apt/apt.conf.d/00idcloud-lab-proxy"
EGRESS_LOG = "idcloud-egress "
# FRR's zebra and bgpd manage routes and raw sockets; zebra also needs SYS_ADMIN (netns).
TOR_CAPS = ["NET_ADMIN", "NET_RAW", "NET_BROADCAST", "SYS_ADMIN"]
# Routers forward, and see the two directions of a flow on different links (/proc/sys is
# read-only in an unprivileged container, so these are set when it is made).
ROUTER_SYSCTLS = ["net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]
SPINE = "spine"
ROUTER_KINDS = ("tor", "spine")
# Files `up` writes into every lab host (hosts.fix_cgroup_paths): path -> package data file
CGROUP_FILES = [
    ("/usr/local/sbin/idcloud-lab-cgroups", "idcloud-lab-cgroups"),
    ("/etc/systemd/system/idcloud-lab-cgroups.service", "idcloud-lab-cgroups.service"),
    ("/etc/systemd/system.conf.d/05-idcloud-lab-tasks.conf", "05-idcloud-lab-tasks.conf"),
]


def egress_log_prefix(lab_name):
    """The LOG prefix of a lab's dropped egress (the kernel takes at most 29 characters)."""
    prefix = f"{EGRESS_LOG}{lab_name}: "
    if len(prefix) <= 29:
        return prefix
    short = f"{lab_name[:5]}~{hashlib.sha256(lab_name.encode()).hexdigest()[:6]}"
    return f"{EGRESS_LOG}{short}: "


@dataclass(frozen=True)
class Spine:
    """The one spine the ToRs' uplinks peer with: a segment (network) and a router."""

    subnet: str
    gateway: str
    peer: str
    asn: int
    uplinks: dict = field(hash=False)
    name: str = SPINE
    tor_name: str = SPINE


@dataclass(frozen=True)
class Network:
    name: str
    rack: object  # a rack of the description, or the Spine
    internal: bool = False  # the spine segment: containers on it get no second default route

    @property
    def subnet(self):
        return self.rack.subnet

    @property
    def gateway(self):
        return self.rack.gateway


@dataclass(frozen=True)
class Container:
    kind: str  # tor, host, mirror or spine
    name: str
    hostname: str
    rack: object
    address: str
    network: str
    volume: str = None  # a host's containerd volume


class LabPlan:
    """The lab an IDC description implies. Build it with LabPlan.from_data(yaml data, path)."""

    def __init__(self, desc, lab=None, idcloud_registry=None, idc_path="idc.yml"):
        self.desc = desc
        self.idc_path = idc_path
        lab = lab or {}
        self.name = lab.get("name") or desc.cluster_name
        self.mirror = lab.get("mirror")
        # lab.mirror.registry: false leaves the registry out (scenarios that run no containers)
        wants_registry = bool(self.mirror) and self.mirror.get("registry", True) is not False
        self.registry = f"{self.mirror['address']}:{REGISTRY_PORT}" if wants_registry else None
        self._check_mirror(idcloud_registry)
        self.spine = self._spine()
        self.networks = self._networks()
        self.containers = self._containers()

    @classmethod
    def from_data(cls, data, idc_path):
        """From the YAML of an IDC description (the lab section and vars included)."""
        data = data or {}
        try:
            desc = parse_description(data)
        except IdcValidationError as exc:
            raise LabError(f"{idc_path} is not a valid IDC description:\n{exc}")
        return cls(desc, data.get("lab"), (data.get("vars") or {}).get("idcloud_registry"), idc_path)

    # --- checks ---------------------------------------------------------------------
    def _check_mirror(self, idcloud_registry):
        if not self.mirror:
            return
        racks = {r.name: r for r in self.desc.racks}
        rack = racks.get(self.mirror.get("rack"))
        if rack is None:
            raise LabError(
                f"lab.mirror.rack: {self.mirror.get('rack')!r} is not a rack of this description; "
                f"fix: use one of {', '.join(sorted(racks))}"
            )
        used = {h.address for h in rack.hosts} | {rack.gateway, rack.tor_peer}
        if self.mirror.get("address") in used:
            raise LabError(
                f"lab.mirror.address: {self.mirror['address']} is already used in rack {rack.name}; "
                "fix: pick a free address in the rack subnet"
            )
        if (
            self.registry
            and isinstance(idcloud_registry, str)
            and "{{" not in idcloud_registry
            and idcloud_registry != self.registry
        ):
            raise LabError(
                f"vars.idcloud_registry: {idcloud_registry!r} is not the lab's registry; "
                f'fix: set it to "{self.registry}" (lab.mirror.address, port {REGISTRY_PORT})'
            )

    def _spine(self):
        """The spine the ToRs' uplinks peer with: one segment, one router (or None without uplinks)."""
        uplinks = {r.name: r.tor_uplink for r in self.desc.racks if r.tor_uplink}
        if not uplinks:
            return None
        if any(r.name == SPINE for r in self.desc.racks):
            raise LabError(f"rack name {SPINE!r} is the lab's spine network; fix: rename the rack")
        nets = {str(ipaddress.ip_interface(u["address"]).network) for u in uplinks.values()}
        peers = {(u["peer"], u["as"]) for u in uplinks.values()}
        if len(nets) != 1 or len(peers) != 1:
            listed = "; ".join(f"{rack}: {u['address']} -> {u['peer']} AS {u['as']}" for rack, u in uplinks.items())
            raise LabError(
                "the lab has one spine: every tor.uplink must share one segment, one peer and one AS "
                f"({listed}); fix: give every rack's uplink an address in one network, with the same "
                "peer and as"
            )
        net = ipaddress.ip_network(nets.pop())
        peer, spine_as = peers.pop()
        used = {peer} | {str(ipaddress.ip_interface(u["address"]).ip) for u in uplinks.values()}
        # podman's bridge needs an address of its own on the segment: the highest free one
        gateway = next((str(a) for a in reversed(list(net.hosts())) if str(a) not in used), None)
        if gateway is None:
            raise LabError(
                f"the uplink segment {net} has no free address left for the VM's bridge; fix: use a larger segment"
            )
        return Spine(subnet=str(net), gateway=gateway, peer=peer, asn=spine_as, uplinks=uplinks)

    # --- naming: everything the lab makes is named <lab>-<thing> --------------------
    def net_name(self, rack):
        return f"{self.name}-{rack.name}"

    def ctr_name(self, short):
        return f"{self.name}-{short}"

    def volume_name(self, host):
        return f"{self.name}-{host}-containerd"

    @property
    def tag(self):
        """The comment every iptables rule of this lab carries."""
        return f"idcloud-lab:{self.name}"

    @property
    def state_dir(self):
        return cache_dir("lab", self.name)

    # --- what `up` makes, in creation order ---------------------------------------
    def _networks(self):
        nets = [Network(self.net_name(r), r) for r in self.desc.racks]
        if self.spine:
            nets.append(Network(self.net_name(self.spine), self.spine, internal=True))
        return nets

    def _containers(self):
        def ctr(kind, short, rack, address):
            volume = self.volume_name(short) if kind == "host" else None
            return Container(kind, self.ctr_name(short), short, rack, address, self.net_name(rack), volume)

        ctrs = []
        for rack in self.desc.racks:
            ctrs.append(ctr("tor", rack.tor_name, rack, rack.tor_peer))
            for host in rack.hosts:
                ctrs.append(ctr("host", host.name, rack, host.address))
        if self.mirror:
            rack = next(r for r in self.desc.racks if r.name == self.mirror["rack"])
            ctrs.append(ctr("mirror", "mirror", rack, self.mirror["address"]))
        if self.spine:
            ctrs.append(ctr("spine", SPINE, self.spine, self.spine.peer))
        return ctrs

    def container(self, short):
        """The planned container <lab>-<short>."""
        return next(c for c in self.containers if c.name == self.ctr_name(short))

    def run_args(self, ctr):
        """`podman run` arguments that make a container (the command, /sbin/init, included)."""
        args = [
            "run",
            "-d",
            "--name",
            ctr.name,
            "--hostname",
            ctr.hostname,
            "--network",
            ctr.network,
            "--ip",
            ctr.address,
            "--label",
            f"{LABEL}={self.name}",
            "--label",
            f"{KIND_LABEL}={ctr.kind}",
            "--systemd=always",
            "--stop-signal",
            "SIGRTMIN+3",
        ]
        if ctr.kind in ROUTER_KINDS:
            for cap in TOR_CAPS:
                args += ["--cap-add", cap]
            for sysctl in ROUTER_SYSCTLS:
                args += ["--sysctl", sysctl]
            args += [TOR_IMAGE]
        else:
            # Hosts run real services (etcd, containerd, kubelet) that need a full host
            # view. The host cgroup namespace (podman's default on cgroup v1) is kept on
            # purpose: with --cgroupns=private, podman 4.3 still mounts the whole
            # name=systemd hierarchy, so each host's systemd took the VM's root as its
            # own and the hosts' systemds removed each other's cgroups (seen: every
            # `podman exec` then failed). See files/idcloud-lab-cgroups for the cgroup paths.
            args += ["--privileged", "-v", f"{SSH_KEY}.pub:/root/.ssh/authorized_keys:ro"]
            if ctr.kind == "host" and self.mirror:
                # the IDC's resolver and search domain, as an IDC's hosts have them (not
                # podman's): kubelet passes the search domain on to every pod
                args += ["--dns", self.mirror["address"], "--dns-search", self.dns_zone()]
            if ctr.kind == "mirror":
                args += ["-v", f"{MIRROR_ROOT}:/srv/mirror:ro", MIRROR_IMAGE]
            else:
                # overlayfs snapshots cannot sit on the container's overlay rootfs; podman
                # mounts volumes nosuid,nodev unless told, a real host's disk is neither.
                args += ["-v", f"{ctr.volume}:/var/lib/containerd:suid,dev", NODE_IMAGE]
        return args + ["/sbin/init"]

    def missing_in(self, ctr, cgroup_mode, cgroup_fix_state, mounts):
        """What a container made by an older lab lacks that kubelet needs ([] if nothing).

        cgroup_mode: podman's HostConfig.CgroupMode; cgroup_fix_state: `systemctl is-enabled`
        of idcloud-lab-cgroups.service; mounts: ["<volume name>:<destination>", ...].
        """
        missing = []
        if cgroup_mode == "private":
            missing.append("the host cgroup namespace (it has a private one, which breaks systemd on cgroup v1)")
        if cgroup_fix_state != "enabled" and ctr.kind == "host":
            missing.append("the cgroup path fix (idcloud-lab-cgroups.service)")
        if ctr.kind == "host" and f"{ctr.volume}:/var/lib/containerd" not in mounts:
            missing.append("its containerd volume at /var/lib/containerd")
        return missing

    def recable_keeps(self, ctr):
        """The network a container keeps when it is re-cabled: a ToR's uplink is not its rack cable."""
        return self.net_name(self.spine) if self.spine and ctr.kind != "spine" else None

    def uplinks(self):
        """[(ToR container name, uplink address)] of the ToRs to connect to the spine segment."""
        return [
            (self.ctr_name(r.tor_name), str(ipaddress.ip_interface(r.tor_uplink["address"]).ip))
            for r in self.desc.racks
            if r.tor_uplink
        ]

    # --- iptables -------------------------------------------------------------------
    def nat_exemptions(self):
        """nat POSTROUTING rules that keep traffic between this lab's racks un-NATed.

        podman masquerades everything leaving a network, so a host in rack r1 would reach
        rack r2 as r1's gateway address. Racks in an IDC are routed, not NATed, and etcd
        checks a peer certificate's IP against the peer's real address, so the lab must
        route too: these rules accept rack-to-rack traffic before podman's masquerade.
        """
        tag = self.tag
        subnets = [r.subnet for r in self.desc.racks]
        rules = [
            ["-s", src, "-d", dst, "-m", "comment", "--comment", tag, "-j", "ACCEPT"]
            for src in subnets
            for dst in subnets
            if src != dst
        ]
        # a host's packets to a pod in another rack cross the ToRs and the spine with the
        # host's own address; they must arrive with it, as pods' replies do
        if self.spine:
            subnets = subnets + [self.spine.subnet]
        rules += [
            ["-s", src, "-d", self.desc.pod_cidr, "-m", "comment", "--comment", tag, "-j", "ACCEPT"] for src in subnets
        ]
        return rules

    def pod_forward_rules(self):
        """filter FORWARD rules that let bridged pod traffic through the VM's firewall.

        With net.bridge.bridge-nf-call-iptables=1 frames crossing a podman bridge go
        through the VM's FORWARD chain, where netavark accepts only its networks' subnets;
        pod addresses are in none of them, so a FORWARD policy of DROP (docker sets one)
        would drop every pod packet between a host and its ToR.
        """
        pod = self.desc.pod_cidr
        return [[flag, pod, "-m", "comment", "--comment", self.tag, "-j", "ACCEPT"] for flag in ("-s", "-d")]

    def egress_chains(self):
        """This lab's own mangle chains: (routed out of its networks, to the VM itself).

        Chain names take at most 28 characters; a long lab name is shortened with a hash.
        """

        def name(prefix):
            chain = f"{prefix}{self.name}"
            if len(chain) > 28:
                digest = hashlib.sha256(self.name.encode()).hexdigest()[:6]
                chain = f"{prefix}{self.name[: 28 - len(prefix) - 7]}-{digest}"
            return chain

        return name("IDCLOUD-OUT-"), name("IDCLOUD-IN-")

    def egress_rules(self, bridges):
        """{chain: [rule]} for this lab's two chains, in order, and [(built-in chain, jump)].

        bridges: {network: bridge interface on the VM} of this lab's networks.
        The lab's traffic enters the VM only through its bridges. In the mangle table
        (before filter, where netavark accepts its subnets, and a table netavark never
        touches, so no podman action can reorder it), each bridge jumps to the lab's
        chains:
          FORWARD: out through one of the lab's own bridges (bridged frames, pod traffic
            between a host and its ToR, rack to rack, spine) returns; the mirror may leave
            on tcp 80/443 (apt-cacher-ng to the Debian mirror); everything else (outside,
            another lab, pod and service addresses nobody in the lab answers, which the
            ToRs' and hosts' default routes hand to the VM) is logged and dropped.
          INPUT: replies to the VM's own connections (SSH, HTTP, pushes) return; the
            mirror may ask its rack gateway's DNS (aardvark) for the Debian mirror's
            name; everything else to the VM (DNS, any port) is logged and dropped.
        Matching the lab's bridges, never an address range, keeps two labs with the same
        pod CIDR apart: no rule of one lab can touch another lab's packets.
        """
        tag = ["-m", "comment", "--comment", self.tag]
        log_rule = [
            "-m",
            "limit",
            "--limit",
            "20/sec",
            "--limit-burst",
            "100",
            *tag,
            "-j",
            "LOG",
            "--log-prefix",
            egress_log_prefix(self.name),
        ]
        out_chain, in_chain = self.egress_chains()
        out = [["-o", bridge, *tag, "-j", "RETURN"] for bridge in bridges.values()]
        inp = [["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *tag, "-j", "RETURN"]]
        if self.mirror:
            mirror = self.mirror["address"]
            gateway = next(r.gateway for r in self.desc.racks if r.name == self.mirror["rack"])
            out.append(
                [
                    "-s",
                    f"{mirror}/32",
                    "-p",
                    "tcp",
                    "-m",
                    "multiport",
                    "--dports",
                    MIRROR_EGRESS_PORTS,
                    *tag,
                    "-j",
                    "RETURN",
                ]
            )
            for proto in ("udp", "tcp"):
                inp.append(
                    [
                        "-s",
                        f"{mirror}/32",
                        "-d",
                        f"{gateway}/32",
                        "-p",
                        proto,
                        "-m",
                        proto,
                        "--dport",
                        "53",
                        *tag,
                        "-j",
                        "RETURN",
                    ]
                )
        for rules in (out, inp):
            rules += [log_rule, [*tag, "-j", "DROP"]]
        jumps = [
            (builtin, ["-i", bridge, *tag, "-j", chain])
            for builtin, chain in (("FORWARD", out_chain), ("INPUT", in_chain))
            for bridge in bridges.values()
        ]
        return {out_chain: out, in_chain: inp}, jumps

    # --- FRR --------------------------------------------------------------------------
    def tor_configs(self):
        """Every ToR's FRR configuration: what the collection generates (tor_frr_configs).

        A rack without hosts is not in that output (the inventory knows no such rack); its
        ToR gets the same rendering with no servers, so its uplink still peers.
        """
        desc = self.desc
        try:
            configs = tor_frr_configs(desc)
            for rack in desc.racks:
                if rack.tor_name not in configs:
                    configs[rack.tor_name] = render_tor_frr(
                        rack.name,
                        rack.tor_name,
                        rack.tor_as,
                        rack.tor_peer,
                        desc.node_as,
                        [],
                        desc.pod_cidr,
                        fixed_ip_cidr=desc.fixed_ip_cidr,
                        service_cidr=desc.service_cidr,
                        advertise_service_cidr=desc.advertise_service_cidr,
                        uplink=rack.tor_uplink,
                        block_size=desc.pod_block_size,
                    )
        except CalicoPlanError as exc:
            raise LabError(f"{self.idc_path}: no ToR configuration:\n{exc}")
        return configs

    def router_configs(self):
        """[(container name, frr.conf)]: every ToR, then the spine."""
        configs = self.tor_configs()
        routers = [(self.ctr_name(r.tor_name), configs[r.tor_name]) for r in self.desc.racks]
        if self.spine:
            routers.append((self.ctr_name(SPINE), self.spine_config()))
        return routers

    def spine_config(self):
        """The spine: eBGP with every ToR's uplink, takes everything and passes it on (lab only)."""
        lines = [
            "! the lab's spine router, made by lab/lab",
            "frr defaults datacenter",
            f"hostname {SPINE}",
            "log syslog informational",
            "!",
            "route-map ALL permit 10",
            "exit",
            "!",
            f"router bgp {self.spine.asn}",
            f" bgp router-id {self.spine.peer}",
            " bgp log-neighbor-changes",
        ]
        racks = sorted(self.spine.uplinks.items(), key=lambda item: ipaddress.ip_interface(item[1]["address"]).ip)
        tor_as = {r.name: r.tor_as for r in self.desc.racks}
        for rack, uplink in racks:
            address = ipaddress.ip_interface(uplink["address"]).ip
            lines += [
                f" neighbor {address} remote-as {tor_as[rack]}",
                f" neighbor {address} description ToR of rack {rack}",
            ]
        lines += [" !", " address-family ipv4 unicast"]
        for _, uplink in racks:
            address = ipaddress.ip_interface(uplink["address"]).ip
            lines += [
                f"  neighbor {address} activate",
                f"  neighbor {address} route-map ALL in",
                f"  neighbor {address} route-map ALL out",
            ]
        return "\n".join(lines + [" exit-address-family", "exit", "!", ""])

    # --- files written into the lab's containers -----------------------------------
    def pod_route_unit(self, rack):
        """idcloud-lab-pod-route.service of a host in rack: the pod CIDR via the rack's ToR."""
        return Template(lab_file("idcloud-lab-pod-route.service")).substitute(
            pod_cidr=self.desc.pod_cidr, tor_peer=rack.tor_peer
        )

    def apt_proxy_conf(self):
        """apt's proxy in every lab container but the mirror: the mirror's apt-cacher-ng (None without one)."""
        if not self.mirror:
            return None
        return f'Acquire::http::Proxy "http://{self.mirror["address"]}:{APT_CACHER_PORT}/";\n'

    def mirror_unit(self):
        """idcloud-mirror.service: the artifact mirror, HTTP on port 80 of the mirror's address."""
        return Template(lab_file("idcloud-mirror.service")).substitute(address=self.mirror["address"])

    def dns_zone(self):
        """The zone the mirror's resolver answers for: <lab name>.idc."""
        return f"{self.name}.{DNS_DOMAIN}"

    def dns_zonefile(self):
        """The zone, as a zone file: SOA and NS (the mirror), then an A record for every host of
        the description, each ToR and the mirror. Being authoritative for it, the resolver
        answers NXDOMAIN for a name of the zone that is not here."""
        zone = self.dns_zone()
        lines = [
            f"$ORIGIN {zone}.",
            "$TTL 60",
            f"@ IN SOA mirror.{zone}. hostmaster.{zone}. 1 3600 600 86400 60",
            f"@ IN NS mirror.{zone}.",
        ]
        lines += [f"{c.hostname} IN A {c.address}" for c in self.containers if c.kind in ("host", "tor", "mirror")]
        return "\n".join(lines) + "\n"

    def dns_corefile(self):
        """The mirror resolver's Corefile: one server block for the zone, bound to the mirror's
        address; a query for any other name matches no block and is refused."""
        return Template(lab_file("mirror-dns.Corefile")).substitute(
            zone=self.dns_zone(), address=self.mirror["address"]
        )

    def dns_unit(self, coredns_version):
        """idcloud-dns.service: the artifacts' CoreDNS binary (mounted from the mirror's tree)."""
        return Template(lab_file("idcloud-dns.service")).substitute(
            coredns=MIRROR_COREDNS.format(version=coredns_version)
        )

    def registry_ca(self):
        """The cluster CA at its default path, which lab/registry.yml signs the registry's certificate with."""
        return os.path.join(os.path.expanduser("~"), ".idcloud", self.desc.cluster_name, "pki", "kubernetes", "ca.crt")
