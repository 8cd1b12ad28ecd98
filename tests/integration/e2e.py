"""The end-to-end lab: one Kubernetes cluster for the whole session, and what reads it.

The description is inventories/lab/idc.yml (3 etcd + control-plane hosts, the LB pair with
the VIP, 2 workers, the mirror with its registry), moved to 10.219.x so it cannot meet the
main lab, without its 3 etcd spares: no e2e test reads them, they cost every full site.yml
run here about a tenth of its time (make test's budget, issue 9), and molecule's etcd
scenario forms a spare cluster and restores onto it. The Kafka brokers the spares carry in
the main lab move to the control-plane host of the same rack (one per rack, as there), when
a selected test needs them (marker `kafka`); otherwise the cluster has no Kafka and no log
shipper (`log_shipper_enabled: false`), which saves `make test` about 7 minutes of converges.
The Ceph daemons and OSD files of the spares move the same way, when a selected test is
marked `storage`; otherwise the cluster has no Ceph.
conftest.py's session fixture `cluster` brings
it up once: `lab up`, site.yml --check on the fresh hosts, the first converge; every
test_e2e_* module reads that one cluster, and the drills (marker `drill`) run last.
Everything here reads real state: the Node objects the kubelets report, the kubernetes
EndpointSlice, the address keepalived holds, containerd's tasks on the workers, the BGP
tables of the ToR routers (FRR), BIRD's sessions, the IPAM block affinities, the nodes'
routes and NAT rules.
"""

import contextlib
import json
import os
import time

import yaml
from kubernetes import client, config
from kubernetes.stream import stream

from lab_helpers import REPO, kmsg_mark, lab, lab_net, playbook, podman_exec, run_playbook, write_inventory

LAB = "it-k8s"
CLUSTER = "itk8s"
NET_FROM, NET_TO = "10.210.", f"10.{lab_net(LAB)}."
# figures the tests measure; written to bench/results/e2e-figures.json at the end (or the file
# IDCLOUD_E2E_FIGURES names)
FIGURES = {}


def _moved(node):
    """The lab description with every 10.210.x address moved to 10.219.x."""
    if isinstance(node, dict):
        return {k: _moved(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_moved(v) for v in node]
    if isinstance(node, str):
        return node.replace(NET_FROM, NET_TO)
    return node


def ctr(host):
    return f"{LAB}-{host}"


CEPH_ROLES = ("ceph_mon", "ceph_mgr", "ceph_osd", "ceph_mds")


def without_ceph(desc):
    """The description without Ceph: no ceph_* roles, no OSD devices, no ceph section."""
    for rack in racks(desc):
        for host in rack["hosts"]:
            host["roles"] = [r for r in host["roles"] if r not in CEPH_ROLES]
            host.pop("osd_devices", None)
    desc.pop("ceph", None)
    return desc


def without_kafka(desc):
    """The description without the kafka role, and the log shipper off (it has no brokers)."""
    for rack in racks(desc):
        for host in rack["hosts"]:
            host["roles"] = [r for r in host["roles"] if r != "kafka"]
    desc["vars"]["log_shipper_enabled"] = False
    return desc


def e2e_description(kafka=True, ceph=True):
    """The lab's description moved to the e2e lab's range, its spares' roles on the control-plane
    hosts of their racks; without Kafka and the shipper, or without Ceph, when asked."""
    with open(os.path.join(REPO, "inventories", "lab", "idc.yml")) as f:
        desc = _moved(yaml.safe_load(f))
    desc["cluster"]["name"] = CLUSTER
    desc["lab"]["name"] = LAB
    for rack in racks(desc):
        spares = [h for h in rack["hosts"] if "etcd_spare" in h["roles"]]
        moved = {role for h in spares for role in h["roles"]} - {"etcd_spare"}
        rack["hosts"] = [h for h in rack["hosts"] if "etcd_spare" not in h["roles"]]
        if moved:
            host = next(h for h in rack["hosts"] if "control_plane" in h["roles"])
            host["roles"] = host["roles"] + sorted(moved - set(host["roles"]))
            devices = [d for h in spares for d in h.get("osd_devices", [])]
            if devices:
                # a file-backed device is named after its host: give it the new host's name
                host["osd_devices"] = [
                    {**d, "file": d["file"].replace(spares[0]["name"], host["name"])} if isinstance(d, dict) else d
                    for d in devices
                ]
    assert not hosts_with(desc, "etcd_spare"), "a host with etcd_spare and another role: keep it, or drop the role"
    if not kafka:
        without_kafka(desc)
    if not ceph:
        without_ceph(desc)
    return desc


@contextlib.contextmanager
def converged_cluster(tmp_dir, kafka=True, ceph=True, fresh_check=True):
    """Bring the e2e lab up from nothing, preview and converge site.yml, yield the cluster.

    kafka=False: no Kafka brokers and no log shipper (the tests that read them are not run).
    ceph=False: no Ceph cluster (the tests that read it are not run).
    fresh_check=False: no preview of the first install (its test is not run)."""
    desc = e2e_description(kafka=kafka, ceph=ceph)
    FIGURES["kafka"] = kafka
    FIGURES["ceph"] = ceph
    idc = write_inventory(tmp_dir, desc)
    logs = os.path.join(tmp_dir, "logs")
    os.makedirs(logs)
    # start from nothing: a run that was killed may have left half a lab behind
    lab(idc, "down")
    # the lab's egress log from here on is asserted empty by the last test (test_e2e_zz_egress.py)
    egress_mark = kmsg_mark()
    lab(idc, "up")
    try:
        # a preview of the first install on fresh hosts (asserted by its own test)
        check_fresh = None
        if fresh_check:
            started = time.monotonic()
            check_fresh = run_playbook(idc, "site.yml", "--check", "--diff", log=os.path.join(logs, "check-fresh.log"))
            FIGURES["check_fresh_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        recap = playbook(idc, "site.yml", log=os.path.join(logs, "site-1.log"))
        FIGURES["site_first_s"] = round(time.monotonic() - started, 1)
        kubeconfig = os.path.expanduser(f"~/.idcloud/{CLUSTER}/admin.conf")
        api = config.new_client_from_config(config_file=kubeconfig)
        yield {
            "idc": idc,
            "desc": desc,
            "recap": recap,
            "logs": logs,
            "api": api,
            "check_fresh": check_fresh,
            "kubeconfig": kubeconfig,
            "core": client.CoreV1Api(api),
            "apps": client.AppsV1Api(api),
            "discovery": client.DiscoveryV1Api(api),
            "egress_mark": egress_mark,
        }
    finally:
        print("figures:", json.dumps(FIGURES))
        results = os.path.join(REPO, "bench", "results")
        os.makedirs(results, exist_ok=True)
        # `make e2e-extra` keeps its figures apart (IDCLOUD_E2E_FIGURES=e2e-extra-figures.json)
        with open(os.path.join(results, os.environ.get("IDCLOUD_E2E_FIGURES", "e2e-figures.json")), "w") as f:
            json.dump(
                {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **FIGURES},
                f,
                indent=1,
                sort_keys=True,
                default=str,
            )
        lab(idc, "down")


def hosts_with(desc, role):
    return [h for room in desc["rooms"] for rack in room["racks"] for h in rack["hosts"] if role in h["roles"]]


KAFKA_PORT = 9093


def kafka_brokers(desc):
    """{host: address} of the Kafka brokers."""
    return {h["name"]: h["address"] for h in hosts_with(desc, "kafka")}


def kafka_tls(desc, cert=True):
    """librdkafka settings for the brokers' TLS listener, with the admin client certificate."""
    pki = os.path.expanduser(f"~/.idcloud/{CLUSTER}/pki/kafka")
    conf = {
        "bootstrap.servers": ",".join(f"{a}:{KAFKA_PORT}" for a in kafka_brokers(desc).values()),
        "security.protocol": "SSL",
        "ssl.ca.location": f"{pki}/ca.crt",
    }
    if cert:
        conf.update(
            {"ssl.certificate.location": f"{pki}/client-admin.crt", "ssl.key.location": f"{pki}/client-admin.key"}
        )
    return conf


def ready(node):
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def web_pods(core):
    pods = core.list_namespaced_pod("idcloud-demo", label_selector="app.kubernetes.io/name=web").items
    return sorted(pods, key=lambda p: p.metadata.name)


def http_get(node, ip, port=8080):
    return podman_exec(ctr(node), "curl", "-sf", "--max-time", "3", f"http://{ip}:{port}/", check=False)


def wait_for(what, predicate, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # the API may be down for a moment in a drill
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def _mib(quantity):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return float(quantity[:-2]) * factor
    return float(quantity) / (1024 * 1024)


def _millicores(quantity):
    return float(quantity[:-1]) if quantity.endswith("m") else float(quantity) * 1000


CALICO = ("crd.projectcalico.org", "v1")


def rack_of(desc, host):
    return next(r for room in desc["rooms"] for r in room["racks"] if any(h["name"] == host for h in r["hosts"]))


def racks(desc):
    return [r for room in desc["rooms"] for r in room["racks"]]


def worker_addresses(desc):
    return {h["name"]: h["address"] for h in hosts_with(desc, "worker")}


def block_affinities(cluster):
    custom = client.CustomObjectsApi(cluster["api"])
    items = custom.list_cluster_custom_object(*CALICO, "blockaffinities")["items"]
    return {(i["spec"]["node"], i["spec"]["cidr"]) for i in items if i["spec"].get("state") == "confirmed"}


def tor_routes(desc, rack):
    """The ToR's BGP table: {prefix: {next-hop or learned-from address, ...}}."""
    out = podman_exec(ctr(rack["tor"]["name"]), "vtysh", "-c", "show ip bgp json").stdout
    routes = json.loads(out).get("routes", {})
    table = {}
    for prefix, paths in routes.items():
        table[prefix] = {p.get("peerId") for p in paths if p.get("valid")}
    return table


def tor_neighbors(desc, rack):
    out = podman_exec(ctr(rack["tor"]["name"]), "vtysh", "-c", "show bgp neighbors json").stdout
    return {addr: info.get("bgpState") for addr, info in json.loads(out).items()}


FIXED_POD = "fixed-ip"


def pod_exec(cluster, pod, *cmd):
    return stream(
        client.CoreV1Api(cluster["api"]).connect_get_namespaced_pod_exec,
        pod.metadata.name,
        pod.metadata.namespace,
        command=list(cmd),
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=30,
    )


def pod_http(cluster, pod, ip, port=8080):
    """GET / from inside a pod, with busybox nc (the image's busybox wget exits with SIGSEGV, 139, here)."""
    return pod_exec(cluster, pod, "sh", "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {ip} {port}')


def calico_pod(cluster, node):
    pods = cluster["core"].list_namespaced_pod("kube-system", label_selector="k8s-app=calico-node").items
    return next(p for p in pods if p.spec.node_name == node)


def endpoint_addresses(cluster):
    slices = (
        cluster["discovery"]
        .list_namespaced_endpoint_slice("default", label_selector="kubernetes.io/service-name=kubernetes")
        .items
    )
    return sorted(a for s in slices for e in s.endpoints or [] for a in e.addresses)


def vip_holders(desc):
    vip = desc["cluster"]["apiserver_vip"]
    return [
        h["name"]
        for h in hosts_with(desc, "lb")
        if f" {vip}/" in podman_exec(ctr(h["name"]), "ip", "-o", "-4", "addr", check=False).stdout
    ]


def containerd_tasks(node):
    out = podman_exec(ctr(node), "ctr", "-n", "k8s.io", "tasks", "ls").stdout
    return {line.split()[0]: (line.split()[1], line.split()[2]) for line in out.splitlines()[1:] if line.strip()}


# The host that only test_e2e_scale.py brings up: one more worker in rack r1, added to the
# running cluster with playbooks/scale.yml (the fixture's lab is made without it).
ADDED_WORKER = {"name": "w3", "rack": "r1", "address": f"{NET_TO}1.32"}


def grown_description(desc):
    """The session's description with ADDED_WORKER in its rack (sized like the first worker)."""
    grown = json.loads(json.dumps(desc))
    template = hosts_with(grown, "worker")[0]
    rack = next(r for r in racks(grown) if r["name"] == ADDED_WORKER["rack"])
    assert all(h["name"] != ADDED_WORKER["name"] for r in racks(grown) for h in r["hosts"]), "already added"
    rack["hosts"].append(dict(template, name=ADDED_WORKER["name"], address=ADDED_WORKER["address"]))
    return grown


# Services whose PIDs must survive adding a worker: systemd units, and calico-node's
# processes (a pod, so not a unit) on the nodes; FRR's daemons on the ToRs (a new neighbour
# is a reload, not a restart).
SERVICE_UNITS = [
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
SERVICE_PROCESSES = {
    "host": {"bird": ["-x", "bird"], "felix": ["-f", "calico-node -felix$"]},
    "tor": {"bgpd": ["-x", "bgpd"], "zebra": ["-x", "zebra"]},
}


def service_pids(desc):
    """{host or ToR: {service: PID or [PIDs]}} of every running service of the description's lab."""
    table = {}
    for rack in racks(desc):
        for name, kind in [(h["name"], "host") for h in rack["hosts"]] + [(rack["tor"]["name"], "tor")]:
            entry = table[name] = {}
            if kind == "host":
                shown = podman_exec(
                    ctr(name), "systemctl", "show", "-p", "MainPID", "--value", *SERVICE_UNITS
                ).stdout.split()
                entry.update({u: int(p) for u, p in zip(SERVICE_UNITS, shown) if int(p)})
            for proc, args in SERVICE_PROCESSES[kind].items():
                found = podman_exec(ctr(name), "pgrep", *args, check=False).stdout.split()
                if found:
                    entry[proc] = sorted(int(p) for p in found)
    return table
