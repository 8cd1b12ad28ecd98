#!/usr/bin/env python3
"""Measure the lab: start-up, converge, no-op re-runs and an etcd restore.

Runs on the default lab (inventories/lab/idc.yml) from nothing: `lab down`, `lab up`,
site.yml (node tuning, both etcd clusters, the apiserver VIP, the Kubernetes control
plane and nodes, the workload), site.yml again (must change nothing), etcd.yml and
kubernetes.yml alone,
write keys, back up, restore onto the spare. Appends one row per step to
bench/results/foundation.csv and prints a summary. Wall-clock seconds on this machine;
compare runs on the same kind of machine only.
"""

import csv
import datetime
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")
IDC = os.path.join(REPO, "inventories", "lab", "idc.yml")
ENV = dict(
    os.environ,
    PATH=BIN + os.pathsep + os.environ["PATH"],
    ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
    CONTAINERS_CONF=os.path.join(REPO, "lab", "containers.conf"),
)
RESULTS = os.path.join(REPO, "bench", "results", "foundation.csv")
RECAP = re.compile(r"^\S+\s+: ok=\d+\s+changed=(\d+)", re.M)


def timed(label, cmd):
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, text=True, capture_output=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    changed = sum(int(c) for c in RECAP.findall(proc.stdout))
    print(f"{label:<28} {seconds:7.1f}s  changed={changed}", flush=True)
    return seconds, changed, proc.stdout


def main():
    lab = [os.path.join(BIN, "python"), os.path.join(REPO, "lab", "lab"), "--idc", IDC]

    def play(name):
        return [os.path.join(BIN, "ansible-playbook"), "-i", IDC, os.path.join(REPO, "playbooks", name)]

    rows = []
    timed("lab down", lab + ["down"])
    rows.append(("lab up (images cached)",) + timed("lab up (images cached)", lab + ["up"])[:2])
    rows.append(("site.yml first converge",) + timed("site.yml first converge", play("site.yml"))[:2])
    rows.append(("site.yml no-op re-run",) + timed("site.yml no-op re-run", play("site.yml"))[:2])
    rows.append(("etcd.yml no-op re-run",) + timed("etcd.yml no-op re-run", play("etcd.yml"))[:2])
    rows.append(("kubernetes.yml no-op re-run",) + timed("kubernetes.yml no-op re-run", play("kubernetes.yml"))[:2])
    subprocess.run(
        [
            "podman",
            "exec",
            "idlab-cp1",
            "sh",
            "-c",
            "for i in $(seq 1 300); do etcdctl-cluster put /bench/k$i v$i >/dev/null; done",
        ],
        check=True,
    )
    rows.append(("etcd_backup.yml",) + timed("etcd_backup.yml", play("etcd_backup.yml"))[:2])
    seconds, changed, out = timed("etcd_restore.yml", play("etcd_restore.yml"))
    rows.append(("etcd_restore.yml",) + (seconds, changed))
    report = re.search(r"""seconds["']?:\s*([\d.]+)""", out)
    if report:
        rows.append(("restore (report: stop to healthy)", float(report.group(1)), 0))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = not os.path.exists(RESULTS)
    with open(RESULTS, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")  # the sanity test wants \n, csv's default is \r\n
        if new:
            w.writerow(["utc", "nproc", "step", "seconds", "changed"])
        for step, seconds, changed in rows:
            w.writerow([stamp, os.cpu_count(), step, f"{seconds:.1f}", changed])
    print(f"appended {len(rows)} rows to {RESULTS}")


if __name__ == "__main__":
    main()
