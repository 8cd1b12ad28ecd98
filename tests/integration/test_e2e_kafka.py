"""End to end, the Kafka cluster of the session's lab (conftest.py): KRaft brokers on the
control-plane hosts, one per rack, mutual TLS. Every check talks to the real brokers with a
real client (confluent-kafka) holding the collection's client certificate, from the control
host: brokers and racks from the cluster's metadata, replicas per partition, a client refused
without a certificate, and numbered messages read back after a broker stopped mid-stream.
A rolling restart for a changed setting runs with the drills (it leaves the setting)."""

import json
import logging
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from e2e import FIGURES, ctr, kafka_brokers, kafka_tls, rack_of, wait_for
from lab_helpers import playbook, podman_exec, run_playbook

# the e2e cluster carries Kafka and the shipper only for these (`make e2e-extra`)
pytestmark = pytest.mark.kafka


def health(admin):
    md = admin.list_topics(timeout=10)
    under = [
        f"{t}-{p.id}"
        for t, topic in md.topics.items()
        for p in topic.partitions.values()
        if len(p.isrs) < len(p.replicas)
    ]
    return md, under


@pytest.fixture(scope="module")
def admin(cluster):
    return AdminClient(kafka_tls(cluster["desc"]))


@pytest.fixture
def topic(cluster, admin):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    futures = admin.create_topics([NewTopic(name, 3, 3, config={"min.insync.replicas": "2"})], operation_timeout=30)
    futures[name].result(timeout=60)
    yield name
    admin.delete_topics([name], operation_timeout=30)[name].result(timeout=60)


def test_every_kafka_host_is_a_broker_in_its_rack(cluster, admin):
    desc = cluster["desc"]
    md = admin.list_topics(timeout=10)
    live = {b.host: b.id for b in md.brokers.values()}
    assert sorted(live) == sorted(kafka_brokers(desc).values())
    assert md.controller_id in live.values()
    racks = {}
    for host, address in kafka_brokers(desc).items():
        resource = ConfigResource("broker", str(live[address]))
        config = admin.describe_configs([resource])[resource].result(timeout=30)
        racks[live[address]] = config["broker.rack"].value
        assert config["broker.rack"].value == rack_of(desc, host)["name"]
        assert config["min.insync.replicas"].value == "2"
        assert config["unclean.leader.election.enable"].value == "false"
        assert config["default.replication.factor"].value == "3"
    # the topic site.yml keeps (inventories/lab/group_vars/all/kafka.yml): every partition's 3
    # replicas in 3 racks, all in sync
    logs = md.topics["logs"]
    assert len(logs.partitions) == 3
    for partition in logs.partitions.values():
        assert len({racks[r] for r in partition.replicas}) == 3, partition.replicas
        assert sorted(partition.isrs) == sorted(partition.replicas)
    retention = ConfigResource("topic", "logs")
    assert admin.describe_configs([retention])[retention].result(timeout=30)["retention.ms"].value == "86400000"


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_a_client_without_a_certificate_is_refused(cluster):
    lines = Lines()
    log = logging.getLogger("e2e-kafka-no-cert")
    log.addHandler(lines)
    refused = AdminClient(dict(kafka_tls(cluster["desc"], cert=False), logger=log))
    with pytest.raises(KafkaException):
        refused.list_topics(timeout=5)
    refused.poll(1)
    # the brokers' TLS alert 116 (certificate required), as librdkafka logs it
    assert any("certificate required" in line for line in lines.lines), lines.lines[:5]


def produce(conf, topic, numbers, failures, delay=0.0):
    producer = Producer(dict(conf, acks="all", **{"enable.idempotence": True, "linger.ms": 5}))

    def report(err, msg):
        if err is not None:
            failures.append(str(err))

    for n in numbers:
        producer.produce(topic, value=str(n).encode(), on_delivery=report)
        producer.poll(0)
        if delay:
            time.sleep(delay)
    left = producer.flush(120)
    assert left == 0, f"{left} messages not delivered in 120 s"


def consume_all(conf, topic, expected):
    consumer = Consumer(
        dict(
            conf,
            **{"group.id": f"e2e-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest", "enable.auto.commit": False},
        )
    )
    consumer.subscribe([topic])
    seen = []
    deadline = time.monotonic() + 120
    try:
        while len(set(seen)) < expected and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            seen.append(int(msg.value()))
    finally:
        consumer.close()
    return seen


def test_no_message_is_lost_when_a_broker_stops_mid_stream(cluster, admin, topic):
    desc = cluster["desc"]
    conf = kafka_tls(desc)
    victim = sorted(kafka_brokers(desc))[1]
    failures = []
    total = 3000
    writer = threading.Thread(target=produce, args=(conf, topic, range(total), failures, 0.002))
    writer.start()
    time.sleep(1.5)
    podman_exec(ctr(victim), "systemctl", "stop", "kafka")
    time.sleep(2)
    podman_exec(ctr(victim), "systemctl", "start", "kafka")
    writer.join(timeout=300)
    assert not writer.is_alive()
    assert failures == []
    seen = consume_all(conf, topic, total)
    missing = sorted(set(range(total)) - set(seen))
    FIGURES["kafka_broker_stop"] = {
        "sent": total,
        "read": len(seen),
        "missing": len(missing),
        "duplicates": len(seen) - len(set(seen)),
    }
    assert missing == [], f"{len(missing)} missing, first {missing[:10]}"
    started = time.monotonic()
    wait_for("the stopped broker back in sync", lambda: not health(admin)[1], 180, 2)
    FIGURES["kafka_back_in_sync_s"] = round(time.monotonic() - started, 1)


@pytest.mark.parametrize(
    "playbook_name, extra, expected",
    [
        (
            "kafka.yml",
            {"kafka_topics": [{"name": "too-wide", "partitions": 1, "replication_factor": 5}]},
            "replication_factor 5\nmust be at most the 3 brokers",
        ),
        ("kafka.yml", {"kafka_min_insync_replicas": 3}, "kafka_min_insync_replicas=3"),
        ("log_shipper.yml", {"log_shipper_kafka_group": "kafka_nowhere"}, "give the kafka role to hosts"),
    ],
    ids=["topic-factor-above-brokers", "min-isr-not-below-factor", "shipper-without-kafka-hosts"],
)
def test_bad_input_fails_before_anything_changes(cluster, tmp_path, playbook_name, extra, expected):
    rc, recap, log = run_playbook(
        cluster["idc"], playbook_name, "-e", json.dumps(extra), log=str(tmp_path / "bad-input.log")
    )
    with open(log) as f:
        out = f.read()
    assert rc != 0
    assert all(r[1] == 0 for r in recap.values()), recap
    assert " ".join(expected.split()) in " ".join(out.split()), out[-3000:]


def test_a_second_run_of_kafka_and_the_shipper_changes_nothing(cluster, tmp_path):
    """The make test e2e cluster has no Kafka and no shipper, so its site.yml no-op does not
    cover them: their own playbooks, re-run on the converged cluster, change nothing."""
    for name in ("kafka.yml", "log_shipper.yml"):
        recap = playbook(cluster["idc"], name, log=str(tmp_path / f"noop-{name}.log"))
        changed = {host: r[1] for host, r in recap.items() if r[1]}
        assert recap, f"{name} ran on no host"
        assert changed == {}, f"a second run of {name} changed: {changed} (see {tmp_path}/noop-{name}.log)"


@pytest.mark.drill
def test_a_changed_setting_restarts_the_brokers_one_at_a_time_without_a_failed_write(cluster, admin, topic, tmp_path):
    desc = cluster["desc"]
    conf = kafka_tls(desc)
    before = {
        h: podman_exec(ctr(h), "systemctl", "show", "-P", "ExecMainStartTimestampMonotonic", "kafka").stdout.strip()
        for h in kafka_brokers(desc)
    }
    failures, stop = [], threading.Event()
    sent = []

    def steady():
        producer = Producer(dict(conf, acks="all", **{"enable.idempotence": True}))
        n = 0
        while not stop.is_set():
            producer.produce(
                topic, value=str(n).encode(), on_delivery=lambda err, msg: err and failures.append(str(err))
            )
            sent.append(n)
            n += 1
            producer.poll(0.05)
        assert producer.flush(120) == 0

    writer = threading.Thread(target=steady)
    writer.start()
    started = time.monotonic()
    try:
        recap = playbook(
            cluster["idc"],
            "kafka.yml",
            "-e",
            '{"kafka_extra_properties": {"log.cleaner.threads": 2}}',
            log=str(tmp_path / "kafka-rolling.log"),
        )
    finally:
        stop.set()
        writer.join(timeout=180)
    FIGURES["kafka_rolling_restart_s"] = round(time.monotonic() - started, 1)
    after = {
        h: podman_exec(ctr(h), "systemctl", "show", "-P", "ExecMainStartTimestampMonotonic", "kafka").stdout.strip()
        for h in kafka_brokers(desc)
    }
    assert all(after[h] != before[h] for h in before), (before, after)
    assert all(recap[h][1] > 0 for h in kafka_brokers(desc))
    # one at a time: every broker's start is at least one health gate after the previous one's
    starts = sorted(int(v) for v in after.values())
    assert all(b - a > 1_000_000 for a, b in zip(starts, starts[1:])), starts
    assert failures == []
    seen = consume_all(conf, topic, len(sent))
    assert sorted(set(range(len(sent))) - set(seen)) == []
    FIGURES["kafka_rolling_restart_writes"] = {
        "sent": len(sent),
        "failed": len(failures),
        "duplicates": len(seen) - len(set(seen)),
    }
    assert not health(admin)[1]
