"""End to end, resource metrics: metrics-server behind the metrics.k8s.io APIService, read by
`kubectl top` and by a HorizontalPodAutoscaler that scales the web Deployment up under load
from a pod and back down, on the session's converged cluster (conftest.py)."""

import json
import os
import subprocess
import time

from kubernetes import client

from e2e import FIGURES, hosts_with, wait_for, web_pods
from lab_helpers import CACHE

NS = "idcloud-demo"
HPA = "web"


def kubectl(cluster, *args, timeout=60):
    """The lab's kubectl (the kubernetes artifact) with the cluster's admin kubeconfig."""
    with open(os.path.join(CACHE, "artifacts", "manifest.json")) as f:
        binary = json.load(f)["kubernetes"]["files"]["bin/linux/amd64/kubectl"]["path"]
    return subprocess.run(
        [os.path.join(CACHE, "artifacts", binary), f"--kubeconfig={cluster['kubeconfig']}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_metrics_api_is_served_by_metrics_server_with_verified_tls(cluster):
    api = client.ApiregistrationV1Api(cluster["api"])
    service = api.read_api_service("v1beta1.metrics.k8s.io")
    available = {c.type: c.status for c in service.status.conditions or []}
    assert available.get("Available") == "True", service.status
    # the apiservers verify metrics-server against the cluster CA; nothing skips the check
    assert not service.spec.insecure_skip_tls_verify and service.spec.ca_bundle, service.spec
    pods = cluster["core"].list_namespaced_pod("kube-system", label_selector="k8s-app=metrics-server").items
    assert len(pods) == 2 and len({p.spec.node_name for p in pods}) == 2, [
        (p.metadata.name, p.spec.node_name) for p in pods
    ]
    args = pods[0].spec.containers[0].args
    assert "--kubelet-insecure-tls" not in args and any(
        a.startswith("--kubelet-certificate-authority=") for a in args
    ), args


def test_kubectl_top_nodes_and_pods_answer(cluster):
    workers = sorted(h["name"] for h in hosts_with(cluster["desc"], "worker"))
    # the first scrape lands a resolution (15 s) after metrics-server starts
    nodes = wait_for(
        "kubectl top nodes to list every worker",
        lambda: (lambda r: r if r.returncode == 0 and all(w in r.stdout for w in workers) else None)(
            kubectl(cluster, "top", "nodes", "--no-headers")
        ),
        120,
        5,
    )
    rows = {line.split()[0]: line.split()[1:] for line in nodes.stdout.splitlines()}
    for w in workers:
        cpu, _cpu_pct, memory, _mem_pct = rows[w]
        # real figures from the kubelets: some CPU in millicores, some memory in MiB
        assert cpu.endswith("m") and int(cpu[:-1]) > 0 and memory.endswith("Mi") and int(memory[:-2]) > 0, rows[w]
    pods = wait_for(
        "kubectl top pods -A to list the web pods and CoreDNS",
        lambda: (lambda r: r if r.returncode == 0 and " web-" in r.stdout and " coredns-" in r.stdout else None)(
            kubectl(cluster, "top", "pods", "-A", "--no-headers")
        ),
        120,
        5,
    )
    listed = [line.split()[:2] for line in pods.stdout.splitlines()]
    assert {p.metadata.name for p in web_pods(cluster["core"])} <= {name for ns, name in listed if ns == NS}, listed
    FIGURES["kubectl_top_nodes"] = {w: rows[w] for w in workers}
    FIGURES["kubectl_top_pods"] = len(listed)


def test_hpa_scales_the_web_deployment_up_under_load_and_back_down(cluster):
    core, apps = cluster["core"], cluster["apps"]
    autoscaling = client.AutoscalingV2Api(cluster["api"])
    web = apps.read_namespaced_deployment("web", NS)
    base = web.spec.replicas
    image = web.spec.template.spec.containers[0].image
    # web's pods request 10m CPU: 50 % of it is 5m, which a few loops of requests exceed at once
    hpa = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name=HPA),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="web"),
            min_replicas=base,
            max_replicas=base + 2,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=50)
                    ),
                )
            ],
            # no stabilisation windows, so that the test sees both directions in minutes
            behavior=client.V2HorizontalPodAutoscalerBehavior(
                scale_up=client.V2HPAScalingRules(stabilization_window_seconds=0),
                scale_down=client.V2HPAScalingRules(stabilization_window_seconds=0),
            ),
        ),
    )
    # the Service by its cluster IP: this busybox's wget crashes resolving names (static glibc)
    service = core.read_namespaced_service("web", NS)
    url = f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}/"
    load = client.V1Pod(
        metadata=client.V1ObjectMeta(name="web-load", labels={"app.kubernetes.io/name": "web-load"}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            termination_grace_period_seconds=0,
            containers=[
                client.V1Container(
                    name="load",
                    image=image,
                    command=[
                        "sh",
                        "-c",
                        f"for i in 1 2 3 4 5 6; do (while true; do wget -q -O /dev/null {url}; done) & done; wait",
                    ],
                )
            ],
        ),
    )
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, hpa)
    try:

        def status():
            return autoscaling.read_namespaced_horizontal_pod_autoscaler(HPA, NS).status

        # the HPA reads the web pods' CPU through metrics.k8s.io
        idle = wait_for(
            "the HPA to read a CPU utilisation",
            lambda: (
                lambda s: (
                    s
                    if s.current_metrics and s.current_metrics[0].resource.current.average_utilization is not None
                    else None
                )
            )(status()),
            120,
            5,
        )
        idle_pct = idle.current_metrics[0].resource.current.average_utilization
        started = time.monotonic()
        core.create_namespaced_pod(NS, load)
        up = wait_for(
            "the HPA to scale web up under load",
            lambda: (lambda s: s if (s.desired_replicas or 0) > base else None)(status()),
            300,
            5,
        )
        up_s = round(time.monotonic() - started, 1)
        busy_pct = up.current_metrics[0].resource.current.average_utilization
        wait_for(
            "the added web pods to be ready",
            lambda: (apps.read_namespaced_deployment("web", NS).status.ready_replicas or 0) > base,
            180,
            2,
        )
        core.delete_namespaced_pod("web-load", NS, grace_period_seconds=0)
        started = time.monotonic()
        wait_for(
            f"the HPA to scale web back down to {base}",
            lambda: (
                status().desired_replicas == base and apps.read_namespaced_deployment("web", NS).spec.replicas == base
            ),
            300,
            5,
        )
        down_s = round(time.monotonic() - started, 1)
        FIGURES["hpa"] = {
            "idle_cpu_pct": idle_pct,
            "loaded_cpu_pct": busy_pct,
            "scaled_to": up.desired_replicas,
            "up_s": up_s,
            "down_s": down_s,
        }
        assert busy_pct > 50 and up.desired_replicas > base, json.dumps(FIGURES["hpa"])
    finally:
        autoscaling.delete_namespaced_horizontal_pod_autoscaler(HPA, NS)
        try:
            core.delete_namespaced_pod("web-load", NS, grace_period_seconds=0)
        except client.ApiException as exc:
            assert exc.status == 404, exc
        # the Deployment as the workload role left it, and only its pods, for the tests after this one
        apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": base}})
        wait_for(
            f"exactly {base} web pods",
            lambda: len(web_pods(core)) == base and all(p.metadata.deletion_timestamp is None for p in web_pods(core)),
            180,
            2,
        )
