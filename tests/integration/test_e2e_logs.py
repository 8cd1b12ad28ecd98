"""End to end, the log shipper of the session's lab (conftest.py): Filebeat on every node,
producing every container's lines to the Kafka topic `logs`. A pod prints numbered lines; a
real consumer (confluent-kafka, from the control host, with the admin client certificate)
reads the topic and finds every number with the pod's namespace, name, container, node and
Deployment. The same holds when, mid-stream, the shipper's pod is deleted, a broker stops,
the kubelet rotates the log file, or the pod is deleted right after its last line. Lines may
come twice (at-least-once): counted and reported in bench/results/e2e-figures.json."""

import json
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from kubernetes import client

from e2e import FIGURES, ctr, kafka_brokers, kafka_tls, pod_exec, wait_for
from lab_helpers import podman_exec

# the e2e cluster carries Kafka and the shipper only for these (`make e2e-extra`)
pytestmark = pytest.mark.kafka

NS = "e2e-logs"
TOPIC = "logs"
PAD = "x" * 150


def generator_script(run, count, batch=0, pause="0.1"):
    """sh that prints `<run> <n> <pad>` for n in 0..count-1 (in batches with a pause), `<run> done`, then sleeps."""
    throttle = f"if [ $((i % {batch})) -eq 0 ]; then sleep {pause}; fi; " if batch else ""
    return (
        f"i=0; while [ $i -lt {count} ]; do printf '%s %06d %s\\n' {run} $i {PAD}; "
        f"i=$((i+1)); {throttle}done; echo {run} done; sleep 100000"
    )


@pytest.fixture(scope="module")
def logs_ns(cluster):
    core = cluster["core"]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    yield NS
    core.delete_namespace(NS)


def image(cluster):
    web = cluster["apps"].read_namespaced_deployment("web", "idcloud-demo")
    return web.spec.template.spec.containers[0].image


def start_generator(cluster, name, script):
    """A Deployment of one pod running script in container `gen`; returns the running pod."""
    labels = {"app.kubernetes.io/name": name}
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=0,
                    enable_service_links=False,
                    containers=[client.V1Container(name="gen", image=image(cluster), command=["sh", "-c", script])],
                ),
            ),
        ),
    )
    cluster["apps"].create_namespaced_deployment(NS, body)
    return wait_for(f"{name}'s pod running", lambda: running_pod(cluster, name), 180, 1)


def running_pod(cluster, name):
    pods = cluster["core"].list_namespaced_pod(NS, label_selector=f"app.kubernetes.io/name={name}").items
    return next((p for p in pods if p.status.phase == "Running"), None)


def wait_written(cluster, pod, run, timeout=300):
    """Until the generator has printed its last line (and `<run> done` after it)."""
    core = cluster["core"]
    wait_for(
        f"{pod.metadata.name} to print its last line",
        lambda: f"{run} done" in core.read_namespaced_pod_log(pod.metadata.name, NS, container="gen", tail_lines=3),
        timeout,
        1,
    )


class Reader:
    """One consumer over the whole topic from its beginning, kept for the module's tests."""

    def __init__(self, desc):
        self.consumer = Consumer(
            dict(kafka_tls(desc), **{"group.id": f"e2e-logs-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
        )
        partitions = self.consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        self.consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in partitions])
        self.events = {}  # run -> [event]

    def poll_until(self, run, count, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 1.0):
                if msg.error():
                    continue
                event = json.loads(msg.value())
                text = event.get("message", "")
                key = text.split(" ", 1)[0]
                if key.startswith("r-"):
                    self.events.setdefault(key, []).append(event)
            if len({e["message"].split()[1] for e in self.events.get(run, [])} - {"done"}) >= count:
                break
        return self.events.get(run, [])


@pytest.fixture(scope="module")
def reader(cluster, logs_ns):
    r = Reader(cluster["desc"])
    yield r
    r.consumer.close()


def check(events, run, count, pod, figure):
    events = [e for e in events if e["message"].split()[1] != "done"]
    numbers = [int(e["message"].split()[1]) for e in events]
    missing = sorted(set(range(count)) - set(numbers))
    FIGURES[figure] = {
        "written": count,
        "read": len(numbers),
        "missing": len(missing),
        "duplicates": len(numbers) - len(set(numbers)),
    }
    assert missing == [], f"{len(missing)} of {count} lines missing, first {missing[:10]}"
    for event in events:
        k8s = event["kubernetes"]
        assert k8s["namespace"] == NS
        assert k8s["container"]["name"] == "gen"
        assert k8s["node"]["name"] == pod.spec.node_name
        assert k8s["labels"]["app_kubernetes_io/name"] == pod.metadata.labels["app.kubernetes.io/name"]
        assert event["stream"] == "stdout"
    return {e["kubernetes"]["pod"]["name"] for e in events}, {
        e["kubernetes"].get("deployment", {}).get("name") for e in events
    }


def new_run():
    return f"r-{uuid.uuid4().hex[:8]}"


def test_every_line_arrives_with_its_pod_and_deployment(cluster, reader):
    run, count = new_run(), 2000
    pod = start_generator(cluster, "gen-plain", generator_script(run, count))
    wait_written(cluster, pod, run)
    started = time.monotonic()
    events = reader.poll_until(run, count, 120)
    FIGURES["logs_plain_arrival_s"] = round(time.monotonic() - started, 1)
    pods, deployments = check(events, run, count, pod, "logs_plain")
    assert pods == {pod.metadata.name}
    assert deployments == {"gen-plain"}


def shipper_on(cluster, node):
    pods = (
        cluster["core"].list_namespaced_pod("idcloud-logging", label_selector="app.kubernetes.io/name=filebeat").items
    )
    return next(p for p in pods if p.spec.node_name == node and p.status.phase == "Running")


def test_nothing_is_lost_when_the_shipper_is_deleted_mid_stream(cluster, reader):
    run, count = new_run(), 3000
    pod = start_generator(cluster, "gen-shipper", generator_script(run, count, batch=30))
    time.sleep(3)
    old = shipper_on(cluster, pod.spec.node_name)
    cluster["core"].delete_namespaced_pod(old.metadata.name, "idcloud-logging")
    wait_for(
        "a new shipper on the node",
        lambda: shipper_on(cluster, pod.spec.node_name).metadata.name != old.metadata.name,
        120,
        1,
    )
    wait_written(cluster, pod, run)
    check(reader.poll_until(run, count, 180), run, count, pod, "logs_shipper_deleted")


def test_nothing_is_lost_when_a_broker_stops_mid_stream(cluster, reader):
    run, count = new_run(), 3000
    victim = sorted(kafka_brokers(cluster["desc"]))[0]
    pod = start_generator(cluster, "gen-broker", generator_script(run, count, batch=30))
    time.sleep(3)
    podman_exec(ctr(victim), "systemctl", "stop", "kafka")
    try:
        time.sleep(5)
    finally:
        podman_exec(ctr(victim), "systemctl", "start", "kafka")
    wait_written(cluster, pod, run)
    check(reader.poll_until(run, count, 180), run, count, pod, "logs_broker_stopped")


def test_nothing_is_lost_when_the_kubelet_rotates_the_log_mid_stream(cluster, reader):
    # the lab rotates at 1 MiB (inventories/lab/group_vars/all/logs.yml): 20,000 lines of
    # about 170 bytes are 3.4 MB, written over some 20 s (the kubelet looks every 10 s)
    run, count = new_run(), 20000
    pod = start_generator(cluster, "gen-rotate", generator_script(run, count, batch=1000, pause="1"))
    wait_written(cluster, pod, run)
    uid = pod.metadata.uid
    listing = podman_exec(
        ctr(pod.spec.node_name), "sh", "-c", f"ls /var/log/pods/{NS}_{pod.metadata.name}_{uid}/gen/"
    ).stdout.split()
    rotated = [name for name in listing if name != "0.log"]
    FIGURES["logs_rotation_files"] = listing
    assert rotated, f"the kubelet rotated nothing: {listing}"
    check(reader.poll_until(run, count, 240), run, count, pod, "logs_rotated")


def test_nothing_is_lost_when_a_new_shipper_finds_the_file_rotated_under_it(cluster, reader):
    """The node's Filebeat stopped (SIGSTOP: it reads nothing, as far behind as it can be)
    while the kubelet rotates the pod's file once, then its pod replaced: the new Filebeat
    (like an input that autodiscover restarts on a pod update) must find the rotated file and
    read it from the registry's offset; the current file alone lacks most of the lines."""
    run, first, count = new_run(), 500, 8000
    # `first` lines, then wait for SIGUSR1, then the rest: about 1.7 MB with containerd's
    # prefixes, one rotation at the lab's 1 MiB and not a second (that one would compress it)
    script = (
        "go=; trap 'go=1' USR1; i=0; "
        f"while [ $i -lt {count} ]; do "
        f'if [ $i -eq {first} ]; then while [ -z "$go" ]; do sleep 0.2; done; fi; '
        f"printf '%s %06d %s\\n' {run} $i {PAD}; i=$((i+1)); done; echo {run} done; sleep 100000"
    )
    pod = start_generator(cluster, "gen-behind", script)
    node = pod.spec.node_name
    shipped = reader.poll_until(run, first, 120)
    assert len(shipped) >= first, f"only {len(shipped)} of the first {first} lines shipped before the stop"
    old = shipper_on(cluster, node)
    pids = podman_exec(ctr(node), "pgrep", "-x", "filebeat").stdout.split()
    assert len(pids) == 1, f"filebeat processes on {node}: {pids}"
    podman_exec(ctr(node), "kill", "-STOP", pids[0])
    try:
        pod_exec(cluster, pod, "sh", "-c", "kill -USR1 1")
        wait_written(cluster, pod, run)
        directory = f"/var/log/pods/{NS}_{pod.metadata.name}_{pod.metadata.uid}/gen"

        def rotated():
            names = podman_exec(ctr(node), "ls", directory).stdout.split()
            return names if any(n != "0.log" for n in names) else None

        listing = wait_for("the kubelet to rotate the pod's file", rotated, 60, 2)
        FIGURES["logs_behind_rotation_files"] = listing
        assert not [n for n in listing if n.endswith(".gz")], f"rotated twice, the first compressed: {listing}"
    finally:
        # the kubelet kills the stopped process (SIGKILL); then nothing may be left stopped
        cluster["core"].delete_namespaced_pod(old.metadata.name, "idcloud-logging", grace_period_seconds=0)
        wait_for(
            "a new shipper on the node",
            lambda: shipper_on(cluster, node).metadata.name != old.metadata.name,
            120,
            1,
        )
        podman_exec(ctr(node), "kill", "-CONT", pids[0], check=False)
    check(reader.poll_until(run, count, 180), run, count, pod, "logs_new_shipper_after_rotation")


def test_nothing_is_lost_when_the_pod_is_deleted_right_after_its_last_line(cluster, reader):
    run, count = new_run(), 2000
    core = cluster["core"]
    name = "gen-short"
    body = client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app.kubernetes.io/name": name}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            termination_grace_period_seconds=0,
            enable_service_links=False,
            containers=[
                client.V1Container(
                    name="gen",
                    image=image(cluster),
                    command=["sh", "-c", generator_script(run, count).replace("sleep 100000", "exit 0")],
                )
            ],
        ),
    )
    core.create_namespaced_pod(NS, body)
    pod = wait_for(
        "the short pod to finish",
        lambda: (lambda p: p if p.status.phase == "Succeeded" else None)(core.read_namespaced_pod(name, NS)),
        180,
        0.2,
    )
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    wait_for(
        "the pod gone", lambda: not core.list_namespaced_pod(NS, field_selector=f"metadata.name={name}").items, 60, 0.5
    )
    pods, deployments = check(reader.poll_until(run, count, 120), run, count, pod, "logs_pod_deleted")
    assert pods == {name} and deployments == {None}
