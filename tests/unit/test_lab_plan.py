"""The lab's plan (lab/idclab/plan.py): what an IDC description makes, decided without podman."""

import copy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))

from idclab import cli  # noqa: E402
from idclab.common import LabError  # noqa: E402
from idclab.fabric import Fabric  # noqa: E402
from idclab.lifecycle import Lab  # noqa: E402
from idclab.plan import LabPlan, egress_log_prefix  # noqa: E402
from idclab.runner import Runner  # noqa: E402


def rack(name, octet, hosts, uplink=True, tor_as=None):
    r = {
        "name": name,
        "subnet": f"10.9.{octet}.0/24",
        "gateway": f"10.9.{octet}.1",
        "tor": {"name": f"tor-{name}", "as": tor_as or 65100 + octet, "peer": f"10.9.{octet}.254"},
        "hosts": [
            {"name": h, "address": f"10.9.{octet}.{11 + i}", "roles": roles, "size": {"cpu": 4, "memory_gib": 16}}
            for i, (h, roles) in enumerate(hosts)
        ],
    }
    if uplink:
        r["tor"]["uplink"] = {"address": f"10.9.0.{10 + octet}/24", "peer": "10.9.0.1", "as": 65000}
    return r


def description(**lab):
    return {
        "plugin": "idcloud.platform.idc",
        "cluster": {"name": "tc", "pod_cidr": "10.19.0.0/18", "service_cidr": "10.19.64.0/20", "node_as": 64512},
        "vars": {"idcloud_registry": "10.9.1.250:5000"},
        "lab": {"name": "tl", "mirror": {"rack": "r1", "address": "10.9.1.250"}, **lab},
        "rooms": [
            {
                "name": "room",
                "racks": [
                    rack("r1", 1, [("cp1", ["etcd", "control_plane"]), ("w1", ["worker"])]),
                    rack("r2", 2, [("cp2", ["etcd", "control_plane"])]),
                    rack("r3", 3, [("cp3", ["etcd", "control_plane"])]),
                ],
            }
        ],
    }


def plan(data=None):
    return LabPlan.from_data(data or description(), "/x/idc.yml")


def error(data):
    with pytest.raises(LabError) as exc:
        plan(data)
    return str(exc.value)


# --- networks and containers --------------------------------------------------------
def test_one_network_per_rack_then_the_internal_spine_segment_with_the_highest_free_address():
    nets = plan().networks
    assert [(n.name, n.subnet, n.gateway, n.internal) for n in nets] == [
        ("tl-r1", "10.9.1.0/24", "10.9.1.1", False),
        ("tl-r2", "10.9.2.0/24", "10.9.2.1", False),
        ("tl-r3", "10.9.3.0/24", "10.9.3.1", False),
        ("tl-spine", "10.9.0.0/24", "10.9.0.254", True),
    ]


def test_no_uplinks_no_spine():
    data = description()
    for r in data["rooms"][0]["racks"]:
        del r["tor"]["uplink"]
    p = plan(data)
    assert p.spine is None
    assert [n.name for n in p.networks] == ["tl-r1", "tl-r2", "tl-r3"]
    assert "tl-spine" not in [c.name for c in p.containers]


def test_containers_in_creation_order_with_names_addresses_networks_and_volumes():
    got = [(c.kind, c.name, c.hostname, c.address, c.network, c.volume) for c in plan().containers]
    assert got == [
        ("tor", "tl-tor-r1", "tor-r1", "10.9.1.254", "tl-r1", None),
        ("host", "tl-cp1", "cp1", "10.9.1.11", "tl-r1", "tl-cp1-containerd"),
        ("host", "tl-w1", "w1", "10.9.1.12", "tl-r1", "tl-w1-containerd"),
        ("tor", "tl-tor-r2", "tor-r2", "10.9.2.254", "tl-r2", None),
        ("host", "tl-cp2", "cp2", "10.9.2.11", "tl-r2", "tl-cp2-containerd"),
        ("tor", "tl-tor-r3", "tor-r3", "10.9.3.254", "tl-r3", None),
        ("host", "tl-cp3", "cp3", "10.9.3.11", "tl-r3", "tl-cp3-containerd"),
        ("mirror", "tl-mirror", "mirror", "10.9.1.250", "tl-r1", None),
        ("spine", "tl-spine", "spine", "10.9.0.1", "tl-spine", None),
    ]


def test_lab_name_defaults_to_the_cluster_name():
    data = description()
    del data["lab"]["name"]
    p = plan(data)
    assert p.name == "tc" and p.containers[0].name == "tc-tor-r1"


def test_run_args_of_a_router_a_host_and_the_mirror():
    p = plan()
    tor = p.run_args(p.container("tor-r1"))
    assert tor[:14] == [
        "run",
        "-d",
        "--name",
        "tl-tor-r1",
        "--hostname",
        "tor-r1",
        "--network",
        "tl-r1",
        "--ip",
        "10.9.1.254",
        "--label",
        "idcloud.lab=tl",
        "--label",
        "idcloud.lab.kind=tor",
    ]
    assert tor[-2:] == ["localhost/idcloud-tor:bookworm", "/sbin/init"]
    assert "--privileged" not in tor and "--sysctl" in tor and "net.ipv4.ip_forward=1" in tor
    assert [tor[i + 1] for i, a in enumerate(tor) if a == "--cap-add"] == [
        "NET_ADMIN",
        "NET_RAW",
        "NET_BROADCAST",
        "SYS_ADMIN",
    ]
    host = p.run_args(p.container("cp1"))
    assert "--privileged" in host and "tl-cp1-containerd:/var/lib/containerd:suid,dev" in host
    assert host[-2:] == ["localhost/idcloud-node:bookworm", "/sbin/init"]
    # hosts resolve through the lab's IDC resolver with its zone as their search domain
    assert host[host.index("--dns") + 1] == "10.9.1.250" and host[host.index("--dns-search") + 1] == "tl.idc"
    mirror = p.run_args(p.container("mirror"))
    assert "--dns" not in mirror and "--dns" not in tor
    assert mirror[-2:] == ["localhost/idcloud-mirror:bookworm", "/sbin/init"]
    assert any(a.endswith("/artifacts:/srv/mirror:ro") for a in mirror)


def test_what_an_older_container_lacks():
    p = plan()
    host = p.container("cp1")
    assert p.missing_in(host, "host", "enabled", ["tl-cp1-containerd:/var/lib/containerd"]) == []
    assert p.missing_in(host, "private", "disabled", []) == [
        "the host cgroup namespace (it has a private one, which breaks systemd on cgroup v1)",
        "the cgroup path fix (idcloud-lab-cgroups.service)",
        "its containerd volume at /var/lib/containerd",
    ]
    assert p.missing_in(p.container("mirror"), "host", "disabled", []) == []


# --- routes -------------------------------------------------------------------------
def test_pod_route_unit_points_the_pod_cidr_at_the_racks_tor():
    p = plan()
    unit = p.pod_route_unit(p.container("cp2").rack)
    assert "ExecStart=/sbin/ip route replace 10.19.0.0/18 via 10.9.2.254\n" in unit
    assert "ExecStop=-/sbin/ip route del 10.19.0.0/18 via 10.9.2.254\n" in unit


def test_uplinks_and_what_a_recabled_container_keeps():
    p = plan()
    assert p.uplinks() == [("tl-tor-r1", "10.9.0.11"), ("tl-tor-r2", "10.9.0.12"), ("tl-tor-r3", "10.9.0.13")]
    assert p.recable_keeps(p.container("tor-r1")) == "tl-spine"
    assert p.recable_keeps(p.container("spine")) is None


# --- iptables -------------------------------------------------------------------------
def test_nat_exemptions_rack_to_rack_and_to_pods():
    rules = plan().nat_exemptions()
    tail = ["-m", "comment", "--comment", "idcloud-lab:tl", "-j", "ACCEPT"]
    assert ["-s", "10.9.1.0/24", "-d", "10.9.2.0/24", *tail] in rules
    assert ["-s", "10.9.1.0/24", "-d", "10.9.1.0/24", *tail] not in rules
    assert ["-s", "10.9.0.0/24", "-d", "10.19.0.0/18", *tail] in rules  # the spine segment to pods
    assert len(rules) == 3 * 2 + 4


def test_pod_forward_rules_both_ways():
    assert plan().pod_forward_rules() == [
        [flag, "10.19.0.0/18", "-m", "comment", "--comment", "idcloud-lab:tl", "-j", "ACCEPT"] for flag in ("-s", "-d")
    ]


def test_egress_rules_return_on_the_labs_bridges_let_the_mirror_out_and_log_then_drop():
    p = plan()
    chains, jumps = p.egress_rules({"tl-r1": "podman1", "tl-spine": "podman4"})
    tag = ["-m", "comment", "--comment", "idcloud-lab:tl"]
    out, inp = chains["IDCLOUD-OUT-tl"], chains["IDCLOUD-IN-tl"]
    assert out[:3] == [
        ["-o", "podman1", *tag, "-j", "RETURN"],
        ["-o", "podman4", *tag, "-j", "RETURN"],
        ["-s", "10.9.1.250/32", "-p", "tcp", "-m", "multiport", "--dports", "80,443", *tag, "-j", "RETURN"],
    ]
    assert [
        "-s",
        "10.9.1.250/32",
        "-d",
        "10.9.1.1/32",
        "-p",
        "udp",
        "-m",
        "udp",
        "--dport",
        "53",
        *tag,
        "-j",
        "RETURN",
    ] in inp
    for rules in (out, inp):
        assert rules[-2][-4:] == ["-j", "LOG", "--log-prefix", "idcloud-egress tl: "]
        assert rules[-1] == [*tag, "-j", "DROP"]
    assert jumps == [
        ("FORWARD", ["-i", "podman1", *tag, "-j", "IDCLOUD-OUT-tl"]),
        ("FORWARD", ["-i", "podman4", *tag, "-j", "IDCLOUD-OUT-tl"]),
        ("INPUT", ["-i", "podman1", *tag, "-j", "IDCLOUD-IN-tl"]),
        ("INPUT", ["-i", "podman4", *tag, "-j", "IDCLOUD-IN-tl"]),
    ]


def test_without_a_mirror_nothing_but_replies_gets_out_and_apt_has_no_proxy():
    data = description()
    del data["lab"]["mirror"]
    p = plan(data)
    chains, _ = p.egress_rules({"tl-r1": "podman1"})
    assert len(chains["IDCLOUD-OUT-tl"]) == 3 and len(chains["IDCLOUD-IN-tl"]) == 3
    assert p.registry is None and p.apt_proxy_conf() is None
    assert "tl-mirror" not in [c.name for c in p.containers]


def test_long_lab_names_fit_iptables_chain_and_log_prefix_limits():
    data = description(name="a-very-long-lab-name-for-testing")
    p = plan(data)
    assert all(len(chain) <= 28 for chain in p.egress_chains())
    assert p.egress_chains() != plan(description(name="a-very-long-lab-name-for-testing2")).egress_chains()
    assert len(egress_log_prefix(p.name)) <= 29
    assert egress_log_prefix("short") == "idcloud-egress short: "


# --- FRR ------------------------------------------------------------------------------
def test_every_tor_and_the_spine_get_a_configuration():
    routers = dict(plan().router_configs())
    assert list(routers) == ["tl-tor-r1", "tl-tor-r2", "tl-tor-r3", "tl-spine"]
    assert (
        "router bgp 65101" in routers["tl-tor-r1"] and "neighbor 10.9.1.12 peer-group SERVERS" in routers["tl-tor-r1"]
    )
    spine = routers["tl-spine"]
    assert spine.startswith("! the lab's spine router, made by lab/lab\nfrr defaults datacenter\n")
    assert " neighbor 10.9.0.11 remote-as 65101\n neighbor 10.9.0.11 description ToR of rack r1\n" in spine
    assert spine.index("neighbor 10.9.0.11 activate") < spine.index("neighbor 10.9.0.13 activate")
    assert spine.endswith(" exit-address-family\nexit\n!\n")


def test_a_rack_without_hosts_still_gets_its_tor_configuration():
    data = description()
    data["rooms"][0]["racks"].append(rack("r4", 4, []))
    routers = dict(plan(data).router_configs())
    assert "router bgp 65104" in routers["tl-tor-r4"]
    assert "neighbor 10.9.0.1 remote-as 65000" in routers["tl-tor-r4"]


def test_mirror_files():
    p = plan()
    assert "--bind 10.9.1.250 --directory /srv/mirror\n" in p.mirror_unit()
    assert p.apt_proxy_conf() == 'Acquire::http::Proxy "http://10.9.1.250:3142/";\n'
    assert p.registry == "10.9.1.250:5000"
    assert plan(description(mirror={"rack": "r1", "address": "10.9.1.250", "registry": False})).registry is None


def test_mirror_resolver_answers_only_the_labs_zone_with_every_host_tor_and_the_mirror():
    p = plan()
    assert p.dns_zone() == "tl.idc"
    assert p.dns_zonefile().splitlines() == [
        "$ORIGIN tl.idc.",
        "$TTL 60",
        "@ IN SOA mirror.tl.idc. hostmaster.tl.idc. 1 3600 600 86400 60",
        "@ IN NS mirror.tl.idc.",
        "tor-r1 IN A 10.9.1.254",
        "cp1 IN A 10.9.1.11",
        "w1 IN A 10.9.1.12",
        "tor-r2 IN A 10.9.2.254",
        "cp2 IN A 10.9.2.11",
        "tor-r3 IN A 10.9.3.254",
        "cp3 IN A 10.9.3.11",
        "mirror IN A 10.9.1.250",
    ]
    corefile = p.dns_corefile()
    # one server block, for the zone only, on the mirror's address, authoritative (NXDOMAIN
    # for a name no host has); nothing forwarded
    assert corefile.count("{\n") == 1 and "tl.idc:53 {" in corefile
    assert "bind 10.9.1.250" in corefile and "file /etc/idcloud-dns/zone tl.idc" in corefile
    assert "forward " not in corefile and "resolv.conf" not in corefile
    assert (
        "ExecStart=/srv/mirror/coredns/v1.15.0/bin/linux/amd64/coredns -conf /etc/idcloud-dns/Corefile\n"
        in p.dns_unit("v1.15.0")
    )


# --- errors: what stopped `up` with sys.exit() now raises LabError with the fix --------
def test_an_invalid_description_names_the_file():
    data = description()
    data["cluster"]["pod_cidr"] = "nonsense"
    assert error(data).startswith("/x/idc.yml is not a valid IDC description:\n")


def test_mirror_in_an_unknown_rack():
    msg = error(description(mirror={"rack": "r9", "address": "10.9.1.250"}))
    assert msg == "lab.mirror.rack: 'r9' is not a rack of this description; fix: use one of r1, r2, r3"


@pytest.mark.parametrize("address", ["10.9.1.11", "10.9.1.1", "10.9.1.254"])
def test_mirror_on_an_address_already_used(address):
    msg = error(description(mirror={"rack": "r1", "address": address}))
    assert msg == (
        f"lab.mirror.address: {address} is already used in rack r1; fix: pick a free address in the rack subnet"
    )


def test_idcloud_registry_that_is_not_the_mirrors():
    data = description()
    data["vars"]["idcloud_registry"] = "10.9.1.99:5000"
    assert error(data) == (
        "vars.idcloud_registry: '10.9.1.99:5000' is not the lab's registry; "
        'fix: set it to "10.9.1.250:5000" (lab.mirror.address, port 5000)'
    )
    data["vars"]["idcloud_registry"] = "{{ some_var }}"  # a template is not checked
    assert plan(data).registry == "10.9.1.250:5000"


def test_a_rack_named_spine():
    data = description()
    data["rooms"][0]["racks"][2]["name"] = "spine"
    assert error(data) == "rack name 'spine' is the lab's spine network; fix: rename the rack"


def test_uplinks_that_do_not_share_one_spine():
    data = description()
    # a second spine on the segment is a valid description, but the lab builds only one
    data["rooms"][0]["racks"][1]["tor"]["uplink"].update(peer="10.9.0.2", **{"as": 65001})
    msg = error(data)
    assert msg.startswith("the lab has one spine: every tor.uplink must share one segment, one peer and one AS (")
    assert "r2: 10.9.0.12/24 -> 10.9.0.2 AS 65001" in msg
    assert msg.endswith("fix: give every rack's uplink an address in one network, with the same peer and as")


def test_an_uplink_segment_with_no_address_left_for_the_bridge():
    data = copy.deepcopy(description())
    racks = data["rooms"][0]["racks"]
    for r in racks[1:]:
        del r["tor"]["uplink"]
    racks[0]["tor"]["uplink"] = {"address": "10.9.0.1/30", "peer": "10.9.0.2", "as": 65000}  # 2 addresses
    assert error(data) == (
        "the uplink segment 10.9.0.0/30 has no free address left for the VM's bridge; fix: use a larger segment"
    )


# --- lifecycle and CLI without podman ---------------------------------------------------
class NoPodman:
    """A runner for a lab that does not exist: every object is absent."""

    def exists(self, kind, name):
        return False

    def read_kmsg(self):
        return [
            (1, "idcloud-egress tl: IN=podman1 OUT=eth0 DST=1.1.1.1"),
            (2, "idcloud-egress other: x"),
            (3, "unrelated"),
        ]


def test_status_of_an_absent_lab_lists_every_container_and_fails(capsys):
    assert Lab(plan(), NoPodman()).status() == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "CONTAINER  KIND    RACK   ADDRESS          STATE     SYSTEMD"
    assert lines[1] == "tl-tor-r1  tor     r1     10.9.1.254       absent    -"
    assert lines[-1] == "tl-spine   spine   spine  10.9.0.1         absent    -"
    assert len(lines) == 1 + len(plan().containers)


def test_egress_log_keeps_this_labs_lines_only():
    assert Lab(plan(), NoPodman()).egress_log() == ["idcloud-egress tl: IN=podman1 OUT=eth0 DST=1.1.1.1"]


def test_cli_turns_a_lab_error_into_its_message_and_exit_code_1(tmp_path, capsys):
    bad = tmp_path / "idc.yml"
    data = description(mirror={"rack": "r9", "address": "10.9.1.250"})
    import yaml

    bad.write_text(yaml.safe_dump(data))
    assert cli.main(["--idc", str(bad), "status"]) == 1
    assert capsys.readouterr().err == (
        "lab.mirror.rack: 'r9' is not a rack of this description; fix: use one of r1, r2, r3\n"
    )
    assert cli.main(["--idc", str(tmp_path / "missing.yml"), "down"]) == 1
    assert "fix: pass an IDC description with --idc" in capsys.readouterr().err


def test_only_the_runner_runs_commands_and_only_description_imports_the_collection():
    package = REPO / "lab" / "idclab"
    for path in package.glob("*.py"):
        source = path.read_text()
        runs = any(f"import {m}" in source for m in ("subprocess", "socket", "urllib", "ssl"))
        assert runs == (path.name == "runner.py"), f"{path.name}: commands and sockets belong in runner.py"
        collection = "plugins.module_utils" in source
        assert collection == (path.name == "description.py"), f"{path.name}: import the collection via description.py"
        assert "sys.exit(" not in source, f"{path.name}: raise LabError; only cli.py ends the program"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "is empty"),
        ("# nothing but a comment\n", "is empty"),
        ("plugin: idcloud.platform.idc\ncluster: {name: a}\ncluster: {name: b}\n", "cluster"),
    ],
)
def test_lab_refuses_what_the_inventory_plugin_refuses(tmp_path, text, expected):
    bad = tmp_path / "idc.yml"
    bad.write_text(text)
    from idclab.lifecycle import load_plan

    with pytest.raises(LabError) as info:
        load_plan(str(bad))
    assert str(info.value).startswith(f"{bad} is not a valid IDC description:\n- ")
    assert expected in str(info.value)


def test_lab_names_a_yaml_syntax_error(tmp_path):
    bad = tmp_path / "idc.yml"
    bad.write_text("cluster: [unclosed\n")
    from idclab.lifecycle import load_plan

    with pytest.raises(LabError, match=r"(?s)is not YAML: .*line 1, column 10.*fix: correct the line it names"):
        load_plan(str(bad))


# -- a killed run's containment jumps on a bridge this lab now owns --------------------------


class FakeIptables:
    """The mangle table's FORWARD and INPUT rules as `iptables -S` prints them; -D recorded."""

    def __init__(self, lines):
        self.lines = lines
        self.deleted = []

    def iptables(self, table, *args, check=True):
        if args[0] == "-S":
            out = "\n".join(line for line in self.lines if line.split()[1] == args[1])
            return type("Proc", (), {"stdout": out, "returncode": 0})()
        if args[0] == "-D":
            self.deleted.append(list(args[1:]))
        return type("Proc", (), {"stdout": "", "returncode": 0})()

    lab_rules = Runner.lab_rules


def test_a_vanished_labs_jump_on_one_of_our_bridges_is_removed():
    fake = FakeIptables(
        [
            '-A FORWARD -i podman1 -m comment --comment "idcloud-lab:mol-etcd" -j IDCLOUD-OUT-mol-etcd',
            '-A FORWARD -i podman9 -m comment --comment "idcloud-lab:other" -j IDCLOUD-OUT-other',
            '-A FORWARD -i podman2 -m comment --comment "idcloud-lab:idlab" -j IDCLOUD-OUT-idlab',
            '-A INPUT -i podman2 -m comment --comment "idcloud-lab:mol-etcd" -j IDCLOUD-IN-mol-etcd',
            '-A FORWARD -m comment --comment "netavark firewall plugin rules" -j NETAVARK_FORWARD',
        ]
    )
    plan = type("Plan", (), {"tag": "idcloud-lab:idlab"})()
    Fabric(plan, fake).drop_stale_jumps({"podman1", "podman2"})
    assert fake.deleted == [
        [
            "FORWARD",
            "-i",
            "podman1",
            "-m",
            "comment",
            "--comment",
            "idcloud-lab:mol-etcd",
            "-j",
            "IDCLOUD-OUT-mol-etcd",
        ],
        ["INPUT", "-i", "podman2", "-m", "comment", "--comment", "idcloud-lab:mol-etcd", "-j", "IDCLOUD-IN-mol-etcd"],
    ]
