# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the kafka_topic module: read the topic, plan, then act in one place.

plan_topic() is pure (wanted + current state + broker count in, actions or errors out) and
unit-tested; run_topic() reads the live state through an AdminClient, plans, and calls only the
writes the plan lists. In check mode the same writes go to the brokers with validate_only, so a
preview is checked by Kafka itself and changes nothing.

Rules: partitions only grow; the replication factor of an existing topic is not changed here
(that is a partition reassignment); a replication factor above the live brokers is refused.
Topic configs are compared as strings; with purge_config the topic keeps only those given.
"""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.client import (
    KafkaModuleError,
    admin_client,
    kafka_connection_argument_spec,
    wait,
)

ARGUMENT_SPEC = dict(
    kafka_connection_argument_spec(),
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    partitions=dict(type="int"),
    replication_factor=dict(type="int"),
    config=dict(type="dict", default={}),
    purge_config=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True, required_together=[("cert_file", "key_file")])

# ConfigSource.DYNAMIC_TOPIC_CONFIG: a setting made on the topic itself
DYNAMIC_TOPIC_CONFIG = 1


def config_value(value):
    """Kafka's string form of a config value given as YAML (true -> "true", 7 -> "7")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(config_value(v) for v in value)
    return str(value)


def normalize_config(config):
    return {str(key): config_value(value) for key, value in (config or {}).items()}


def plan_topic(wanted, current, broker_count):
    """wanted: the module's params; current: None (no topic) or {partitions, replication_factor, config}.

    Returns {actions: [...], before, after, errors: [...]}; actions are ("delete",), ("create",
    partitions, rf, config), ("partitions", n) and ("config", full_config).
    """
    name = wanted["name"]
    errors, actions = [], []
    wanted_config = normalize_config(wanted.get("config"))
    before = None if current is None else dict(current, config=dict(current["config"]))
    if wanted.get("state", "present") == "absent":
        if current is not None:
            actions.append(("delete",))
        return dict(actions=actions, before=before, after=None, errors=errors)

    partitions = wanted.get("partitions")
    rf = wanted.get("replication_factor")
    if partitions is not None and partitions < 1:
        errors.append("partitions: %s for topic %s; fix: give 1 or more" % (partitions, name))
    if rf is not None and rf < 1:
        errors.append("replication_factor: %s for topic %s; fix: give 1 or more" % (rf, name))
    if current is None and rf is not None and broker_count is not None and rf > broker_count:
        errors.append(
            "replication_factor: %d for topic %s is above the %d live brokers; fix: give at most %d, or add "
            "brokers first" % (rf, name, broker_count, broker_count)
        )

    if current is None:
        if partitions is None:
            errors.append(
                "partitions: not given for topic %s, which does not exist; fix: give the partition count" % name
            )
        after = dict(partitions=partitions, replication_factor=rf, config=dict(wanted_config))
        if not errors:
            actions.append(("create", partitions, -1 if rf is None else rf, dict(wanted_config)))
        return dict(actions=actions, before=None, after=after, errors=errors)

    after = dict(current, config=dict(current["config"]))
    if partitions is not None:
        if partitions < current["partitions"]:
            errors.append(
                "partitions: %d for topic %s, which has %d; fix: partitions can only grow (Kafka cannot remove "
                "them): give %d or more, or delete and re-create the topic"
                % (partitions, name, current["partitions"], current["partitions"])
            )
        elif partitions > current["partitions"]:
            actions.append(("partitions", partitions))
            after["partitions"] = partitions
    if rf is not None and rf != current["replication_factor"]:
        errors.append(
            "replication_factor: %d for topic %s, which has %d; fix: keep %d here and change it with a partition "
            "reassignment (kafka-reassign-partitions), or delete and re-create the topic"
            % (rf, name, current["replication_factor"], current["replication_factor"])
        )
    target = dict(wanted_config) if wanted.get("purge_config") else dict(current["config"], **wanted_config)
    if target != current["config"]:
        actions.append(("config", target))
        after["config"] = target
    if errors:
        actions = []
    return dict(actions=actions, before=before, after=after, errors=errors)


def read_topic(admin, name, timeout):
    """(current state or None, number of live brokers)."""
    from confluent_kafka.admin import ConfigResource

    metadata = admin.list_topics(timeout=timeout)
    brokers = len(metadata.brokers)
    topic = metadata.topics.get(name)
    if topic is None or (topic.error is not None and not topic.partitions):
        return None, brokers
    replicas = [len(p.replicas) for p in topic.partitions.values()]
    described = wait(admin.describe_configs([ConfigResource("topic", name)], request_timeout=timeout), timeout)
    entries = next(iter(described.values()))
    config = {
        key: entry.value
        for key, entry in entries.items()
        if getattr(entry, "source", None) == DYNAMIC_TOPIC_CONFIG and entry.value is not None
    }
    return dict(
        partitions=len(topic.partitions), replication_factor=min(replicas) if replicas else 0, config=config
    ), brokers


def apply_actions(admin, name, actions, timeout, validate_only):
    from confluent_kafka.admin import ConfigResource, NewPartitions, NewTopic

    for action in actions:
        kind = action[0]
        if kind == "delete":
            if validate_only:
                continue  # DeleteTopics has no validate-only mode
            wait(admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout), timeout)
        elif kind == "create":
            _, partitions, rf, config = action
            topic = NewTopic(name, partitions, rf, config=config)
            wait(
                admin.create_topics(
                    [topic], operation_timeout=timeout, request_timeout=timeout, validate_only=validate_only
                ),
                timeout,
            )
        elif kind == "partitions":
            wait(
                admin.create_partitions(
                    [NewPartitions(name, action[1])],
                    operation_timeout=timeout,
                    request_timeout=timeout,
                    validate_only=validate_only,
                ),
                timeout,
            )
        elif kind == "config":
            resource = ConfigResource("topic", name, set_config=action[1])
            wait(admin.alter_configs([resource], request_timeout=timeout, validate_only=validate_only), timeout)


def describe_action(action):
    kind = action[0]
    if kind == "create":
        return "create with %d partitions, replication factor %s" % (
            action[1],
            "the brokers' default" if action[2] == -1 else action[2],
        )
    if kind == "partitions":
        return "grow to %d partitions" % action[1]
    if kind == "config":
        return "set config to %s" % ", ".join("%s=%s" % kv for kv in sorted(action[1].items()))
    return "delete"


def run_topic(params, check_mode=False, diff=False, admin=None):
    admin = admin or admin_client(params)
    timeout = params["timeout"]
    try:
        current, brokers = read_topic(admin, params["name"], timeout)
    except KafkaModuleError:
        raise
    except Exception as exc:
        raise KafkaModuleError(
            "reading topic %s from %s: %s" % (params["name"], ",".join(params["bootstrap_servers"]), exc)
        )
    plan = plan_topic(params, current, brokers)
    if plan["errors"]:
        raise KafkaModuleError("; ".join(plan["errors"]))
    apply_actions(admin, params["name"], plan["actions"], timeout, validate_only=check_mode)
    result = dict(
        changed=bool(plan["actions"]),
        actions=[describe_action(a) for a in plan["actions"]],
        topic=plan["after"],
        brokers=brokers,
    )
    if diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    return result
