"""End to end, the cluster add-ons: cluster DNS (CoreDNS behind kube-dns, forwarding to the
lab's IDC resolver on the mirror), on the session's converged cluster (conftest.py)."""

import re
import time

from kubernetes import client
from kubernetes.stream import stream

from e2e import FIGURES, hosts_with, wait_for, web_pods

NS = "idcloud-demo"
LOOKUPS = 200


def sh(cluster, pod, script, timeout=120):
    return stream(
        cluster["core"].connect_get_namespaced_pod_exec,
        pod.metadata.name,
        pod.metadata.namespace,
        command=["sh", "-c", script],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _request_timeout=timeout,
    )


def addresses(answer):
    """The addresses of an nslookup answer (after its "Name:" line; the server's own come first)."""
    _, _, rest = answer.partition("Name:")
    return set(re.findall(r"Address(?: \d+)?:\s*([0-9.]+)", rest))


def libc_lookup(cluster, pod, name):
    """The address the pod's libc resolver gives a name (search list and ndots applied), from
    busybox ping's first line (ping itself then fails: no raw socket as a non-root user)."""
    m = re.search(r"^PING \S+ \(([0-9.]+)\)", sh(cluster, pod, f"ping -c1 -W1 {name} 2>&1"), re.M)
    return m.group(1) if m else None


def resolve(cluster, pod, name, address, timeout=60):
    """nslookup a name from a pod until the answer holds the address; fail with the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = sh(cluster, pod, f"nslookup {name}")
        if address in addresses(answer):
            return answer
        assert time.monotonic() < deadline, f"{name} did not resolve to {address} in {timeout}s; last:\n{answer}"
        time.sleep(2)


def ready_in_slice(cluster, service, address):
    slices = (
        cluster["discovery"]
        .list_namespaced_endpoint_slice(NS, label_selector=f"kubernetes.io/service-name={service}")
        .items
    )
    return any(
        address in e.addresses and e.conditions and e.conditions.ready for s in slices for e in s.endpoints or []
    )


def coredns_pods(cluster):
    return cluster["core"].list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items


def test_coredns_runs_spread_across_racks_behind_the_kubelets_dns_address(cluster):
    core = cluster["core"]
    service = core.read_namespaced_service("kube-dns", "kube-system")
    pod = web_pods(core)[0]
    # the kubelets give pods this nameserver: the Service is exactly there
    resolv = sh(cluster, pod, "cat /etc/resolv.conf")
    assert f"nameserver {service.spec.cluster_ip}\n" in resolv, resolv
    pods = wait_for(
        "2 ready CoreDNS pods",
        lambda: (
            lambda ps: (
                ps
                if len(ps) >= 2
                and all(any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []) for p in ps)
                else None
            )
        )(coredns_pods(cluster)),
        120,
    )
    nodes = {n.metadata.name: n.metadata.labels for n in core.list_node().items}
    racks = {nodes[p.spec.node_name]["idcloud.io/rack"] for p in pods}
    assert len(racks) == len(pods), [(p.metadata.name, p.spec.node_name) for p in pods]
    assert all(p.spec.priority_class_name == "system-cluster-critical" for p in pods)
    FIGURES["coredns_nodes"] = sorted(p.spec.node_name for p in pods)


def test_cluster_service_headless_pod_and_idc_names_resolve_from_a_pod(cluster):
    core = cluster["core"]
    desc = cluster["desc"]
    web = web_pods(core)[0]
    headless = client.V1Service(
        metadata=client.V1ObjectMeta(name="dns-headless"),
        spec=client.V1ServiceSpec(
            cluster_ip="None",
            selector={"app.kubernetes.io/name": "dns-target"},
            ports=[client.V1ServicePort(port=8080)],
        ),
    )
    target = client.V1Pod(
        metadata=client.V1ObjectMeta(name="dns-target", labels={"app.kubernetes.io/name": "dns-target"}),
        spec=client.V1PodSpec(
            hostname="dns-target",
            subdomain="dns-headless",
            # the web image reads WEB_PORT, which the Service "web" would set to tcp://<ip>:80
            # as a Docker-link variable: httpd then exits, and the pod flaps between ready and not
            enable_service_links=False,
            containers=[client.V1Container(name="web", image=web.spec.containers[0].image)],
        ),
    )
    core.create_namespaced_service(NS, headless)
    core.create_namespaced_pod(NS, target)
    try:
        pod_ip = wait_for("dns-target to run", lambda: core.read_namespaced_pod("dns-target", NS).status.pod_ip, 120)
        # CoreDNS serves the pod's record only once the EndpointSlice has it ready; a lookup before
        # that gets NXDOMAIN, which CoreDNS's cache then keeps for a while: wait for the real state
        wait_for(
            f"the dns-headless EndpointSlice to list {pod_ip} ready",
            lambda: ready_in_slice(cluster, "dns-headless", pod_ip),
            120,
        )
        kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
        web_ip = core.read_namespaced_service("web", NS).spec.cluster_ip
        mirror = desc["lab"]["mirror"]["address"]
        # short names through the pod's search list, as an application looks them up
        for name, address in {"kubernetes.default": kubernetes_ip, "web": web_ip}.items():
            assert libc_lookup(cluster, web, name) == address, name
        expected = {
            "kubernetes.default.svc.cluster.local": kubernetes_ip,
            f"web.{NS}.svc.cluster.local": web_ip,
            f"dns-target.dns-headless.{NS}.svc.cluster.local": pod_ip,
            # an IDC name: CoreDNS forwards it to the lab's resolver on the mirror
            f"mirror.{desc['lab']['name']}.idc": mirror,
            f"{hosts_with(desc, 'worker')[0]['name']}.{desc['lab']['name']}.idc": hosts_with(desc, "worker")[0][
                "address"
            ],
        }
        for name, address in expected.items():
            answer = resolve(cluster, web, name, address)
            assert addresses(answer) == {address}, (name, answer)
        # air-gapped: a name outside the cluster and the IDC resolves nowhere
        outside = sh(cluster, web, "nslookup example.com; echo rc=$?")
        assert "rc=0" not in outside and not addresses(outside), outside
    finally:
        core.delete_namespaced_pod("dns-target", NS, grace_period_seconds=0)
        core.delete_namespaced_service("dns-headless", NS)


def test_lookups_keep_succeeding_with_a_coredns_pod_deleted(cluster):
    core = cluster["core"]
    workers = {h["name"] for h in hosts_with(cluster["desc"], "worker")}
    clients = {}
    for p in web_pods(core):
        clients.setdefault(p.spec.node_name, p)
    assert set(clients) == workers, clients
    victim = coredns_pods(cluster)[0]
    core.delete_namespaced_pod(victim.metadata.name, "kube-system")
    loop = (
        f"f=0; i=0; while [ $i -lt {LOOKUPS} ]; do nslookup kubernetes.default.svc.cluster.local >/dev/null 2>&1"
        " || f=$((f+1)); i=$((i+1)); done; echo failed=$f"
    )
    started = time.monotonic()
    for node, pod in sorted(clients.items()):
        out = sh(cluster, pod, loop, timeout=600)
        assert out.strip().endswith("failed=0"), (node, out)
    FIGURES["dns_lookups_with_a_coredns_pod_deleted"] = {
        "per_worker": LOOKUPS,
        "workers": sorted(clients),
        "s": round(time.monotonic() - started, 1),
    }
    # and the Deployment replaces the pod
    wait_for(
        "CoreDNS back to 2 available",
        lambda: (
            (cluster["apps"].read_namespaced_deployment("coredns", "kube-system").status.available_replicas or 0) >= 2
        ),
        120,
    )
    # the deleted pod may still be terminating (CoreDNS's 5 s lameduck, then the grace period)
    wait_for(
        "the deleted CoreDNS pod to be gone",
        lambda: victim.metadata.name not in {p.metadata.name for p in coredns_pods(cluster)},
        120,
    )
