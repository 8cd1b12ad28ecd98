"""calico_bgp_report: the inspection summary of playbooks/inspect_network.yml."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter.calico_bgp_report import NO_RESULT, calico_bgp_report


def session(name, state="up", bgp_state="Established", imported=0, exported=3):
    return {
        "name": name,
        "state": state,
        "bgp_state": bgp_state,
        "routes_imported": imported,
        "routes_exported": exported,
    }


HEALTHY = {"bird_running": True, "problems": [], "sessions": [session("Node_10_10_1_254")]}
BROKEN = {
    "bird_running": True,
    "problems": ["BGP session Mesh_10_10_2_12 is not Established"],
    "sessions": [session("Node_10_10_1_254"), session("Mesh_10_10_2_12", "start", "Active", None, None)],
}
DOWN = {"bird_running": False, "problems": ["calico-node or BIRD is down on this node"], "sessions": []}


def test_only_nodes_with_problems_are_listed_in_report_order():
    report = calico_bgp_report({"w1": HEALTHY, "w3": DOWN, "w2": BROKEN})
    assert report["nodes"] == 3
    assert list(report["problems"]) == ["w3", "w2"]
    assert report["problems"]["w2"] == BROKEN["problems"]


def test_a_node_without_a_result_is_a_problem():
    # {} is what map(attribute=..., default={}) gives for an unreachable host; a failed task has no problems key
    report = calico_bgp_report({"w1": {}, "w2": {"failed": True, "msg": "boom"}, "w3": HEALTHY})
    assert report["problems"] == {"w1": [NO_RESULT], "w2": [NO_RESULT]}


def test_table_has_a_fixed_width_row_per_session_and_a_dash_for_missing_counts():
    table = calico_bgp_report({"w2": BROKEN})["table"]
    assert table[0] == "node                     session                state  bgp          imported exported"
    assert table[1] == "w2                       Node_10_10_1_254       up     Established         0        3"
    assert table[2] == "w2                       Mesh_10_10_2_12        start  Active              -        -"


def test_a_node_without_sessions_says_why():
    table = calico_bgp_report(
        {"w1": {"bird_running": True, "problems": ["no session"], "sessions": []}, "w2": DOWN, "w3": {}}
    )["table"]
    assert table[1:] == [
        "w1                       (no BGP session)      ",
        "w2                       (BIRD not answering)  ",
        "w3                       (BIRD not answering)  ",
    ]


def test_no_nodes_is_an_empty_report():
    assert calico_bgp_report({}) == {
        "nodes": 0,
        "problems": {},
        "table": ["node                     session                state  bgp          imported exported"],
    }


def test_a_list_instead_of_a_mapping_names_the_fix():
    with pytest.raises(AnsibleFilterError, match="expected a mapping of node name.*fix: dict"):
        calico_bgp_report([HEALTHY])
