"""The lab's network fabric: rack and spine networks, the ToR and spine routers' FRR, uplinks,
NAT exemptions, pod FORWARD rules and the egress containment (what the plan decides, applied).
"""

from .common import BOOT_TIMEOUT, LabError, logger
from .plan import LABEL

log = logger("lab")


class Fabric:
    def __init__(self, plan, runner):
        self.plan = plan
        self.run = runner

    # --- networks ------------------------------------------------------------------
    def ensure_network(self, net, state):
        plan, run = self.plan, self.run
        if run.exists("network", net.name):
            subnets = [s.get("subnet") for s in run.network_info(net.name).get("subnets", [])]
            if net.subnet not in subnets:
                raise LabError(
                    f"podman network {net.name} exists with subnets {subnets}, not {net.subnet}; "
                    f"fix: `lab down` the lab that made it, or rename lab.name"
                )
        else:
            log(f"network {net.name} {net.subnet} gw {net.gateway}")
            internal = ["--internal"] if net.internal else []
            run.podman(
                "network",
                "create",
                "--subnet",
                net.subnet,
                "--gateway",
                net.gateway,
                *internal,
                "--label",
                f"{LABEL}={plan.name}",
                net.name,
                capture=True,
            )
        if net.name not in state["networks"]:
            state["networks"].append(net.name)

    def bridges(self):
        """{network: bridge interface on the VM} of this lab's podman networks."""
        return {net.name: self.run.network_info(net.name)["network_interface"] for net in self.plan.networks}

    # --- NAT exemptions and pod FORWARD rules -----------------------------------------
    def route_racks_without_nat(self):
        for rule in self.plan.nat_exemptions():
            if not self.run.has_rule("nat", "POSTROUTING", rule):
                self.run.iptables("nat", "-I", "POSTROUTING", "1", *rule)

    def remove_nat_exemptions(self):
        for rule in self.plan.nat_exemptions():
            self.run.delete_all("nat", "POSTROUTING", rule)

    def accept_pod_traffic(self):
        if not self.run.bridges_filtered():
            return  # br_netfilter not loaded or off: bridged frames skip iptables
        for rule in self.plan.pod_forward_rules():
            if not self.run.has_rule("filter", "FORWARD", rule):
                self.run.iptables("filter", "-I", "FORWARD", "1", *rule)

    def remove_pod_forward_rules(self):
        for rule in self.plan.pod_forward_rules():
            self.run.delete_all("filter", "FORWARD", rule)

    # --- containment: nothing leaves the lab but the mirror's apt-cacher-ng -------------
    def contain_egress(self):
        """Add this lab's containment rules (plan.egress_rules); idempotent, only its own rules.

        The lab's chains are rebuilt when their content differs; jumps of this lab that are
        not wanted any more (a bridge of an earlier network) are removed, missing ones added.
        """
        run, tag = self.run, self.plan.tag
        bridges = self.bridges()
        chains, jumps = self.plan.egress_rules(bridges)
        self.drop_stale_jumps(set(bridges.values()))
        for chain, rules in chains.items():
            if run.iptables("mangle", "-S", chain, check=False).returncode != 0:
                run.iptables("mangle", "-N", chain)
            have = [line for line in run.iptables("mangle", "-S", chain).stdout.splitlines() if line.startswith("-A ")]
            same = len(have) == len(rules) and all(run.has_rule("mangle", chain, r) for r in rules)
            if not same:
                log(f"egress containment: {chain} ({len(rules)} rules)")
                run.iptables("mangle", "-F", chain)  # the lab's own chain
                for rule in rules:
                    run.iptables("mangle", "-A", chain, *rule)
        for builtin in ("FORWARD", "INPUT"):
            # a jump is listed exactly as it is written (-i, comment, -j): compare as is;
            # one copy of each wanted jump stays, anything else of this lab goes
            wanted = [j for b, j in jumps if b == builtin]
            kept = []
            for rule in run.tagged_rules("mangle", builtin, tag):
                if rule in wanted and rule not in kept:
                    kept.append(rule)
                else:
                    run.iptables("mangle", "-D", builtin, *rule)
            for rule in wanted:
                if rule not in kept:
                    run.iptables("mangle", "-I", builtin, "1", *rule)

    def drop_stale_jumps(self, bridges):
        """Remove another lab's jumps that name one of this lab's bridges.

        A bridge belongs to one network, so such a jump is left over by a lab whose networks
        are gone (a run killed before `lab down`); podman reuses the bridge's name, and the
        old lab's chain would drop this lab's traffic between racks.
        """
        for builtin in ("FORWARD", "INPUT"):
            for comment, rule in self.run.lab_rules("mangle", builtin):
                if comment == self.plan.tag or "-i" not in rule:
                    continue
                bridge = rule[rule.index("-i") + 1]
                if bridge in bridges:
                    log(f"egress containment: removing {comment}'s stale jump on {bridge} (its network is gone)")
                    self.run.iptables("mangle", "-D", builtin, *rule)

    def log_host_netfilter(self):
        """The hosts' own netfilter logs (network_guard's refusals) reach the VM's kernel log, as a real host's would."""
        if self.run.log_all_netns():
            log("kernel: net.netfilter.nf_log_all_netns=1 (the lab hosts' netfilter LOG rules write to the kernel log)")

    def remove_egress_containment(self):
        """Remove this lab's jumps and its two chains; every other rule stays as it is."""
        run = self.run
        for builtin in ("FORWARD", "INPUT"):
            for rule in run.tagged_rules("mangle", builtin, self.plan.tag):
                run.iptables("mangle", "-D", builtin, *rule)
        for chain in self.plan.egress_chains():
            if run.iptables("mangle", "-S", chain, check=False).returncode == 0:
                run.iptables("mangle", "-F", chain)
                run.iptables("mangle", "-X", chain)

    # --- routers -------------------------------------------------------------------------
    def connect_uplinks(self):
        """Each ToR with an uplink gets a second interface on the spine segment, at its uplink address."""
        if not self.plan.spine:
            return
        net = self.plan.net_name(self.plan.spine)
        for cname, address in self.plan.uplinks():
            have = self.run.networks_of(cname).get(net)
            if have == address:
                continue
            if have:
                self.run.podman("network", "disconnect", net, cname, capture=True)
            log(f"uplink {cname} {address} on {net}")
            self.run.podman("network", "connect", "--ip", address, net, cname, capture=True)

    def configure_routers(self):
        for cname, conf in self.plan.router_configs():
            self.configure_router(cname, conf)

    def configure_router(self, cname, conf):
        """Install an FRR configuration; reload FRR when it changed (sessions stay up).

        `systemctl reload frr` runs frr-reload.py, which applies the difference to the
        running daemons. A new `frr defaults` profile only takes effect at start, and a
        failed reload leaves the old configuration running: both restart FRR instead
        (files/frr-install.sh).
        """
        self.run.wait_systemd(cname, BOOT_TIMEOUT)
        proc = self.run.script(cname, "frr-install.sh", input=conf)
        if proc.returncode != 0:
            raise LabError(f"FRR did not start in {cname}: {proc.stderr.strip()}")
        if proc.stdout.strip():
            log(f"FRR in {cname}: configuration {proc.stdout.strip()}")
