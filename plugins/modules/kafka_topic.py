#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_topic
short_description: Keep a Kafka topic's partitions, replication factor and configs as code
version_added: 0.1.0
description:
  - Creates, grows, re-configures or deletes one topic through the Kafka admin API.
  - Plans first (reads the topic, its dynamic configs and the live brokers), then makes only the
    writes the plan lists. In check mode the same writes go to the brokers as validate-only requests,
    so Kafka itself checks the preview and nothing changes.
  - Partitions only grow. The replication factor of an existing topic is never changed here (that is
    a partition reassignment); a different value fails naming the fix. A new topic's replication
    factor above the live brokers fails before anything is sent.
  - Topic configs are compared as strings (C(true), C(604800000)). Settings made on the topic that
    O(config) does not name are kept, unless O(purge_config) is set.
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.kafka_client
options:
  name:
    description: The topic's name.
    type: str
    required: true
  state:
    description: V(present) keeps the topic as described; V(absent) deletes it (and its data).
    type: str
    default: present
    choices: [present, absent]
  partitions:
    description:
      - Number of partitions; required to create the topic. A larger number adds partitions (keys then
        map to other partitions); a smaller one fails.
    type: int
  replication_factor:
    description:
      - Replicas of each partition when the topic is created; the brokers' C(default.replication.factor)
        when omitted. For an existing topic it must equal the current factor.
    type: int
  config:
    description:
      - Topic-level configs, e.g. C(retention.ms), C(min.insync.replicas), C(cleanup.policy).
    type: dict
    default: {}
  purge_config:
    description:
      - Remove topic-level settings that O(config) does not name (the topic then follows the brokers' defaults).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The topic's partitions, replication factor and topic-level configs before and after.
  platform:
    platforms: [posix]
seealso:
  - module: idcloud.platform.kafka_cluster_info
"""

EXAMPLES = r"""
- name: A log topic, 3 replicas in 3 racks, kept a week
  idcloud.platform.kafka_topic:
    bootstrap_servers: ["10.210.1.41:9093"]
    ca_file: /etc/kafka/tls/ca.crt
    cert_file: /etc/kafka/tls/admin.crt
    key_file: /etc/kafka/tls/admin.key
    name: logs
    partitions: 6
    replication_factor: 3
    config:
      retention.ms: 604800000
      min.insync.replicas: 2
"""

RETURN = r"""
actions:
  description: What the plan did (or, in check mode, would do), in order.
  returned: always
  type: list
  elements: str
  sample: ["grow to 12 partitions", "set config to retention.ms=86400000"]
topic:
  description: The topic after the run (null when absent).
  returned: always
  type: dict
  sample: {partitions: 12, replication_factor: 3, config: {retention.ms: "86400000"}}
brokers:
  description: Number of live brokers the cluster reported.
  returned: always
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.client import KafkaModuleError
from ansible_collections.idcloud.platform.plugins.module_utils.kafka.kafka_topic import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_topic,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_topic(module.params, check_mode=module.check_mode, diff=module._diff)
    except KafkaModuleError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
