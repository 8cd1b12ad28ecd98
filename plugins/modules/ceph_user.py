#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: ceph_user
short_description: Keep a cephx user (client.csi-rbd, ...) and its caps as code
version_added: 0.1.0
description:
  - Creates, changes or deletes one cephx entity through the C(ceph) command line
    (C(ceph auth get-or-create), C(ceph auth caps), C(ceph auth del)).
  - Plans first (the entity as C(ceph auth get) reports it), then runs only the commands the plan
    lists; check mode runs none and reports them.
  - The caps are given whole. C(ceph auth caps) replaces every cap of the entity, so a service left
    out of O(caps) loses its cap; the diff shows the caps before and after.
  - Refuses, naming the fix, a name that is not C(<type>.<id>) with a type cephx knows, a cap for a
    service other than mon, osd, mgr and mds, an empty cap, and C(client.admin) unless
    O(allow_client_admin) is set.
  - The key is never part of the diff, the commands or a message. It is returned only with
    O(return_key), as RV(key); the task that asks for it should carry C(no_log) (a warning says so
    otherwise).
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.ceph_client
options:
  name:
    description: The entity, C(<type>.<id>) with type client, mds, mgr, mon or osd (C(client.csi-rbd)).
    type: str
    required: true
  state:
    description: V(present) or V(absent) (deletes the entity and its key; clients using it lose access).
    type: str
    default: present
    choices: [present, absent]
  caps:
    description:
      - The entity's caps, service (V(mon), V(osd), V(mgr), V(mds)) to cap string
        (C(profile rbd pool=kubernetes)).
      - All of them. A service that is left out loses its cap when the caps change.
      - Left as they are when omitted; a new entity then has no caps.
    type: dict
  allow_client_admin:
    description: Manage C(client.admin), the cluster's admin user (refused otherwise).
    type: bool
    default: false
  return_key:
    description:
      - Return the entity's key as RV(key) (after the run; none for an entity check mode would create).
      - Put C(no_log) on the task; the module warns when the task has none.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The entity's name and caps before and after; never its key.
  platform:
    platforms: [posix]
notes:
  - Cap strings are compared as written; Ceph stores them as given, so C(allow r) and
    C(allow  r) differ.
"""

EXAMPLES = r"""
- name: The user ceph-csi's RBD plugin maps images with
  idcloud.platform.ceph_user:
    name: client.csi-rbd
    caps:
      mon: profile rbd
      osd: profile rbd pool=kubernetes
      mgr: profile rbd pool=kubernetes
    return_key: true
  no_log: true
  register: csi_rbd_user

- name: The user of a retired application goes
  idcloud.platform.ceph_user:
    name: client.legacy-backup
    state: absent
"""

RETURN = r"""
commands:
  description: The ceph commands the plan ran (or, in check mode, would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["ceph auth caps client.csi-rbd mgr 'profile rbd pool=kubernetes' mon 'profile rbd'"]
user:
  description: The entity after the run (null when absent); never holds the key.
  returned: always
  type: dict
  contains:
    entity:
      description: The entity's name.
      type: str
      sample: client.csi-rbd
    caps:
      description: Service to cap string.
      type: dict
      sample: {"mon": "profile rbd", "osd": "profile rbd pool=kubernetes"}
key:
  description:
    - The entity's cephx key, secret. Null when the entity is absent or check mode would create it.
    - Only with O(return_key); register it under a task with C(no_log).
  returned: when O(return_key) is true
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_user import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_user,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_user(
            module.run_command,
            module.params,
            check_mode=module.check_mode,
            diff=module._diff,
            task_no_log=module.no_log,
        )
    except CephError as exc:
        module.fail_json(msg=str(exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
