#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: etcd_member
short_description: Add, remove, promote and list etcd cluster members through the v3 API
version_added: 0.1.0
description:
  - Manages the membership of an etcd v3 cluster through the JSON gateway over HTTPS with a client
    certificate. Runs on an etcd host with the Python standard library only.
  - A new member joins as a learner by default (O(learner=true)) and is promoted by a later
    O(state=promoted) call once it has caught up with the leader.
  - Changing the peer URLs of an existing member is not supported; such a request fails.
author:
  - idcloud developers
extends_documentation_fragment:
  - idcloud.platform.etcd_client
attributes:
  check_mode:
    support: full
    description: Reads the live membership and reports what would change without writing.
  diff_mode:
    support: full
    description: Before/after lists of member names (learners marked, unstarted members shown by peer URL).
options:
  name:
    description:
      - Name of the member (the C(--name) it starts with).
      - An added member has no name until it starts; it is then matched on O(peer_urls).
    type: str
  peer_urls:
    description:
      - Peer URLs of the member (C(--initial-advertise-peer-urls)).
      - Needed with O(state=present) to add a member (without it, O(state=present) only checks that
        the member named O(name) exists). With O(state=absent) or O(state=promoted), finds the member
        when O(name) is not given or not yet known to the cluster (an unstarted member has no name).
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) adds the member if no member has this name or these peer URLs. A member with this
        name but other peer URLs is an error.
      - V(absent) removes the member found by name (or peer URLs). Refuses to remove the last member,
        and refuses when the voting members left would not have a healthy quorum (learners never count).
      - V(promoted) promotes a learner to a voting member; a voting member is left alone. A learner
        that has not caught up makes the module fail with etcd's message; retry with C(until).
      - V(list) only reads.
    type: str
    choices: [present, absent, promoted, list]
    default: present
  learner:
    description:
      - With O(state=present), add the new member as a learner (non-voting).
      - Adding a voting member to a running cluster raises the quorum before the new member runs;
        joining as a learner and promoting later avoids that window.
      - Never demotes an existing voting member.
    type: bool
    default: true
  check_health:
    description:
      - Also C(GET /health) on the client URLs of every member and return RV(members[].healthy).
      - O(state=absent) always checks health for its quorum decision.
    type: bool
    default: false
notes:
  - The returned RV(initial_cluster) is what the new member starts with (C(--initial-cluster),
    with C(--initial-cluster-state=existing)).
seealso:
  - module: idcloud.platform.etcd_snapshot
"""

EXAMPLES = r"""
- name: List members with their health
  idcloud.platform.etcd_member:
    state: list
    check_health: true
    ca_file: /etc/etcd/pki/ca.crt
    cert_file: /etc/etcd/pki/admin.crt
    key_file: /etc/etcd/pki/admin.key
  register: etcd_members

- name: Add etcd4 as a learner (run on an existing member)
  idcloud.platform.etcd_member:
    name: etcd4
    peer_urls: ["https://10.0.0.4:2380"]
    ca_file: /etc/etcd/pki/ca.crt
    cert_file: /etc/etcd/pki/admin.crt
    key_file: /etc/etcd/pki/admin.key
  register: etcd_added
  # Start etcd4 with --initial-cluster "{{ etcd_added.initial_cluster }}" --initial-cluster-state existing

- name: Promote etcd4 once it caught up
  idcloud.platform.etcd_member:
    name: etcd4
    state: promoted
    ca_file: /etc/etcd/pki/ca.crt
    cert_file: /etc/etcd/pki/admin.crt
    key_file: /etc/etcd/pki/admin.key
  register: etcd_promoted
  until: etcd_promoted is succeeded
  retries: 30
  delay: 5

- name: Remove a dead member
  idcloud.platform.etcd_member:
    name: etcd2
    state: absent
    endpoints: ["https://10.0.0.1:2379", "https://10.0.0.3:2379"]
    ca_file: /etc/etcd/pki/ca.crt
    cert_file: /etc/etcd/pki/admin.crt
    key_file: /etc/etcd/pki/admin.key
"""

RETURN = r"""
members:
  description:
    - The members after the change (in check mode, the members the change would produce).
    - C(healthy) and C(health_reason) are only present with O(check_health=true).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Member id, uint64 as a decimal string (C(null) for a member check mode would add).
      type: str
      sample: "1654818993570247861"
    id_hex:
      description: Member id in hex, as etcdctl prints it.
      type: str
      sample: 16f7191b6752f4b5
    name:
      description: Member name; empty for a member added but not started.
      type: str
      sample: etcd1
    peer_urls:
      description: Peer URLs.
      type: list
      elements: str
      sample: ["https://10.0.0.1:2380"]
    client_urls:
      description: Client URLs; empty for a member added but not started.
      type: list
      elements: str
      sample: ["https://10.0.0.1:2379"]
    is_learner:
      description: Whether the member is a non-voting learner.
      type: bool
    healthy:
      description: C(GET /health) answered C(true) on one of its client URLs.
      type: bool
      returned: when O(check_health=true)
    health_reason:
      description: Why the member is not healthy (empty when healthy).
      type: str
      returned: when O(check_health=true)
member:
  description:
    - The member added, removed, promoted or matched, same keys as RV(members); C(null) when none matched.
  returned: always
  type: dict
action:
  description: What was done (or would be done in check mode).
  returned: always
  type: str
  choices: [none, add, remove, promote]
msg:
  description: Why, in one sentence.
  returned: always
  type: str
initial_cluster:
  description: C(--initial-cluster) value for the member named O(name), built from the members after the add.
  returned: when O(state=present) and O(name) is given
  type: str
  sample: etcd1=https://10.0.0.1:2380,etcd4=https://10.0.0.4:2380
diff:
  description: Member labels before and after.
  returned: in diff mode
  type: dict
  sample: {"before": {"members": ["etcd1"]}, "after": {"members": ["etcd1", "<unstarted https://10.0.0.4:2380> (learner)"]}}
error:
  description: The etcd endpoint, message and gRPC code of a failed call.
  returned: on an etcd failure
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import EtcdError, client_from_params
from ansible_collections.idcloud.platform.plugins.module_utils.etcd.etcd_member import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    EtcdMemberError,
    run_member,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    p = module.params
    client = client_from_params(p)
    try:
        result = run_member(client, p, check_mode=module.check_mode, diff=module._diff)
    except EtcdMemberError as exc:
        module.fail_json(msg=str(exc), member=exc.member)
    except EtcdError as exc:
        module.fail_json(msg="etcd call failed: %s" % exc, error=exc.to_dict())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
