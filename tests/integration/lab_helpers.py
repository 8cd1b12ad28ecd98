"""Helpers for integration tests that bring up their own small lab IDC."""

import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "lab"))
from idclab.common import cache_dir  # noqa: E402
from idclab.plan import egress_log_prefix  # noqa: E402
from idclab.runner import read_kmsg  # noqa: E402

CACHE = cache_dir()  # ~/.cache/idcloud, or $IDCLOUD_CACHE
BIN = os.path.join(REPO, ".venv", "bin")
LAB = os.path.join(REPO, "lab", "lab")
ENV = dict(
    os.environ,
    PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
    CONTAINERS_CONF=os.path.join(REPO, "lab", "containers.conf"),
    ANSIBLE_FORCE_COLOR="0",
)
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


# Every lab the tests bring up, and the second octet of its 10.x.0.0/16: the one place that
# allocates them, so two tests (or a test and the main lab, 10.210) can never share a
# range. Molecule scenarios take 10.211, 10.212 and 10.218 (molecule/*/idc.yml).
LAB_NETS = {
    "it-members": 213,  # test_etcd_membership.py
    "it-lab": 214,  # test_lab.py
    "it-ca": 215,  # test_etcd_provided_ca.py
    "it-reg": 216,  # test_lab_registry.py
    "it-restart": 217,  # test_restart_interrupted.py
    "it-k8s": 219,  # the end-to-end cluster (e2e.py)
    "it-ceph": 220,  # test_ceph_cluster.py
    "it-csi": 221,  # test_csi_sanity.py
    "bench-scale": 227,  # bench/run_scale.py (light hosts; not a test, listed so no test takes it)
}


def lab_net(name):
    """The second octet of lab `name`'s addresses (a KeyError names a lab with none)."""
    return LAB_NETS[name]


def write_inventory(directory, description):
    """Write an IDC description as <dir>/idc.yml beside the lab's group_vars."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "idc.yml")
    with open(path, "w") as f:
        yaml.safe_dump(description, f, sort_keys=False)
    link = os.path.join(directory, "group_vars")
    if not os.path.islink(link):
        os.symlink(os.path.join(REPO, "inventories", "lab", "group_vars"), link)
    return path


# Facts gathered in this test session, one cache per lab name (see lab_env); a new session
# starts empty, so no fact of yesterday's lab, or of the main lab's cp1, is ever read here.
FACTS = tempfile.mkdtemp(prefix="idcloud-test-facts-")


def lab_env(idc):
    """ENV with a fact cache of the lab's own: two labs may have hosts of the same name (m1 in
    two etcd labs, cp1 in the e2e lab and the main lab), and facts gathered on one must never
    be read for the other. Keyed by the lab's name, so a grown copy of a description (the
    scale and move tests) shares its lab's facts."""
    with open(idc) as f:
        name = yaml.safe_load(f)["lab"]["name"]
    return dict(ENV, ANSIBLE_CACHE_PLUGIN_CONNECTION=os.path.join(FACTS, name))


def lab(idc, command):
    proc = subprocess.run(
        [sys.executable, LAB, "--idc", idc, command], cwd=REPO, env=ENV, text=True, capture_output=True
    )
    assert proc.returncode == 0, f"lab {command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def run_playbook(idc, name, *extra, log=None):
    """Run a playbook; return (returncode, {host: (ok, changed, unreachable, failed)}, log)."""
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", idc, os.path.join(REPO, "playbooks", name), *extra],
        cwd=REPO,
        env=lab_env(idc),
        text=True,
        capture_output=True,
    )
    if log:
        with open(log, "w") as f:
            f.write(proc.stdout + proc.stderr)
    recap = {m[0]: tuple(int(x) for x in m[1:]) for m in RECAP.findall(proc.stdout)}
    return proc.returncode, recap, log or (proc.stdout[-4000:] + proc.stderr[-2000:])


def playbook(idc, name, *extra, log=None):
    """Run a playbook that must succeed; return {host: (ok, changed, unreachable, failed)}."""
    rc, recap, out = run_playbook(idc, name, *extra, log=log)
    assert rc == 0, f"{name} failed (see {out})" if log else f"{name} failed:\n{out}"
    return recap


def podman_exec(container, *cmd, check=True):
    return subprocess.run(["podman", "exec", container, *cmd], env=ENV, text=True, capture_output=True, check=check)


def member_list(container):
    out = podman_exec(container, "etcdctl-cluster", "member", "list", "-w", "json").stdout
    return json.loads(out)["members"]


def one_rack_description(lab_name, net, hosts, tor_as, registry=True):
    """A one-rack lab IDC on 10.<net>.1.0/24 with the mirror (and its registry, :5000) at .250.

    hosts: {name: [roles]}; addresses are .11, .12, ... in the given order. The labs made from it
    test one role (etcd, the registry), so the description is a part of a cluster (cluster.partial).
    """
    return {
        "plugin": "idcloud.platform.idc",
        "cluster": {
            "name": lab_name,
            "pod_cidr": f"10.{net}.128.0/18",
            "service_cidr": f"10.{net}.192.0/20",
            "node_as": 64512,
            "partial": True,
        },
        "vars": {"idcloud_mirror_url": f"http://10.{net}.1.250", "idcloud_registry": f"10.{net}.1.250:5000"},
        "lab": {"name": lab_name, "mirror": {"rack": "k1", "address": f"10.{net}.1.250", "registry": registry}},
        "rooms": [
            {
                "name": "r",
                "racks": [
                    {
                        "name": "k1",
                        "subnet": f"10.{net}.1.0/24",
                        "gateway": f"10.{net}.1.1",
                        "tor": {"as": tor_as, "peer": f"10.{net}.1.254"},
                        "hosts": [
                            {
                                "name": name,
                                "address": f"10.{net}.1.{11 + i}",
                                "roles": list(roles),
                                "size": {"cpu": 4, "memory_gib": 16},
                            }
                            for i, (name, roles) in enumerate(hosts.items())
                        ],
                    }
                ],
            }
        ],
    }


# --- containment: what a lab's LOG rules wrote to the kernel log (lab/idclab fabric.contain_egress);
# egress_log_prefix and read_kmsg are the lab's own (imported above)
def kmsg_mark():
    """The kernel log's newest sequence number: pass it as `since` to egress_log."""
    records = read_kmsg()
    return records[-1][0] if records else -1


def egress_log(lab_name, since=None):
    """The drops lab `lab_name` logged (newer than `since`, a kmsg_mark()), one line each:
    'idcloud-egress <lab>: IN=<bridge> OUT=<if> SRC=... DST=... PROTO=... DPT=...'."""
    prefix = egress_log_prefix(lab_name)
    return [msg for seq, msg in read_kmsg() if msg.startswith(prefix) and (since is None or seq > since)]


def log_fields(line):
    """{'SRC': ..., 'DST': ..., 'DPT': ..., 'OUT': ...} of one logged drop."""
    return dict(word.split("=", 1) for word in line.split() if "=" in word)


def assert_no_egress(lab_name, since=None):
    """Fail if lab `lab_name` tried to leave the lab (or reach the VM) since the mark; for the
    end of a suite: `since = kmsg_mark()` before `lab up`, then `assert_no_egress(name, since)`."""
    drops = egress_log(lab_name, since)
    assert drops == [], f"lab {lab_name} tried to reach outside it ({len(drops)} drops):\n" + "\n".join(drops[:50])
