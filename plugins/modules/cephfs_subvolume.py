#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: cephfs_subvolume
short_description: Keep a CephFS subvolume and its quota as code
version_added: 0.1.0
description:
  - Creates, resizes (its quota) or deletes one CephFS subvolume through the C(ceph fs subvolume)
    commands of the mgr's volumes module.
  - Plans first (the cluster's volumes, the volume's groups, the subvolume as
    C(ceph fs subvolume info) reports it and its path from C(ceph fs subvolume getpath)), then runs
    only the commands the plan lists; check mode runs none and reports them.
  - The quota is never set below the bytes the subvolume holds, and lowered only with
    O(allow_shrink). Every resize carries C(--no_shrink), so the mgr refuses it as well when the
    subvolume grew past the new quota since it was read.
  - The mode of an existing subvolume is not changed; a different O(mode) is refused, naming its
    current mode.
  - Refuses, naming the fix, a volume or group that does not exist, a size that cannot be read, a
    mode that is not an octal string, a subvolume still being cloned, and deleting a subvolume that
    holds data unless O(force).
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.ceph_client
options:
  volume:
    description: The CephFS volume (the file system's name, as C(ceph fs volume ls) lists it).
    type: str
    required: true
  group:
    description:
      - The subvolume group (it must exist; C(ceph fs subvolumegroup create)).
      - The volume's default group (C(_nogroup)) when omitted.
    type: str
  name:
    description: The subvolume's name.
    type: str
    required: true
  state:
    description: V(present) or V(absent) (deletes the subvolume and every file in it).
    type: str
    default: present
    choices: [present, absent]
  size:
    description:
      - The subvolume's quota, in bytes (an integer) or with a unit (V(100G), V(512M), V(1.5T));
        K, M, G, T and P are powers of 1024. V(0) means no quota.
      - No quota for a new subvolume when omitted; the quota of an existing one is left as it is.
    type: raw
  mode:
    description:
      - The mode of the subvolume's directory as a quoted octal string (V('0755')), used when it is created
        (the mgr's default is 0755).
      - On an existing subvolume a different mode is refused, not applied.
    type: str
  allow_shrink:
    description: Allow a quota below the current one (never below the bytes the subvolume holds).
    type: bool
    default: false
  force:
    description: Delete the subvolume even though it holds data.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The subvolume's quota, mode, bytes used, path and state before and after.
  platform:
    platforms: [posix]
notes:
  - A subvolume with snapshots is not deleted by the mgr (C(ceph fs subvolume rm) fails and says so);
    remove them first.
"""

EXAMPLES = r"""
- name: The shared volume of the CI runners, 500 GiB, in the group ceph-csi uses
  idcloud.platform.cephfs_subvolume:
    volume: cephfs
    group: csi
    name: ci-cache
    size: 500G
    mode: "0775"
  register: ci_cache

- name: A scratch subvolume goes, with what is in it
  idcloud.platform.cephfs_subvolume:
    volume: cephfs
    name: scratch
    state: absent
    force: true
"""

RETURN = r"""
commands:
  description: The ceph commands the plan ran (or, in check mode, would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["ceph fs subvolume resize cephfs ci-cache 536870912000 --group_name csi --no_shrink"]
path:
  description: The subvolume's path in the file system (null when absent, or in check mode for a new one).
  returned: always
  type: str
  sample: /volumes/csi/ci-cache/6a9e2c4d-3f7b-4d1e-9b8a-0c5d2e7f1a3b
subvolume:
  description: The subvolume after the run (null when absent); in check mode, what the plan expects.
  returned: always
  type: dict
  contains:
    volume:
      description: The volume.
      type: str
    group:
      description: The group (null for the default group).
      type: str
    name:
      description: The subvolume's name.
      type: str
    size:
      description: The quota in bytes, 0 when there is none.
      type: int
      sample: 536870912000
    mode:
      description: The mode of its directory, as an octal string.
      type: str
      sample: "0775"
    bytes_used:
      description: The bytes the subvolume holds.
      type: int
    path:
      description: Its path, as RV(path).
      type: str
    state:
      description: The mgr's state of the subvolume (V(complete) once usable).
      type: str
info:
  description:
    - The subvolume as C(ceph fs subvolume info) reports it (uid, gid, data_pool, pool_namespace,
      created_at, ...); after the run, or as read before it in check mode. Null when absent.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cephfs_subvolume import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_subvolume,
)
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_subvolume(module.run_command, module.params, check_mode=module.check_mode, diff=module._diff)
    except CephError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
