"""The lab's containers: made, checked, re-cabled, and set up inside (cgroup paths, pod route, apt proxy)."""

from .common import BOOT_TIMEOUT, LabError, lab_file, logger
from .plan import APT_PROXY_PATH, CGROUP_FILES, LABEL, ROUTER_KINDS, ROUTER_SYSCTLS

log = logger("lab")


class Hosts:
    def __init__(self, plan, runner):
        self.plan = plan
        self.run = runner

    def owned(self, kind, name):
        """Only touch objects that carry this lab's label (never a broad pattern)."""
        return self.run.label(kind, name, LABEL) == self.plan.name

    def ensure_volume(self, vol, state):
        """A named volume for a host's /var/lib/containerd, labelled like everything else."""
        if self.run.exists("volume", vol):
            if not self.owned("volume", vol):
                raise LabError(
                    f"podman volume {vol} exists but is not labelled {LABEL}={self.plan.name}; "
                    f"fix: remove it (`podman volume rm {vol}`) or rename lab.name"
                )
        else:
            self.run.podman("volume", "create", "--label", f"{LABEL}={self.plan.name}", vol, capture=True)
        if vol not in state["volumes"]:
            state["volumes"].append(vol)

    def check_container(self, ctr):
        """A container made by an older lab lacks what kubelet needs; say so, never guess."""
        if ctr.kind in ROUTER_KINDS:
            return
        run = self.run
        cgroupns = run.inspect("{{.HostConfig.CgroupMode}}", ctr.name)
        fixed = run.exec(ctr.name, "systemctl", "is-enabled", "idcloud-lab-cgroups.service").stdout.strip()
        mounts = run.inspect("{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}", ctr.name).split()
        missing = self.plan.missing_in(ctr, cgroupns, fixed, mounts)
        if missing:
            raise LabError(
                f"container {ctr.name} was made by an older lab and lacks {' and '.join(missing)}; "
                f"fix: `lab down` then `lab up` (this recreates the lab's hosts)"
            )

    def ensure_container(self, ctr, state):
        run = self.run
        if ctr.kind == "host":
            self.ensure_volume(ctr.volume, state)
        if ctr.kind in ROUTER_KINDS and run.exists("container", ctr.name) and self.owned("container", ctr.name):
            run.podman("start", ctr.name, capture=True)
            if run.exec(ctr.name, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() != "1":
                # a router holds no state: one made by an older lab is made again, forwarding
                log(f"{ctr.kind} {ctr.name} does not forward: made again with {' '.join(ROUTER_SYSCTLS)}")
                run.remove_container(ctr.name)
        if run.exists("container", ctr.name):
            self.check_container(ctr)
            self.recable(ctr)
            if run.inspect("{{.State.Running}}", ctr.name) != "true":
                run.podman("start", ctr.name, capture=True)
        else:
            log(f"{ctr.kind} {ctr.name} {ctr.address} in rack {ctr.rack.name}")
            run.podman(*self.plan.run_args(ctr), capture=True)
        if ctr.name not in state["containers"]:
            state["containers"].append(ctr.name)

    def recable(self, ctr):
        """Move a container to the rack network and address the description gives it.

        Like re-cabling a server: off the old rack's network, onto the new one at its new
        address; its disk (the containerd volume) and everything inside stay.
        """
        run = self.run
        nets = run.networks_of(ctr.name)
        if nets.get(ctr.network) == ctr.address:
            return
        keep = self.plan.recable_keeps(ctr)
        for net, have in nets.items():
            if net != keep:
                log(f"{ctr.kind} {ctr.name}: disconnect from {net} ({have})")
                run.podman("network", "disconnect", net, ctr.name, capture=True)
        log(f"{ctr.kind} {ctr.name}: connect to {ctr.network} at {ctr.address}")
        run.podman("network", "connect", "--ip", ctr.address, ctr.network, ctr.name, capture=True)
        if ctr.kind == "host":
            # podman gives the new interface the new rack's default route; check, never guess
            routes = run.podman("exec", ctr.name, "ip", "route", "show", "default", capture=True).stdout.split()
            if routes[:3] != ["default", "via", ctr.rack.gateway]:
                raise LabError(
                    f"{ctr.name} moved to {ctr.network}, but its default route is "
                    f"{' '.join(routes) or 'missing'}, not via {ctr.rack.gateway}; "
                    f"fix: `podman restart {ctr.name}`"
                )

    def fix_cgroup_paths(self, ctr):
        """Make the host's cgroup paths resolve the way its systemd names them (as kind does).

        On cgroup v1 podman mounts each controller at the host's own cgroup
        (/libpod_parent/libpod-<id>), while systemd inside names cgroups by their full path
        (/libpod_parent/libpod-<id>/kubepods.slice). A unit that runs at every boot
        (files/idcloud-lab-cgroups) bind-mounts each controller onto that path inside itself,
        so the kubelet's and runc's systemd cgroup driver find the paths, and every pod stays
        under its host.
        """
        run = self.run
        run.wait_systemd(ctr.name, BOOT_TIMEOUT)
        for path, data_file in CGROUP_FILES:
            proc = run.script(ctr.name, "install-file.sh", path, input=lab_file(data_file))
            if proc.returncode != 0:
                raise LabError(f"cgroup path fix: writing {path} in {ctr.name} failed: {proc.stderr.strip()}")
        proc = run.exec(
            ctr.name,
            "sh",
            "-c",
            "systemctl daemon-reload && systemctl enable -q "
            "idcloud-lab-cgroups.service && systemctl restart idcloud-lab-cgroups.service",
        )
        if proc.returncode != 0:
            raise LabError(f"cgroup path fix failed in {ctr.name}: {proc.stderr.strip()}")

    def route_pods_via_tor(self, ctr):
        """The pod CIDR via the rack's ToR, at every boot (idcloud-lab-pod-route.service); the default route stays."""
        proc = self.run.script(ctr.name, "pod-route.sh", input=self.plan.pod_route_unit(ctr.rack), shell="bash")
        if proc.returncode != 0:
            raise LabError(f"pod route in {ctr.name} failed: {proc.stderr.strip()}")

    def point_apt_at_mirror(self, ctr):
        """apt in a lab container goes through the mirror's apt-cacher-ng (the lab's OS provisioning).

        The containment drops every other way to a Debian mirror. Without lab.mirror there
        is no proxy, and no package can be installed.
        """
        conf = self.plan.apt_proxy_conf()
        if conf is None:
            return
        proc = self.run.script(ctr.name, "apt-proxy.sh", APT_PROXY_PATH, input=conf)
        if proc.returncode != 0:
            raise LabError(f"apt proxy in {ctr.name} failed: {proc.stderr.strip()}")
