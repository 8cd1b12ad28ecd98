#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ceph_pool
short_description: Keep a replicated Ceph pool's size, min_size, CRUSH rule, PG autoscaling and application as code
version_added: 0.1.0
description:
  - Creates, changes or deletes one replicated pool through the C(ceph) command line.
  - Plans first (the pool, the CRUSH rules and the OSDs that are in), then runs only the commands the
    plan lists; check mode runs none and reports them.
  - Refuses, naming the fix, a size above the OSDs that are in, a min_size above the size, a CRUSH rule
    that does not exist and a pg_num that is not a power of two. When the size shrinks, min_size is set
    first, so min_size never exceeds size between the two commands.
  - An application enabled on the pool is never disabled here. A pool is deleted only when
    O(delete_confirm) repeats its name (and the mons allow pool deletion).
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.ceph_client
options:
  name:
    description: The pool's name.
    type: str
    required: true
  state:
    description: V(present) or V(absent) (deletes the pool and every object in it).
    type: str
    default: present
    choices: [present, absent]
  size:
    description: Replicas of each object (the cluster's default for a new pool when omitted).
    type: int
  min_size:
    description: Replicas that must be up for I/O.
    type: int
  pg_autoscale_mode:
    description: The PG autoscaler for this pool.
    type: str
    choices: ['on', 'off', warn]
  pg_num:
    description: Placement groups (a power of two); 32 for a new pool when omitted.
    type: int
  application:
    description: Application to enable on the pool.
    type: str
    choices: [rbd, cephfs, rgw]
  crush_rule:
    description: Name of the CRUSH rule that places the pool's replicas.
    type: str
  delete_confirm:
    description: The pool's name again, required with O(state=absent) for an existing pool.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The pool's size, min_size, pg_num, autoscale mode, CRUSH rule and applications before and after.
  platform:
    platforms: [posix]
"""

EXAMPLES = r"""
- name: The pool for RBD images, 3 replicas in 3 racks
  idcloud.platform.ceph_pool:
    name: rbd
    size: 3
    min_size: 2
    crush_rule: replicated_rack
    pg_autoscale_mode: "on"
    application: rbd
"""

RETURN = r"""
commands:
  description: The ceph commands the plan ran (or, in check mode, would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["ceph osd pool create rbd 32 32 replicated replicated_rack", "ceph osd pool set rbd size 3"]
pool:
  description: The pool after the run (null when absent).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_pool import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_pool,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_pool(module.run_command, module.params, check_mode=module.check_mode, diff=module._diff)
    except CephError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
