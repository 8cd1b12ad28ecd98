"""Filter apiserver_inflight: the Ansible side only; the logic is module_utils/kube/apiserver_inflight.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.kube.apiserver_inflight import ApiserverInflightError
from ansible_collections.idcloud.platform.plugins.module_utils.kube.apiserver_inflight import (
    apiserver_inflight as _apiserver_inflight,
)


def apiserver_inflight(*args, **kwargs):
    try:
        return _apiserver_inflight(*args, **kwargs)
    except ApiserverInflightError as exc:
        raise AnsibleFilterError(f"apiserver_inflight: {exc}") from None


class FilterModule:
    def filters(self):
        return {"apiserver_inflight": apiserver_inflight}
