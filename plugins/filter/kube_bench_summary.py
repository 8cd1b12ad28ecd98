"""Filter kube_bench_summary: the Ansible side only; the logic is module_utils/kube/kube_bench_summary.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.kube.kube_bench_summary import KubeBenchReportError
from ansible_collections.idcloud.platform.plugins.module_utils.kube.kube_bench_summary import (
    kube_bench_summary as _kube_bench_summary,
)


def kube_bench_summary(report):
    try:
        return _kube_bench_summary(report)
    except KubeBenchReportError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"kube_bench_summary": kube_bench_summary}
