# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description model and its validation (plugins/module_utils/idc/idc.py)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from ansible_collections.idcloud.platform.plugins.module_utils.idc import idc
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (
    IdcValidationError,
    inventory_layout,
    parse_description,
)

REPO = Path(__file__).resolve().parents[2]


def host(name, address, roles, cpu=16, memory_gib=64, **extra):
    return {"name": name, "address": address, "roles": roles, "size": {"cpu": cpu, "memory_gib": memory_gib}, **extra}


def rack(name, third_octet, hosts, tor_as=None, **extra):
    net = f"10.10.{third_octet}"
    return {
        "name": name,
        "subnet": f"{net}.0/24",
        "gateway": f"{net}.1",
        "tor": {"name": f"tor-{name}", "as": tor_as or 65100 + third_octet, "peer": f"{net}.254"},
        "hosts": hosts,
        **extra,
    }


def small_description():
    """Two rooms, three racks, three etcd members, a one-host Ceph: the smallest interesting valid description."""
    return {
        "plugin": "idcloud.platform.idc",
        "cluster": {"name": "bj1-prod", "pod_cidr": "10.244.0.0/16", "service_cidr": "10.96.0.0/16", "node_as": 64512},
        # one OSD on s1: one replica (a warning, like its single mon)
        "ceph": {"pool_size": 1},
        "rooms": [
            {
                "name": "room-a",
                "racks": [
                    rack(
                        "a01",
                        1,
                        [
                            host("m1", "10.10.1.11", ["etcd", "control_plane"]),
                            host("w1", "10.10.1.21", ["worker"], cpu=64, memory_gib=256),
                        ],
                    ),
                    rack(
                        "a02",
                        2,
                        [
                            host("m2", "10.10.2.11", ["etcd", "control_plane"]),
                            host("s1", "10.10.2.31", ["ceph_mon", "ceph_mgr", "ceph_osd"], osd_devices=["/dev/sdb"]),
                        ],
                    ),
                ],
            },
            {
                "name": "room-b",
                "racks": [rack("b01", 3, [host("m3", "10.10.3.11", ["etcd", "control_plane"])])],
            },
        ],
    }


@pytest.fixture
def desc():
    return small_description()


def errors_of(data) -> list[str]:
    with pytest.raises(IdcValidationError) as info:
        parse_description(data)
    return info.value.errors


def only_error(data) -> str:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    return errors[0]


def a01(data):
    return data["rooms"][0]["racks"][0]


def m1(data):
    return a01(data)["hosts"][0]


# -- valid descriptions and the model -----------------------------------------------------


def test_small_description_parses_into_the_model(desc):
    model = parse_description(desc)
    assert (model.cluster_name, model.pod_cidr, model.service_cidr, model.node_as) == (
        "bj1-prod",
        "10.244.0.0/16",
        "10.96.0.0/16",
        64512,
    )
    assert model.domain == "cluster.local"
    assert model.vars == {} and model.lab == {}
    assert [room.name for room in model.rooms] == ["room-a", "room-b"]
    assert [r.name for r in model.racks] == ["a01", "a02", "b01"]
    assert [h.name for h in model.hosts] == ["m1", "w1", "m2", "s1", "m3"]
    first = model.rack("a01")
    assert (first.room, first.subnet, first.gateway, first.tor_name, first.tor_as, first.tor_peer) == (
        "room-a",
        "10.10.1.0/24",
        "10.10.1.1",
        "tor-a01",
        65101,
        "10.10.1.254",
    )
    worker = model.host("w1")
    assert (worker.address, worker.roles, worker.cpu, worker.memory_gib, worker.rack, worker.room) == (
        "10.10.1.21",
        ["worker"],
        64,
        256,
        "a01",
        "room-a",
    )


def test_model_helpers(desc):
    model = parse_description(desc)
    assert [h.name for h in model.hosts_with_role("etcd")] == ["m1", "m2", "m3"]
    assert [h.name for h in model.hosts_with_role("kafka")] == []
    assert [h.name for h in model.iter_hosts()] == [h.name for h in model.hosts]
    assert [r.name for r in model.iter_racks()] == ["a01", "a02", "b01"]
    assert model.host("m1").groups == ["etcd", "kube_control_plane"]
    assert model.host("m1").has_role("etcd") and not model.host("w1").has_role("etcd")
    assert model.rack("a01").group == "rack_a01" and model.rooms[0].group == "room_room_a"
    assert str(model.rack("a02").network) == "10.10.2.0/24"
    with pytest.raises(ValueError, match="unknown role 'etc'"):
        model.hosts_with_role("etc")
    with pytest.raises(KeyError):
        model.host("nope")
    with pytest.raises(KeyError):
        model.rack("nope")


def test_optional_fields_take_their_defaults(desc):
    del a01(desc)["tor"]["name"]
    without_hosts = rack("a03", 4, [])
    del without_hosts["hosts"]
    desc["rooms"][0]["racks"] += [without_hosts, rack("a04", 5, None), rack("a05", 6, [])]
    model = parse_description(desc)
    assert model.rack("a01").tor_name == "tor-a01"
    assert model.rack("a03").hosts == model.rack("a04").hosts == model.rack("a05").hosts == []


def test_domain_vars_and_lab_are_kept(desc):
    desc["cluster"]["domain"] = "bj1.example.internal"
    desc["vars"] = {"ntp": ["10.0.0.1"]}
    desc["lab"] = {"name": "idlab", "mirror": {"rack": "a01", "anything": [1, 2]}}
    model = parse_description(desc)
    assert model.domain == "bj1.example.internal"
    assert model.vars == {"ntp": ["10.0.0.1"]}
    assert model.lab["mirror"]["anything"] == [1, 2]


def test_plugin_options_are_accepted_at_top_level(desc):
    desc.update(
        compose={"x": "1"},
        groups={"g": "true"},
        keyed_groups=[{"key": "idc_rack"}],
        strict=True,
        use_extra_vars=False,
        leading_separator=False,
    )
    parse_description(desc)


def ipv6(data):
    """The description as a single-stack IPv6 cluster: rack 10.10.N.0/24 becomes fd00:10:N::/64."""
    data["cluster"].update(pod_cidr="fd00:244::/56", service_cidr="fd00:96::/112")
    for room in data["rooms"]:
        for r in room["racks"]:
            octet = r["subnet"].split(".")[2]
            r.update(subnet=f"fd00:10:{octet}::/64", gateway=f"fd00:10:{octet}::1")
            r["tor"]["peer"] = f"fd00:10:{octet}::fe"
            for h in r["hosts"]:
                h["address"] = f"fd00:10:{octet}::{h['address'].split('.')[3]}"
    return data


def test_ipv6_racks_validate(desc):
    assert parse_description(ipv6(desc)).host("m1").address == "fd00:10:1::11"


@pytest.mark.parametrize("path", ["inventories/lab/idc.yml", "inventories/sample/idc.yml"])
def test_shipped_descriptions_are_valid(path):
    data = yaml.safe_load((REPO / path).read_text())
    model = parse_description(data)
    assert len(model.hosts_with_role("etcd")) % 2 == 1


def test_sample_has_what_its_readme_promises():
    model = parse_description(yaml.safe_load((REPO / "inventories/sample/idc.yml").read_text()))
    count = {role: len(model.hosts_with_role(role)) for role in idc.KNOWN_ROLES}
    assert len(model.rooms) == 2 and 4 <= len(model.racks) <= 6
    assert (count["etcd"], count["control_plane"], count["lb"], count["etcd_spare"]) == (3, 3, 2, 3)
    assert count["worker"] >= 3 and count["ceph_osd"] >= 3 and count["gluster"] >= 2


# -- the error report -----------------------------------------------------------------------


def test_every_error_is_reported_at_once(desc):
    desc["cluster"]["name"] = "BJ1"
    a01(desc)["gateway"] = "10.10.9.1"
    m1(desc)["roles"] = ["etcd", "controlplane"]
    desc["rooms"][1]["racks"][0]["hosts"][0]["size"]["cpu"] = 0
    error = errors_of(desc)
    assert len(error) == 4
    text = str(IdcValidationError(error))
    assert text.startswith("the IDC description has 4 errors:\n  - ")
    assert "cluster.name" in text and ".gateway" in text and "controlplane" in text and "size.cpu" in text


def test_error_names_field_value_and_fix(desc):
    desc["rooms"][0]["racks"][1]["hosts"].append(host("m4", "10.10.1.50", ["worker"]))
    assert only_error(desc) == (
        "rooms[room-a].racks[a02].hosts[m4].address: 10.10.1.50 is outside rack a02's subnet 10.10.2.0/24; "
        "fix: use an address in 10.10.2.0/24 or move m4 to the rack whose subnet holds it"
    )


def test_validation_error_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(IdcValidationError(["a: b; fix: c", "d: e; fix: f"])))
    assert error.errors == ["a: b; fix: c", "d: e; fix: f"]
    assert str(error).startswith("the IDC description has 2 errors:")


def test_single_error_reads_in_the_singular():
    assert str(IdcValidationError(["x: y; fix: z"])) == "the IDC description has 1 error:\n  - x: y; fix: z"


# -- unknown keys ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where, typo, suggestion",
    [
        (lambda d: d, "room", "rooms"),
        (lambda d: d["cluster"], "pod_cdir", "pod_cidr"),
        (lambda d: d["rooms"][0], "rack", "racks"),
        (a01, "subnett", "subnet"),
        (lambda d: a01(d)["tor"], "peers", "peer"),
        (m1, "role", "roles"),
        (lambda d: m1(d)["size"], "memory", "memory_gib"),
    ],
    ids=["top", "cluster", "room", "rack", "tor", "host", "size"],
)
def test_unknown_keys_suggest_the_closest_known_one(desc, where, typo, suggestion):
    where(desc)[typo] = "x"
    error = only_error(desc)
    assert f"unknown key '{typo}'" in error
    assert error.endswith(f"fix: did you mean {suggestion}?")


def test_unknown_key_without_a_close_match_lists_the_known_keys(desc):
    a01(desc)["colour"] = "blue"
    error = only_error(desc)
    assert error.startswith("rooms[room-a].racks[a01].colour: unknown key 'colour'")
    assert "known keys here: name, subnet, gateway, tor, hosts" in error


# -- missing fields and wrong types ---------------------------------------------------------


@pytest.mark.parametrize(
    "where, key, path",
    [
        (lambda d: d, "cluster", "cluster"),
        (lambda d: d, "rooms", "rooms"),
        (lambda d: d["cluster"], "name", "cluster.name"),
        (lambda d: d["cluster"], "pod_cidr", "cluster.pod_cidr"),
        (lambda d: d["cluster"], "service_cidr", "cluster.service_cidr"),
        (lambda d: d["cluster"], "node_as", "cluster.node_as"),
        (lambda d: d["rooms"][1], "racks", "rooms[room-b].racks"),
        (a01, "subnet", "rooms[room-a].racks[a01].subnet"),
        (a01, "gateway", "rooms[room-a].racks[a01].gateway"),
        (a01, "tor", "rooms[room-a].racks[a01].tor"),
        (lambda d: a01(d)["tor"], "as", "rooms[room-a].racks[a01].tor.as"),
        (lambda d: a01(d)["tor"], "peer", "rooms[room-a].racks[a01].tor.peer"),
        (lambda d: a01(d)["hosts"][1], "address", "rooms[room-a].racks[a01].hosts[w1].address"),
        (lambda d: a01(d)["hosts"][1], "roles", "rooms[room-a].racks[a01].hosts[w1].roles"),
        (lambda d: a01(d)["hosts"][1], "size", "rooms[room-a].racks[a01].hosts[w1].size"),
        (lambda d: a01(d)["hosts"][1]["size"], "cpu", "rooms[room-a].racks[a01].hosts[w1].size.cpu"),
        (lambda d: a01(d)["hosts"][1]["size"], "memory_gib", "rooms[room-a].racks[a01].hosts[w1].size.memory_gib"),
    ],
)
def test_missing_required_field(desc, where, key, path):
    del where(desc)[key]
    errors = errors_of(desc)
    assert any(e.startswith(f"{path}: missing; fix: add it, e.g. {key}: ") for e in errors), errors


def test_missing_names_are_reported_by_position(desc):
    del desc["rooms"][1]["name"]
    del a01(desc)["name"]
    del a01(desc)["hosts"][1]["name"]
    errors = errors_of(desc)
    assert "rooms[1].name: missing; fix: add it, e.g. name: room-a" in errors
    assert "rooms[room-a].racks[0].name: missing; fix: add it, e.g. name: a01" in errors
    assert "rooms[room-a].racks[0].hosts[1].name: missing; fix: add it, e.g. name: m1" in errors


def test_null_counts_as_missing(desc):
    desc["cluster"]["pod_cidr"] = None
    assert only_error(desc).startswith("cluster.pod_cidr: missing")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d.update(cluster=["bj1"]), "cluster: expected a mapping, got a list"),
        (lambda d: d.update(rooms={"room-a": {}}), "rooms: expected a list, got a mapping"),
        (lambda d: d.update(vars=["a"]), "vars: expected a mapping, got a list"),
        (lambda d: d.update(lab="on"), "lab: expected a mapping, got a string 'on'"),
        (lambda d: d["rooms"][0].update(racks="a01"), "rooms[room-a].racks: expected a list, got a string 'a01'"),
        (lambda d: a01(d).update(hosts={"m1": {}}), "rooms[room-a].racks[a01].hosts: expected a list, got a mapping"),
        (lambda d: a01(d).update(tor="tor-a01"), "rooms[room-a].racks[a01].tor: expected a mapping, got a string"),
        (
            lambda d: m1(d).update(roles="etcd"),
            "rooms[room-a].racks[a01].hosts[m1].roles: expected a list, got a string",
        ),
        (
            lambda d: m1(d).update(size=16),
            "rooms[room-a].racks[a01].hosts[m1].size: expected a mapping, got an integer",
        ),
        (
            lambda d: m1(d).update(vars="x=1"),
            "rooms[room-a].racks[a01].hosts[m1].vars: expected a mapping, got a string",
        ),
        (lambda d: d["rooms"].append("room-c"), "rooms[2]: expected a mapping, got a string 'room-c'"),
        (lambda d: d["cluster"].update(name=7), "cluster.name: expected a non-empty string, got an integer 7"),
        (lambda d: d["rooms"][0].update(name=""), "rooms[0].name: expected a non-empty string, got a string ''"),
    ],
)
def test_wrong_types(desc, change, expected):
    change(desc)
    errors = errors_of(desc)
    assert any(e.startswith(expected) for e in errors), errors


@pytest.mark.parametrize("data", [None, [], "plugin: idcloud.platform.idc"])
def test_top_level_must_be_a_mapping(data):
    assert only_error(data).startswith("(top level): expected a mapping")


@pytest.mark.parametrize("value", ["room a", "-a", "a/b", "x" * 64])
def test_room_and_rack_names_are_plain(desc, value):
    a01(desc)["name"] = value
    assert any(" is not a valid name; fix: use 1-63 letters" in e for e in errors_of(desc))


def test_empty_rooms_and_racks_are_refused(desc):
    desc["rooms"][1]["racks"] = []
    assert (
        "rooms[room-b].racks: is empty; fix: describe at least one rack in the room, or remove the room"
        in errors_of(desc)
    )
    desc["rooms"] = []
    assert "rooms: is empty; fix: describe at least one room with its racks" in errors_of(desc)


# -- networks and addresses -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("10.244.0.0/33", "'10.244.0.0/33' is not a valid CIDR"),
        ("pods", "expected a CIDR (address/prefix), got a string 'pods'"),
        ("10.244.0.0", "expected a CIDR (address/prefix), got a string '10.244.0.0'"),
        (1024, "expected a CIDR (address/prefix), got an integer 1024"),
        ("10.244.1.0/16", "10.244.1.0/16 has host bits set; fix: use the network address: 10.244.0.0/16"),
    ],
)
def test_invalid_cidrs(desc, value, expected):
    desc["cluster"]["pod_cidr"] = value
    assert only_error(desc).startswith(f"cluster.pod_cidr: {expected}")


def test_rack_subnet_with_host_bits(desc):
    a01(desc)["subnet"] = "10.10.1.1/24"
    assert (
        "rooms[room-a].racks[a01].subnet: 10.10.1.1/24 has host bits set; fix: use the network address: "
        "10.10.1.0/24" in errors_of(desc)
    )


@pytest.mark.parametrize("value", ["10.10.1.300", "gw", "10.10.1.1/24", 167772417])
def test_invalid_addresses(desc, value):
    a01(desc)["gateway"] = value
    assert only_error(desc).startswith("rooms[room-a].racks[a01].gateway: ")


def test_invalid_host_address(desc):
    m1(desc)["address"] = "10.10.1"
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].hosts[m1].address: '10.10.1' is not a valid IP address; "
        "fix: write it as e.g. 10.10.1.11"
    )


@pytest.mark.parametrize(
    "gateway, problem",
    [
        ("10.10.9.1", "10.10.9.1 is outside rack a01's subnet 10.10.1.0/24"),
        ("10.10.1.0", "10.10.1.0 is the network address of 10.10.1.0/24"),
        ("10.10.1.255", "10.10.1.255 is the broadcast address of 10.10.1.0/24"),
    ],
)
def test_gateway_must_be_a_host_address_in_the_subnet(desc, gateway, problem):
    a01(desc)["gateway"] = gateway
    assert only_error(desc).startswith(f"rooms[room-a].racks[a01].gateway: {problem}; fix: ")


@pytest.mark.parametrize(
    "peer, problem",
    [
        ("10.10.2.254", "10.10.2.254 is outside rack a01's subnet 10.10.1.0/24"),
        ("10.10.1.1", "10.10.1.1 is the rack gateway"),
        ("10.10.1.0", "10.10.1.0 is the network address of 10.10.1.0/24"),
        ("10.10.1.255", "10.10.1.255 is the broadcast address of 10.10.1.0/24"),
    ],
)
def test_tor_peer_must_be_in_the_subnet_and_not_the_gateway(desc, peer, problem):
    a01(desc)["tor"]["peer"] = peer
    assert only_error(desc).startswith(f"rooms[room-a].racks[a01].tor.peer: {problem}; fix: ")


@pytest.mark.parametrize(
    "address, problem",
    [
        ("10.10.1.0", "10.10.1.0 is the network address of 10.10.1.0/24"),
        ("10.10.1.255", "10.10.1.255 is the broadcast address of 10.10.1.0/24"),
        ("10.10.1.1", "10.10.1.1 is rack a01's gateway"),
        ("10.10.1.254", "10.10.1.254 is rack a01's ToR peer address"),
        ("fd00::11", "fd00::11 is outside rack a01's subnet 10.10.1.0/24"),
    ],
)
def test_host_address_must_be_a_free_host_address(desc, address, problem):
    m1(desc)["address"] = address
    assert only_error(desc).startswith(f"rooms[room-a].racks[a01].hosts[m1].address: {problem}; fix: ")


def test_duplicate_addresses(desc):
    a01(desc)["hosts"][1]["address"] = "10.10.1.11"
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].hosts[w1].address: 10.10.1.11 is already used by rooms[room-a].racks[a01].hosts[m1]; "
        "fix: give every host its own address"
    )


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda d: d["cluster"].update(service_cidr="10.244.128.0/20"),
            "cluster.service_cidr: 10.244.128.0/20 overlaps cluster.pod_cidr 10.244.0.0/16",
        ),
        (
            lambda d: d["cluster"].update(pod_cidr="10.0.0.0/8"),
            "rooms[room-a].racks[a01].subnet: 10.10.1.0/24 overlaps cluster.pod_cidr 10.0.0.0/8",
        ),
        (
            lambda d: d["cluster"].update(service_cidr="10.10.2.0/23"),
            "rooms[room-a].racks[a02].subnet: 10.10.2.0/24 overlaps cluster.service_cidr 10.10.2.0/23",
        ),
    ],
)
def test_overlapping_cidrs_name_both_sides(desc, change, expected):
    change(desc)
    errors = errors_of(desc)
    assert any(
        e.startswith(expected + "; fix: pod_cidr, service_cidr and every rack subnet must be disjoint") for e in errors
    ), errors


def test_overlapping_rack_subnets(desc):
    # b01 gets a /23 that covers a01 and a02: one error per overlapped rack, each naming both
    b01 = desc["rooms"][1]["racks"][0]
    b01.update(subnet="10.10.0.0/22", gateway="10.10.3.1")
    b01["tor"]["peer"] = "10.10.3.254"
    errors = errors_of(desc)
    assert [e.split("; fix")[0] for e in errors] == [
        "rooms[room-b].racks[b01].subnet: 10.10.0.0/22 overlaps rooms[room-a].racks[a01].subnet 10.10.1.0/24",
        "rooms[room-b].racks[b01].subnet: 10.10.0.0/22 overlaps rooms[room-a].racks[a02].subnet 10.10.2.0/24",
    ]


# -- names ----------------------------------------------------------------------------------


def test_duplicate_host_in_two_racks(desc):
    desc["rooms"][1]["racks"][0]["hosts"].append(host("w1", "10.10.3.21", ["worker"]))
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].hosts[w1].name: host w1 is already defined at rooms[room-a].racks[a01].hosts[w1]; "
        "fix: a host lives in exactly one rack: remove one entry or rename the host"
    )


def test_duplicate_host_in_one_rack_is_named_by_position(desc):
    a01(desc)["hosts"].append(host("w1", "10.10.1.22", ["worker"]))
    assert only_error(desc).startswith(
        "rooms[room-a].racks[a01].hosts[2].name: host w1 is already defined at rooms[room-a].racks[a01].hosts[w1]"
    )


def test_duplicate_rack_names_across_rooms(desc):
    desc["rooms"][1]["racks"][0]["name"] = "a01"
    assert only_error(desc) == (
        "rooms[room-b].racks[a01].name: duplicate rack name a01 (also at rooms[room-a].racks[a01].name); "
        "fix: give every rack its own name"
    )


def test_duplicate_room_names(desc):
    desc["rooms"][1]["name"] = "room-a"
    assert only_error(desc).startswith(
        "rooms[1].name: duplicate room name room-a (also at rooms[room-a].name); fix: give every room its own name"
    )


def test_names_that_become_the_same_group(desc):
    desc["rooms"][1]["name"] = "Room_A"
    a01(desc)["name"] = "B01"
    errors = errors_of(desc)
    assert errors == [
        "rooms[Room_A].name: room name Room_A becomes group room_room_a, like rooms[room-a].name; "
        "fix: rename one of them; group names keep only a-z, 0-9 and '_'",
        "rooms[Room_A].racks[b01].name: rack name b01 becomes group rack_b01, like rooms[room-a].racks[B01].name; "
        "fix: rename one of them; group names keep only a-z, 0-9 and '_'",
    ]


@pytest.mark.parametrize("name", ["M1", "m_1", "-m1", "m1-", "m1..x", "a" * 64])
def test_invalid_hostnames(desc, name):
    m1(desc)["name"] = name
    assert any(
        e.endswith("Kubernetes uses it as the node name") and "is not a valid hostname" in e for e in errors_of(desc)
    )


def test_fqdn_hostnames_are_fine(desc):
    m1(desc)["name"] = "m1.bj1.example.internal"
    assert parse_description(desc).hosts[0].name == "m1.bj1.example.internal"


# hostnames cannot hold '_', so only the role and parent groups without one can clash
@pytest.mark.parametrize("name", ["etcd", "lb", "kafka", "storage", "gluster", "all"])
def test_host_names_must_not_be_group_names(desc, name):
    a01(desc)["hosts"][1]["name"] = name
    assert only_error(desc) == (
        f"rooms[room-a].racks[a01].hosts[{name}].name: host name {name} is also an inventory group name; "
        "fix: rename the host"
    )


@pytest.mark.parametrize("name", ["Bj1", "1bj", "bj_1", "bj1-", "bj1.prod", "b" * 64])
def test_invalid_cluster_names(desc, name):
    desc["cluster"]["name"] = name
    assert only_error(desc).startswith(f"cluster.name: '{name}' is not a valid cluster name; fix: use 1-63 lowercase")


@pytest.mark.parametrize("name", ["a", "bj1-prod", "idlab", "x" * 63])
def test_valid_cluster_names(desc, name):
    desc["cluster"]["name"] = name
    assert parse_description(desc).cluster_name == name


@pytest.mark.parametrize("domain", ["Cluster.Local", "cluster_local", ""])
def test_invalid_cluster_domain(desc, domain):
    desc["cluster"]["domain"] = domain
    assert only_error(desc).startswith("cluster.domain: ")


# -- roles and quorum -----------------------------------------------------------------------


def test_unknown_role_lists_the_known_roles(desc):
    a01(desc)["hosts"][1]["roles"] = ["wroker"]
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].hosts[w1].roles: unknown role 'wroker'; fix: did you mean worker? known roles: "
        "etcd, etcd_spare, control_plane, worker, lb, ceph_mon, ceph_mgr, ceph_osd, ceph_mds, gluster, kafka"
    )


def test_group_names_are_not_roles(desc):
    a01(desc)["hosts"][1]["roles"] = ["kube_node"]
    assert "unknown role 'kube_node'" in only_error(desc)


def test_roles_must_not_be_empty_or_repeated(desc):
    a01(desc)["hosts"][1]["roles"] = []
    m1(desc)["roles"] = ["etcd", "control_plane", "etcd"]
    assert errors_of(desc) == [
        "rooms[room-a].racks[a01].hosts[m1].roles: role etcd is listed twice; fix: list each role once",
        "rooms[room-a].racks[a01].hosts[w1].roles: is empty; fix: give the host at least one role: "
        + ", ".join(idc.KNOWN_ROLES),
    ]


def test_a_host_is_not_both_etcd_member_and_spare(desc):
    m1(desc)["roles"] = ["etcd", "etcd_spare"]
    errors = errors_of(desc)
    assert (
        "rooms[room-a].racks[a01].hosts[m1].roles: a host cannot be both etcd and etcd_spare; "
        "fix: keep one of the two roles" in errors
    )


def test_no_etcd_member(desc):
    for room in desc["rooms"]:
        for r in room["racks"]:
            for h in r["hosts"]:
                h["roles"] = [role for role in h["roles"] if role != "etcd"]
    assert only_error(desc) == (
        "role etcd: no host has it; fix: give the etcd role to 3 (or 5) hosts, ideally in different racks"
    )


@pytest.mark.parametrize("extra", [1, 3])
def test_even_etcd_members(desc, extra):
    new = [host(f"e{i}", f"10.10.3.{40 + i}", ["etcd"]) for i in range(extra)]
    desc["rooms"][1]["racks"][0]["hosts"] += new
    count = 3 + extra
    error = only_error(desc)
    assert error.startswith(f"role etcd: {count} hosts have it (m1, m2, m3, e0")
    assert f"an even number; fix: use an odd number of etcd hosts (e.g. {count - 1} or {count + 1})" in error


def test_single_etcd_member_is_allowed(desc):
    for r in desc["rooms"][0]["racks"]:
        r["hosts"][0]["roles"] = ["control_plane"]
    assert [h.name for h in parse_description(desc).hosts_with_role("etcd")] == ["m3"]


@pytest.mark.parametrize("spares, ok", [(0, True), (1, True), (2, False), (3, True), (4, False)])
def test_etcd_spares_are_zero_or_odd(desc, spares, ok):
    desc["rooms"][1]["racks"][0]["hosts"] += [
        host(f"sp{i}", f"10.10.3.{50 + i}", ["etcd_spare"]) for i in range(spares)
    ]
    if ok:
        assert len(parse_description(desc).hosts_with_role("etcd_spare")) == spares
    else:
        assert only_error(desc).startswith(f"role etcd_spare: {spares} hosts have it")


@pytest.mark.parametrize("brokers, ok", [(0, True), (2, False), (3, True), (4, False), (5, True)])
def test_kafka_hosts_are_zero_or_odd_they_are_its_controllers(desc, brokers, ok):
    desc["rooms"][1]["racks"][0]["hosts"] += [host(f"kf{i}", f"10.10.3.{60 + i}", ["kafka"]) for i in range(brokers)]
    if ok:
        assert len(parse_description(desc).hosts_with_role("kafka")) == brokers
    else:
        error = only_error(desc)
        assert error.startswith(f"role kafka: {brokers} hosts have it (kf0, kf1")
        assert "fix: use an odd number of kafka hosts" in error


# -- sizes and AS numbers -------------------------------------------------------------------


@pytest.mark.parametrize("cpu", [0, -4, 1.5, "16", True, None])
def test_cpu_must_be_a_positive_integer(desc, cpu):
    m1(desc)["size"]["cpu"] = cpu
    error = only_error(desc)
    assert error.startswith("rooms[room-a].racks[a01].hosts[m1].size.cpu: ")
    assert "missing" in error if cpu is None else "expected a positive integer" in error


@pytest.mark.parametrize("memory", [0, -1, "64", False, math.inf, math.nan])
def test_memory_must_be_a_positive_number(desc, memory):
    m1(desc)["size"]["memory_gib"] = memory
    assert only_error(desc).startswith("rooms[room-a].racks[a01].hosts[m1].size.memory_gib: expected a positive number")


def test_fractional_memory_is_fine(desc):
    m1(desc)["size"]["memory_gib"] = 0.5
    assert parse_description(desc).host("m1").memory_gib == 0.5


@pytest.mark.parametrize("value", [0, -1, 4294967296])
@pytest.mark.parametrize("field", ["node_as", "tor_as"])
def test_as_numbers_out_of_range(desc, field, value):
    target, path = (
        (desc["cluster"], "cluster.node_as")
        if field == "node_as"
        else (a01(desc)["tor"], "rooms[room-a].racks[a01].tor.as")
    )
    target["node_as" if field == "node_as" else "as"] = value
    assert only_error(desc).startswith(f"{path}: AS {value} is out of range 1..4294967295; fix: ")


@pytest.mark.parametrize("value", ["65101", 65101.0, True, [65101]])
@pytest.mark.parametrize("field", ["node_as", "tor_as"])
def test_as_numbers_must_be_integers(desc, field, value):
    target, key = (desc["cluster"], "node_as") if field == "node_as" else (a01(desc)["tor"], "as")
    target[key] = value
    assert "expected an AS number (integer)" in only_error(desc)


@pytest.mark.parametrize("value", [1, 4294967295, 4200000000])
def test_as_numbers_at_the_edges_are_fine(desc, value):
    a01(desc)["tor"]["as"] = value
    assert parse_description(desc).rack("a01").tor_as == value


# -- vars -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["idc_rack", "idc_roles", "idc_cluster_name"])
def test_computed_variables_cannot_be_set_in_host_vars(desc, name):
    m1(desc)["vars"] = {name: "x"}
    assert only_error(desc).startswith(
        f"rooms[room-a].racks[a01].hosts[m1].vars.{name}: {name} is computed from the description"
    )


def test_computed_variables_cannot_be_set_in_top_level_vars(desc):
    desc["vars"] = {"idc_pod_cidr": "10.0.0.0/8"}
    assert only_error(desc).startswith("vars.idc_pod_cidr: idc_pod_cidr is computed from the description")


@pytest.mark.parametrize("name", ["1abc", "with-dash", "class", 3])
def test_variable_names_must_be_usable_in_templates(desc, name):
    m1(desc)["vars"] = {name: 1}
    assert "is not a valid variable name" in only_error(desc)


# -- the inventory layout -------------------------------------------------------------------


def test_inventory_layout_of_a_small_description(desc):
    desc["vars"] = {"ntp_servers": ["10.0.0.1"]}
    m1(desc)["vars"] = {"ansible_host": "172.16.0.11", "node_labels": {"disk": "nvme"}}
    layout = inventory_layout(parse_description(desc))
    assert layout["groups"] == {
        "etcd": ["m1", "m2", "m3"],
        "etcd_spare": [],
        "kube_control_plane": ["m1", "m2", "m3"],
        "kube_node": ["w1"],
        "lb": [],
        "ceph_mon": ["s1"],
        "ceph_mgr": ["s1"],
        "ceph_osd": ["s1"],
        "ceph_mds": [],
        "gluster": [],
        "kafka": [],
        "k8s_cluster": [],
        "storage": [],
        "room_room_a": [],
        "rack_a01": ["m1", "w1"],
        "rack_a02": ["m2", "s1"],
        "room_room_b": [],
        "rack_b01": ["m3"],
    }
    assert layout["children"] == {
        "k8s_cluster": ["kube_control_plane", "kube_node"],
        "storage": ["ceph_mon", "ceph_mgr", "ceph_osd", "ceph_mds", "gluster"],
        "room_room_a": ["rack_a01", "rack_a02"],
        "room_room_b": ["rack_b01"],
    }
    assert layout["all_vars"] == {
        "idc_cluster_name": "bj1-prod",
        "idc_pod_cidr": "10.244.0.0/16",
        "idc_service_cidr": "10.96.0.0/16",
        "idc_node_as": 64512,
        "idc_cluster_domain": "cluster.local",
        "idc_apiserver_vip": "",
        "idc_apiserver_port": 6443,
        "idc_apiserver_url": "https://10.10.1.11:6443",
        "idc_pod_block_size": 27,
        "idc_fixed_ip_cidr": None,
        "idc_advertise_service_cidr": False,
        "idc_ceph": {
            "mode": "internal",
            "pool_size": 1,
            "failure_domain": "rack",
            "mons": ["10.10.2.31"],
            "crush_tree": [{"room": "room-a", "rack": "a02", "host": "s1"}],
        },
        "ntp_servers": ["10.0.0.1"],
    }
    assert list(layout["hostvars"]) == ["m1", "w1", "m2", "s1", "m3"]
    assert layout["hostvars"]["m1"] == {
        "ansible_host": "172.16.0.11",
        "idc_address": "10.10.1.11",
        "idc_room": "room-a",
        "idc_rack": "a01",
        "idc_rack_subnet": "10.10.1.0/24",
        "idc_rack_gateway": "10.10.1.1",
        "idc_tor_name": "tor-a01",
        "idc_tor_as": 65101,
        "idc_tor_peer": "10.10.1.254",
        "idc_tor_uplink": None,
        "idc_node_as": 64512,
        "idc_roles": ["etcd", "control_plane"],
        "idc_cpu": 16,
        "idc_memory_gib": 64,
        "idc_ceph_osd_devices": [],
        "node_labels": {"disk": "nvme"},
    }
    assert layout["hostvars"]["w1"]["ansible_host"] == "10.10.1.21"
    assert layout["hostvars"]["s1"]["idc_ceph_osd_devices"] == [{"path": "/dev/sdb", "file": False, "size_gib": None}]


def test_location_group_names_are_normalised(desc):
    desc["rooms"][0]["name"] = "Room-A.1"
    a01(desc)["name"] = "A-01"
    layout = inventory_layout(parse_description(desc))
    assert layout["children"]["room_room_a_1"] == ["rack_a_01", "rack_a02"]
    assert layout["groups"]["rack_a_01"] == ["m1", "w1"]
    assert layout["hostvars"]["m1"]["idc_rack"] == "A-01"


def test_addresses_are_normalised(desc):
    ipv6(desc)
    a01(desc).update(subnet="fd00:10:1:0::/64", gateway="fd00:10:1:0:0::1")
    a01(desc)["tor"]["peer"] = "FD00:10:1::FE"
    m1(desc)["address"] = "fd00:10:1:0::11"
    a01(desc)["hosts"][1]["address"] = "fd00:10:1::21"
    hostvars = inventory_layout(parse_description(desc))["hostvars"]["m1"]
    assert (
        hostvars["idc_rack_subnet"],
        hostvars["idc_rack_gateway"],
        hostvars["idc_tor_peer"],
        hostvars["ansible_host"],
    ) == ("fd00:10:1::/64", "fd00:10:1::1", "fd00:10:1::fe", "fd00:10:1::11")


def test_parse_does_not_change_its_input(desc):
    before = copy.deepcopy(desc)
    parse_description(desc)
    assert desc == before


# -- the apiserver VIP ----------------------------------------------------------------------


def with_lb_pair(data, second_rack=0, second_address="10.10.1.22"):
    """Two lb hosts in rack a01 (the second in another rack when asked) and the VIP 10.10.1.10."""
    a01(data)["hosts"].append(host("lb1", "10.10.1.23", ["lb"], cpu=4, memory_gib=8))
    racks = [r for room in data["rooms"] for r in room["racks"]]
    racks[second_rack]["hosts"].append(host("lb2", second_address, ["lb"], cpu=4, memory_gib=8))
    data["cluster"]["apiserver_vip"] = "10.10.1.10"
    return data


def all_vars_of(data):
    return inventory_layout(parse_description(data))["all_vars"]


def test_lb_pair_with_a_vip_in_their_rack(desc):
    model = parse_description(with_lb_pair(desc))
    assert (model.apiserver_vip, model.apiserver_port, model.apiserver_url) == (
        "10.10.1.10",
        6443,
        "https://10.10.1.10:6443",
    )
    assert {k: v for k, v in all_vars_of(desc).items() if k.startswith("idc_apiserver")} == {
        "idc_apiserver_vip": "10.10.1.10",
        "idc_apiserver_port": 6443,
        "idc_apiserver_url": "https://10.10.1.10:6443",
    }


def test_apiserver_port_is_optional_and_used_in_the_url(desc):
    with_lb_pair(desc)["cluster"]["apiserver_port"] = 8443
    assert all_vars_of(desc)["idc_apiserver_url"] == "https://10.10.1.10:8443"
    assert all_vars_of(desc)["idc_apiserver_port"] == 8443


def test_without_lb_hosts_and_vip_the_url_is_the_first_control_plane(desc):
    assert {k: v for k, v in all_vars_of(desc).items() if k.startswith("idc_apiserver")} == {
        "idc_apiserver_vip": "",
        "idc_apiserver_port": 6443,
        "idc_apiserver_url": "https://10.10.1.11:6443",
    }


def test_without_any_control_plane_the_url_is_empty(desc):
    for room in desc["rooms"]:
        for r in room["racks"]:
            for h in r["hosts"]:
                h["roles"] = [role for role in h["roles"] if role != "control_plane"] or ["worker"]
    # a cluster without control planes is only valid as a deliberate part of one
    desc["cluster"]["partial"] = True
    assert all_vars_of(desc)["idc_apiserver_url"] == ""


def test_ipv6_control_plane_url_is_bracketed(desc):
    ipv6(desc)
    assert all_vars_of(desc)["idc_apiserver_url"] == "https://[fd00:10:1::11]:6443"


def test_a_vip_without_lb_hosts_is_an_external_load_balancer(desc):
    desc["cluster"]["apiserver_vip"] = "10.10.9.10"
    assert all_vars_of(desc)["idc_apiserver_url"] == "https://10.10.9.10:6443"


def test_vip_is_required_with_lb_hosts(desc):
    del with_lb_pair(desc)["cluster"]["apiserver_vip"]
    assert only_error(desc) == (
        "cluster.apiserver_vip: missing, and the description has lb hosts (lb1, lb2 in rack a01); "
        "fix: add a free address of the lb hosts' rack subnet 10.10.1.0/24 under cluster, e.g. apiserver_vip: 10.10.1.2; "
        "keepalived holds it on one lb host at a time"
    )


def test_lb_hosts_in_two_racks_cannot_share_a_vip(desc):
    with_lb_pair(desc, second_rack=1, second_address="10.10.2.22")
    assert only_error(desc) == (
        "role lb: the lb hosts are in 2 racks (lb1 in rack a01, lb2 in rack a02) for apiserver_vip 10.10.1.10; "
        "fix: put every lb host in one rack: the keepalived VRRP VIP (cluster.apiserver_vip) moves by ARP, "
        "so all lb hosts must share one L2 segment (one rack subnet)"
    )


def test_lb_hosts_in_two_racks_without_a_vip_get_both_errors(desc):
    del with_lb_pair(desc, second_rack=2, second_address="10.10.3.22")["cluster"]["apiserver_vip"]
    errors = errors_of(desc)
    assert [e.split(":")[0] for e in errors] == ["role lb", "cluster.apiserver_vip"], errors
    assert "lb1 in rack a01, lb2 in rack b01" in errors[0]


def test_vip_outside_the_lb_rack(desc):
    with_lb_pair(desc)["cluster"]["apiserver_vip"] = "10.10.2.10"
    assert only_error(desc) == (
        "cluster.apiserver_vip: 10.10.2.10 is outside rack a01's subnet 10.10.1.0/24, where the lb hosts are "
        "(lb1, lb2 in rack a01); fix: use a free address in 10.10.1.0/24: a VRRP VIP lives on the lb hosts' L2 segment"
    )


@pytest.mark.parametrize(
    "vip, problem",
    [
        ("10.10.1.0", "10.10.1.0 is the network address of 10.10.1.0/24; fix: use a free host address in 10.10.1.0/24"),
        (
            "10.10.1.255",
            "10.10.1.255 is the broadcast address of 10.10.1.0/24; fix: use a free host address in 10.10.1.0/24",
        ),
    ],
)
def test_vip_is_not_the_network_or_broadcast_address(desc, vip, problem):
    with_lb_pair(desc)["cluster"]["apiserver_vip"] = vip
    assert only_error(desc) == f"cluster.apiserver_vip: {problem}"


@pytest.mark.parametrize(
    "vip, problem",
    [
        ("10.10.1.22", "10.10.1.22 is the address of host lb2 (rooms[room-a].racks[a01].hosts[lb2])"),
        ("10.10.1.11", "10.10.1.11 is the address of host m1 (rooms[room-a].racks[a01].hosts[m1])"),
        ("10.10.1.1", "10.10.1.1 is rack a01's gateway"),
        ("10.10.1.254", "10.10.1.254 is rack a01's ToR peer address"),
    ],
)
def test_vip_is_not_an_address_in_use(desc, vip, problem):
    with_lb_pair(desc)["cluster"]["apiserver_vip"] = vip
    error = only_error(desc)
    assert error.startswith(
        f"cluster.apiserver_vip: {problem}; fix: use a free address that no host, gateway or ToR peer has"
    )


def test_vip_of_an_external_lb_is_not_an_address_in_use(desc):
    desc["cluster"]["apiserver_vip"] = "10.10.2.31"
    assert only_error(desc).startswith("cluster.apiserver_vip: 10.10.2.31 is the address of host s1 ")


def test_vip_is_not_in_the_pod_or_service_network(desc):
    desc["cluster"]["apiserver_vip"] = "10.96.0.1"
    assert only_error(desc) == (
        "cluster.apiserver_vip: 10.96.0.1 is inside cluster.service_cidr 10.96.0.0/16; "
        "fix: use an address in the lb hosts' rack subnet"
    )


@pytest.mark.parametrize(
    "vip, expected",
    [
        (
            "fd00::10",
            "cluster.apiserver_vip: fd00::10 is not an IPv4 address; fix: use an IPv4 address in the lb hosts' "
            "rack subnet; the keepalived VIP is IPv4 only",
        ),
        ("10.10.1", "cluster.apiserver_vip: '10.10.1' is not a valid IP address; fix: write it as e.g. 10.10.1.10"),
        (1010, "cluster.apiserver_vip: expected an IP address, got an integer 1010; fix: write it as e.g. 10.10.1.10"),
    ],
)
def test_vip_must_be_an_ipv4_address(desc, vip, expected):
    # a VIP that cannot be read is reported once, not again as missing
    with_lb_pair(desc)["cluster"]["apiserver_vip"] = vip
    assert only_error(desc) == expected


@pytest.mark.parametrize("port", [0, 65536, "6443", True, 6443.0])
def test_apiserver_port_must_be_a_tcp_port(desc, port):
    desc["cluster"]["apiserver_port"] = port
    assert only_error(desc).startswith("cluster.apiserver_port: expected a TCP port (1..65535), got ")


def test_a_host_that_is_lb_and_control_plane_needs_another_port(desc):
    with_lb_pair(desc)
    a01(desc)["hosts"][-1]["roles"] = ["lb", "control_plane"]
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].hosts[lb2].roles: host lb2 is lb and control_plane, and cluster.apiserver_port is 6443, "
        "the port kube-apiserver listens on; fix: give the lb role to other hosts, or set cluster.apiserver_port "
        "to another port, e.g. 8443"
    )
    desc["cluster"]["apiserver_port"] = 8443
    assert parse_description(desc).apiserver_url == "https://10.10.1.10:8443"


def test_apiserver_vars_cannot_be_set_in_vars(desc):
    desc["vars"] = {"idc_apiserver_url": "https://example:6443"}
    assert "idc_apiserver_url is computed from the description" in only_error(desc)


def test_lab_lb_pair_shares_rack_r1_with_the_vip():
    model = parse_description(yaml.safe_load((REPO / "inventories/lab/idc.yml").read_text()))
    assert {h.name: (h.rack, h.address) for h in model.hosts_with_role("lb")} == {
        "lb1": ("r1", "10.210.1.21"),
        "lb2": ("r1", "10.210.1.22"),
    }
    assert model.apiserver_url == "https://10.210.1.10:6443"


# -- Calico: pod blocks, fixed addresses, BGP with the ToRs ---------------------------------


def workers(data, count, first=100):
    """Add `count` worker hosts to rack a01 at 10.10.1.<first>, <first + 1>, ..."""
    a01(data)["hosts"].extend(host(f"wx{i}", f"10.10.1.{first + i}", ["worker"]) for i in range(count))
    return data


def uplink(data, rack_index=0, address="10.10.0.11/24", peer="10.10.0.1", spine_as=65000):
    racks = [r for room in data["rooms"] for r in room["racks"]]
    racks[rack_index]["tor"]["uplink"] = {"address": address, "peer": peer, "as": spine_as}
    return data


def test_pod_network_defaults(desc):
    model = parse_description(desc)
    assert (model.pod_block_size, model.fixed_ip_cidr, model.advertise_service_cidr) == (27, None, False)
    assert model.rack("a01").tor_uplink is None


def test_pod_network_settings_become_group_all_variables(desc):
    desc["cluster"].update(pod_block_size=26, fixed_ip_cidr="10.244.255.0/24", advertise_service_cidr=True)
    all_vars = all_vars_of(desc)
    assert (all_vars["idc_pod_block_size"], all_vars["idc_fixed_ip_cidr"], all_vars["idc_advertise_service_cidr"]) == (
        26,
        "10.244.255.0/24",
        True,
    )


@pytest.mark.parametrize("value", [19, 33, "27", True, 27.0])
def test_pod_block_size_is_a_prefix_length_20_to_32(desc, value):
    desc["cluster"]["pod_block_size"] = value
    assert only_error(desc).startswith("cluster.pod_block_size: expected a prefix length 20..32, got ")


@pytest.mark.parametrize("value", [20, 32])
def test_pod_block_size_at_the_edges_is_fine(desc, value):
    desc["cluster"]["pod_block_size"] = value
    assert parse_description(desc).pod_block_size == value


def test_advertise_service_cidr_is_a_boolean(desc):
    desc["cluster"]["advertise_service_cidr"] = "yes"
    assert only_error(desc) == (
        "cluster.advertise_service_cidr: expected a boolean, got a string 'yes'; "
        "fix: write true or false without quotes, e.g. true"
    )


@pytest.mark.parametrize(
    "fixed, problem",
    [
        ("10.245.0.0/24", "10.245.0.0/24 is outside cluster.pod_cidr 10.244.0.0/16"),
        ("10.244.0.0/16", "10.244.0.0/16 is all of cluster.pod_cidr"),
        ("10.0.0.0/8", "10.0.0.0/8 is outside cluster.pod_cidr 10.244.0.0/16"),
        ("10.244.255.240/28", "10.244.255.240/28 is smaller than one /27 block (pod_block_size)"),
    ],
)
def test_fixed_ip_cidr_is_a_part_of_the_pod_cidr(desc, fixed, problem):
    desc["cluster"]["fixed_ip_cidr"] = fixed
    assert only_error(desc).startswith(f"cluster.fixed_ip_cidr: {problem}; fix: ")


def test_fixed_ip_cidr_is_a_cidr(desc):
    desc["cluster"]["fixed_ip_cidr"] = "10.244.255.1/24"
    assert (
        only_error(desc)
        == "cluster.fixed_ip_cidr: 10.244.255.1/24 has host bits set; fix: use the network address: 10.244.255.0/24"
    )


def test_tor_as_equal_to_node_as_is_refused(desc):
    a01(desc)["tor"]["as"] = 64512
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].tor.as: AS 64512 is cluster.node_as; fix: give the ToR its own AS: servers and ToR "
        "peer over eBGP (all servers share node_as, every ToR has another)"
    )


def test_pod_cidr_must_hold_a_block_per_worker(desc):
    desc["cluster"].update(pod_cidr="10.233.0.0/24", fixed_ip_cidr="10.233.0.128/25")
    del a01(desc)["hosts"][1]  # w1
    workers(desc, 12)
    assert only_error(desc) == (
        "cluster.pod_cidr: 10.233.0.0/24 minus fixed_ip_cidr 10.233.0.128/25 holds 4 blocks of /27 for 12 worker nodes; "
        "fix: use a pod_cidr of /23 or larger, a larger pod_block_size (smaller blocks, e.g. 28) or a smaller "
        "fixed_ip_cidr; Calico gives every node at least one block"
    )
    del desc["cluster"]["fixed_ip_cidr"]
    assert only_error(desc).startswith(
        "cluster.pod_cidr: 10.233.0.0/24 holds 8 blocks of /27 for 12 worker nodes; fix: use a pod_cidr of /23 or larger"
    )
    desc["cluster"]["pod_block_size"] = 28
    assert len(parse_description(desc).hosts_with_role("worker")) == 12


def test_pod_cidr_with_exactly_one_block_per_worker_is_fine(desc):
    desc["cluster"]["pod_cidr"] = "10.233.0.0/24"
    workers(desc, 7)  # with w1: 8 workers, 8 blocks of /27
    assert len(parse_description(desc).hosts_with_role("worker")) == 8


def test_tor_uplink_is_kept_and_becomes_a_host_variable(desc):
    uplink(desc)
    model = parse_description(desc)
    assert model.rack("a01").tor_uplink == {"address": "10.10.0.11/24", "peer": "10.10.0.1", "as": 65000}
    assert model.rack("a02").tor_uplink is None
    hostvars = inventory_layout(model)["hostvars"]
    assert hostvars["w1"]["idc_tor_uplink"] == {"address": "10.10.0.11/24", "peer": "10.10.0.1", "as": 65000}
    assert hostvars["m2"]["idc_tor_uplink"] is None


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"peer": "10.10.9.1"},
            "tor.uplink.peer: 10.10.9.1 is outside the uplink network 10.10.0.0/24 of address 10.10.0.11/24",
        ),
        ({"peer": "10.10.0.11"}, "tor.uplink.peer: 10.10.0.11 is the ToR's own uplink address"),
        ({"peer": "10.10.0.255"}, "tor.uplink.peer: 10.10.0.255 is the broadcast address of 10.10.0.0/24"),
        ({"as": 65101}, "tor.uplink.as: AS 65101 is the ToR's own AS (tor.as)"),
        ({"as": 64512}, "tor.uplink.as: AS 64512 is cluster.node_as"),
        (
            {"address": "10.10.0.11"},
            "tor.uplink.address: expected an address with its prefix, got a string '10.10.0.11'",
        ),
        ({"address": "10.10.0.0/24"}, "tor.uplink.address: 10.10.0.0 is the network address of 10.10.0.0/24"),
        (
            {"address": "10.10.1.253/16", "peer": "10.10.0.1"},
            "tor.uplink.address: the uplink network 10.10.0.0/16 overlaps rooms[room-a].racks[a01].subnet 10.10.1.0/24",
        ),
        ({"as": "65000"}, "tor.uplink.as: expected an AS number (integer), got a string '65000'"),
        ({"speed": 100}, "tor.uplink.speed: unknown key 'speed'"),
    ],
)
def test_tor_uplink_errors(desc, change, expected):
    uplink(desc)
    a01(desc)["tor"]["uplink"].update(change)
    errors = errors_of(desc)
    assert any(error.startswith(f"rooms[room-a].racks[a01].{expected}; fix: ") for error in errors), errors


def test_tor_uplink_needs_all_three_fields(desc):
    a01(desc)["tor"]["uplink"] = {"address": "10.10.0.11/24"}
    assert errors_of(desc) == [
        "rooms[room-a].racks[a01].tor.uplink.peer: missing; fix: add it, e.g. peer: 10.10.0.1",
        "rooms[room-a].racks[a01].tor.uplink.as: missing; fix: add it, e.g. as: 65000",
    ]


def test_two_tors_cannot_share_an_uplink_address(desc):
    uplink(desc, 0)
    uplink(desc, 2)
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.uplink.address: 10.10.0.11 is already the uplink address of "
        "rooms[room-a].racks[a01].tor.uplink; fix: give every ToR its own address on the uplink segment"
    )
    uplink(desc, 2, address="10.10.0.13/24")
    assert parse_description(desc).rack("b01").tor_uplink["address"] == "10.10.0.13/24"


def test_lab_racks_have_uplinks_to_one_spine_and_fixed_addresses():
    model = parse_description(yaml.safe_load((REPO / "inventories/lab/idc.yml").read_text()))
    assert model.fixed_ip_cidr == "10.233.63.0/24"
    assert {rack.name: rack.tor_uplink for rack in model.racks} == {
        f"r{i}": {"address": f"10.210.0.1{i}/24", "peer": "10.210.0.1", "as": 65000} for i in (1, 2, 3)
    }


def test_lab_description_moved_to_another_network_stays_valid():
    # tests/integration/test_kubernetes.py runs the lab description with 10.210. rewritten to 10.219.
    text = (REPO / "inventories/lab/idc.yml").read_text().replace("10.210.", "10.219.")
    model = parse_description(yaml.safe_load(text))
    assert model.rack("r2").tor_uplink == {"address": "10.219.0.12/24", "peer": "10.219.0.1", "as": 65000}


# -- no input crashes the validation; the whole-description rules of issue 12 -----------------


@pytest.mark.parametrize(
    "name", [0, 7, -1, True, None, [], ["lb1"], {"a": 1}, 1.5, "", "LB1", "lb_1", "lb1.", "a" * 300]
)
@pytest.mark.parametrize("role", ["lb", "etcd"])
def test_an_invalid_host_name_in_a_counted_role_is_an_error_not_a_crash(desc, name, role):
    # the lb and etcd rules list their hosts by name: an lb host named 0 used to raise TypeError
    # ("sequence item 0: expected str instance, NoneType found") instead of naming the field
    with_lb_pair(desc)
    a01(desc)["hosts"][2]["roles"] = [role]
    a01(desc)["hosts"][2]["name"] = name
    if role == "etcd":
        m1(desc)["roles"] = ["control_plane"]  # m2, m3 and the renamed host: 3 members
    errors = errors_of(desc)
    assert errors[0].startswith("rooms[room-a].racks[a01].hosts[") and "].name: " in errors[0], errors


def test_a_counted_host_without_a_valid_name_is_named_by_its_path(desc):
    with_lb_pair(desc, second_rack=2, second_address="10.10.3.22")
    a01(desc)["hosts"][2]["name"] = 0
    errors = errors_of(desc)
    assert errors[0] == (
        "rooms[room-a].racks[a01].hosts[2].name: expected a non-empty string, got an integer 0; "
        "fix: use a string, e.g. m1"
    )
    assert errors[1].startswith(
        "role lb: the lb hosts are in 2 racks (rooms[room-a].racks[a01].hosts[2] in rack a01, lb2 in rack b01)"
    )


def strip_role(data, role):
    for room in data["rooms"]:
        for r in room["racks"]:
            for h in r["hosts"]:
                h["roles"] = [x for x in h["roles"] if x != role] or ["ceph_mgr"]
    return data


def test_a_cluster_needs_control_plane_hosts(desc):
    assert only_error(strip_role(desc, "control_plane")) == (
        "role control_plane: no host has it, and a Kubernetes cluster cannot work without it; fix: give the "
        "control_plane role to 3 hosts (kube-apiserver, controller-manager and scheduler), ideally in different racks; "
        "a description that is deliberately part of a cluster (a test scenario for one role) says so with "
        "cluster.partial: true"
    )


def test_a_cluster_needs_worker_hosts(desc):
    assert only_error(strip_role(desc, "worker")) == (
        "role worker: no host has it, and a Kubernetes cluster cannot work without it; fix: give the worker role to "
        "the hosts that run the pods: without one, CoreDNS and every workload stay Pending; a description that is "
        "deliberately part of a cluster (a test scenario for one role) says so with cluster.partial: true"
    )


def test_partial_descriptions_may_leave_out_control_plane_and_workers(desc):
    strip_role(strip_role(desc, "worker"), "control_plane")
    assert len(errors_of(copy.deepcopy(desc))) == 2
    desc["cluster"]["partial"] = True
    assert [h.roles for h in parse_description(desc).hosts] == [
        ["etcd"],
        ["ceph_mgr"],
        ["etcd"],
        ["ceph_mon", "ceph_mgr", "ceph_osd"],
        ["etcd"],
    ]
    # etcd stays required: the quorum rule is not lifted
    strip_role(desc, "etcd")
    assert only_error(desc).startswith("role etcd: no host has it; fix:")


@pytest.mark.parametrize("value", ["yes", 1, "true", []])
def test_partial_is_a_boolean(desc, value):
    desc["cluster"]["partial"] = value
    assert only_error(desc).startswith("cluster.partial: expected a boolean, got ")


def test_lb_hosts_need_control_plane_hosts_even_in_a_partial_description(desc):
    strip_role(with_lb_pair(desc), "control_plane")
    desc["cluster"]["partial"] = True
    assert only_error(desc) == (
        "role lb: 2 hosts (lb1, lb2) have it, and no host has control_plane; fix: give the control_plane role to the "
        "hosts that run kube-apiserver: HAProxy on the lb hosts sends to them and has no backend without one; "
        "or remove the lb role"
    )


def test_two_tors_cannot_share_a_name(desc):
    desc["rooms"][1]["racks"][0]["tor"]["name"] = "tor-a01"
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.name: duplicate ToR name tor-a01 (also at rooms[room-a].racks[a01].tor.name); "
        "fix: give every rack's ToR its own name (without tor.name it is tor-<rack>)"
    )


def test_a_tor_name_clashes_with_another_racks_default_name(desc):
    del a01(desc)["tor"]["name"]  # tor-a01 by default
    desc["rooms"][1]["racks"][0]["tor"]["name"] = "tor-a01"
    assert only_error(desc).startswith(
        "rooms[room-b].racks[b01].tor.name: duplicate ToR name tor-a01 (also at rooms[room-a].racks[a01].tor.name)"
    )


def test_a_tor_cannot_be_named_like_a_host(desc):
    a01(desc)["tor"]["name"] = "w1"
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].tor.name: ToR name w1 is also the name of host rooms[room-a].racks[a01].hosts[w1]; "
        "fix: rename the ToR or the host: switches and servers share one name space (DNS, the lab's containers)"
    )


def test_one_spine_has_one_as(desc):
    uplink(desc, 0)
    uplink(desc, 2, address="10.10.0.13/24", spine_as=65001)
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.uplink.as: AS 65001 for spine 10.10.0.1, but rooms[room-a].racks[a01].tor.uplink "
        "gives that spine AS 65000; fix: one router has one AS: use as: 65000 on every uplink to 10.10.0.1, or the "
        "spine's real AS on all of them"
    )
    # two spines, each with its own AS, are a valid fabric
    uplink(desc, 2, address="10.10.0.13/24", peer="10.10.0.2", spine_as=65001)
    assert parse_description(desc).rack("b01").tor_uplink["as"] == 65001


def test_one_uplink_segment_has_one_prefix(desc):
    uplink(desc, 0)
    uplink(desc, 2, address="10.10.0.13/25")
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.uplink.address: the uplink network 10.10.0.0/25 overlaps 10.10.0.0/24 of "
        "rooms[room-a].racks[a01].tor.uplink; fix: one segment has one prefix: write it the same on every ToR "
        "(e.g. 10.10.0.13/24), or use segments that do not overlap"
    )
    # separate segments (each ToR its own point-to-point link) are fine
    uplink(desc, 0, address="10.10.0.0/31", peer="10.10.0.1")
    uplink(desc, 2, address="10.10.0.2/31", peer="10.10.0.3")
    assert parse_description(desc).rack("b01").tor_uplink["peer"] == "10.10.0.3"


def test_a_spine_address_cannot_be_another_tors_uplink_address(desc):
    uplink(desc, 0)
    uplink(desc, 2, address="10.10.0.13/24", peer="10.10.0.11")
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.uplink.peer: 10.10.0.11 is the uplink address of the ToR at "
        "rooms[room-a].racks[a01].tor.uplink; fix: use the spine router's address: a ToR cannot peer with another "
        "ToR's uplink address"
    )


def test_the_spine_as_is_no_tors_as(desc):
    uplink(desc, 0, spine_as=65103)  # rack b01's ToR
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].tor.uplink.as: AS 65103 is the AS of ToR tor-b01 (rooms[room-b].racks[b01].tor.as); "
        "fix: give the spine an AS no ToR has: the spine drops every route from a ToR in its own AS as an AS-path loop"
    )


def test_tors_with_uplinks_have_their_own_as(desc):
    desc["rooms"][1]["racks"][0]["tor"]["as"] = 65101
    parse_description(desc)  # without uplinks two ToRs in one AS exchange nothing: fine
    uplink(desc, 0)
    uplink(desc, 2, address="10.10.0.13/24")
    assert only_error(desc) == (
        "rooms[room-b].racks[b01].tor.as: AS 65101 is also the AS of rooms[room-a].racks[a01].tor.as, and both ToRs "
        "have an uplink; fix: give every ToR with an uplink its own AS: a ToR drops the routes of another rack in its "
        "AS as an AS-path loop (no allowas-in), so the two racks' pods cannot reach each other"
    )


FAMILY_FIX = (
    "the cluster is single-stack, so the pod and service networks, every rack subnet, the uplinks and the VIP "
    "share one address family (node addresses, kube-apiserver's service network and the BGP sessions to the "
    "ToRs all use it)"
)


def test_service_network_in_the_pod_networks_family(desc):
    desc["cluster"]["service_cidr"] = "fd00:96::/112"
    assert only_error(desc) == (
        f"cluster.service_cidr: fd00:96::/112 is IPv6, but cluster.pod_cidr 10.244.0.0/16 is IPv4; fix: use IPv4 here "
        f"too: {FAMILY_FIX}"
    )


def test_an_ipv6_rack_in_an_ipv4_cluster(desc):
    a01(desc).update(subnet="fd00:10:1::/64", gateway="fd00:10:1::1")
    a01(desc)["tor"]["peer"] = "fd00:10:1::fe"
    m1(desc)["address"] = "fd00:10:1::11"
    a01(desc)["hosts"][1]["address"] = "fd00:10:1::21"
    assert only_error(desc) == (
        f"rooms[room-a].racks[a01].subnet: fd00:10:1::/64 is IPv6, but cluster.pod_cidr 10.244.0.0/16 is IPv4; fix: "
        f"use IPv4 here too: {FAMILY_FIX}"
    )


def test_an_ipv4_rack_in_an_ipv6_cluster(desc):
    ipv6(desc)
    desc["rooms"][1]["racks"][0] = rack("b01", 3, [host("m3", "10.10.3.11", ["etcd", "control_plane"])])
    assert only_error(desc).startswith(
        "rooms[room-b].racks[b01].subnet: 10.10.3.0/24 is IPv4, but cluster.pod_cidr fd00:244::/56 is IPv6; fix: use "
        "IPv6 here too"
    )


def test_an_ipv6_uplink_in_an_ipv4_cluster(desc):
    uplink(desc, 0, address="fd00:ff::11/64", peer="fd00:ff::1")
    assert only_error(desc).startswith(
        "rooms[room-a].racks[a01].tor.uplink.address: fd00:ff::11/64 is IPv6, but cluster.pod_cidr 10.244.0.0/16 is "
        "IPv4; fix: use IPv4 here too"
    )


def test_an_external_ipv4_vip_in_an_ipv6_cluster(desc):
    ipv6(desc)["cluster"]["apiserver_vip"] = "10.10.9.10"
    assert only_error(desc).startswith(
        "cluster.apiserver_vip: 10.10.9.10 is IPv4, but cluster.pod_cidr fd00:244::/56 is IPv6; fix: use IPv6 here too"
    )


def test_without_a_pod_network_the_service_network_sets_the_family(desc):
    desc["cluster"]["pod_cidr"] = "not a cidr"
    a01(desc).update(subnet="fd00:10:1::/64", gateway="fd00:10:1::1")
    a01(desc)["tor"]["peer"] = "fd00:10:1::fe"
    m1(desc)["address"] = "fd00:10:1::11"
    a01(desc)["hosts"][1]["address"] = "fd00:10:1::21"
    errors = errors_of(desc)
    assert errors[0].startswith("cluster.pod_cidr: expected a CIDR")
    assert errors[1].startswith(
        "rooms[room-a].racks[a01].subnet: fd00:10:1::/64 is IPv6, but cluster.service_cidr 10.96.0.0/16 is IPv4"
    )
    assert len(errors) == 2


# -- every description the repository ships or generates stays valid ---------------------------


def _module(name, relative):
    import importlib.util
    import sys

    for extra in ("tests/integration", "lab"):
        if str(REPO / extra) not in sys.path:
            sys.path.insert(0, str(REPO / extra))
    spec = importlib.util.spec_from_file_location(f"_generated_{name}", REPO / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generated_descriptions():
    """The descriptions the integration tests and the benches write, built by their own code (no lab runs)."""
    e2e = _module("e2e", "tests/integration/e2e.py")
    lab = e2e._moved(yaml.safe_load((REPO / "inventories/lab/idc.yml").read_text()))
    yield "e2e._moved", lab
    yield "e2e.grown_description", e2e.grown_description(lab)
    yield "e2e.e2e_description (Kafka, Ceph)", e2e.e2e_description()
    yield "e2e.e2e_description (neither)", e2e.e2e_description(kafka=False, ceph=False)
    helpers = _module("lab_helpers", "tests/integration/lab_helpers.py")
    members = _module("test_etcd_membership", "tests/integration/test_etcd_membership.py")
    yield "test_etcd_membership 3", members.description({"m1", "m2", "m3"})
    yield "test_etcd_membership 5", members.description({"m1", "m2", "m3", "m4", "m5"})
    for name in ("test_etcd_provided_ca", "test_lab", "test_lab_registry"):
        yield name, _module(name, f"tests/integration/{name}.py").DESC
    restart = _module("test_restart_interrupted", "tests/integration/test_restart_interrupted.py")
    yield (
        "test_restart_interrupted",
        helpers.one_rack_description(
            restart.LAB,
            helpers.lab_net(restart.LAB),
            {h: ["etcd"] for h in restart.HOSTS},
            tor_as=65317,
            registry=False,
        ),
    )
    ceph = _module("test_ceph_cluster", "tests/integration/test_ceph_cluster.py")
    yield "test_ceph_cluster", ceph.description()
    scale = _module("run_scale", "bench/run_scale.py")
    for hosts in (5, 50, 250):
        yield f"run_scale {hosts}", scale.description(hosts)
    worker = _module("run_scale_worker", "bench/run_scale_worker.py")
    for workers in (1, 5, 20):
        grown = worker.description(workers)
        worker.add_worker(grown, worker.racks(grown)[0])
        yield f"run_scale_worker {workers}+1", grown


def test_every_generated_description_validates():
    names = []
    for name, data in generated_descriptions():
        parse_description(data)
        names.append(name)
    assert len(names) == 17


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in REPO.glob("molecule/*/idc.yml")))
def test_molecule_descriptions_validate_as_deliberate_parts(path):
    data = yaml.safe_load((REPO / path).read_text())
    parse_description(data)
    # each scenario tests one role: without cluster.partial its missing roles are errors
    del data["cluster"]["partial"]
    assert all(
        e.startswith(("role control_plane: no host has it", "role worker: no host has it")) for e in errors_of(data)
    )
