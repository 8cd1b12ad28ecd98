#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_cluster_info
short_description: A Kafka cluster's live brokers, controller and partition health
version_added: 0.1.0
description:
  - Reads the cluster's metadata once and reports the live brokers, the active controller, and every
    partition that is under-replicated (fewer in-sync replicas than assigned) or offline (no leader).
  - C(healthy) is true when every broker of O(expected_brokers) is live and no partition is
    under-replicated or offline (the gate the kafka role waits for between broker restarts).
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.kafka_client
options:
  expected_brokers:
    description: Broker ids (node.id) that must be live for C(healthy).
    type: list
    elements: int
    default: []
attributes:
  check_mode:
    support: full
    details:
      - Reads only.
  diff_mode:
    support: none
  platform:
    platforms: [posix]
seealso:
  - module: idcloud.platform.kafka_topic
"""

EXAMPLES = r"""
- name: Wait until no partition is under-replicated
  idcloud.platform.kafka_cluster_info:
    bootstrap_servers: ["127.0.0.1:9093"]
    ca_file: /etc/kafka/tls/ca.crt
    cert_file: /etc/kafka/tls/admin.crt
    key_file: /etc/kafka/tls/admin.key
    expected_brokers: [297, 553, 809]
  register: kafka
  until: kafka.healthy
  retries: 60
  delay: 2
"""

RETURN = r"""
brokers:
  description: Live brokers, id to the C(host:port) they advertise.
  returned: always
  type: dict
  sample: {"297": "10.210.1.41:9093"}
broker_ids:
  description: Ids of the live brokers, sorted.
  returned: always
  type: list
  elements: int
controller_id:
  description: Id the metadata names as controller (-1 when none answered).
  returned: always
  type: int
missing_brokers:
  description: Ids of O(expected_brokers) that are not live.
  returned: always
  type: list
  elements: int
topics:
  description: Number of topics.
  returned: always
  type: int
partitions:
  description: Number of partitions over all topics.
  returned: always
  type: int
under_replicated:
  description: Partitions (C(topic-N)) with fewer in-sync replicas than replicas.
  returned: always
  type: list
  elements: str
offline:
  description: Partitions without a leader.
  returned: always
  type: list
  elements: str
healthy:
  description: No missing broker, no under-replicated and no offline partition.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.kafka.client import KafkaModuleError
from ansible_collections.idcloud.platform.plugins.module_utils.kafka.kafka_cluster_info import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    read_cluster,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = read_cluster(module.params)
    except KafkaModuleError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
