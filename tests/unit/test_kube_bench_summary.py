"""kube_bench_summary: kube-bench's JSON report summed up per target."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter.kube_bench_summary import FilterModule
from ansible_collections.idcloud.platform.plugins.module_utils.kube.kube_bench_summary import (
    KubeBenchReportError,
    kube_bench_summary,
)


def check(number, status, desc="a check"):
    return {"test_number": number, "test_desc": desc, "status": status}


def controls(node_type, *checks):
    return {
        "id": "1",
        "node_type": node_type,
        "tests": [{"section": "1.1", "results": list(checks[:2])}, {"section": "1.2", "results": list(checks[2:])}],
    }


REPORT = {
    "Controls": [
        controls("master", check("1.1.1", "PASS"), check("1.1.2", "FAIL", "unit file mode"), check("1.2.1", "WARN")),
        controls("etcd", check("2.1", "PASS"), check("2.2", "PASS")),
        controls("node", check("4.1.1", "INFO"), check("4.2.1", "PASS"), check("4.2.2", "WARN", " seccomp ")),
    ],
    "Totals": {"total_pass": 4, "total_fail": 1, "total_warn": 2, "total_info": 1},
}


def test_counts_per_target_and_names_every_fail_and_warn():
    summary = kube_bench_summary(REPORT)
    assert summary["targets"] == {
        "master": {"pass": 1, "fail": 1, "warn": 1, "info": 0},
        "etcd": {"pass": 2, "fail": 0, "warn": 0, "info": 0},
        "node": {"pass": 1, "fail": 0, "warn": 1, "info": 1},
    }
    assert summary["failed"] == ["master 1.1.2 unit file mode"]
    assert summary["warned"] == ["master 1.2.1 a check", "node 4.2.2 seccomp"]


def test_the_counts_add_up_to_kube_bench_own_totals():
    summary = kube_bench_summary(REPORT)
    for status in ("pass", "fail", "warn", "info"):
        assert sum(t[status] for t in summary["targets"].values()) == REPORT["Totals"]["total_" + status]


def test_one_controls_object_or_a_list_is_a_report_too():
    one = REPORT["Controls"][1]
    assert kube_bench_summary(one)["targets"] == {"etcd": {"pass": 2, "fail": 0, "warn": 0, "info": 0}}
    assert kube_bench_summary(REPORT["Controls"]) == kube_bench_summary(REPORT)


def test_a_target_without_checks_still_appears_with_zero_counts():
    report = {"Controls": [{"node_type": "policies", "tests": None}]}
    assert kube_bench_summary(report)["targets"] == {"policies": {"pass": 0, "fail": 0, "warn": 0, "info": 0}}


@pytest.mark.parametrize(
    "report,message",
    [
        ({"Totals": {}}, "not a kube-bench JSON report"),
        ([1, 2], "not a kube-bench JSON report"),
        ("text", "not a kube-bench JSON report (no Controls list and no node_type): str"),
        ({"Controls": [controls("node", check("4.1.1", "SKIP"))]}, "check 4.1.1 of target node has status 'SKIP'"),
    ],
)
def test_anything_else_fails_naming_what_it_found(report, message):
    with pytest.raises(KubeBenchReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        kube_bench_summary(report)


def test_the_filter_raises_ansible_errors():
    summarize = FilterModule().filters()["kube_bench_summary"]
    assert summarize(REPORT)["failed"] == ["master 1.1.2 unit file mode"]
    with pytest.raises(AnsibleFilterError, match="not a kube-bench JSON report"):
        summarize({"nothing": 1})
