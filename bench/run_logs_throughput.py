#!/usr/bin/env python3
"""The log shipper's throughput on one worker, beside a raw Kafka producer on the same node.

  bench/run_logs_throughput.py [--idc inventories/lab/idc.yml] [--seconds 60] [--rates 1000,2000,...]

Needs the lab up and converged (`make site`). In one run, on the description's first worker:

1. Raw lines: kcat (Debian's, installed on the worker through the mirror for the bench)
   produces lines of the generator's size from a file on the node to a scratch topic (3
   partitions, 3 replicas) with the shipper's settings: TLS with its client certificate, acks
   from every in-sync replica, lz4. Lines per second over the whole file, delivery waited for.
2. Shipper: for each rate of the ladder, a generator pod pinned to the worker writes that
   many lines per second (busybox's yes and head; lines of about 170 bytes carrying the second
   they were written in) for --seconds, and at the end how many it wrote and in how long. A
   consumer on the control host counts this run's lines in the topic `logs`; every 5 s the lag
   is how many seconds old the newest line in the topic is. A rate is sustained when the
   generator kept it (within 5 %) and the lag at the end was at most 3 s; the ladder stops at
   the first rate that is not. Lines that had not arrived 60 s after the generator's end are
   counted apart (missing_after_60s). The shipper pod's CPU and memory on that node
   come from metrics.k8s.io.
3. Raw events, like for like: one event the shipper sent in step 2 (its JSON as read from the
   topic: the line and its metadata) is the template of --raw-events events, each with its own
   line number, which kcat produces as in step 1. The shipper's rate is compared with both.

Writes bench/results/logs-throughput.json. Nothing is asserted: the figures go to bench/README.md.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kubernetes import client, config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "bench", "results", "logs-throughput.json")
NS = "bench-logs"
# Each second: `rate` copies of one line (the run, the second it was written in, padding to
# about 170 bytes) from busybox's yes and head, C programs cheap enough that the generator
# is not the limit; a second whose lines took longer is followed at once by the next. At the
# end: how many lines, over how many seconds.
GENERATOR = r"""
pad=$(printf '%150s' | tr ' ' x); start=$(date +%s); end=$((start + secs)); n=0
while [ "$(date +%s)" -lt "$end" ]; do
  s=$(date +%s)
  yes "$run $s $pad" | head -n "$rate"
  n=$((n + rate))
  while [ "$(date +%s)" -eq "$s" ]; do usleep 50000; done
done
echo "$run done $n $(($(date +%s) - start))"
sleep 100000
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


RAW_EVENTS = r"""
import json, sys
template, n, path = json.load(open(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
pad = template["message"].split(" ", 2)[2]
with open(path, "w") as f:
    for i in range(n):
        template["message"] = f"raw {i} {pad}"
        if "log" in template and "offset" in template["log"]:
            template["log"]["offset"] = i * 171
        f.write(json.dumps(template, separators=(",", ":")) + "\n")
"""

LINES_AWK = (
    'BEGIN { pad = sprintf("%150s", ""); gsub(/ /, "x", pad); for (n = 0; n < N; n++) printf "raw %d %s\\n", n, pad }'
)


def kcat_rate(container, pki, brokers, admin, lines, make_file):
    """kcat from the worker: lines of the file `make_file` writes at /tmp/bench-lines, per second,
    to a scratch topic with the shipper's settings."""
    sh(container, "command -v kcat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null")
    for name in ("ca.crt", "client-filebeat.crt", "client-filebeat.key"):
        subprocess.run(["podman", "cp", f"{pki}/{name}", f"{container}:/tmp/bench-{name}"], check=True)
    make_file()
    size = int(sh(container, "stat -c %s /tmp/bench-lines").stdout)
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
        sh(
            container,
            "rm -f /tmp/bench-lines /tmp/bench-event.json /tmp/bench-ca.crt /tmp/bench-client-filebeat.*",
            check=False,
        )
    return {
        "lines": lines,
        "bytes_per_line": round(size / lines),
        "seconds": round(seconds, 2),
        "lines_per_s": round(lines / seconds),
    }


def raw_lines(container, pki, brokers, admin, lines):
    """The generator's lines, bare."""
    return kcat_rate(
        container,
        pki,
        brokers,
        admin,
        lines,
        lambda: sh(container, f"awk -v N={lines} '{LINES_AWK}' > /tmp/bench-lines"),
    )


def raw_events(container, pki, brokers, admin, lines, event, tmpdir):
    """The shipper's own events (one of them as the template), numbered."""

    def make_file():
        for name, text in (("bench-event.json", json.dumps(event)), ("bench-events.py", RAW_EVENTS)):
            with open(os.path.join(tmpdir, name), "w") as f:
                f.write(text)
            subprocess.run(["podman", "cp", os.path.join(tmpdir, name), f"{container}:/tmp/{name}"], check=True)
        sh(
            container,
            f"python3 /tmp/bench-events.py /tmp/bench-event.json {lines} /tmp/bench-lines; rm -f /tmp/bench-events.py",
        )

    return kcat_rate(container, pki, brokers, admin, lines, make_file)


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
                    command=["sh", "-c", GENERATOR],
                    env=[
                        client.V1EnvVar(name="run", value=run),
                        client.V1EnvVar(name="rate", value=str(rate)),
                        client.V1EnvVar(name="secs", value=str(seconds)),
                    ],
                )
            ],
        ),
    )
    core.create_namespaced_pod(NS, pod)
    line = re.compile(re.escape(run.encode()) + rb" (\d+) ")
    finished = re.compile(re.escape(run.encode()) + rb" done (\d+) (\d+)")
    count, samples, usage, event, newest, written, wrote_for = 0, [], [], None, 0, None, None
    while core.read_namespaced_pod(run, NS).status.phase != "Running":
        time.sleep(0.2)
    started = time.monotonic()
    next_sample = 5
    deadline = started + seconds + 60
    while time.monotonic() < deadline:
        for msg in consumer.consume(5000, 0.5):
            if msg.error():
                continue
            value = msg.value()
            m = line.search(value)
            if m:
                count += 1
                newest = max(newest, int(m.group(1)))
                if event is None:
                    event = json.loads(value)
                continue
            m = finished.search(value)
            if m:
                written, wrote_for = int(m.group(1)), int(m.group(2))
        elapsed = time.monotonic() - started
        if elapsed >= next_sample:
            # how many seconds behind the generator the newest line in the topic is
            samples.append(
                {"t": round(elapsed), "in_topic": count, "lag_s": int(time.time()) - newest if newest else None}
            )
            if next_sample % 15 == 0:
                u = shipper_usage(custom, shipper)
                if u:
                    usage.append(u)
            next_sample += 5
        if written is not None and count >= written:
            break
    consumer.close()
    core.delete_namespaced_pod(run, NS, grace_period_seconds=0)
    during = [x["lag_s"] for x in samples if x["t"] <= seconds and x["lag_s"] is not None]
    achieved = round(written / wrote_for) if written and wrote_for else None
    drained = written is not None and count >= written
    return {
        "rate": rate,
        "seconds": seconds,
        "written": written,
        "generator_seconds": wrote_for,
        "generator_lines_per_s": achieved,
        "in_topic": count,
        "lag_s_at_end": during[-1] if during else None,
        "max_lag_s": max(during) if during else None,
        # the generator kept its rate (within 5 %) and the newest line in the topic was at
        # most 3 s old at the end: the shipper kept up
        "sustained": bool(achieved and achieved >= 0.95 * rate and during and during[-1] <= 3),
        "drained_within_60s": drained,
        # lines written that had not arrived 60 s after the generator's end
        "missing_after_60s": written - count if written is not None else None,
        "shipper_cpu_m_max": max((u["cpu_m"] for u in usage), default=None),
        "shipper_memory_mib_max": max((u["memory_mib"] for u in usage), default=None),
        "samples": samples,
        "event": event,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idc", default=os.path.join(REPO, "inventories", "lab", "idc.yml"))
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rates", default="2000,5000,10000,15000,20000,25000,30000,40000")
    parser.add_argument("--raw-lines", type=int, default=1000000)
    parser.add_argument("--raw-events", type=int, default=300000)
    parser.add_argument("--out", default=RESULTS, help="where the JSON result goes")
    parser.add_argument("--label", default="", help="what this run's shipper settings are, kept in the result")
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
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "label": args.label,
        "node": worker,
        "line_bytes": 170,
    }
    container = f"{lab}-{worker}"
    print(f"raw producer (kcat) on {worker}, bare lines ...", flush=True)
    result["raw"] = raw_lines(container, pki, brokers, admin, args.raw_lines)
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
    event = next((s["event"] for s in steps if s["event"]), None)
    if event is not None:
        print(f"raw producer (kcat) on {worker}, the shipper's events ...", flush=True)
        with tempfile.TemporaryDirectory() as tmpdir:
            result["raw_events"] = raw_events(container, pki, brokers, admin, args.raw_events, event, tmpdir)
        print(json.dumps(result["raw_events"]), flush=True)
    best = max((s["rate"] for s in steps if s["sustained"]), default=0)
    result["shipper_sustained_lines_per_s"] = best
    result["ratio_to_raw"] = round(best / result["raw"]["lines_per_s"], 3)
    if "raw_events" in result:
        result["ratio_to_raw_events"] = round(best / result["raw_events"]["lines_per_s"], 3)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"sustained {best} lines/s; raw lines {result['raw']['lines_per_s']} (ratio {result['ratio_to_raw']}); "
        f"raw events {result.get('raw_events', {}).get('lines_per_s')} (ratio {result.get('ratio_to_raw_events')})"
    )


if __name__ == "__main__":
    sys.exit(main())
