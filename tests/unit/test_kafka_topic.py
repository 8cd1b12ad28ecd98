"""kafka_topic: the plan (pure) and the run against a fake admin client."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.client import KafkaModuleError, client_config
from ansible_collections.idcloud.platform.plugins.module_utils.kafka.kafka_topic import (
    DYNAMIC_TOPIC_CONFIG,
    normalize_config,
    plan_topic,
    run_topic,
)


def wanted(**kw):
    base = dict(name="logs", state="present", partitions=None, replication_factor=None, config={}, purge_config=False)
    base.update(kw)
    return base


def current(partitions=6, rf=3, config=None):
    return dict(partitions=partitions, replication_factor=rf, config=dict(config or {}))


def test_values_are_compared_as_kafkas_strings():
    assert normalize_config({"retention.ms": 604800000, "unclean.leader.election.enable": False}) == {
        "retention.ms": "604800000",
        "unclean.leader.election.enable": "false",
    }
    assert normalize_config({"cleanup.policy": ["compact", "delete"]}) == {"cleanup.policy": "compact,delete"}


def test_a_missing_topic_is_created_with_its_config():
    plan = plan_topic(wanted(partitions=6, replication_factor=3, config={"retention.ms": 1000}), None, 3)
    assert plan["errors"] == []
    assert plan["actions"] == [("create", 6, 3, {"retention.ms": "1000"})]
    assert plan["before"] is None and plan["after"]["partitions"] == 6


def test_a_new_topic_without_a_factor_takes_the_brokers_default():
    assert plan_topic(wanted(partitions=1), None, 3)["actions"] == [("create", 1, -1, {})]


def test_creating_needs_a_partition_count():
    plan = plan_topic(wanted(), None, 3)
    assert plan["actions"] == []
    assert plan["errors"] == [
        "partitions: not given for topic logs, which does not exist; fix: give the partition count"
    ]


def test_a_factor_above_the_live_brokers_is_refused_before_anything_is_sent():
    plan = plan_topic(wanted(partitions=3, replication_factor=4), None, 3)
    assert plan["actions"] == []
    assert "replication_factor: 4 for topic logs is above the 3 live brokers; fix: give at most 3" in plan["errors"][0]


def test_an_existing_topic_keeps_its_factor_while_a_broker_is_down():
    # during a rolling restart 2 of 3 brokers answer: the topic as it is must not fail
    plan = plan_topic(wanted(partitions=6, replication_factor=3), current(), 2)
    assert plan == dict(actions=[], before=current(), after=current(), errors=[])


def test_partitions_only_grow():
    grow = plan_topic(wanted(partitions=12), current(), 3)
    assert grow["actions"] == [("partitions", 12)] and grow["after"]["partitions"] == 12
    shrink = plan_topic(wanted(partitions=3), current(), 3)
    assert shrink["actions"] == []
    assert shrink["errors"][0].startswith("partitions: 3 for topic logs, which has 6; fix: partitions can only grow")


def test_a_different_factor_names_the_reassignment():
    plan = plan_topic(wanted(replication_factor=2), current(), 3)
    assert plan["actions"] == []
    assert "replication_factor: 2 for topic logs, which has 3; fix: keep 3 here" in plan["errors"][0]


def test_errors_cancel_every_action():
    plan = plan_topic(wanted(partitions=12, replication_factor=2, config={"retention.ms": 1}), current(), 3)
    assert plan["actions"] == [] and len(plan["errors"]) == 1


def test_config_merges_unless_purged():
    have = current(config={"retention.ms": "1000", "segment.bytes": "1048576"})
    merged = plan_topic(wanted(config={"retention.ms": 2000}), have, 3)
    assert merged["actions"] == [("config", {"retention.ms": "2000", "segment.bytes": "1048576"})]
    purged = plan_topic(wanted(config={"retention.ms": 2000}, purge_config=True), have, 3)
    assert purged["actions"] == [("config", {"retention.ms": "2000"})]
    same = plan_topic(wanted(config={"retention.ms": 1000}), have, 3)
    assert same["actions"] == []


def test_absent_deletes_only_what_exists():
    assert plan_topic(wanted(state="absent"), current(), 3)["actions"] == [("delete",)]
    assert plan_topic(wanted(state="absent"), None, 3)["actions"] == []


def test_tls_settings_come_from_the_connection_options():
    params = dict(
        bootstrap_servers=["a:9093", "b:9093"],
        security_protocol="SSL",
        ca_file="/ca",
        cert_file="/c",
        key_file="/k",
        timeout=5,
    )
    assert client_config(params) == {
        "bootstrap.servers": "a:9093,b:9093",
        "security.protocol": "SSL",
        "socket.timeout.ms": 5000,
        "ssl.ca.location": "/ca",
        "ssl.certificate.location": "/c",
        "ssl.key.location": "/k",
    }
    assert "ssl.ca.location" not in client_config(dict(params, security_protocol="PLAINTEXT"))


class Done:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error

    def result(self, timeout=None):
        if self.error:
            raise self.error
        return self.value


class FakeAdmin:
    """Enough of confluent_kafka's AdminClient for run_topic: one topic, calls recorded."""

    def __init__(self, partitions=None, rf=3, config=None, brokers=3):
        self.partitions, self.rf, self.config, self.brokers = partitions, rf, dict(config or {}), brokers
        self.calls = []

    def list_topics(self, timeout=None):
        topics = {}
        if self.partitions:
            parts = {
                i: SimpleNamespace(id=i, replicas=list(range(self.rf)), isrs=list(range(self.rf)))
                for i in range(self.partitions)
            }
            topics["logs"] = SimpleNamespace(partitions=parts, error=None)
        return SimpleNamespace(brokers={i: None for i in range(self.brokers)}, topics=topics)

    def describe_configs(self, resources, request_timeout=None):
        entries = {k: SimpleNamespace(value=v, source=DYNAMIC_TOPIC_CONFIG) for k, v in self.config.items()}
        entries["cleanup.policy"] = SimpleNamespace(value="delete", source=5)  # a default: never compared
        return {resources[0]: Done(entries)}

    def create_topics(self, topics, validate_only=False, **kw):
        self.calls.append(
            ("create", topics[0].topic, topics[0].num_partitions, topics[0].replication_factor, validate_only)
        )
        return {topics[0].topic: Done()}

    def create_partitions(self, parts, validate_only=False, **kw):
        self.calls.append(("partitions", parts[0].new_total_count, validate_only))
        return {parts[0].topic: Done()}

    def alter_configs(self, resources, validate_only=False, **kw):
        self.calls.append(("config", dict(resources[0].set_config_dict), validate_only))
        return {resources[0]: Done()}

    def delete_topics(self, names, **kw):
        self.calls.append(("delete", names[0]))
        return {names[0]: Done()}


def params(**kw):
    base = dict(wanted(**kw), bootstrap_servers=["127.0.0.1:9093"], security_protocol="SSL", timeout=5)
    return base


def test_run_creates_then_reports_no_change():
    admin = FakeAdmin()
    result = run_topic(params(partitions=3, replication_factor=3), admin=admin, diff=True)
    assert result["changed"] and admin.calls == [("create", "logs", 3, 3, False)]
    assert result["diff"]["before"] == {} and result["diff"]["after"]["partitions"] == 3
    admin = FakeAdmin(partitions=3, config={})
    assert run_topic(params(partitions=3, replication_factor=3), admin=admin) == dict(
        changed=False, actions=[], topic=current(3, 3), brokers=3
    )
    assert admin.calls == []


def test_check_mode_sends_validate_only_requests():
    admin = FakeAdmin(partitions=3, config={"retention.ms": "1"})
    result = run_topic(params(partitions=6, config={"retention.ms": 2}), admin=admin, check_mode=True)
    assert result["changed"] and result["actions"] == ["grow to 6 partitions", "set config to retention.ms=2"]
    assert admin.calls == [("partitions", 6, True), ("config", {"retention.ms": "2"}, True)]


def test_check_mode_never_deletes():
    admin = FakeAdmin(partitions=3)
    assert run_topic(params(state="absent"), admin=admin, check_mode=True)["changed"]
    assert admin.calls == []
    run_topic(params(state="absent"), admin=admin)
    assert admin.calls == [("delete", "logs")]


def test_a_refused_plan_raises_with_the_fix():
    with pytest.raises(KafkaModuleError, match="partitions can only grow"):
        run_topic(params(partitions=1), admin=FakeAdmin(partitions=3))


def test_a_brokers_error_names_the_topic():
    class Refusing(FakeAdmin):
        def create_topics(self, topics, **kw):
            return {"logs": Done(error=RuntimeError("TOPIC_ALREADY_EXISTS"))}

    with pytest.raises(KafkaModuleError, match="logs: TOPIC_ALREADY_EXISTS"):
        run_topic(params(partitions=3), admin=Refusing())
