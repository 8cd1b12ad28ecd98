"""The inspection summary of playbooks/inspect_network.yml (filter calico_bgp_report).

The work is in module_utils/calico/calico_bgp_report.py.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_bgp_report import (
    NO_RESULT,  # noqa: F401  (re-exported for the tests and callers)
    CalicoBgpReportError,
)
from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_bgp_report import (
    calico_bgp_report as _report,
)


def calico_bgp_report(results):
    try:
        return _report(results)
    except CalicoBgpReportError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"calico_bgp_report": calico_bgp_report}
