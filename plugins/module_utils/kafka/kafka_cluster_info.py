# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the kafka_cluster_info module: the cluster's brokers and its partitions' health.

summarize() is pure (topic metadata in, report out) and unit-tested; read_cluster() asks one
AdminClient for the metadata. A partition is under-replicated when fewer replicas are in sync
than are assigned, offline when it has no leader (-1).
"""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.client import (
    KafkaModuleError,
    admin_client,
    kafka_connection_argument_spec,
)

ARGUMENT_SPEC = dict(
    kafka_connection_argument_spec(),
    expected_brokers=dict(type="list", elements="int", default=[]),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True, required_together=[("cert_file", "key_file")])


def summarize(brokers, controller_id, topics, expected_brokers=()):
    """brokers: {id: "host:port"}; topics: {name: {partition: (leader, replicas, isrs)}}."""
    under, offline = [], []
    for topic in sorted(topics):
        for partition in sorted(topics[topic]):
            leader, replicas, isrs = topics[topic][partition]
            label = "%s-%d" % (topic, partition)
            if leader is None or leader < 0:
                offline.append(label)
            if len(set(isrs)) < len(set(replicas)):
                under.append(label)
    missing = sorted(set(expected_brokers) - set(brokers))
    return dict(
        brokers={int(b): brokers[b] for b in sorted(brokers)},
        broker_ids=sorted(int(b) for b in brokers),
        controller_id=controller_id,
        missing_brokers=missing,
        topics=len(topics),
        partitions=sum(len(p) for p in topics.values()),
        under_replicated=under,
        offline=offline,
        healthy=not (missing or under or offline),
    )


def read_cluster(params):
    admin = admin_client(params)
    try:
        metadata = admin.list_topics(timeout=params["timeout"])
    except Exception as exc:
        raise KafkaModuleError(
            "reading the cluster's metadata from %s: %s" % (",".join(params["bootstrap_servers"]), exc)
        )
    brokers = {b.id: "%s:%d" % (b.host, b.port) for b in metadata.brokers.values()}
    topics = {
        name: {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in topic.partitions.values()}
        for name, topic in metadata.topics.items()
    }
    return summarize(brokers, metadata.controller_id, topics, params["expected_brokers"])
