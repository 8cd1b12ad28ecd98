"""One report from the calico_bgp_status results of many nodes (filter calico_bgp_report, playbooks/inspect_network.yml).

Input: node name -> that node's registered calico_bgp_status result, in the order to report
them; a node whose task gave no result (unreachable, failed before the module ran) maps to
{} or to a result without `problems`. Output: the nodes with problems and a fixed-width
table of every session, so the playbook only prints them and fails on problems.
"""

from collections.abc import Mapping


class CalicoBgpReportError(ValueError):
    """The input is not a mapping of node name to result."""


NO_RESULT = "no result from this node (unreachable, or the inspection task failed)"
ROW = "%-24s %-22s %-6s %-12s %8s %8s"
HEADER = ROW % ("node", "session", "state", "bgp", "imported", "exported")


def _count(value):
    return "-" if value is None else value


def node_problems(result):
    """The problems of one node's result: its own list, or NO_RESULT when it has none."""
    if not isinstance(result, Mapping) or "problems" not in result:
        return [NO_RESULT]
    return list(result["problems"] or [])


def session_rows(node, result):
    """Table rows of one node: a row per BGP session, or one row saying why there is none."""
    sessions = result.get("sessions") or [] if isinstance(result, Mapping) else []
    if not sessions:
        running = isinstance(result, Mapping) and result.get("bird_running", False)
        return ["%-24s %-22s" % (node, "(no BGP session)" if running else "(BIRD not answering)")]
    return [
        ROW
        % (
            node,
            s.get("name"),
            s.get("state"),
            s.get("bgp_state"),
            _count(s.get("routes_imported")),
            _count(s.get("routes_exported")),
        )
        for s in sessions
    ]


def calico_bgp_report(results):
    if not isinstance(results, Mapping):
        raise CalicoBgpReportError(
            f"calico_bgp_report: expected a mapping of node name to calico_bgp_status result, got "
            f"{type(results).__name__}; fix: dict(nodes | zip(nodes | map('extract', hostvars) "
            "| map(attribute='<registered>', default={}))) | idcloud.platform.calico_bgp_report"
        )
    problems = {}
    table = [HEADER]
    for node, result in results.items():
        found = node_problems(result)
        if found:
            problems[node] = found
        table.extend(session_rows(node, result))
    return {"nodes": len(results), "problems": problems, "table": table}
