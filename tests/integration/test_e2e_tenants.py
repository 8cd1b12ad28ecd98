"""End to end, Calico's policy side: tenant isolation (roles/calico README, "Tenants") and
Felix's usage reporting, on the session's converged cluster (conftest.py).

Pods are the lab's web image (busybox httpd on :8080, page naming the pod); reachability is
a GET from inside another pod (e2e.pod_http), so it crosses Felix's real iptables rules.
"""

import os

from kubernetes import client

from e2e import CALICO, pod_exec, pod_http, wait_for, web_pods
from lab_helpers import playbook

TENANT_LABEL = "idcloud.io/tenant"
TENANT_A, TENANT_B = "tenant-a", "tenant-b"


def _web_pod(desc, namespace, name, labels=None, port=None, sysctls=None):
    env = [client.V1EnvVar(name="WEB_PORT", value=str(port))] if port else None
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=labels or {"app": name}),
        spec=client.V1PodSpec(
            enable_service_links=False,
            termination_grace_period_seconds=1,
            security_context=client.V1PodSecurityContext(sysctls=sysctls) if sysctls else None,
            containers=[
                client.V1Container(name="web", image=f"{desc['vars']['idcloud_registry']}/idcloud/web:1.0.0", env=env)
            ],
        ),
    )


def _running(core, namespace, names, timeout=120):
    def check():
        pods = [core.read_namespaced_pod(n, namespace) for n in names]
        return pods if all(p.status.phase == "Running" and p.status.pod_ip for p in pods) else None

    return wait_for(f"pods {names} in {namespace} to run", check, timeout)


def reaches(cluster, src, dst, port=8080):
    """True when src's GET to dst answers with dst's page (dst's name in it)."""
    return dst.metadata.name in pod_http(cluster, src, dst.status.pod_ip, port)


def tcp_open(cluster, src, ip, port):
    out = pod_exec(cluster, src, "sh", "-c", f"nc -w 3 {ip} {port} </dev/null >/dev/null 2>&1 && echo OPEN")
    return "OPEN" in out


def _namespace(core, name, labels):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))


def _dns_targets(cluster):
    """The cluster DNS pods tenants may reach; a stand-in on :53 where this branch has no CoreDNS."""
    core = cluster["core"]
    pods = [
        p
        for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=kube-dns").items
        if p.status.phase == "Running" and p.status.pod_ip
    ]
    if pods:
        return pods, False
    # No CoreDNS yet (the cluster_addons role lands separately): a pod with the DNS pods'
    # label answering TCP on 53, so the policy's port and selector are what is tested.
    standin = _web_pod(
        cluster["desc"],
        "kube-system",
        "dns-standin",
        labels={"k8s-app": "kube-dns"},
        port=53,
        sysctls=[client.V1Sysctl(name="net.ipv4.ip_unprivileged_port_start", value="0")],
    )
    core.create_namespaced_pod("kube-system", standin)
    return _running(core, "kube-system", ["dns-standin"]), True


def test_tenants_are_isolated_and_policies_open_them(cluster):
    core, desc = cluster["core"], cluster["desc"]
    net = client.NetworkingV1Api(cluster["api"])
    # labelled after the converge: the cluster-wide policies hold at once
    _namespace(core, TENANT_A, {TENANT_LABEL: "a"})
    _namespace(core, TENANT_B, {TENANT_LABEL: "b"})
    try:
        for ns, names in ((TENANT_A, ["a1", "a2"]), (TENANT_B, ["b1"])):
            for name in names:
                core.create_namespaced_pod(ns, _web_pod(desc, ns, name))
        a1, a2 = _running(core, TENANT_A, ["a1", "a2"])
        (b1,) = _running(core, TENANT_B, ["b1"])
        outsider = web_pods(core)[0]  # idcloud-demo: not a tenant

        # before the role has run again: closed, even inside the tenant (fails closed)
        assert not reaches(cluster, b1, a1), "tenant B reached tenant A right after labelling"
        assert not reaches(cluster, a2, a1), "a new tenant is closed until the role writes its same-namespace policy"
        # a tenant's egress is not restricted by the baseline
        assert reaches(cluster, a1, outsider)

        playbook(cluster["idc"], "calico.yml", log=os.path.join(cluster["logs"], "calico-tenants.log"))
        allow = net.read_namespaced_network_policy("idcloud-tenant-same-namespace", TENANT_A)
        assert allow.metadata.labels["idcloud.io/tenant-policy"] == "same-namespace"

        assert wait_for("a2 to reach a1 inside tenant A", lambda: reaches(cluster, a2, a1), 30)
        assert reaches(cluster, a1, a2)
        assert not reaches(cluster, b1, a1), "tenant B reaches tenant A"
        assert not reaches(cluster, a1, b1), "tenant A reaches tenant B"
        assert not reaches(cluster, outsider, a1), "a pod of a non-tenant namespace reaches tenant A"
        assert reaches(cluster, a1, outsider), "tenant egress to a non-tenant pod is cut"

        # a NetworkPolicy of tenant A lets tenant B in
        net.create_namespaced_network_policy(
            TENANT_A,
            client.V1NetworkPolicy(
                metadata=client.V1ObjectMeta(name="from-tenant-b"),
                spec=client.V1NetworkPolicySpec(
                    pod_selector={},
                    policy_types=["Ingress"],
                    ingress=[
                        client.V1NetworkPolicyIngressRule(
                            _from=[
                                client.V1NetworkPolicyPeer(
                                    namespace_selector=client.V1LabelSelector(match_labels={TENANT_LABEL: "b"})
                                )
                            ]
                        )
                    ],
                ),
            ),
        )
        assert wait_for("b1 to reach a1 once tenant A allows it", lambda: reaches(cluster, b1, a1), 30)
        assert not reaches(cluster, a1, b1), "tenant B's isolation opened too"

        # DNS: even under the tenant's own default-deny egress, the DNS pods stay reachable
        dns_pods, standin = _dns_targets(cluster)
        net.create_namespaced_network_policy(
            TENANT_A,
            client.V1NetworkPolicy(
                metadata=client.V1ObjectMeta(name="deny-egress"),
                spec=client.V1NetworkPolicySpec(pod_selector={}, policy_types=["Egress"]),
            ),
        )
        wait_for("tenant A's egress to be cut", lambda: not reaches(cluster, a1, outsider), 30)
        for dns in dns_pods:
            assert tcp_open(cluster, a1, dns.status.pod_ip, 53), f"DNS pod {dns.metadata.name} cut off from tenant A"
        assert not tcp_open(cluster, a1, outsider.status.pod_ip, 8080)
        if not standin:
            # CoreDNS is there: a real lookup from the tenant pod
            out = pod_exec(cluster, a1, "nslookup", "kubernetes.default.svc.cluster.local")
            assert "Address" in out and "NXDOMAIN" not in out, out
    finally:
        for ns in (TENANT_A, TENANT_B):
            core.delete_namespace(ns)
        try:
            core.delete_namespaced_pod("dns-standin", "kube-system", grace_period_seconds=0)
        except client.exceptions.ApiException as exc:
            if exc.status != 404:
                raise
    # gone before the next test, so no later check meets a tenant namespace
    wait_for(
        "the tenant namespaces to go",
        lambda: not [n for n in core.list_namespace().items if n.metadata.name in (TENANT_A, TENANT_B)],
        120,
    )


def test_felix_usage_reporting_is_off(cluster):
    custom = client.CustomObjectsApi(cluster["api"])
    felix = custom.get_cluster_custom_object(*CALICO, "felixconfigurations", "default")
    assert felix["spec"].get("usageReportingEnabled") is False, felix["spec"]
    # calico-node's own fields are still there (the role sets only its field)
    assert "reportingInterval" in felix["spec"], felix["spec"]
    # every running Felix read it so: it logs each parsed setting and where it came from
    core = cluster["core"]
    pods = core.list_namespaced_pod("kube-system", label_selector="k8s-app=calico-node").items
    assert pods
    for pod in pods:
        log = core.read_namespaced_pod_log(pod.metadata.name, "kube-system", container="calico-node")
        parsed = [line for line in log.splitlines() if "Parsed value for UsageReportingEnabled:" in line]
        assert parsed, f"{pod.metadata.name}: Felix logged no UsageReportingEnabled (log rotated?)"
        assert all("UsageReportingEnabled: false (from datastore (global))" in line for line in parsed), parsed
        assert "usage.projectcalico.org" not in log, pod.metadata.name
