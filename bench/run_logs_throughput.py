#!/usr/bin/env python3
"""The log shipper's throughput on one worker, beside a raw Kafka producer on the same node.

  bench/run_logs_throughput.py [--idc inventories/lab/idc.yml] [--seconds 60] [--rates 1000,2000,...]

Needs the lab up and converged (`make site`). In one run, on the description's first worker:

1. Raw: kcat (Debian's, installed on the worker through the mirror for the bench) produces
   lines of the generator's size from a file on the node to a scratch topic (3 partitions,
   3 replicas) with the shipper's settings: TLS with its client certificate, acks from every
   in-sync replica, lz4. Lines per second over the whole file, delivery waited for.
2. Shipper: for each rate of the ladder, a generator pod pinned to the worker prints that many
   numbered lines per second (busybox awk, lines of about 170 bytes) for --seconds. A consumer
   on the control host counts this run's lines in the topic `logs`; every 5 s the lag is the
   lines written so far minus the lines in the topic. A rate is sustained when the lag at the
   end is at most 2 seconds of lines (it stayed bounded); the ladder stops at the first rate
   that is not. The shipper pod's CPU and memory on that node come from metrics.k8s.io.

Writes bench/results/logs-throughput.json. Nothing is asserted: the figures go to bench/README.md.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kubernetes import client, config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results", "logs-throughput.json")
NS = "bench-logs"
GENERATOR = r"""
BEGIN {
  pad = sprintf("%150s", ""); gsub(/ /, "x", pad)
  n = 0; s = systime(); end = s + secs
  while (s < end) {
    target = n + rate
    while (n < target) { printf "%s %d %s\n", run, n, pad; n++ }
    fflush()
    while (systime() == s) system("sleep 0.05")
    s = systime()
  }
  printf "%s done %d\n", run, n
  fflush()
  system("sleep 100000")
}
"""


def hosts(desc, role):
    return [h for room in desc["rooms"] for rack in room["racks"] for h in rack["hosts"] if role in h["roles"]]


def sh(container, script, check=True):
    return subprocess.run(
        ["podman", "exec", container, "sh", "-c", script], text=True, capture_output=True, check=check
    )


def kafka_conf(pki, brokers, client_name="admin"):
    return {
        "bootstrap.servers": ",".join(f"{b}:9093" for b in brokers),
        "security.protocol": "SSL",
        "ssl.ca.location": f"{pki}/ca.crt",
        "ssl.certificate.location": f"{pki}/client-{client_name}.crt",
        "ssl.key.location": f"{pki}/client-{client_name}.key",
    }


def raw_rate(container, pki, brokers, admin, lines):
    """kcat from the worker: lines per second to a scratch topic, with the shipper's settings."""
    sh(container, "command -v kcat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null")
    for name in ("ca.crt", "client-filebeat.crt", "client-filebeat.key"):
        subprocess.run(["podman", "cp", f"{pki}/{name}", f"{container}:/tmp/bench-{name}"], check=True)
    # the node's awk writes the lines: the generator's size, numbered
    lines_awk = 'BEGIN { pad = sprintf("%150s", ""); gsub(/ /, "x", pad); for (n = 0; n < N; n++) printf "raw %d %s\\n", n, pad }'
    sh(container, f"awk -v N={lines} '{lines_awk}' > /tmp/bench-lines")
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, 3, 3)])[topic].result(timeout=60)
    try:
        cmd = (
            f"kcat -P -b {','.join(f'{b}:9093' for b in brokers)} -t {topic} -l /tmp/bench-lines "
            "-X security.protocol=ssl -X ssl.ca.location=/tmp/bench-ca.crt "
            "-X ssl.certificate.location=/tmp/bench-client-filebeat.crt -X ssl.key.location=/tmp/bench-client-filebeat.key "
            "-X acks=all -X compression.codec=lz4 -X linger.ms=5"
        )
        started = time.monotonic()
        sh(container, cmd)
        seconds = time.monotonic() - started
    finally:
        admin.delete_topics([topic])[topic].result(timeout=60)
        sh(container, "rm -f /tmp/bench-lines /tmp/bench-ca.crt /tmp/bench-client-filebeat.*", check=False)
    return {"lines": lines, "seconds": round(seconds, 2), "lines_per_s": round(lines / seconds)}


def shipper_usage(custom, pod):
    try:
        m = custom.get_namespaced_custom_object("metrics.k8s.io", "v1beta1", "idcloud-logging", "pods", pod)
    except client.ApiException:
        return None
    usage = m["containers"][0]["usage"]
    cpu = usage["cpu"]
    millicores = (
        float(cpu[:-1]) / 1e6
        if cpu.endswith("n")
        else float(cpu[:-1]) / 1e3
        if cpu.endswith("u")
        else float(cpu.rstrip("m"))
    )
    mem = usage["memory"]
    mib = (
        float(mem[:-2]) / 1024 if mem.endswith("Ki") else float(mem[:-2]) if mem.endswith("Mi") else float(mem) / 2**20
    )
    return {"cpu_m": round(millicores), "memory_mib": round(mib)}


def shipper_step(core, custom, node, shipper, conf, image, rate, seconds):
    run = f"b-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(dict(conf, **{"group.id": run, "enable.auto.commit": False}))
    parts = consumer.list_topics("logs", timeout=10).topics["logs"].partitions
    ends = [consumer.get_watermark_offsets(TopicPartition("logs", p), timeout=10)[1] for p in parts]
    consumer.assign([TopicPartition("logs", p, off) for p, off in zip(parts, ends)])
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name=run, labels={"app.kubernetes.io/name": "bench-logs"}),
        spec=client.V1PodSpec(
            node_name=node,
            restart_policy="Never",
            termination_grace_period_seconds=0,
            enable_service_links=False,
            containers=[
                client.V1Container(
                    name="gen",
                    image=image,
                    command=["awk", "-v", f"run={run}", "-v", f"rate={rate}", "-v", f"secs={seconds}", GENERATOR],
                )
            ],
        ),
    )
    core.create_namespaced_pod(NS, pod)
    needle, done = run.encode() + b" ", run.encode() + b" done"
    count, samples, usage = 0, [], []
    while core.read_namespaced_pod(run, NS).status.phase != "Running":
        time.sleep(0.2)
    started = time.monotonic()
    next_sample = 5
    deadline = started + seconds + 30
    while time.monotonic() < deadline:
        for msg in consumer.consume(5000, 0.5):
            if not msg.error() and needle in msg.value() and done not in msg.value():
                count += 1
        elapsed = time.monotonic() - started
        if elapsed >= next_sample:
            written = min(rate * int(elapsed + 1), rate * seconds)
            samples.append({"t": round(elapsed), "written": written, "in_topic": count, "lag": written - count})
            if next_sample % 15 == 0:
                u = shipper_usage(custom, shipper)
                if u:
                    usage.append(u)
            next_sample += 5
        if elapsed > seconds and count >= rate * seconds:
            break
    consumer.close()
    core.delete_namespaced_pod(run, NS, grace_period_seconds=0)
    at_end = next((s for s in samples if s["t"] >= seconds), samples[-1])
    drained = count >= rate * seconds
    return {
        "rate": rate,
        "seconds": seconds,
        "written": rate * seconds,
        "in_topic": count,
        "lag_at_end": at_end["lag"],
        "max_lag": max(s["lag"] for s in samples),
        "sustained": at_end["lag"] <= 2 * rate,
        "drained_within_30s": drained,
        "shipper_cpu_m_max": max((u["cpu_m"] for u in usage), default=None),
        "shipper_memory_mib_max": max((u["memory_mib"] for u in usage), default=None),
        "samples": samples,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idc", default=os.path.join(REPO, "inventories", "lab", "idc.yml"))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rates", default="1000,2000,5000,10000,20000,40000")
    parser.add_argument("--raw-lines", type=int, default=1000000)
    args = parser.parse_args()
    with open(args.idc) as f:
        desc = yaml.safe_load(f)
    cluster, lab = desc["cluster"]["name"], desc["lab"]["name"]
    state = os.path.expanduser(f"~/.idcloud/{cluster}")
    pki = f"{state}/pki/kafka"
    brokers = [h["address"] for h in hosts(desc, "kafka")]
    worker = hosts(desc, "worker")[0]["name"]
    conf = kafka_conf(pki, brokers)
    admin = AdminClient(conf)
    api = config.new_client_from_config(config_file=f"{state}/admin.conf")
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    image = (
        client.AppsV1Api(api).read_namespaced_deployment("web", "idcloud-demo").spec.template.spec.containers[0].image
    )
    shipper = next(
        p.metadata.name
        for p in core.list_namespaced_pod("idcloud-logging", label_selector="app.kubernetes.io/name=filebeat").items
        if p.spec.node_name == worker
    )
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "node": worker, "line_bytes": 170}
    print(f"raw producer (kcat) on {worker} ...", flush=True)
    result["raw"] = raw_rate(f"{lab}-{worker}", pki, brokers, admin, args.raw_lines)
    print(json.dumps(result["raw"]), flush=True)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    steps = []
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            print(f"shipper at {rate} lines/s for {args.seconds}s ...", flush=True)
            step = shipper_step(core, custom, worker, shipper, conf, image, rate, args.seconds)
            print(json.dumps({k: v for k, v in step.items() if k != "samples"}), flush=True)
            steps.append(step)
            if not step["sustained"]:
                break
    finally:
        core.delete_namespace(NS)
    result["shipper"] = steps
    best = max((s["rate"] for s in steps if s["sustained"]), default=0)
    result["shipper_sustained_lines_per_s"] = best
    result["ratio_to_raw"] = round(best / result["raw"]["lines_per_s"], 2)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=1)
    print(f"sustained {best} lines/s; raw {result['raw']['lines_per_s']}; ratio {result['ratio_to_raw']}")


if __name__ == "__main__":
    sys.exit(main())
