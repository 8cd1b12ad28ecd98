"""The lab tool: what `up` makes is a small IDC, and `down` removes exactly that."""

import copy
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from lab_helpers import ENV, REPO, egress_log, kmsg_mark, lab, lab_env, log_fields, podman_exec, write_inventory

sys.path.insert(0, os.path.join(REPO, "collections"))
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import parse_description  # noqa: E402
from ansible_collections.idcloud.platform.plugins.module_utils.tor.tor_frr_config import tor_frr_configs  # noqa: E402

LAB = "it-lab"
DESC = {
    "plugin": "idcloud.platform.idc",
    # the lab tool under test builds no cluster: no control plane (cluster.partial)
    "cluster": {
        "name": LAB,
        "pod_cidr": "10.214.128.0/18",
        "service_cidr": "10.214.192.0/20",
        "node_as": 64512,
        "partial": True,
    },
    "lab": {"name": LAB, "mirror": {"rack": "a", "address": "10.214.1.250"}},
    "rooms": [
        {
            "name": "r",
            "racks": [
                {
                    "name": "a",
                    "subnet": "10.214.1.0/24",
                    "gateway": "10.214.1.1",
                    "tor": {
                        "as": 65401,
                        "peer": "10.214.1.254",
                        "uplink": {"address": "10.214.0.11/24", "peer": "10.214.0.1", "as": 65400},
                    },
                    "hosts": [
                        {"name": "ha", "address": "10.214.1.11", "roles": ["etcd"], "size": {"cpu": 2, "memory_gib": 4}}
                    ],
                },
                {
                    "name": "b",
                    "subnet": "10.214.2.0/24",
                    "gateway": "10.214.2.1",
                    "tor": {
                        "as": 65402,
                        "peer": "10.214.2.254",
                        "uplink": {"address": "10.214.0.12/24", "peer": "10.214.0.1", "as": 65400},
                    },
                    "hosts": [
                        {
                            "name": "hb",
                            "address": "10.214.2.11",
                            "roles": ["worker"],
                            "size": {"cpu": 2, "memory_gib": 4},
                        }
                    ],
                },
            ],
        }
    ],
}

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


def podman(*args):
    return subprocess.run(["podman", *args], env=ENV, text=True, capture_output=True)


def lab_objects():
    ctrs = podman("ps", "-a", "--filter", f"label=idcloud.lab={LAB}", "--format", "{{.Names}}").stdout.split()
    nets = [n for n in podman("network", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(f"{LAB}-")]
    vols = podman("volume", "ls", "--filter", f"label=idcloud.lab={LAB}", "--format", "{{.Name}}").stdout.split()
    return sorted(ctrs), sorted(nets), sorted(vols)


def nat_rules():
    out = subprocess.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], text=True, capture_output=True).stdout
    return [line for line in out.splitlines() if f"idcloud-lab:{LAB}" in line]


def forward_rules():
    out = subprocess.run(["iptables", "-S", "FORWARD"], text=True, capture_output=True).stdout
    return [line for line in out.splitlines() if f"idcloud-lab:{LAB}" in line]


def containment_rules():
    """This lab's rules in the mangle table: its jumps and its own chains' rules."""
    out = subprocess.run(["iptables", "-t", "mangle", "-S"], text=True, capture_output=True, check=True).stdout
    return [line for line in out.splitlines() if f'--comment "idcloud-lab:{LAB}"' in line]


def bridge(net):
    return json.loads(podman("network", "inspect", net).stdout)[0]["network_interface"]


# Probes that must not leave the lab: TEST-NET-2 (TEST-NET-1, 192.0.2.0/24, is this VM's
# own uplink here), an unanswered service address (the cluster DNS's), a pod address no
# node has (the ToR hands it to its default route: the VM), and the VM's DNS on the
# rack gateway (a payload that is no DNS query). (address, port) of each, UDP.
# logged at the VM: the outside, a service address (no network_guard on these hosts: no
# playbook runs here), the VM's gateway address
PROBES = [("198.51.100.1", 9), ("10.214.192.10", 53), ("10.214.1.1", 53)]
# a pod address that no block claims: the host's pod route takes it to its ToR, whose null
# route for the pod network ends it there, so it never reaches the VM
POD_PROBE = ("10.214.130.1", 9)


def probe(container, address, port):
    podman_exec(
        container,
        "python3",
        "-c",
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        f"s.sendto(b'idcloud-lab containment probe',({address!r},{port}))",
    )


def check_containment():
    """The drop rules are in place: the lab's bridges jump to its chains, which end in LOG, DROP."""
    rules = containment_rules()
    bridges = [bridge(f"{LAB}-{n}") for n in ("a", "b", "spine")]
    for builtin, chain in (("FORWARD", f"IDCLOUD-OUT-{LAB}"), ("INPUT", f"IDCLOUD-IN-{LAB}")):
        for br in bridges:
            assert f'-A {builtin} -i {br} -m comment --comment "idcloud-lab:{LAB}" -j {chain}' in rules, rules
        own = [r for r in rules if r.startswith(f"-A {chain} ")]
        assert own[-2].endswith(f'-j LOG --log-prefix "idcloud-egress {LAB}: "'), own
        assert own[-1] == f'-A {chain} -m comment --comment "idcloud-lab:{LAB}" -j DROP', own
    out = [r for r in rules if r.startswith(f"-A IDCLOUD-OUT-{LAB} ")]
    # the one way out: the mirror, to the Debian mirror's ports
    assert [r for r in out if "-s " in r] == [
        f"-A IDCLOUD-OUT-{LAB} -s 10.214.1.250/32 -p tcp -m multiport --dports 80,443 "
        f'-m comment --comment "idcloud-lab:{LAB}" -j RETURN'
    ], out
    return rules


def bgp_neighbours(container):
    out = podman_exec(container, "vtysh", "-c", "show bgp summary json").stdout
    return json.loads(out)["ipv4Unicast"]["peers"]


def established(container, neighbour, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bgp_neighbours(container).get(neighbour, {}).get("state") == "Established":
            return True
        time.sleep(1)
    return False


def test_up_makes_the_idc_and_down_removes_exactly_it(tmp_path):
    idc = write_inventory(str(tmp_path), DESC)
    decoy = f"{LAB}-decoy"
    decoy_volume = f"{LAB}-decoy-containerd"
    podman("rm", "-f", decoy)
    podman("volume", "rm", "-f", decoy_volume)
    assert podman("create", "--name", decoy, "localhost/idcloud-node:bookworm", "true").returncode == 0
    assert podman("volume", "create", decoy_volume).returncode == 0
    lab(idc, "down")  # leftovers of an interrupted run
    # another lab's rule (a name that starts like this lab's): our down must leave it
    other = ["FORWARD", "-i", "idcdecoy0", "-m", "comment", "--comment", f"idcloud-lab:{LAB}2", "-j", "RETURN"]
    subprocess.run(["iptables", "-t", "mangle", "-A", *other], check=True)
    mark = kmsg_mark()
    try:
        lab(idc, "up")
        rules = check_containment()
        ctrs, nets, vols = lab_objects()
        assert ctrs == sorted(f"{LAB}-{n}" for n in ["ha", "hb", "tor-a", "tor-b", "mirror", "spine"])
        assert nets == [f"{LAB}-a", f"{LAB}-b", f"{LAB}-spine"]
        # each host keeps containerd's data on its own labelled volume, and its cgroup
        # paths resolve the way its systemd names them (lab/idclab/files/idcloud-lab-cgroups)
        assert vols == [f"{LAB}-ha-containerd", f"{LAB}-hb-containerd"]
        mounts = podman("inspect", "-f", "{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}", f"{LAB}-ha").stdout
        assert f"{LAB}-ha-containerd:/var/lib/containerd" in mounts.split()
        for name in ("ha", "hb"):
            host = f"{LAB}-{name}"
            assert podman("inspect", "-f", "{{.HostConfig.CgroupMode}}", host).stdout.strip() != "private"
            assert podman_exec(host, "systemctl", "is-active", "idcloud-lab-cgroups").stdout.strip() == "active"
            own = podman_exec(host, "sh", "-c", "grep :pids: /proc/1/cgroup | cut -d: -f3").stdout.strip()
            own = own.removesuffix("/init.scope")
            assert own.startswith("/libpod_parent/"), own
            for hierarchy in ("pids", "memory", "systemd"):
                assert (
                    podman_exec(host, "mountpoint", "-q", f"/sys/fs/cgroup/{hierarchy}{own}", check=False).returncode
                    == 0
                )
            # systemd derives no pids caps from the container (DefaultTasksMax=infinity)
            caps = podman_exec(
                host, "sh", "-c", "find /sys/fs/cgroup/pids/ -name pids.max | xargs cat | sort -u"
            ).stdout
            assert caps.split() == ["max"], caps

        # hosts: fixed address and name, systemd up, reachable over SSH with the lab key
        addr = podman_exec(f"{LAB}-ha", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert "10.214.1.11/24" in addr
        assert podman_exec(f"{LAB}-ha", "hostname").stdout.strip() == "ha"
        assert podman_exec(f"{LAB}-hb", "systemctl", "is-system-running").stdout.strip() in ("running", "degraded")
        ping = subprocess.run(
            ["ansible", "-i", idc, "all", "-m", "ansible.builtin.ping"],
            env=lab_env(idc),
            text=True,
            capture_output=True,
        )
        assert ping.returncode == 0 and ping.stdout.count("pong") == 2, ping.stdout + ping.stderr

        # racks are routed, not NATed: rack b sees rack a's own address
        listener = subprocess.Popen(
            [
                "podman",
                "exec",
                f"{LAB}-hb",
                "python3",
                "-c",
                "import socket;s=socket.socket();s.bind(('0.0.0.0',7001));s.listen();c,a=s.accept();print(a[0])",
            ],
            env=ENV,
            text=True,
            stdout=subprocess.PIPE,
        )
        podman_exec(
            f"{LAB}-ha",
            "python3",
            "-c",
            "import socket,time\n"
            "for i in range(50):\n"
            "    try:\n        socket.create_connection(('10.214.2.11',7001),1).close(); break\n"
            "    except OSError: time.sleep(0.2)",
        )
        assert listener.communicate(timeout=20)[0].strip() == "10.214.1.11"
        # rack to rack both ways, and each rack and the spine segment to the pod CIDR
        assert len(nat_rules()) == 5

        # ToRs run exactly the configuration the collection generates, and peer with the
        # spine over their uplinks (the servers' sessions wait for Calico)
        configs = tor_frr_configs(parse_description(DESC))
        for tor in ("tor-a", "tor-b"):
            assert podman_exec(f"{LAB}-{tor}", "cat", "/etc/frr/frr.conf").stdout == configs[tor]
            assert podman_exec(f"{LAB}-{tor}", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
        assert established(f"{LAB}-tor-a", "10.214.0.1"), bgp_neighbours(f"{LAB}-tor-a")
        assert established(f"{LAB}-spine", "10.214.0.12"), bgp_neighbours(f"{LAB}-spine")
        assert set(bgp_neighbours(f"{LAB}-tor-b")) == {"10.214.0.1", "10.214.2.11"}
        bgp = podman_exec(f"{LAB}-tor-b", "vtysh", "-c", "show running-config").stdout
        assert "router bgp 65402" in bgp
        # both ToRs null-route the pod and service networks (FRR's staticd installs them)
        for tor in ("tor-a", "tor-b"):
            blackholes = podman_exec(f"{LAB}-{tor}", "ip", "-4", "route", "show", "type", "blackhole").stdout
            assert {"10.214.128.0/18", "10.214.192.0/20"} <= {line.split()[1] for line in blackholes.splitlines()}, (
                blackholes
            )

        # hosts: the pod CIDR via their rack's ToR, at every boot; the default route stays
        for host, tor, gateway in (("ha", "10.214.1.254", "10.214.1.1"), ("hb", "10.214.2.254", "10.214.2.1")):
            routes = podman_exec(f"{LAB}-{host}", "ip", "route").stdout
            assert f"10.214.128.0/18 via {tor} dev eth0" in routes, routes
            assert f"default via {gateway} " in routes, routes
            assert (
                podman_exec(f"{LAB}-{host}", "systemctl", "is-enabled", "idcloud-lab-pod-route").stdout.strip()
                == "enabled"
            )

        # mirror: serves the artifact manifest over HTTP at its address
        with urllib.request.urlopen("http://10.214.1.250/manifest.json", timeout=5) as resp:
            assert "etcd" in json.load(resp)

        # the mirror serves only its local clock: no Debian pool or server lines
        sources = podman_exec(
            f"{LAB}-mirror",
            "sh",
            "-c",
            "grep -hE '^[[:space:]]*(pool|server|peer)[[:space:]]' /etc/chrony/chrony.conf "
            "/etc/chrony/conf.d/* /etc/chrony/sources.d/* 2>/dev/null",
            check=False,
        ).stdout
        assert sources == "", sources
        chrony = podman_exec(f"{LAB}-mirror", "chronyc", "-n", "sources").stdout
        assert len(chrony.strip().splitlines()) == 2, chrony  # the header only: no source

        # apt in a lab host goes through the mirror's apt-cacher-ng, the one way to Debian
        assert "10.214.1.250:3142" in podman_exec(f"{LAB}-ha", "apt-config", "dump", "Acquire::http::Proxy").stdout
        apt = podman_exec(
            f"{LAB}-ha",
            "sh",
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
            "apt-get install -y -qq --no-install-recommends hello && hello",
            check=False,
        )
        assert apt.returncode == 0 and "Hello, world!" in apt.stdout, apt.stdout + apt.stderr
        served = podman_exec(f"{LAB}-mirror", "cat", "/var/log/apt-cacher-ng/apt-cacher.log").stdout
        assert "/hello_" in served and "10.214.1.11" in served, served[-2000:]

        # probes to addresses outside the lab are dropped and logged; sent only now that
        # the drop rule is confirmed in place
        check_containment()
        probe_mark = kmsg_mark()
        for address, port in PROBES + [POD_PROBE]:
            probe(f"{LAB}-ha", address, port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            logged = [log_fields(line) for line in egress_log(LAB, since=probe_mark)]
            if len(logged) >= len(PROBES):
                break
            time.sleep(0.5)
        time.sleep(1)  # the pod probe had the same time to be logged, and must not be
        logged = [log_fields(line) for line in egress_log(LAB, since=probe_mark)]
        assert sorted((f["DST"], int(f["DPT"])) for f in logged) == sorted(PROBES), logged
        assert all(f["SRC"] == "10.214.1.11" for f in logged), logged
        # the VM's gateway address is the VM itself (INPUT: no OUT), the rest would be routed out
        assert [f["DST"] for f in logged if f.get("OUT", "") == ""] == ["10.214.1.1"], logged

        # a second up changes nothing (one copy of each containment rule)
        again = lab(idc, "up")
        assert "network " not in again and " in rack " not in again
        assert "FRR in" not in again and "uplink" not in again and "egress containment" not in again
        assert containment_rules() == rules

        # re-cabling: hb moves to rack a with a new address, keeping its disk
        podman_exec(f"{LAB}-hb", "sh", "-c", "echo kept > /var/lib/containerd/marker")
        moved = copy.deepcopy(DESC)
        hb = moved["rooms"][0]["racks"][1]["hosts"].pop()
        hb["address"] = "10.214.1.12"
        moved["rooms"][0]["racks"][0]["hosts"].append(hb)
        write_inventory(str(tmp_path), moved)
        out = lab(idc, "up")
        assert f"disconnect from {LAB}-b" in out and f"connect to {LAB}-a at 10.214.1.12" in out, out
        routes = podman_exec(f"{LAB}-hb", "ip", "route").stdout
        assert "default via 10.214.1.1 " in routes and "10.214.128.0/18 via 10.214.1.254 dev eth0" in routes, routes
        assert "10.214.1.12/24" in podman_exec(f"{LAB}-hb", "ip", "-4", "-o", "addr", "show").stdout
        assert podman_exec(f"{LAB}-hb", "cat", "/var/lib/containerd/marker").stdout.strip() == "kept"
        configs = tor_frr_configs(parse_description(moved))
        assert podman_exec(f"{LAB}-tor-a", "cat", "/etc/frr/frr.conf").stdout == configs["tor-a"]
        assert " neighbor 10.214.1.12 peer-group SERVERS" in configs["tor-a"]
        assert set(bgp_neighbours(f"{LAB}-tor-b")) == {"10.214.0.1"}
        assert sorted(containment_rules()) == sorted(rules)

        # nothing else from the lab was dropped during the test: no unexpected egress
        unexpected = [
            line
            for line in egress_log(LAB, since=mark)
            if (log_fields(line)["DST"], int(log_fields(line).get("DPT", 0))) not in PROBES
        ]
        assert unexpected == [], unexpected
    finally:
        lab(idc, "down")
        other_stayed = subprocess.run(["iptables", "-t", "mangle", "-C", *other]).returncode == 0
        while subprocess.run(["iptables", "-t", "mangle", "-D", *other], capture_output=True).returncode == 0:
            pass
    ctrs, nets, vols = lab_objects()
    assert ctrs == [] and nets == [] and vols == []
    assert podman("volume", "exists", f"{LAB}-ha-containerd").returncode != 0
    assert nat_rules() == []
    assert forward_rules() == []
    assert containment_rules() == []
    for chain in (f"IDCLOUD-OUT-{LAB}", f"IDCLOUD-IN-{LAB}"):
        assert subprocess.run(["iptables", "-t", "mangle", "-S", chain], capture_output=True).returncode != 0
    assert other_stayed, "lab down removed another lab's rule"
    # the unlabelled container and volume with the lab's prefix were not ours: still there
    assert podman("container", "exists", decoy).returncode == 0
    assert podman("volume", "exists", decoy_volume).returncode == 0
    podman("rm", "-f", decoy)
    podman("volume", "rm", "-f", decoy_volume)
