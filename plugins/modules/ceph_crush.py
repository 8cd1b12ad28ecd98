#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ceph_crush
short_description: Keep the CRUSH hierarchy (root, rooms, racks, hosts) and a replicated rule as the IDC description says
version_added: 0.1.0
description:
  - Makes the CRUSH map mirror the IDC description through the C(ceph) command line - a root, its rooms, their
    racks and the OSD hosts in them - and, when O(rule) is given, a replicated rule whose replicas go to different
    O(failure_domain)s, so that a pool using it keeps each replica in another rack by construction.
  - Plans first (the buckets as C(ceph osd crush tree) reports them, the rules as C(ceph osd crush rule dump) does),
    then runs only the commands the plan lists; check mode runs none and reports them.
  - A missing bucket is made with C(ceph osd crush add-bucket) and every bucket is put under its parent with
    C(ceph osd crush move), top down. Host buckets may be made before their OSDs exist; an OSD that starts with
    the crush location C(host=<name>) joins its host bucket where it hangs. Moving a host that holds OSDs moves
    their data.
  - A missing rule is made with C(ceph osd crush rule create-replicated). A rule of that name with another root,
    a device class or another failure domain is refused, because a rule cannot be edited in place; the message
    says how to migrate (a new rule, the pools pointed at it, the old rule removed).
  - Refuses, naming the fix, a name that is not a CRUSH name, one name for two buckets of different types (in the
    tree, or a bucket of another type in the map), a rack under two parents and a host listed twice.
  - Buckets in the map and not in the tree are returned as RV(unmanaged) and never removed while they hold OSDs
    (a warning names each that does). With O(prune) the empty ones are removed with C(ceph osd crush remove),
    children first, except a bucket a rule takes.
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.ceph_client
options:
  tree:
    description:
      - Where each OSD host sits, one entry per host, as the IDC description's C(idc_ceph.crush_tree) gives it.
      - Names are CRUSH names (letters, digits, C(-), C(_), C(.)), and a host's name is the one its OSDs report
        as their crush location C(host=).
    type: list
    elements: dict
    required: true
    suboptions:
      room:
        description: The host's room; without it the rack hangs from O(root).
        type: str
      rack:
        description: The host's rack.
        type: str
        required: true
      host:
        description: The host.
        type: str
        required: true
  root:
    description: The CRUSH root the rooms (or racks) hang from, made when missing.
    type: str
    default: default
  rule:
    description:
      - The name of a replicated rule that takes O(root) and puts each replica in a different O(failure_domain).
      - No rule is made or checked when omitted.
    type: str
  failure_domain:
    description: The bucket type the rule's replicas go to different ones of.
    type: str
    default: rack
    choices: [host, rack, room]
  prune:
    description: Remove the buckets that are not in the tree and hold no OSDs (never one a rule takes).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The buckets (type, parent, OSDs below) and the rule before and after.
  platform:
    platforms: [posix]
notes:
  - The rule is made without a device class; a rule that has one (it takes C(default~ssd)) is reported as different.
  - Set the OSDs' crush location to the host names of O(tree) (C(crush_location) in ceph.conf, or the defaults'
    short host name), or the OSDs make host buckets of their own names under the root, which this module then
    reports as unmanaged.
"""

EXAMPLES = r"""
- name: The CRUSH map mirrors the IDC description, replicas in different racks
  idcloud.platform.ceph_crush:
    tree: "{{ idc_ceph.crush_tree }}"
    rule: replicated_rack
    failure_domain: "{{ idc_ceph.failure_domain }}"

- name: The same, and remove the empty buckets the description no longer has
  idcloud.platform.ceph_crush:
    tree:
      - {room: room-a, rack: a01, host: st01}
      - {room: room-a, rack: a02, host: st02}
      - {room: room-b, rack: b01, host: st03}
    rule: replicated_rack
    prune: true
"""

RETURN = r"""
commands:
  description: The ceph commands the plan ran (or, in check mode, would run), in order.
  returned: always
  type: list
  elements: str
  sample:
    - ceph osd crush add-bucket room-a room
    - ceph osd crush move room-a root=default
    - ceph osd crush add-bucket a01 rack
    - ceph osd crush move a01 room=room-a
    - ceph osd crush move st01 rack=a01
    - ceph osd crush rule create-replicated replicated_rack default rack
before:
  description: The buckets (name to type, parent and the OSDs in its subtree) and the rule before the run.
  returned: always
  type: dict
  sample:
    buckets:
      default: {type: root, parent: null, osds: 2}
      st01: {type: host, parent: default, osds: 2}
    rule: null
after:
  description: The same after the run (read again from the cluster), or as planned in check mode.
  returned: always
  type: dict
unmanaged:
  description: The buckets in the map and not in the tree that were kept, in the map's order, with the OSDs below each.
  returned: always
  type: list
  elements: dict
  sample: [{name: old-rack, type: rack, parent: default, osds: 0}]
pruned:
  description: The buckets removed with O(prune).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_crush import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_crush,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_crush(module.run_command, module.params, check_mode=module.check_mode, diff=module._diff)
    except CephError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
