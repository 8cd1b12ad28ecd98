#!/usr/bin/env python3
"""What a running lab costs this machine: memory and CPU, the whole VM and each container.

  bench/lab_cost.py [--lab NAME] [--seconds 60] [--label TEXT]

The lab's containers share the VM's kernel, and with the host cgroup namespace (docs/lab.md)
the pods a lab host runs sit in cgroups of their own beside the host container's, so a sum
over the containers' cgroups misses part of the lab. The figure that counts is the VM's:
`MemTotal - MemAvailable` and the CPU time spent over an idle interval (/proc/stat), taken
once with the lab up and compared with a reading without it (`--label no-lab` after
`make lab-down`). Each lab container's own cgroup (memory usage, RSS, processes) is listed
beside it for the breakdown.

Appends one JSON object per reading to bench/results/lab-cost.jsonl. Nothing is asserted.
"""

import argparse
import datetime
import json
import os
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results", "lab-cost.jsonl")
LABEL = "idcloud.lab"  # lab/idclab/plan.py LABEL
KIND_LABEL = "idcloud.lab.kind"


def meminfo():
    values = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, rest = line.split(":", 1)
            values[key] = int(rest.split()[0]) * 1024
    return values


def cpu_times():
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return total - idle, total


def read_int(path):
    with open(path) as f:
        return int(f.read())


def container_cost(name):
    cgroup = subprocess.run(
        ["podman", "inspect", "-f", "{{.State.CgroupPath}}", name], text=True, capture_output=True, check=True
    ).stdout.strip()
    stat = {}
    with open(f"/sys/fs/cgroup/memory{cgroup}/memory.stat") as f:
        for line in f:
            key, value = line.split()
            stat[key] = int(value)
    return {
        "usage_mib": round(read_int(f"/sys/fs/cgroup/memory{cgroup}/memory.usage_in_bytes") / 2**20, 1),
        "rss_mib": round(stat.get("total_rss", 0) / 2**20, 1),
        "cache_mib": round(stat.get("total_cache", 0) / 2**20, 1),
        "tasks": read_int(f"/sys/fs/cgroup/pids{cgroup}/pids.current"),
        "cpu_s": round(read_int(f"/sys/fs/cgroup/cpuacct{cgroup}/cpuacct.usage") / 1e9, 1),
    }


def lab_containers(lab):
    out = subprocess.run(
        [
            "podman",
            "ps",
            "--filter",
            f"label={LABEL}={lab}",
            "--format",
            '{{.Names}} {{index .Labels "' + KIND_LABEL + '"}}',
        ],
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    return [tuple(line.split()) for line in out.splitlines() if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", default="idlab", help="the lab's name (its description's lab.name)")
    ap.add_argument("--seconds", type=int, default=60, help="the idle interval over which CPU is measured")
    ap.add_argument("--label", default="lab-up", help="what this reading is (lab-up, no-lab, ...)")
    args = ap.parse_args()

    containers = lab_containers(args.lab)
    before = {name: container_cost(name)["cpu_s"] for name, _ in containers}
    busy0, total0 = cpu_times()
    time.sleep(args.seconds)
    busy1, total1 = cpu_times()
    mem = meminfo()
    per = []
    for name, kind in containers:
        cost = container_cost(name)
        cost["cpu_pct"] = round(100 * (cost["cpu_s"] - before[name]) / args.seconds, 1)
        per.append({"container": name, "kind": kind, **cost})
    ncpu = os.cpu_count()
    reading = {
        "time": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "label": args.label,
        "lab": args.lab,
        "cpus": ncpu,
        "interval_s": args.seconds,
        "vm_used_mib": round((mem["MemTotal"] - mem["MemAvailable"]) / 2**20, 1),
        "vm_total_mib": round(mem["MemTotal"] / 2**20, 1),
        # busy share of all CPUs over the interval, and the same in cores
        "vm_cpu_busy_pct": round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1),
        "vm_cpu_busy_cores": round(ncpu * (busy1 - busy0) / max(total1 - total0, 1), 2),
        "loadavg": open("/proc/loadavg").read().split()[:3],
        "containers": per,
        "containers_usage_mib": round(sum(p["usage_mib"] for p in per), 1),
        "containers_rss_mib": round(sum(p["rss_mib"] for p in per), 1),
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(reading) + "\n")
    print(
        f"{reading['label']}: VM used {reading['vm_used_mib']} MiB of {reading['vm_total_mib']}, "
        f"CPU busy {reading['vm_cpu_busy_pct']} % ({reading['vm_cpu_busy_cores']} cores) over {args.seconds} s; "
        f"{len(per)} containers: usage {reading['containers_usage_mib']} MiB, RSS {reading['containers_rss_mib']} MiB"
    )
    for p in sorted(per, key=lambda p: -p["rss_mib"]):
        print(
            f"  {p['container']:<24} {p['kind']:<8} RSS {p['rss_mib']:>7} MiB  usage {p['usage_mib']:>7} MiB  "
            f"tasks {p['tasks']:>4}  CPU {p['cpu_pct']:>5} %"
        )


if __name__ == "__main__":
    main()
