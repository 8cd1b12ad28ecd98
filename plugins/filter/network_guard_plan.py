"""Filter network_guard_plan: the Ansible side only; the logic is module_utils/node/network_guard_plan.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.node.network_guard_plan import NetworkGuardError
from ansible_collections.idcloud.platform.plugins.module_utils.node.network_guard_plan import (
    network_guard_plan as _network_guard_plan,
)


def network_guard_plan(*args, **kwargs):
    try:
        return _network_guard_plan(*args, **kwargs)
    except NetworkGuardError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"network_guard_plan": network_guard_plan}
