"""`lab up`, `down`, `status` and `egress-log`: the order things are made and removed in, and the
state file (<cache>/lab/<lab>/state.json) that `down` trusts.
"""

import json
import os
import shutil
import time

import yaml

from .common import LAB_DIR, LabError, logger
from .description import source_errors
from .fabric import Fabric
from .hosts import Hosts
from .mirror import Mirror
from .plan import MIRROR_ROOT, ROUTER_KINDS, SSH_KEY, LabPlan, egress_log_prefix
from .runner import Runner

log = logger("lab")
HOST_IMAGES_BUILD = os.path.join(LAB_DIR, "host-images", "build")


def load_plan(idc_path):
    """The plan of the IDC description at idc_path."""
    idc_path = os.path.abspath(idc_path)
    try:
        with open(idc_path) as f:
            text = f.read()
    except OSError as exc:
        raise LabError(f"{idc_path}: {exc.strerror}; fix: pass an IDC description with --idc")
    # what the inventory plugin refuses, the lab refuses too: an empty file, a key written twice
    problems = source_errors(text)
    if problems:
        raise LabError(f"{idc_path} is not a valid IDC description:\n" + "\n".join(f"- {p}" for p in problems))
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LabError(f"{idc_path} is not YAML: {exc}; fix: correct the line it names") from exc
    return LabPlan.from_data(data, idc_path)


class Lab:
    def __init__(self, plan, runner=None):
        self.plan = plan
        self.run = runner or Runner()
        self.fabric = Fabric(plan, self.run)
        self.hosts = Hosts(plan, self.run)
        self.mirror = Mirror(plan, self.run)
        self.state_file = os.path.join(plan.state_dir, "state.json")

    # --- state file: the record `down` trusts -----------------------------------
    def load_state(self):
        if os.path.exists(self.state_file):
            with open(self.state_file) as f:
                state = json.load(f)
            state.setdefault("volumes", [])
            return state
        return {"networks": [], "containers": [], "volumes": []}

    def save_state(self, state):
        os.makedirs(self.plan.state_dir, exist_ok=True)
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=2)
        os.replace(tmp, self.state_file)

    # --- up ----------------------------------------------------------------------
    def up(self):
        started = time.monotonic()
        plan, fabric, hosts = self.plan, self.fabric, self.hosts
        if not plan.mirror:
            log(
                "no lab.mirror: the lab's hosts have no apt proxy, and the containment drops every other "
                "way to Debian packages"
            )
        self.ensure_images()
        self.ensure_ssh_key()
        os.makedirs(MIRROR_ROOT, exist_ok=True)
        state = self.load_state()
        for net in plan.networks:
            fabric.ensure_network(net, state)
        fabric.route_racks_without_nat()
        fabric.accept_pod_traffic()
        fabric.contain_egress()
        fabric.log_host_netfilter()
        for ctr in plan.containers:
            hosts.ensure_container(ctr, state)
            self.save_state(state)
        for ctr in plan.containers:
            if ctr.kind == "host":
                hosts.fix_cgroup_paths(ctr)
                hosts.route_pods_via_tor(ctr)
        fabric.connect_uplinks()
        for ctr in plan.containers:
            if ctr.kind != "mirror":
                hosts.point_apt_at_mirror(ctr)
        fabric.configure_routers()
        self.mirror.configure()
        self.run.wait_tcp([c.address for c in plan.containers if c.kind in ("host", "mirror")], 22, 120, "sshd")
        self.mirror.configure_registry()
        log(
            f"up: {len(plan.networks)} rack networks, {len(plan.containers)} containers in "
            f"{time.monotonic() - started:.1f}s"
        )

    def ensure_images(self):
        # the build keeps existing images; it rebuilds the mirror image when its recipe changed
        self.run.run([HOST_IMAGES_BUILD], "lab/host-images/build")

    def ensure_ssh_key(self):
        if os.path.exists(SSH_KEY):
            return
        os.makedirs(os.path.dirname(SSH_KEY), mode=0o700, exist_ok=True)
        self.run.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "idcloud-lab", "-f", SSH_KEY], "ssh-keygen")

    # --- down --------------------------------------------------------------------
    def down(self):
        plan, run, owned = self.plan, self.run, self.hosts.owned
        state = self.load_state()
        for cname in dict.fromkeys(state["containers"] + [c.name for c in plan.containers]):
            if run.exists("container", cname) and owned("container", cname):
                log(f"remove container {cname}")
                run.remove_container(cname)
        for vol in dict.fromkeys(state["volumes"] + [c.volume for c in plan.containers if c.kind == "host"]):
            if run.exists("volume", vol) and owned("volume", vol):
                log(f"remove volume {vol}")
                run.podman("volume", "rm", vol, capture=True)
        self.fabric.remove_nat_exemptions()
        self.fabric.remove_pod_forward_rules()
        self.fabric.remove_egress_containment()
        for net in dict.fromkeys(state["networks"] + [n.name for n in plan.networks]):
            if run.exists("network", net) and owned("network", net):
                log(f"remove network {net}")
                run.podman("network", "rm", net, capture=True)
        # What `up` kept for the registry: the stamp and the CA copy for pushes
        for path in (self.state_file, os.path.join(plan.state_dir, "registry.stamp")):
            if os.path.exists(path):
                os.remove(path)
        shutil.rmtree(os.path.join(plan.state_dir, "certs.d"), ignore_errors=True)
        log("down")

    # --- status ------------------------------------------------------------------
    def status(self):
        """Print a table of the planned containers; 0 when all are up, else 1."""
        run = self.run
        rows = []
        failed = 0
        for ctr in self.plan.containers:
            cname, kind = ctr.name, ctr.kind
            if not run.exists("container", cname):
                rows.append((cname, kind, ctr.rack.name, ctr.address, "absent", "-"))
                failed += 1
                continue
            st = run.inspect("{{.State.Status}}", cname)
            sysd = "-"
            if st == "running":
                sysd = run.exec(cname, "systemctl", "is-system-running").stdout.strip() or "unknown"
            if st == "running" and kind in ROUTER_KINDS:
                bgp = run.exec(cname, "vtysh", "-c", "show bgp summary")
                sysd += ", bgpd up" if bgp.returncode == 0 and "not running" not in bgp.stdout else ", bgpd DOWN"
                failed += "DOWN" in sysd
            if st == "running" and kind == "mirror" and self.plan.registry:
                sysd += ", registry up" if self.mirror.registry_answers() else ", registry DOWN"
                failed += "DOWN" in sysd
            if st != "running" or not sysd.startswith(("running", "degraded")):
                failed += 1
            rows.append((cname, kind, ctr.rack.name, ctr.address, st, sysd))
        width = max(len(r[0]) for r in rows) if rows else 10
        print(f"{'CONTAINER':<{width}}  KIND    RACK   ADDRESS          STATE     SYSTEMD")
        for r in rows:
            print(f"{r[0]:<{width}}  {r[1]:<6}  {r[2]:<5}  {r[3]:<15}  {r[4]:<8}  {r[5]}")
        return 1 if failed else 0

    # --- egress-log ----------------------------------------------------------------
    def egress_log(self):
        """This lab's logged drops in the kernel log (the LOG rules of the containment)."""
        prefix = egress_log_prefix(self.plan.name)
        return [msg for _, msg in self.run.read_kmsg() if msg.startswith(prefix)]
