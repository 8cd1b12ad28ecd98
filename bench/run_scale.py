#!/usr/bin/env python3
"""Host-level roles at 10 and at 50 light hosts, side by side in one run (`make bench-scale`).

A light host is a lab host that runs no Kubernetes and no etcd: bench/scale.yml converges
only what a host needs before it joins a cluster (node_tuning, container_runtime). For each
size the script writes an IDC description of that many hosts spread over the same 5 racks
(one ToR each, a spine, the mirror), and from nothing: `lab down`, `lab up`, first
converge, no-op re-run; at the largest size also the no-op with other forks values and,
with --baseline, the no-op of the collection at another git commit on the same hosts.
It reads each host container's memory and process count after the no-op, records `uptime`
at every step (the machine may be shared), and brings its lab down at the end.

Appends a row per step to bench/results/scale.csv, writes the whole run to
bench/results/scale.json and each run's profile (bench/profile_summary.py) to
bench/results/profiles/scale-*.txt. Wall-clock seconds on this machine; nothing here is
asserted.
"""

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")
CACHE = os.environ.get("IDCLOUD_CACHE", os.path.expanduser("~/.cache/idcloud"))
RESULTS = os.path.join(REPO, "bench", "results")
WORK = os.path.join(REPO, ".cache", "bench-scale")
PLAYBOOK = os.path.join(REPO, "bench", "scale.yml")
# The bench's own lab: its name, cluster name and addresses are used by nothing else
# (tests/integration/lab_helpers.py LAB_NETS records the octet).
NAME = "bench-scale"
OCTET = 227
RACKS = 5
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# The lab group_vars a light host needs: how to reach it and the lab's container limits
# (artifacts.yml and images.yml describe the mirror's Kubernetes artifacts and registry,
# which this lab does not serve).
GROUP_VARS = ("connection.yml", "limits.yml")


def description(hosts, racks=RACKS):
    """An IDC description of `hosts` light hosts, spread evenly over `racks` racks.

    The description format needs an etcd member (an odd count): the first host has the
    etcd role, the others are workers; the bench converges no role of either, so there is no
    control plane and the description says it is part of a cluster (cluster.partial).
    """
    if hosts % racks:
        sys.exit(f"--sizes: {hosts} hosts do not spread evenly over {racks} racks; fix: use a multiple of {racks}")
    base = f"10.{OCTET}"
    rack_list = []
    for r in range(1, racks + 1):
        members = []
        for i in range(1, hosts // racks + 1):
            roles = ["etcd"] if (r, i) == (1, 1) else ["worker"]
            members.append(
                {
                    "name": f"r{r}h{i:02d}",
                    "address": f"{base}.{r}.{10 + i}",
                    "roles": roles,
                    "size": {"cpu": 32, "memory_gib": 128},
                }
            )
        rack_list.append(
            {
                "name": f"r{r}",
                "subnet": f"{base}.{r}.0/24",
                "gateway": f"{base}.{r}.1",
                "tor": {
                    "name": f"tor-r{r}",
                    "as": 65200 + r,
                    "peer": f"{base}.{r}.254",
                    "uplink": {"address": f"{base}.0.{10 + r}/24", "peer": f"{base}.0.1", "as": 65000},
                },
                "hosts": members,
            }
        )
    rooms = [
        {"name": "room1", "racks": rack_list[: (racks + 1) // 2]},
        {"name": "room2", "racks": rack_list[(racks + 1) // 2 :]},
    ]
    return {
        "plugin": "idcloud.platform.idc",
        "cluster": {
            "name": NAME,
            "pod_cidr": "10.237.0.0/18",
            "service_cidr": "10.237.64.0/20",
            "node_as": 64512,
            "partial": True,
        },
        "vars": {"idcloud_mirror_url": f"http://{base}.1.250", "node_tuning_ntp_servers": [f"{base}.1.250"]},
        # no registry: light hosts pull no images
        "lab": {"name": NAME, "mirror": {"rack": "r1", "address": f"{base}.1.250", "registry": False}},
        "rooms": [room for room in rooms if room["racks"]],
    }


def write_description(hosts):
    """bench-scale-<hosts>/idc.yml beside a group_vars/all holding the lab's connection settings."""
    directory = os.path.join(WORK, f"hosts-{hosts}")
    gv = os.path.join(directory, "group_vars", "all")
    os.makedirs(gv, exist_ok=True)
    for name in GROUP_VARS:
        link = os.path.join(gv, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(REPO, "inventories", "lab", "group_vars", "all", name), link)
    path = os.path.join(directory, "idc.yml")
    with open(path, "w") as f:
        f.write("# Written by bench/run_scale.py: light hosts for the scale benchmark.\n")
        yaml.safe_dump(description(hosts), f, sort_keys=False)
    return path


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []
        self.stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.env = dict(
            os.environ,
            PATH=BIN + os.pathsep + os.environ["PATH"],
            ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
            CONTAINERS_CONF=os.path.join(REPO, "lab", "containers.conf"),
            PROFILE_TASKS_TASK_OUTPUT_LIMIT="40",
            ANSIBLE_FORCE_COLOR="0",
            # a machine shared with other work (load 40+ on 2 cores seen) is slow to
            # answer SSH: Ansible's 10 s connection timeout made hosts unreachable
            ANSIBLE_TIMEOUT=os.environ.get("ANSIBLE_TIMEOUT", "60"),
        )

    def run(self, hosts, label, cmd, env=None, slug=None, forks=None):
        before = load()
        # the output goes to a file as it comes (`tail -f` it to follow a long step)
        log_path = os.path.join(WORK, f"hosts-{hosts}", re.sub(r"\W+", "-", slug or label).strip("-") + ".log")
        started = time.monotonic()
        with open(log_path, "w") as out:
            proc = subprocess.run(cmd, cwd=REPO, env=env or self.env, text=True, stdout=out, stderr=subprocess.STDOUT)
        seconds = round(time.monotonic() - started, 1)
        after = load()
        with open(log_path) as f:
            stdout = f.read()
        if proc.returncode != 0:
            self.down_all()
            sys.exit(f"{label} at {hosts} hosts failed (whole output: {log_path}):\n{stdout[-4000:]}")
        recap = RECAP.findall(stdout)
        changed = sum(int(r[1]) for r in recap) if recap else None
        if recap and len(recap) != hosts:
            sys.exit(f"{label}: the recap names {len(recap)} hosts, expected {hosts}")
        row = {
            "hosts": hosts,
            "step": label,
            "seconds": seconds,
            "changed": changed,
            "forks": forks,
            "load_before": before,
            "load_after": after,
        }
        if slug:
            row["profile"] = self.profile(log_path, f"scale-{hosts}-{slug}")
        self.rows.append(row)
        self.write_row(row)
        shown = "" if changed is None else f"changed={changed}"
        print(f"{hosts:>3} hosts  {label:<40} {seconds:7.1f} s  {shown:<12} load {before} -> {after}", flush=True)
        return row

    def write_row(self, row):
        """Append a step to bench/results/scale.csv at once: a run cut short keeps what it measured."""
        path = os.path.join(RESULTS, "scale.csv")
        new = not os.path.exists(path)
        with open(path, "a", newline="") as f:
            w = csv.writer(f, lineterminator="\n")  # the sanity test wants \n, csv's default is \r\n
            if new:
                w.writerow(
                    ["utc", "nproc", "hosts", "step", "seconds", "changed", "forks", "load_before", "load_after"]
                )
            w.writerow(
                [
                    self.stamp,
                    os.cpu_count(),
                    row["hosts"],
                    row["step"],
                    row["seconds"],
                    row["changed"],
                    row["forks"],
                    row["load_before"],
                    row["load_after"],
                ]
            )

    def profile(self, log_path, slug):
        os.makedirs(os.path.join(RESULTS, "profiles"), exist_ok=True)
        summary = subprocess.run(
            [sys.executable, os.path.join(REPO, "bench", "profile_summary.py"), log_path, "--top", "25"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
        path = os.path.join(RESULTS, "profiles", f"{slug}.txt")
        with open(path, "w") as f:
            f.write(summary)
        return os.path.relpath(path, REPO)

    def lab(self, idc, command):
        return [os.path.join(BIN, "python"), os.path.join(REPO, "lab", "lab"), "--idc", idc, command]

    def playbook(self, idc, *extra):
        return [os.path.join(BIN, "ansible-playbook"), "-i", idc, PLAYBOOK, *extra]

    def down_all(self):
        for hosts in self.args.sizes:
            idc = os.path.join(WORK, f"hosts-{hosts}", "idc.yml")
            if os.path.exists(idc):
                subprocess.run(self.lab(idc, "down"), cwd=REPO, env=self.env, capture_output=True)

    def host_cost(self, idc):
        """Memory, processes and tasks of each host container after the runs (cgroup v1 of the container)."""
        with open(idc) as f:
            desc = yaml.safe_load(f)
        names = [f"{NAME}-{h['name']}" for room in desc["rooms"] for rack in room["racks"] for h in rack["hosts"]]
        per = []
        for name in names:
            cgroup = subprocess.run(
                ["podman", "inspect", "-f", "{{.State.CgroupPath}}", name], text=True, capture_output=True, check=True
            ).stdout.strip()
            with open(f"/sys/fs/cgroup/memory{cgroup}/memory.usage_in_bytes") as f:
                usage = int(f.read())
            stat = {}
            with open(f"/sys/fs/cgroup/memory{cgroup}/memory.stat") as f:
                for line in f:
                    key, value = line.split()
                    stat[key] = int(value)
            with open(f"/sys/fs/cgroup/pids{cgroup}/pids.current") as f:
                tasks = int(f.read())
            top = subprocess.run(
                ["podman", "top", name, "comm"], text=True, capture_output=True, check=True
            ).stdout.split()[1:]
            per.append(
                {
                    "host": name,
                    "usage_mib": usage / 2**20,
                    "rss_mib": stat.get("total_rss", 0) / 2**20,
                    "cache_mib": stat.get("total_cache", 0) / 2**20,
                    "processes": len(top),
                    "tasks": tasks,
                    "commands": " ".join(sorted(set(top))),
                }
            )
        n = len(per)
        mean = {
            k: round(sum(p[k] for p in per) / n, 1) for k in ("usage_mib", "rss_mib", "cache_mib", "processes", "tasks")
        }
        mean["max_usage_mib"] = round(max(p["usage_mib"] for p in per), 1)
        mean["max_rss_mib"] = round(max(p["rss_mib"] for p in per), 1)
        mean["commands"] = per[0]["commands"]
        mean["hosts"] = n
        return mean

    def baseline_env(self, commit):
        """An environment whose idcloud.platform is the collection at `commit` (git archive)."""
        root = os.path.join(WORK, f"baseline-{commit}")
        coll = os.path.join(root, "ansible_collections", "idcloud", "platform")
        if not os.path.isdir(coll):
            os.makedirs(coll)
            archive = subprocess.run(["git", "archive", commit], cwd=REPO, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", coll], input=archive, check=True)
        # the other collections come from the venv's `ansible` bundle, as in ./collections
        return dict(self.env, ANSIBLE_COLLECTIONS_PATH=root)

    def size(self, hosts, smallest, largest):
        idc = write_description(hosts)
        facts = os.path.join(WORK, f"facts-{hosts}")
        shutil.rmtree(facts, ignore_errors=True)
        env = dict(self.env, ANSIBLE_CACHE_PLUGIN_CONNECTION=facts)
        self.run(hosts, "lab down (clean start)", self.lab(idc, "down"))
        self.run(hosts, "lab up", self.lab(idc, "up"))
        self.run(hosts, "first converge", self.playbook(idc), env=env, slug="first", forks=self.args.forks)
        self.run(hosts, "no-op", self.playbook(idc), env=env, slug="noop", forks=self.args.forks)
        if self.args.baseline and smallest:
            benv = dict(self.baseline_env(self.args.baseline), ANSIBLE_CACHE_PLUGIN_CONNECTION=facts)
            self.run(
                hosts,
                f"no-op, collection at {self.args.baseline}",
                self.playbook(idc),
                env=benv,
                slug=f"noop-{self.args.baseline}",
                forks=self.args.forks,
            )
            self.run(
                hosts, "no-op (again, this tree)", self.playbook(idc), env=env, slug="noop-again", forks=self.args.forks
            )
        if largest:
            for forks in self.args.more_forks:
                self.run(
                    hosts,
                    f"no-op, forks={forks}",
                    self.playbook(idc, "--forks", str(forks)),
                    env=env,
                    slug=f"noop-forks{forks}",
                    forks=forks,
                )
        cost = self.host_cost(idc)
        cost["load"] = load()
        print(f"{hosts:>3} hosts  per host: {cost}", flush=True)
        self.run(hosts, "lab down", self.lab(idc, "down"))
        return cost


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50], help="host counts, smallest first")
    ap.add_argument("--forks", type=int, default=20, help="forks of the main runs (ansible.cfg: 20)")
    ap.add_argument(
        "--more-forks", type=int, nargs="*", default=[50], help="other forks values for the no-op at the largest size"
    )
    ap.add_argument(
        "--baseline",
        help="also time the no-op at the smallest size with the collection at this git "
        "commit, then again with this tree",
    )
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    bench = Bench(args)
    costs = {}
    try:
        for hosts in args.sizes:
            costs[hosts] = bench.size(hosts, hosts == min(args.sizes), hosts == max(args.sizes))
    except BaseException:
        bench.down_all()
        raise
    by = {(r["hosts"], r["step"]): r["seconds"] for r in bench.rows}
    small, large = min(args.sizes), max(args.sizes)
    ratios = {
        step: round(by[(large, step)] / by[(small, step)], 2)
        for step in ("lab up", "first converge", "no-op")
        if (small, step) in by and (large, step) in by
    }
    with open(os.path.join(RESULTS, "scale.json"), "w") as f:
        json.dump(
            {
                "utc": bench.stamp,
                "nproc": os.cpu_count(),
                "racks": RACKS,
                "playbook": "bench/scale.yml",
                "steps": bench.rows,
                "ratios": ratios,
                "per_host": costs,
            },
            f,
            indent=2,
        )
        f.write("\n")
    print(f"\n{large} hosts / {small} hosts: " + "   ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
