# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Fuzzing the IDC description's validation with hypothesis: no input makes it raise anything else.

Descriptions are generated valid (one to four racks in one or two rooms, IPv4 or IPv6, with or
without uplinks, an lb pair, a fixed-address range, partial, no Ceph, an internal Ceph with
osd_devices or the storage team's) and then mostly broken: a few
mutations each replace a value with one of another type or an odd one, delete a key, add an
unknown one, duplicate a list entry or copy a value from elsewhere in the description (so names,
addresses and AS numbers collide). Whatever comes out, parse_description returns a model that
inventory_layout lays out, or raises IdcValidationError whose every message names a path and a
fix. The YAML text side (source_errors) and the inventory plugin get the same treatment.

Bounded and deterministic for CI: derandomize=True (the same examples on every run), no example
database, a fixed max_examples per test; the whole file runs in about 10 s on 2 cores.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (
    KNOWN_ROLES,
    IdcDescription,
    IdcValidationError,
    inventory_layout,
    parse_description,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.source import source_errors

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- valid descriptions ---------------------------------------------------------------------


@st.composite
def valid_descriptions(draw):
    v6 = draw(st.sampled_from([False, False, False, True]))
    racks_count = draw(st.integers(1, 4))
    uplinks = draw(st.booleans())
    lb = not v6 and draw(st.booleans())

    def net(i):
        return f"fd00:10:{i}::" if v6 else f"10.10.{i}."

    racks = []
    for i in range(1, racks_count + 1):
        tor = {"as": 65100 + i, "peer": f"{net(i)}{'fe' if v6 else 254}"}
        if draw(st.booleans()):
            tor["name"] = f"tor-{i}"
        if uplinks:
            tor["uplink"] = (
                {"address": f"fd00:ff::{10 + i}/64", "peer": "fd00:ff::1", "as": 65000}
                if v6
                else {"address": f"10.255.0.{10 + i}/24", "peer": "10.255.0.1", "as": 65000}
            )
        racks.append(
            {
                "name": f"r{i}",
                "subnet": f"{net(i)}0/24" if not v6 else f"{net(i)}/64",
                "gateway": f"{net(i)}1",
                "tor": tor,
                "hosts": [],
            }
        )
    # a working cluster: three etcd + control plane hosts over the racks, a worker in the first
    for n in range(3):
        rack = racks[n % racks_count]
        index = int(rack["name"][1:])
        rack["hosts"].append(
            {
                "name": f"m{n + 1}",
                "address": f"{net(index)}{11 + n}",
                "roles": ["etcd", "control_plane"],
                "size": {"cpu": 8, "memory_gib": 32},
            }
        )
    racks[0]["hosts"].append(
        {
            "name": "w1",
            "address": f"{net(1)}31",
            "roles": ["worker"],
            "size": {"cpu": draw(st.integers(1, 256)), "memory_gib": draw(st.floats(0.5, 4096, allow_nan=False))},
        }
    )
    extra = draw(
        st.lists(
            st.sets(
                # quorum roles and Ceph have their own draws: an odd count is the rule, Ceph has its own
                st.sampled_from(
                    [
                        r
                        for r in KNOWN_ROLES
                        if r not in ("etcd", "etcd_spare", "lb", "kafka") and not r.startswith("ceph")
                    ]
                ),
                min_size=1,
                max_size=3,
            ),
            max_size=4,
        )
    )
    for n, roles in enumerate(extra):
        rack = racks[n % racks_count]
        index = int(rack["name"][1:])
        rack["hosts"].append(
            {
                "name": f"x{n + 1}",
                "address": f"{net(index)}{41 + n}",
                "roles": sorted(roles),
                "size": {"cpu": 4, "memory_gib": 16},
                "vars": {"note": f"extra {n}"},
            }
        )
    for n in range(draw(st.sampled_from([0, 1, 3]))):
        rack = racks[n % racks_count]
        index = int(rack["name"][1:])
        rack["hosts"].append(
            {
                "name": f"k{n + 1}",
                "address": f"{net(index)}{60 + n}",
                "roles": ["kafka"],
                "size": {"cpu": 8, "memory_gib": 32},
            }
        )
    cluster = {
        "name": "fz1",
        "pod_cidr": "fd00:244::/56" if v6 else "10.244.0.0/16",
        "service_cidr": "fd00:96::/112" if v6 else "10.96.0.0/16",
        "node_as": 64512,
    }
    if lb:
        racks[0]["hosts"] += [
            {"name": f"lb{n}", "address": f"10.10.1.{20 + n}", "roles": ["lb"], "size": {"cpu": 2, "memory_gib": 4}}
            for n in (1, 2)
        ]
        cluster.update(apiserver_vip="10.10.1.10", apiserver_port=8443)
    if not v6 and draw(st.booleans()):
        cluster.update(fixed_ip_cidr="10.244.255.0/24", pod_block_size=draw(st.integers(24, 28)))
    if draw(st.booleans()):
        cluster["advertise_service_cidr"] = draw(st.booleans())
    if draw(st.booleans()):
        cluster["partial"] = draw(st.booleans())
    split = draw(st.integers(1, racks_count))
    rooms = [{"name": "room-a", "racks": racks[:split]}]
    if racks[split:]:
        rooms.append({"name": "room-b", "racks": racks[split:]})
    data = {"plugin": "idcloud.platform.idc", "cluster": cluster, "vars": {"ntp": ["10.0.0.1"]}, "rooms": rooms}
    ceph = draw(ceph_sections(rooms, net, v6))
    if ceph is not None:
        data["ceph"] = ceph
    return data


@st.composite
def ceph_sections(draw, rooms, net, v6):
    """No Ceph, the storage team's, or one on hosts c1.. over the racks: 1 or 3 mons, OSDs with devices."""
    mode = draw(st.sampled_from([None, "internal", "internal", "external"]))
    if mode is None:
        return None
    if mode == "external":
        mons = [f"fd00:20::{11 + n}" if v6 else f"10.20.0.{11 + n}" for n in range(draw(st.integers(1, 3)))]
        return {"mode": "external", "external": {"mons": mons}}
    mons, mgrs, osd_hosts = draw(st.sampled_from([1, 3])), draw(st.integers(1, 2)), draw(st.integers(1, 4))
    mds = draw(st.booleans())
    domain = draw(st.sampled_from(["host", "rack", "room"]))
    racks = [(room["name"], rack) for room in rooms for rack in room["racks"]]
    osds, domains = 0, set()
    for n in range(max(mons, mgrs, osd_hosts)):
        room, rack = racks[n % len(racks)]
        index = int(rack["name"][1:])
        roles = [role for role, count in (("ceph_mon", mons), ("ceph_mgr", mgrs), ("ceph_osd", osd_hosts)) if n < count]
        if mds and n == 0:
            roles.append("ceph_mds")
        entry = {
            "name": f"c{n + 1}",
            "address": f"{net(index)}{80 + n}",
            "roles": roles,
            "size": {"cpu": 8, "memory_gib": 32},
        }
        if "ceph_osd" in roles:
            devices = draw(
                st.lists(
                    st.sampled_from(
                        ["/dev/sdb", "/dev/sdc", "/dev/disk/by-id/wwn-0x1", {"file": "/srv/osd.img", "size_gib": 2}]
                    ),
                    min_size=1,
                    max_size=3,
                    unique_by=lambda d: d if isinstance(d, str) else d["file"],
                )
            )
            entry["osd_devices"] = devices
            osds += len(devices)
            domains.add({"host": entry["name"], "rack": rack["name"], "room": room}[domain])
        rack["hosts"].append(entry)
    section = {"pool_size": draw(st.integers(1, min(osds, len(domains)))), "failure_domain": domain}
    return draw(st.sampled_from([section, dict(section, mode="internal")]))


# -- broken ones ----------------------------------------------------------------------------

ODD_STRINGS = [
    "",
    " ",
    "M1",
    "m1 ",
    "a..b",
    "-a",
    "a" * 300,
    "é",
    "etcd",
    "lb",
    "worker",
    "all",
    "kube_node",
    "rack_r1",
    "tor-1",
    "m1",
    "10.10.1.11",
    "10.10.1.1",
    "10.10.1.254",
    "10.10.1.255",
    "10.10.1.0",
    "10.10.1.0/24",
    "10.10.1.11/24",
    "10.10.1",
    "256.1.1.1",
    "0.0.0.0/0",
    "10.244.0.0/16",
    "10.96.0.1",
    "fd00::1",
    "fd00::/64",
    "fd00:10:1::11",
    "::",
    "::/0",
    "10.255.0.1",
    "10.255.0.11/24",
    "65000",
    "6443",
    "yes",
    "true",
    "null",
    "1e400",
    "-1",
    "{{ idc_rack }}",
    "idc_rack",
    "ansible_host",
    "node-labels",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=12),
    st.sampled_from([0, 1, 20, 27, 32, 33, 64512, 65000, 65101, 65535, 65536, 4294967295, 4294967296]),
)
odd_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(
        st.one_of(st.text(max_size=6), st.integers(0, 3), st.sampled_from(["name", "as", "peer"])), scalars, max_size=3
    ),
)


def _paths(node, path=()):
    # every place a value sits: (container path, key or index)
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key
            yield from _paths(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield path, index
            yield from _paths(value, path + (index,))


def _at(node, path):
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated_descriptions(draw):
    data = copy.deepcopy(draw(valid_descriptions()))
    for _ in range(draw(st.integers(0, 4))):
        places = list(_paths(data))
        if not places:
            break
        path, key = draw(st.sampled_from(places))
        parent = _at(data, path)
        op = draw(st.sampled_from(["replace", "replace", "delete", "unknown_key", "duplicate", "copy"]))
        if op == "replace":
            parent[key] = draw(odd_values)
        elif op == "delete":
            del parent[key]
        elif op == "unknown_key" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["subnett", "colour", "Name", 7]))] = draw(scalars)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "copy":
            other_path, other_key = draw(st.sampled_from(places))
            parent[key] = copy.deepcopy(_at(data, other_path)[other_key])
    return data


# -- the properties -------------------------------------------------------------------------


def check(data):
    """parse_description gives a model the layout takes, or IdcValidationError with path: problem; fix: messages."""
    try:
        model = parse_description(data)
    except IdcValidationError as exc:
        assert exc.errors, "an IdcValidationError without messages"
        for message in exc.errors:
            assert isinstance(message, str) and "; fix: " in message, message
            assert ": " in message.split("; fix: ")[0], message
        assert str(exc).startswith("the IDC description has ")
        return None
    assert isinstance(model, IdcDescription)
    # a valid model always lays out, as plain data
    json.dumps(inventory_layout(model), default=str)
    return model


@settings(FUZZ, max_examples=150)
@given(valid_descriptions())
def test_generated_valid_descriptions_parse(data):
    model = check(data)
    assert model is not None, "a generated valid description was refused"


@FUZZ
@given(mutated_descriptions())
def test_mutated_descriptions_raise_only_the_validation_error(data):
    check(data)


@FUZZ
@given(
    st.one_of(
        odd_values,
        st.dictionaries(st.sampled_from(["plugin", "cluster", "rooms", "vars", "lab", "x"]), odd_values, max_size=5),
    )
)
def test_anything_at_all_raises_only_the_validation_error(data):
    check(data)


@settings(FUZZ, max_examples=100)
@given(mutated_descriptions(), st.integers(0, 200), st.booleans())
def test_yaml_text_checks_never_raise(data, line, duplicate):
    text = yaml.safe_dump(data, sort_keys=False)
    lines = text.splitlines(keepends=True)
    if duplicate and lines:
        # a line written twice: a duplicate key, or text the composer refuses
        index = line % len(lines)
        lines.insert(index, lines[index])
    errors = source_errors("".join(lines))
    assert all(isinstance(e, str) and "; fix: " in e for e in errors)


@settings(FUZZ, max_examples=30)
@given(mutated_descriptions())
def test_the_inventory_plugin_raises_only_its_parser_error(data):
    plugin = inventory_loader.get("idcloud.platform.idc")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "idc.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            plugin.parse(InventoryData(), DataLoader(), str(path), cache=False)
        except AnsibleParserError as exc:
            assert f"{path}: " in str(exc.message)
