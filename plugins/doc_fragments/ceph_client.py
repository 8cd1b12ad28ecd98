# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)


class ModuleDocFragment:
    # Connection options shared by the ceph modules (see module_utils/ceph/cli.py).
    DOCUMENTATION = r"""
options:
  cluster_conf:
    description:
      - The cluster's configuration file (its mon addresses) on the host that runs the module.
    type: path
    default: /etc/ceph/ceph.conf
  user:
    description:
      - The cephx user the commands run as (C(--id)), without the C(client.) prefix.
    type: str
    default: admin
  keyring:
    description:
      - The user's keyring; Ceph's default search path when omitted.
    type: path
  timeout:
    description:
      - Seconds to wait for the mons (C(--connect-timeout)).
    type: int
    default: 30
requirements:
  - the C(ceph) command line (Debian ceph-common) on the host that runs the module
notes:
  - Reads with C(--format json), then runs only the commands its plan lists; the result names them.
"""
