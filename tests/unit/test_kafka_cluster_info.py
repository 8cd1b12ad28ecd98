"""kafka_cluster_info: what counts as healthy between broker restarts."""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.kafka_cluster_info import summarize

BROKERS = {297: "10.210.1.41:9093", 553: "10.210.2.41:9093", 809: "10.210.3.41:9093"}


def test_all_in_sync_is_healthy():
    topics = {"logs": {0: (297, [297, 553, 809], [809, 553, 297]), 1: (553, [553, 809, 297], [553, 809, 297])}}
    report = summarize(BROKERS, 297, topics, expected_brokers=[297, 553, 809])
    assert report["healthy"] and report["under_replicated"] == [] and report["offline"] == []
    assert report["broker_ids"] == [297, 553, 809] and report["partitions"] == 2 and report["topics"] == 1


def test_a_replica_out_of_sync_is_under_replicated():
    topics = {"logs": {0: (297, [297, 553, 809], [297, 553]), 1: (553, [553, 809, 297], [553, 809, 297])}}
    report = summarize(BROKERS, 297, topics)
    assert report["under_replicated"] == ["logs-0"] and not report["healthy"]


def test_no_leader_is_offline():
    report = summarize(BROKERS, 297, {"logs": {0: (-1, [297], [])}})
    assert report["offline"] == ["logs-0"] and report["under_replicated"] == ["logs-0"]


def test_a_missing_broker_is_unhealthy_even_with_no_topic():
    report = summarize({297: "a:1", 553: "b:1"}, 297, {}, expected_brokers=[297, 553, 809])
    assert report["missing_brokers"] == [809] and not report["healthy"]
