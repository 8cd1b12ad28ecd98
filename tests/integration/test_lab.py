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

from lab_helpers import ENV, REPO, lab, podman_exec, write_inventory

sys.path.insert(0, os.path.join(REPO, "collections"))
from ansible_collections.idcloud.platform.plugins.module_utils.calico_plan import tor_frr_configs  # noqa: E402
from ansible_collections.idcloud.platform.plugins.module_utils.idc import parse_description  # noqa: E402

LAB = "it-lab"
DESC = {
    "plugin": "idcloud.platform.idc",
    "cluster": {"name": LAB, "pod_cidr": "10.214.128.0/18", "service_cidr": "10.214.192.0/20",
                "node_as": 64512},
    "lab": {"name": LAB, "mirror": {"rack": "a", "address": "10.214.1.250"}},
    "rooms": [{"name": "r", "racks": [
        {"name": "a", "subnet": "10.214.1.0/24", "gateway": "10.214.1.1",
         "tor": {"as": 65401, "peer": "10.214.1.254",
                 "uplink": {"address": "10.214.0.11/24", "peer": "10.214.0.1", "as": 65400}},
         "hosts": [{"name": "ha", "address": "10.214.1.11", "roles": ["etcd"], "size": {"cpu": 2, "memory_gib": 4}}]},
        {"name": "b", "subnet": "10.214.2.0/24", "gateway": "10.214.2.1",
         "tor": {"as": 65402, "peer": "10.214.2.254",
                 "uplink": {"address": "10.214.0.12/24", "peer": "10.214.0.1", "as": 65400}},
         "hosts": [{"name": "hb", "address": "10.214.2.11", "roles": ["worker"], "size": {"cpu": 2, "memory_gib": 4}}]},
    ]}],
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
    try:
        lab(idc, "up")
        ctrs, nets, vols = lab_objects()
        assert ctrs == sorted(f"{LAB}-{n}" for n in ["ha", "hb", "tor-a", "tor-b", "mirror", "spine"])
        assert nets == [f"{LAB}-a", f"{LAB}-b", f"{LAB}-spine"]
        # each host keeps containerd's data on its own labelled volume, and its cgroup
        # paths resolve the way its systemd names them (lab/lab CGROUP_FIX)
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
                assert podman_exec(host, "mountpoint", "-q", f"/sys/fs/cgroup/{hierarchy}{own}", check=False).returncode == 0
            # systemd derives no pids caps from the container (DefaultTasksMax=infinity)
            caps = podman_exec(host, "sh", "-c", "find /sys/fs/cgroup/pids/ -name pids.max | xargs cat | sort -u").stdout
            assert caps.split() == ["max"], caps

        # hosts: fixed address and name, systemd up, reachable over SSH with the lab key
        addr = podman_exec(f"{LAB}-ha", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert "10.214.1.11/24" in addr
        assert podman_exec(f"{LAB}-ha", "hostname").stdout.strip() == "ha"
        assert podman_exec(f"{LAB}-hb", "systemctl", "is-system-running").stdout.strip() in ("running", "degraded")
        ping = subprocess.run(["ansible", "-i", idc, "all", "-m", "ansible.builtin.ping"], env=ENV, text=True,
                              capture_output=True)
        assert ping.returncode == 0 and ping.stdout.count("pong") == 2, ping.stdout + ping.stderr

        # racks are routed, not NATed: rack b sees rack a's own address
        listener = subprocess.Popen(["podman", "exec", f"{LAB}-hb", "python3", "-c",
                                     "import socket;s=socket.socket();s.bind(('0.0.0.0',7001));s.listen();"
                                     "c,a=s.accept();print(a[0])"], env=ENV, text=True, stdout=subprocess.PIPE)
        podman_exec(f"{LAB}-ha", "python3", "-c",
                    "import socket,time\n"
                    "for i in range(50):\n"
                    "    try:\n        socket.create_connection(('10.214.2.11',7001),1).close(); break\n"
                    "    except OSError: time.sleep(0.2)")
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

        # hosts: the pod CIDR via their rack's ToR, at every boot; the default route stays
        for host, tor, gateway in (("ha", "10.214.1.254", "10.214.1.1"), ("hb", "10.214.2.254", "10.214.2.1")):
            routes = podman_exec(f"{LAB}-{host}", "ip", "route").stdout
            assert f"10.214.128.0/18 via {tor} dev eth0" in routes, routes
            assert f"default via {gateway} " in routes, routes
            assert podman_exec(f"{LAB}-{host}", "systemctl", "is-enabled", "idcloud-lab-pod-route").stdout.strip() == "enabled"

        # mirror: serves the artifact manifest over HTTP at its address
        with urllib.request.urlopen("http://10.214.1.250/manifest.json", timeout=5) as resp:
            assert "etcd" in json.load(resp)

        # a second up changes nothing
        again = lab(idc, "up")
        assert "network " not in again and " in rack " not in again
        assert "FRR in" not in again and "uplink" not in again

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
    finally:
        lab(idc, "down")
    ctrs, nets, vols = lab_objects()
    assert ctrs == [] and nets == [] and vols == []
    assert podman("volume", "exists", f"{LAB}-ha-containerd").returncode != 0
    assert nat_rules() == []
    assert forward_rules() == []
    # the unlabelled container and volume with the lab's prefix were not ours: still there
    assert podman("container", "exists", decoy).returncode == 0
    assert podman("volume", "exists", decoy_volume).returncode == 0
    podman("rm", "-f", decoy)
    podman("volume", "rm", "-f", decoy_volume)
