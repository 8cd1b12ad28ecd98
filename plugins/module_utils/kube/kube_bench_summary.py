# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""kube-bench's JSON report (`kube-bench run --json`) summed up per target.

The report is {"Controls": [controls, ...], "Totals": {...}}, one controls object per
target (its node_type: master, etcd, controlplane, node, policies); each has tests
(sections) whose results are the checks, each with test_number, test_desc and status
PASS, FAIL, WARN or INFO. A single controls object (one target, older releases) is taken
as a report of one.
"""

from __future__ import annotations

STATUSES = ("PASS", "FAIL", "WARN", "INFO")


class KubeBenchReportError(ValueError):
    pass


def _controls(report):
    if isinstance(report, dict) and isinstance(report.get("Controls"), list):
        return report["Controls"]
    if isinstance(report, dict) and "node_type" in report:
        return [report]
    if isinstance(report, list) and all(isinstance(c, dict) and "node_type" in c for c in report):
        return report
    raise KubeBenchReportError(
        "not a kube-bench JSON report (no Controls list and no node_type): %s"
        % (sorted(report) if isinstance(report, dict) else type(report).__name__)
    )


def kube_bench_summary(report):
    """{targets: {node_type: {pass, fail, warn, info}}, failed: [...], warned: [...]};
    failed and warned name each check as "<target> <id> <description>"."""
    targets, failed, warned = {}, [], []
    for controls in _controls(report):
        target = controls.get("node_type") or "unknown"
        counts = targets.setdefault(target, {s.lower(): 0 for s in STATUSES})
        for section in controls.get("tests") or []:
            for check in section.get("results") or []:
                status = check.get("status")
                if status not in STATUSES:
                    raise KubeBenchReportError(
                        "check %s of target %s has status %r, not one of %s"
                        % (check.get("test_number"), target, status, ", ".join(STATUSES))
                    )
                counts[status.lower()] += 1
                line = "%s %s %s" % (target, check.get("test_number"), check.get("test_desc", "").strip())
                if status == "FAIL":
                    failed.append(line)
                elif status == "WARN":
                    warned.append(line)
    return {"targets": targets, "failed": failed, "warned": warned}
