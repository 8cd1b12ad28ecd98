#!/usr/bin/env python3
"""Converge speed on the default lab, side by side in one run (`make bench-speed`).

From nothing: `lab down`, `lab up`, site.yml --check --diff on the fresh hosts, site.yml
(first converge), site.yml again (no-op, mitogen: the default strategy), the same no-op
with Ansible's own linear strategy and plain SSH (ANSIBLE_STRATEGY=linear), and
site.yml --check --diff on the converged cluster. Appends a row per step to
bench/results/speed.csv, writes each run's profile (bench/profile_summary.py: time by
role and the top tasks) to bench/results/profiles/, and prints the ratios the Speed
issue asks for. Wall-clock seconds on this machine; nothing here is asserted.
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
IDC = os.environ.get("LAB_IDC", os.path.join(REPO, "inventories", "lab", "idc.yml"))
ENV = dict(
    os.environ,
    PATH=BIN + os.pathsep + os.environ["PATH"],
    ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
    CONTAINERS_CONF=os.path.join(REPO, "lab", "containers.conf"),
    PROFILE_TASKS_TASK_OUTPUT_LIMIT="40",
)
RESULTS = os.path.join(REPO, "bench", "results")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def run(label, cmd, env=None, slug=None):
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env or ENV, text=True, capture_output=True)
    seconds = round(time.monotonic() - started, 1)
    if proc.returncode != 0:
        sys.exit(f"{label} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    recap = RECAP.findall(proc.stdout)
    changed = sum(int(r[1]) for r in recap)
    print(f"{label:<44} {seconds:7.1f} s  changed={changed}", flush=True)
    if slug:
        os.makedirs(os.path.join(RESULTS, "profiles"), exist_ok=True)
        log = os.path.join(RESULTS, "profiles", f"{slug}.log")
        with open(log, "w") as f:
            f.write(proc.stdout)
        summary = subprocess.run(
            [sys.executable, os.path.join(REPO, "bench", "profile_summary.py"), log, "--top", "20"],
            text=True,
            capture_output=True,
            check=True,
        ).stdout
        with open(os.path.join(RESULTS, "profiles", f"{slug}.txt"), "w") as f:
            f.write(summary)
        os.remove(log)  # the summary is what is kept; the full log is megabytes
    return label, seconds, changed


def main():
    lab = [os.path.join(BIN, "python"), os.path.join(REPO, "lab", "lab"), "--idc", IDC]
    site = [os.path.join(BIN, "ansible-playbook"), "-i", IDC, os.path.join(REPO, "playbooks", "site.yml")]
    rows = []
    run("lab down", lab + ["down"])
    rows.append(run("lab up (images cached)", lab + ["up"]))
    rows.append(run("site.yml --check --diff, fresh hosts", site + ["--check", "--diff"], slug="check-fresh"))
    rows.append(run("site.yml first converge (mitogen)", site, slug="first-mitogen"))
    rows.append(run("site.yml no-op (mitogen)", site, slug="noop-mitogen"))
    rows.append(
        run("site.yml no-op (linear, plain SSH)", site, env=dict(ENV, ANSIBLE_STRATEGY="linear"), slug="noop-linear")
    )
    rows.append(run("site.yml --check --diff, converged", site + ["--check", "--diff"], slug="check-converged"))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = os.path.join(RESULTS, "speed.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")  # the sanity test wants \n, csv's default is \r\n
        if new:
            w.writerow(["utc", "nproc", "step", "seconds", "changed"])
        for label, seconds, changed in rows:
            w.writerow([stamp, os.cpu_count(), label, seconds, changed])
    by = {label: seconds for label, seconds, _ in rows}
    first, noop = by["site.yml first converge (mitogen)"], by["site.yml no-op (mitogen)"]
    linear = by["site.yml no-op (linear, plain SSH)"]
    print(f"\nno-op / first converge: {noop / first:.2f}   linear no-op / mitogen no-op: {linear / noop:.2f}")


if __name__ == "__main__":
    main()
