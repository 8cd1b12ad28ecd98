"""Filter ceph_health_problems: the Ansible side only; the logic is module_utils/ceph/ceph_health_problems.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_health_problems import CephStatusError
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_health_problems import (
    ceph_health_problems as _ceph_health_problems,
)


def ceph_health_problems(status, mons=None, osds=None, mds=None, allowed_checks=(), mgrs=None):
    try:
        return _ceph_health_problems(status, mons=mons, osds=osds, mds=mds, allowed_checks=allowed_checks, mgrs=mgrs)
    except CephStatusError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"ceph_health_problems": ceph_health_problems}
