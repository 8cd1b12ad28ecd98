#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: rbd_image
short_description: Keep an RBD image's size and features as code
version_added: 0.1.0
description:
  - Creates, grows, shrinks (only when allowed), changes the features of, or deletes one RBD image
    through the C(rbd) command line.
  - Plans first (the pool's namespaces, the image as C(rbd info) reports it and, before a delete, its
    watchers from C(rbd status)), then runs only the commands the plan lists; check mode runs none and
    reports them.
  - Sizes are bytes; C(10G) is 10 GiB, as in C(rbd) itself. They reach C(rbd) as C(<bytes>B), never
    in its default unit (MiB).
  - O(features) is the image's feature set when it is created. On an existing image only the features
    C(rbd feature enable) and C(rbd feature disable) change at runtime are changed (exclusive-lock,
    object-map, fast-diff, journaling; deep-flatten can only be disabled); asking for any other
    change is refused, naming the feature.
  - Refuses, naming the fix, a missing pool or namespace, a size that cannot be read, a new image
    without a size, a smaller size without O(allow_shrink), a feature whose dependency is missing
    (object-map and journaling need exclusive-lock, fast-diff needs object-map), deleting an image
    that has snapshots, and deleting an image that clients have open unless O(force).
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - idcloud.platform.ceph_client
options:
  pool:
    description: The pool that holds the image.
    type: str
    required: true
  namespace:
    description: The RBD namespace in the pool (it must exist; C(rbd namespace create)); the pool's default one when omitted.
    type: str
  name:
    description: The image's name.
    type: str
    required: true
  state:
    description: V(present) or V(absent) (deletes the image and its data).
    type: str
    default: present
    choices: [present, absent]
  size:
    description:
      - The image's size, in bytes (an integer) or with a unit (V(10G), V(512M), V(1.5T), V(10GiB));
        K, M, G, T and P are powers of 1024, and V(10GB) is refused as ambiguous.
      - Required to create the image; left as it is when omitted.
    type: raw
  features:
    description:
      - The image's features. The cluster's default (C(rbd_default_features)) for a new image when omitted;
        left as they are on an existing image when omitted.
      - Features rbd reports but does not take here (striping, data-pool, operations, ...) are not compared.
    type: list
    elements: str
    choices: [layering, exclusive-lock, object-map, fast-diff, deep-flatten, journaling]
  allow_shrink:
    description: Allow O(size) below the image's size (C(rbd resize --allow-shrink)); the data past the new end is lost.
    type: bool
    default: false
  force:
    description:
      - Delete even though C(rbd status) lists watchers.
      - For watches known to be stale; C(rbd rm) itself still refuses a live one (a crashed client's watch
        expires after about 30 seconds).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The image (size in bytes, features, id, snapshot count) before and after.
  platform:
    platforms: [posix]
notes:
  - Runs C(rbd) (in Debian ceph-common, like C(ceph)) with the same O(cluster_conf), O(user) and O(keyring);
    O(timeout) is passed as the config option C(--client-mount-timeout).
"""

EXAMPLES = r"""
- name: The disk image of the registry VM, 50 GiB
  idcloud.platform.rbd_image:
    pool: vms
    name: registry-disk
    size: 50G
    features: [layering, exclusive-lock, object-map, fast-diff, deep-flatten]

- name: A volume in a tenant's namespace grows to 200 GiB
  idcloud.platform.rbd_image:
    pool: kubernetes
    namespace: tenant-a
    name: pg-data-0
    size: 200G

- name: The old scratch image goes, once nothing has it mapped
  idcloud.platform.rbd_image:
    pool: vms
    name: scratch
    state: absent
"""

RETURN = r"""
commands:
  description: The rbd commands the plan ran (or, in check mode, would run), in order.
  returned: always
  type: list
  elements: str
  sample: ["rbd resize --size 214748364800B --no-progress kubernetes/tenant-a/pg-data-0"]
image:
  description:
    - The image after the run, as C(rbd info) reports it (null when absent).
    - In check mode for a new image, what the plan expects; its id and object size are null, and its
      features null when O(features) was not given.
  returned: always
  type: dict
  contains:
    pool:
      description: The pool.
      type: str
    namespace:
      description: The namespace (null for the pool's default).
      type: str
    name:
      description: The image's name.
      type: str
    id:
      description: The image's id in the pool (the suffix of its rbd_data objects).
      type: str
      sample: 5e2b8b4567a1
    size:
      description: The size in bytes.
      type: int
      sample: 53687091200
    features:
      description: The features the image has, in the order rbd lists them.
      type: list
      elements: str
      sample: [layering, exclusive-lock, object-map, fast-diff, deep-flatten]
    object_size:
      description: The size of the image's objects, in bytes.
      type: int
      sample: 4194304
    snapshot_count:
      description: The image's snapshots.
      type: int
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.cli import CephError
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.rbd_image import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    run_image,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        result = run_image(module.run_command, module.params, check_mode=module.check_mode, diff=module._diff)
    except CephError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
