# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Calico BGP with the ToRs: the plan, the ToR's FRR configuration, the filters and playbooks/tor_config.yml."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter import calico_network_plan as filters
from ansible_collections.idcloud.platform.plugins.filter import tor_frr_config as tor_filters
from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import (
    CalicoPlanError,
    plan_network,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (
    IdcValidationError,
    inventory_layout,
    parse_description,
)
from ansible_collections.idcloud.platform.plugins.module_utils.tor.tor_frr_config import render_tor_frr, tor_frr_configs

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "inventories" / "lab" / "idc.yml"


def lab_data():
    return yaml.safe_load(LAB.read_text())


def lab_nodes(desc):
    return [
        {
            "name": h.name,
            "address": h.address,
            "rack": h.rack,
            "tor_as": desc.rack(h.rack).tor_as,
            "tor_peer": desc.rack(h.rack).tor_peer,
        }
        for h in desc.hosts_with_role("worker")
    ]


def nodes_in(rack, count, third_octet, tor_as=65101, first=11):
    return [
        {
            "name": f"{rack}-n{i}",
            "address": f"10.10.{third_octet}.{first + i}",
            "rack": rack,
            "tor_as": tor_as,
            "tor_peer": f"10.10.{third_octet}.254",
        }
        for i in range(count)
    ]


def errors_of(*args, **kwargs):
    with pytest.raises(CalicoPlanError) as info:
        plan_network(*args, **kwargs)
    return info.value.errors


# -- the plan ---------------------------------------------------------------------------------


def test_plan_for_the_lab_description():
    desc = parse_description(lab_data())
    plan = plan_network(
        lab_nodes(desc),
        desc.pod_cidr,
        desc.node_as,
        desc.pod_block_size,
        desc.fixed_ip_cidr,
        desc.service_cidr,
        desc.advertise_service_cidr,
    )
    assert plan["bgp_configuration"] == {
        "name": "default",
        "spec": {"asNumber": 64512, "nodeToNodeMeshEnabled": False, "logSeverityScreen": "Info"},
    }
    assert plan["bgp_filter"] == {"name": "idcloud-tor-import-none", "spec": {"importV4": [{"action": "Reject"}]}}
    assert plan["bgp_peers"] == [
        {
            "name": "tor-r1",
            "spec": {
                "peerIP": "10.210.1.254",
                "asNumber": 65101,
                "nodeSelector": "idcloud.io/rack == 'r1'",
                "filters": ["idcloud-tor-import-none"],
            },
        },
        {
            "name": "tor-r2",
            "spec": {
                "peerIP": "10.210.2.254",
                "asNumber": 65102,
                "nodeSelector": "idcloud.io/rack == 'r2'",
                "filters": ["idcloud-tor-import-none"],
            },
        },
    ]
    # 10.233.0.0/18 minus 10.233.63.0/24: /19 + /20 + /21 + /22 + /23 + /24
    assert [pool["name"] for pool in plan["ip_pools"]] == [
        "pods-10-233-0-0-19",
        "pods-10-233-32-0-20",
        "pods-10-233-48-0-21",
        "pods-10-233-56-0-22",
        "pods-10-233-60-0-23",
        "pods-10-233-62-0-24",
        "fixed-10-233-63-0-24",
    ]
    assert plan["summary"] == {
        "pod_cidr": "10.233.0.0/18",
        "block_size": 27,
        "addresses_per_block": 32,
        "pools": [
            "10.233.0.0/19",
            "10.233.32.0/20",
            "10.233.48.0/21",
            "10.233.56.0/22",
            "10.233.60.0/23",
            "10.233.62.0/24",
        ],
        "fixed_ip_cidr": "10.233.63.0/24",
        "blocks_available": 504,
        "nodes": 2,
        "blocks_per_node": 252,
        "nodes_per_rack": {"r1": ["w1"], "r2": ["w2"]},
    }
    json.dumps(plan)  # plain data only


def test_pools_when_the_fixed_cidr_splits_the_pod_cidr():
    plan = plan_network(nodes_in("a", 3, 1), "10.244.0.0/16", 64512, fixed_ip_cidr="10.244.128.0/24")
    pools = {pool["name"]: pool["spec"] for pool in plan["ip_pools"]}
    assert [spec["cidr"] for spec in pools.values()] == [
        "10.244.0.0/17",
        "10.244.129.0/24",
        "10.244.130.0/23",
        "10.244.132.0/22",
        "10.244.136.0/21",
        "10.244.144.0/20",
        "10.244.160.0/19",
        "10.244.192.0/18",
        "10.244.128.0/24",
    ]
    assert pools["pods-10-244-0-0-17"] == {
        "cidr": "10.244.0.0/17",
        "blockSize": 27,
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": True,
        "nodeSelector": "all()",
        "allowedUses": ["Workload", "Tunnel"],
        "disableBGPExport": False,
    }
    assert pools["fixed-10-244-128-0-24"] == {
        "cidr": "10.244.128.0/24",
        "blockSize": 32,
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": True,
        "nodeSelector": "!all()",
        "allowedUses": ["Workload"],
        "disableBGPExport": False,
    }
    assert plan["summary"]["blocks_available"] == 2048 - 8


def test_without_a_fixed_cidr_there_is_one_pool():
    plan = plan_network(nodes_in("a", 1, 1), "10.244.0.0/16", 64512, block_size=26)
    assert [(pool["name"], pool["spec"]["blockSize"]) for pool in plan["ip_pools"]] == [("pods-10-244-0-0-16", 26)]
    assert plan["summary"]["blocks_available"] == 1024


def test_service_cidr_is_announced_only_when_asked():
    nodes = nodes_in("a", 1, 1)
    assert (
        "serviceClusterIPs"
        not in plan_network(nodes, "10.244.0.0/16", 64512, service_cidr="10.96.0.0/16")["bgp_configuration"]["spec"]
    )
    spec = plan_network(nodes, "10.244.0.0/16", 64512, service_cidr="10.96.0.0/16", advertise_service_cidr=True)[
        "bgp_configuration"
    ]["spec"]
    assert spec["serviceClusterIPs"] == [{"cidr": "10.96.0.0/16"}]


def test_peer_names_are_dns_safe():
    nodes = nodes_in("Rack_A.1", 1, 1)
    assert plan_network(nodes, "10.244.0.0/16", 64512)["bgp_peers"][0]["name"] == "tor-rack-a-1"
    assert plan_network(nodes, "10.244.0.0/16", 64512)["bgp_peers"][0]["spec"]["nodeSelector"] == (
        "idcloud.io/rack == 'Rack_A.1'"
    )


def test_one_block_per_node_is_enough_and_one_less_is_not():
    assert plan_network(nodes_in("a", 8, 1), "10.244.0.0/24", 64512)["summary"]["blocks_per_node"] == 1
    assert errors_of(nodes_in("a", 9, 1), "10.244.0.0/24", 64512) == [
        "pod_cidr: 10.244.0.0/24 holds 8 blocks of /27 for 9 nodes; fix: use a larger pod_cidr or a larger "
        "block_size (smaller blocks): every node needs at least one block"
    ]
    assert errors_of(nodes_in("a", 5, 1), "10.244.0.0/24", 64512, fixed_ip_cidr="10.244.0.128/25") == [
        "pod_cidr: 10.244.0.0/24 minus fixed_ip_cidr 10.244.0.128/25 holds 4 blocks of /27 for 5 nodes; fix: use a "
        "larger pod_cidr or a larger block_size (smaller blocks): every node needs at least one block"
    ]


def test_tor_in_the_nodes_as_is_refused():
    assert errors_of(nodes_in("a", 2, 1, tor_as=64512), "10.244.0.0/16", 64512) == [
        "nodes[a-n0].tor_as: rack a's ToR AS 64512 is node_as; fix: give the ToR its own AS: nodes and ToRs peer over eBGP"
    ]


def test_nodes_of_one_rack_must_agree_on_their_tor():
    nodes = nodes_in("a", 3, 1)
    nodes[1]["tor_peer"] = "10.10.1.253"
    nodes[2]["tor_as"] = 65199
    assert errors_of(nodes, "10.244.0.0/16", 64512) == [
        "nodes[a-n1].tor_peer: 10.10.1.253 differs from 10.10.1.254 of node a-n0 in the same rack a; fix: a rack has "
        "one ToR: give its nodes the same tor_as and tor_peer",
        "nodes[a-n2].tor_as: 65199 differs from 65101 of node a-n0 in the same rack a; fix: a rack has one ToR: give "
        "its nodes the same tor_as and tor_peer",
    ]


def test_tor_peer_must_not_be_a_node_address():
    nodes = nodes_in("a", 2, 1)
    for node in nodes:
        node["tor_peer"] = "10.10.1.12"
    errors = errors_of(nodes, "10.244.0.0/16", 64512)
    assert (
        errors[0]
        == "nodes[a-n0].tor_peer: 10.10.1.12 is the address of node a-n1; fix: use the ToR's own peering address"
    )


@pytest.mark.parametrize("size", [19, 33, "27", True, None])
def test_block_size_is_20_to_32(size):
    assert errors_of(nodes_in("a", 1, 1), "10.244.0.0/16", 64512, block_size=size)[0].startswith(
        f"block_size: expected a prefix length 20..32, got {size!r}; fix: "
    )


@pytest.mark.parametrize(
    "fixed, problem",
    [
        ("10.245.0.0/24", "fixed_ip_cidr: 10.245.0.0/24 is outside pod_cidr 10.244.0.0/16"),
        ("10.244.0.0/16", "fixed_ip_cidr: 10.244.0.0/16 is all of pod_cidr"),
        ("10.244.0.16/28", "fixed_ip_cidr: 10.244.0.16/28 is smaller than one /27 block"),
        ("10.244.0.1/24", "fixed_ip_cidr: 10.244.0.1/24 has host bits set"),
    ],
)
def test_fixed_cidr_must_be_a_part_of_the_pod_cidr(fixed, problem):
    assert errors_of(nodes_in("a", 1, 1), "10.244.0.0/16", 64512, fixed_ip_cidr=fixed)[0].startswith(
        f"{problem}; fix: "
    )


def test_duplicate_node_names_and_addresses():
    nodes = nodes_in("a", 3, 1)
    nodes[1]["name"] = "a-n0"
    nodes[2]["address"] = "10.10.1.11"
    assert errors_of(nodes, "10.244.0.0/16", 64512) == [
        "nodes[a-n0].name: node a-n0 is listed twice (nodes[0] and nodes[1]); fix: list every node once",
        "nodes[a-n2].address: 10.10.1.11 is also the address of node a-n0; fix: give every node its own address",
    ]


def test_every_problem_is_reported_at_once():
    nodes = nodes_in("a", 2, 1, tor_as=64512) + [{"name": "x"}]
    errors = errors_of(nodes, "10.244.0.0/33", 64512, block_size=40, advertise_service_cidr=True)
    assert [error.split(":")[0] for error in errors] == [
        "block_size",
        "pod_cidr",
        "service_cidr",
        "nodes[2]",
        "nodes[a-n0].tor_as",
    ]
    assert str(CalicoPlanError(errors)).startswith("the Calico network plan has 5 errors:\n  - block_size: ")


def test_ipv6_pod_cidr_is_refused():
    assert errors_of(nodes_in("a", 1, 1), "fd00:244::/64", 64512)[0].startswith(
        "pod_cidr: fd00:244::/64 is not IPv4; fix: "
    )


# -- the ToR's FRR configuration ----------------------------------------------------------------


def render(**change):
    args = dict(
        rack="r1",
        tor_name="tor-r1",
        tor_as=65101,
        tor_peer="10.210.1.254",
        node_as=64512,
        node_addresses=["10.210.1.32", "10.210.1.4", "10.210.1.31"],
        pod_cidr="10.233.0.0/18",
        fixed_ip_cidr="10.233.63.0/24",
        service_cidr="10.233.64.0/20",
    )
    args.update(change)
    return render_tor_frr(**args)


def test_frr_neighbours_are_exactly_the_rack_nodes_sorted():
    text = render()
    assert re.findall(r"^ neighbor (\S+) peer-group SERVERS$", text, re.M) == [
        "10.210.1.4",
        "10.210.1.31",
        "10.210.1.32",
    ]
    assert " neighbor SERVERS remote-as 64512\n" in text
    assert "router bgp 65101\n bgp router-id 10.210.1.254\n" in text
    assert text.startswith("! tor-r1: ToR of rack r1. Generated by idcloud.platform from the IDC description;\n")
    assert "frr defaults datacenter\nhostname tor-r1\n" in text


def test_frr_accepts_only_pod_blocks_and_host_routes_and_announces_nothing_down():
    text = render()
    assert re.findall(r"^ip prefix-list SERVERS-IN .*$", text, re.M) == [
        "ip prefix-list SERVERS-IN seq 10 permit 10.233.0.0/18 ge 27 le 27",
        "ip prefix-list SERVERS-IN seq 20 permit 10.233.0.0/18 ge 32 le 32",
    ]
    assert "route-map SERVERS-IN permit 10\n match ip address prefix-list SERVERS-IN\nexit\n" in text
    # the outbound route-map has one deny entry and nothing else: nothing goes down to the servers
    assert "route-map SERVERS-OUT deny 10\nexit\n" in text
    assert "  neighbor SERVERS route-map SERVERS-IN in\n  neighbor SERVERS route-map SERVERS-OUT out\n" in text
    assert "SPINE" not in text and "FABRIC" not in text


def test_frr_service_cidr_when_advertised():
    text = render(advertise_service_cidr=True, uplink={"address": "10.210.0.11/24", "peer": "10.210.0.1", "as": 65000})
    assert "ip prefix-list SERVERS-IN seq 30 permit 10.233.64.0/20\n" in text
    assert "ip prefix-list FABRIC seq 20 permit 10.233.64.0/20\n" in text


def test_frr_uplink_carries_pod_prefixes_both_ways():
    text = render(uplink={"address": "10.210.0.11/24", "peer": "10.210.0.1", "as": 65000})
    assert "ip prefix-list FABRIC seq 10 permit 10.233.0.0/18 ge 27 le 32\n" in text
    assert " neighbor 10.210.0.1 remote-as 65000\n" in text
    assert (
        "  neighbor 10.210.0.1 activate\n  neighbor 10.210.0.1 route-map SPINE-IN in\n"
        "  neighbor 10.210.0.1 route-map SPINE-OUT out\n"
    ) in text
    assert "route-map SPINE-OUT permit 10\n match ip address prefix-list FABRIC\n" in text


def test_frr_with_host_sized_blocks_has_one_prefix_line():
    text = render(block_size=32, fixed_ip_cidr=None)
    assert re.findall(r"^ip prefix-list SERVERS-IN .*$", text, re.M) == [
        "ip prefix-list SERVERS-IN seq 10 permit 10.233.0.0/18 ge 32 le 32"
    ]


def test_frr_output_is_deterministic():
    addresses = [f"10.210.1.{i}" for i in range(10, 40)]
    first = render(node_addresses=addresses)
    for _ in range(5):
        shuffled = addresses[:]
        random.shuffle(shuffled)
        assert render(node_addresses=shuffled) == first


@pytest.mark.parametrize(
    "change, error",
    [
        ({"tor_as": 64512}, "rack r1 tor_as: AS 64512 is node_as"),
        ({"tor_peer": "10.210.1.31"}, "rack r1 tor_peer: 10.210.1.31 is also a node address"),
        (
            {"uplink": {"address": "10.210.0.11/24", "peer": "10.210.0.1", "as": 65101}},
            "rack r1 uplink.as: AS 65101 is the ToR's or the servers' AS",
        ),
        ({"block_size": 19}, "block_size: expected a prefix length 20..32"),
    ],
)
def test_frr_refuses_what_cannot_work(change, error):
    with pytest.raises(CalicoPlanError) as info:
        render(**change)
    assert info.value.errors[0].startswith(error)


def test_tor_configs_of_the_lab_description():
    configs = tor_frr_configs(parse_description(lab_data()))
    assert list(configs) == ["tor-r1", "tor-r2", "tor-r3"]
    assert re.findall(r"peer-group SERVERS$", configs["tor-r1"], re.M) == ["peer-group SERVERS"]
    assert " neighbor 10.210.1.31 peer-group SERVERS\n" in configs["tor-r1"]
    assert " neighbor 10.210.2.31 peer-group SERVERS\n" in configs["tor-r2"]
    # rack r3 has no workers: no server neighbours, the spine session all the same
    assert "peer-group SERVERS\n" not in configs["tor-r3"].replace(" neighbor SERVERS peer-group\n", "")
    assert " neighbor 10.210.0.1 remote-as 65000\n" in configs["tor-r3"]


def test_two_racks_cannot_share_a_tor_name():
    data = lab_data()
    data["rooms"][0]["racks"][1]["tor"]["name"] = "tor-r1"
    # the description refuses it first (test_idc_description.py); the plan still checks a model made in Python
    with pytest.raises(IdcValidationError, match="duplicate ToR name tor-r1"):
        parse_description(data)
    model = parse_description(lab_data())
    model.rack("r2").tor_name = "tor-r1"
    with pytest.raises(CalicoPlanError, match="tor-r1 is also the ToR of rack r1"):
        tor_frr_configs(model)


# -- the filters, fed as the playbook feeds them ---------------------------------------------


def hostvars_of(desc):
    """Each host's vars as `groups['all'] | map('extract', hostvars)` gives them."""
    layout = inventory_layout(desc)
    groups_of = {}
    for group, hosts in layout["groups"].items():
        for name in hosts:
            groups_of.setdefault(name, []).append(group)
    return [
        {**layout["all_vars"], **hostvars, "inventory_hostname": name, "group_names": sorted(groups_of[name])}
        for name, hostvars in layout["hostvars"].items()
    ]


def test_tor_filter_gives_the_bytes_tor_frr_configs_gives():
    data = lab_data()
    data["cluster"]["advertise_service_cidr"] = True
    # a management ansible_host must not leak into the BGP neighbours
    data["rooms"][0]["racks"][0]["hosts"][3]["vars"] = {"ansible_host": "192.168.50.31"}
    desc = parse_description(data)
    all_vars = inventory_layout(desc)["all_vars"]
    configs = tor_filters.FilterModule().filters()["tor_frr_config"](
        hostvars_of(desc),
        all_vars["idc_pod_cidr"],
        all_vars["idc_node_as"],
        block_size=all_vars["idc_pod_block_size"],
        fixed_ip_cidr=all_vars["idc_fixed_ip_cidr"],
        service_cidr=all_vars["idc_service_cidr"],
        advertise_service_cidr=all_vars["idc_advertise_service_cidr"],
    )
    assert configs == tor_frr_configs(desc)
    assert "192.168.50.31" not in configs["tor-r1"]


def test_plan_filter_takes_hostvars_or_plain_nodes():
    desc = parse_description(lab_data())
    plan = filters.calico_network_plan
    nodes = [h for h in hostvars_of(desc) if "kube_node" in h["group_names"]]
    assert plan(nodes, desc.pod_cidr, desc.node_as) == plan(lab_nodes(desc), desc.pod_cidr, desc.node_as)
    with pytest.raises(AnsibleFilterError, match="calico_network_plan: the Calico network plan has 1 error"):
        plan(lab_nodes(desc), "10.233.0.0/30", desc.node_as)
    with pytest.raises(AnsibleFilterError, match="expected a list of hosts"):
        plan({"w1": {}}, desc.pod_cidr, desc.node_as)


# -- playbooks/tor_config.yml -----------------------------------------------------------------


RECAP = re.compile(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0")


def run_playbook(run_ansible, inventory, out, *extra):
    result = run_ansible(
        "ansible-playbook",
        "-i",
        str(inventory),
        str(REPO / "playbooks" / "tor_config.yml"),
        "-e",
        f"tor_config_dir={out}",
        *extra,
        env={"ANSIBLE_INVENTORY_ENABLED": "idcloud.platform.idc"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    found = RECAP.search(result.stdout)
    assert found, result.stdout[-2000:]
    return int(found.group(2)), result.stdout


def test_tor_config_playbook_writes_what_the_renderer_gives(tmp_path, run_ansible):
    data = lab_data()
    inventory = tmp_path / "idc.yml"
    inventory.write_text(yaml.safe_dump(data))
    out = tmp_path / "tor"
    changed, _ = run_playbook(run_ansible, inventory, out)
    assert changed == 2  # the directory, and the loop over the three files
    expected = tor_frr_configs(parse_description(data))
    assert sorted(p.name for p in out.iterdir()) == [f"{name}.frr.conf" for name in expected]
    for name, text in expected.items():
        path = out / f"{name}.frr.conf"
        assert path.read_bytes() == text.encode()
        assert path.stat().st_mode & 0o777 == 0o644
    # idempotent
    assert run_playbook(run_ansible, inventory, out)[0] == 0
    # a new worker in r2: check mode reports the change with a diff and writes nothing
    moved = copy.deepcopy(data)
    moved["rooms"][0]["racks"][1]["hosts"].append(
        {"name": "w3", "address": "10.210.2.32", "roles": ["worker"], "size": {"cpu": 4, "memory_gib": 8}}
    )
    inventory.write_text(yaml.safe_dump(moved))
    changed, stdout = run_playbook(run_ansible, inventory, out, "--check", "--diff")
    assert changed == 1
    assert "+ neighbor 10.210.2.32 peer-group SERVERS" in stdout
    assert (out / "tor-r2.frr.conf").read_text() == expected["tor-r2"]
