#!/usr/bin/env python3
"""Adding one worker to a running cluster, at 2 and at 6 workers (`make bench-add-worker`).

For each worker count, a scratch lab made from inventories/lab/idc.yml (3 etcd and
control-plane hosts, the LB pair, N workers spread over the three racks, no etcd spares;
lab and cluster name sclab<N>, racks on 10.226.x, pod and service CIDRs in 10.236.0.0/16):
`lab up`, site.yml, then the PIDs of every service on every existing host (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, containerd, kube-proxy,
haproxy, keepalived, calico-node's felix and BIRD; bgpd and zebra on the ToRs). Then one
more worker in rack r1 goes into the description, `lab up` makes its container (and
reloads rack r1's ToR with the new neighbour), and the documented command runs, timed:

    ansible-playbook -i <idc> playbooks/scale.yml --limit <new worker>

Checked after it: the node is Ready, rack r1's ToR shows its BGP session Established, a
pod pinned to it runs, every PID on the existing hosts is the one before; then scale.yml
once more, which must change nothing. The labs run one after the other on the same range
(each is brought down at its end). Rows go to bench/results/scale-worker.csv (one per lab,
with the load averages at the measurement), the last run of each lab in
bench/results/scale-worker.json. Wall-clock seconds; nothing here is a timed assertion, but
a failed check ends the run with an error.

  python bench/run_scale_worker.py [--workers 2 6] [--keep]
"""

import argparse
import copy
import csv
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(REPO, ".venv", "bin")
ENV = dict(
    os.environ,
    PATH=BIN + os.pathsep + os.environ["PATH"],
    ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
    CONTAINERS_CONF=os.path.join(REPO, "lab", "containers.conf"),
    ANSIBLE_FORCE_COLOR="0",
)
RESULTS = os.path.join(REPO, "bench", "results")
RECAP = re.compile(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# the address moves of the scratch labs (the main lab is 10.210.x, its pods 10.233.x)
MOVES = {"10.210.": "10.226.", "10.233.": "10.236."}
UNITS = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "containerd",
    "kube-proxy",
    "haproxy",
    "keepalived",
]
# processes of calico-node (a pod, so not a unit) and of FRR on the ToRs
PROCESSES = {
    "host": {"bird": ["-x", "bird"], "felix": ["-f", "calico-node -felix$"]},
    "tor": {"bgpd": ["-x", "bgpd"], "zebra": ["-x", "zebra"]},
}


def log(msg):
    print(f"[bench] {msg}", flush=True)


def moved(node):
    if isinstance(node, dict):
        return {k: moved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [moved(v) for v in node]
    if isinstance(node, str):
        for old, new in MOVES.items():
            node = node.replace(old, new)
        return node
    return node


def racks(desc):
    return [r for room in desc["rooms"] for r in room["racks"]]


def description(workers):
    """The main lab's description for sclab<workers>: no spares (so no Kafka, no Ceph), `workers` workers over r1, r2, r3."""
    with open(os.path.join(REPO, "inventories", "lab", "idc.yml")) as f:
        desc = moved(yaml.safe_load(f))
    name = f"sclab{workers}"
    desc["cluster"]["name"] = name
    desc["lab"]["name"] = name
    template = None
    for rack in racks(desc):
        for host in list(rack["hosts"]):
            if "worker" in host["roles"]:
                template = template or host
            if "etcd_spare" in host["roles"] or "worker" in host["roles"]:
                rack["hosts"].remove(host)
    desc.pop("ceph", None)  # its hosts were the spares
    for i in range(workers):
        add_worker(desc, racks(desc)[i % 3], template)
    return desc


def add_worker(desc, rack, template=None):
    """Append worker w<n+1> to `rack` at the rack's next .3x address; return its name."""
    template = template or next(h for r in racks(desc) for h in r["hosts"] if "worker" in h["roles"])
    count = sum("worker" in h["roles"] for r in racks(desc) for h in r["hosts"])
    used = [int(h["address"].rsplit(".", 1)[1]) for h in rack["hosts"]]
    last = max([n for n in used if 31 <= n < 40] or [30])
    host = dict(copy.deepcopy(template), name=f"w{count + 1}", address=f"{rack['subnet'].rsplit('.', 1)[0]}.{last + 1}")
    rack["hosts"].append(host)
    return host


def write(directory, desc):
    path = os.path.join(directory, "idc.yml")
    with open(path, "w") as f:
        yaml.safe_dump(desc, f, sort_keys=False)
    link = os.path.join(directory, "group_vars")
    if not os.path.islink(link):
        os.symlink(os.path.join(REPO, "inventories", "lab", "group_vars"), link)
    return path


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def run(label, cmd, logfile=None):
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, text=True, capture_output=True)
    seconds = round(time.monotonic() - started, 1)
    if logfile:
        with open(logfile, "w") as f:
            f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"{label} failed ({logfile or ''}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    recap = {m[0]: int(m[1]) for m in RECAP.findall(proc.stdout)}
    log(f"{label:<48} {seconds:7.1f} s  changed={sum(recap.values())}")
    return seconds, recap


def podman_exec(container, *cmd, check=True):
    return subprocess.run(["podman", "exec", container, *cmd], env=ENV, text=True, capture_output=True, check=check)


def pids(lab, kind, host):
    """{service: PID} of one lab container (0: the unit or process is not there)."""
    cname = f"{lab}-{host}"
    out = {}
    if kind == "host":
        shown = podman_exec(cname, "systemctl", "show", "-p", "MainPID", "--value", *UNITS).stdout.split()
        out.update({u: int(p) for u, p in zip(UNITS, shown) if int(p)})
    for name, args in PROCESSES[kind].items():
        found = podman_exec(cname, "pgrep", *args, check=False).stdout.split()
        if found:
            out[name] = sorted(int(p) for p in found)
    return out


def all_pids(desc):
    lab = desc["lab"]["name"]
    table = {h["name"]: pids(lab, "host", h["name"]) for r in racks(desc) for h in r["hosts"]}
    table.update({r["tor"]["name"]: pids(lab, "tor", r["tor"]["name"]) for r in racks(desc)})
    return table


def wait_for(what, predicate, timeout, interval=2.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    sys.exit(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def k8s_clients(desc):
    from kubernetes import client, config  # the venv's client, as the tests use it

    api = config.new_client_from_config(
        config_file=os.path.expanduser(f"~/.idcloud/{desc['cluster']['name']}/admin.conf")
    )
    return client.CoreV1Api(api), client.AppsV1Api(api)


def node_ready(core, name):
    try:
        node = core.read_node(name)
    except Exception:  # not registered yet
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def tor_state(desc, rack, address):
    out = podman_exec(f"{desc['lab']['name']}-{rack['tor']['name']}", "vtysh", "-c", "show bgp neighbors json").stdout
    return json.loads(out).get(address, {}).get("bgpState")


def pod_on(core, apps, node):
    """A pod pinned to `node` (the workload's image) runs there; returns its phase, then removes it."""
    from kubernetes import client

    image = apps.read_namespaced_deployment("web", "idcloud-demo").spec.template.spec.containers[0].image
    name = f"bench-on-{node}"
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            node_selector={"kubernetes.io/hostname": node},
            restart_policy="Never",
            containers=[client.V1Container(name="web", image=image)],
        ),
    )
    core.create_namespaced_pod("default", pod)
    try:
        got = wait_for(
            f"pod {name} Running on {node}",
            lambda: (lambda p: p if p.status.phase == "Running" else None)(core.read_namespaced_pod(name, "default")),
            120,
        )
        return {"phase": got.status.phase, "node": got.spec.node_name, "ip": got.status.pod_ip}
    finally:
        core.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def measure(workers, keep):
    desc = description(workers)
    lab_name = desc["lab"]["name"]
    work = tempfile.mkdtemp(prefix=f"{lab_name}-")
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    idc = write(work, desc)
    lab = [os.path.join(BIN, "python"), os.path.join(REPO, "lab", "lab"), "--idc", idc]
    log(f"{lab_name}: {workers} workers, logs in {logs}")
    run(f"{lab_name} lab down (leftovers)", lab + ["down"])
    try:
        return grow(desc, idc, lab, logs, work)
    finally:
        if not keep:
            run(f"{lab_name} lab down", lab + ["down"])


def grow(desc, idc, lab, logs, work):
    """Converge `desc`, add one worker in rack r1 with scale.yml; return (result, problems)."""
    lab_name, workers = desc["lab"]["name"], sum("worker" in h["roles"] for r in racks(desc) for h in r["hosts"])
    up_s, _ = run(f"{lab_name} lab up", lab + ["up"])
    site_s, _ = run(
        f"{lab_name} site.yml",
        [os.path.join(BIN, "ansible-playbook"), "-i", idc, os.path.join(REPO, "playbooks", "site.yml")],
        os.path.join(logs, "site.log"),
    )
    before = all_pids(desc)

    grown = copy.deepcopy(desc)
    rack = racks(grown)[0]
    new = add_worker(grown, rack)
    write(work, grown)
    load_up = loadavg()
    up2_s, _ = run(f"{lab_name} lab up with {new['name']}", lab + ["up"])
    scale = [
        os.path.join(BIN, "ansible-playbook"),
        "-i",
        idc,
        os.path.join(REPO, "playbooks", "scale.yml"),
        "--limit",
        new["name"],
    ]
    load_before = loadavg()
    scale_s, recap = run(f"{lab_name} scale.yml --limit {new['name']}", scale, os.path.join(logs, "scale-1.log"))
    load_after = loadavg()

    core, apps = k8s_clients(grown)
    ready = wait_for(f"{new['name']} Ready", lambda: node_ready(core, new["name"]), 60)
    tor = wait_for(
        f"{rack['tor']['name']} session with {new['address']}",
        lambda: (lambda s: s if s == "Established" else None)(tor_state(grown, rack, new["address"])),
        60,
    )
    pod = pod_on(core, apps, new["name"])
    after = all_pids(desc)
    moved_pids = {
        h: {s: (p, after.get(h, {}).get(s)) for s, p in svc.items() if after.get(h, {}).get(s) != p}
        for h, svc in before.items()
    }
    moved_pids = {h: d for h, d in moved_pids.items() if d}
    second_s, recap2 = run(f"{lab_name} scale.yml again", scale, os.path.join(logs, "scale-2.log"))
    changed2 = {h: c for h, c in recap2.items() if c}
    result = {
        "utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "lab": lab_name,
        "workers_before": workers,
        "hosts_before": sum(len(r["hosts"]) for r in racks(desc)),
        "new_worker": new["name"],
        "lab_up_s": up_s,
        "site_s": site_s,
        "lab_up_new_host_s": up2_s,
        "scale_s": scale_s,
        "scale_changed": recap,
        "scale_hosts": sorted(recap),
        "second_scale_s": second_s,
        "second_scale_changed": sum(recap2.values()),
        "load_at_lab_up": load_up,
        "load_before_scale": load_before,
        "load_after_scale": load_after,
        "ready": ready,
        "tor_session": tor,
        "pod": pod,
        "pids_before": before,
        "pids_changed": moved_pids,
    }
    problems = []
    if moved_pids:
        problems.append(f"PIDs changed on existing hosts: {moved_pids}")
    if changed2:
        problems.append(f"the second scale.yml changed: {changed2}")
    if set(recap) != {new["name"]}:
        problems.append(f"scale.yml ran on {sorted(recap)}, not only {new['name']}")
    return result, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 6])
    parser.add_argument("--keep", action="store_true", help="leave the last lab up")
    args = parser.parse_args()
    results, problems = [], []
    for i, workers in enumerate(args.workers):
        result, found = measure(workers, args.keep and i == len(args.workers) - 1)
        results.append(result)
        problems += [f"sclab{workers}: {p}" for p in found]
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "scale-worker.csv")
    new = not os.path.exists(path)
    with open(path, "a", newline="") as f:
        w = csv.writer(f, lineterminator="\n")  # the sanity test wants \n, csv's default is \r\n
        if new:
            w.writerow(
                [
                    "utc",
                    "nproc",
                    "lab",
                    "workers_before",
                    "hosts_before",
                    "lab_up_new_host_s",
                    "scale_s",
                    "second_scale_s",
                    "second_scale_changed",
                    "pids_changed",
                    "load_before_scale",
                    "load_after_scale",
                ]
            )
        for r in results:
            w.writerow(
                [
                    r["utc"],
                    r["nproc"],
                    r["lab"],
                    r["workers_before"],
                    r["hosts_before"],
                    r["lab_up_new_host_s"],
                    r["scale_s"],
                    r["second_scale_s"],
                    r["second_scale_changed"],
                    len(r["pids_changed"]),
                    r["load_before_scale"],
                    r["load_after_scale"],
                ]
            )
    # the last run of each lab, by lab name (a run of one lab keeps the other's)
    details = os.path.join(RESULTS, "scale-worker.json")
    kept = {}
    if os.path.exists(details):
        with open(details) as f:
            kept = json.load(f)
    kept.update({r["lab"]: r for r in results})
    with open(details, "w") as f:
        json.dump(kept, f, indent=1, sort_keys=True)
    for r in results:
        log(
            f"{r['lab']}: scale.yml {r['scale_s']} s (load {r['load_before_scale']} -> {r['load_after_scale']}), "
            f"again {r['second_scale_s']} s changed={r['second_scale_changed']}, PIDs changed on "
            f"{len(r['pids_changed'])} hosts"
        )
    if len(results) == 2:
        a, b = results[0]["scale_s"], results[1]["scale_s"]
        log(f"{results[1]['lab']} / {results[0]['lab']}: {b / a:.2f}")
    if problems:
        sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
