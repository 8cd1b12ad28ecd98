# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's Ceph: the ceph section, osd_devices, their rules and the variables they give
(plugins/module_utils/idc/ceph_section.py, model.py, layout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_idc_description import errors_of, host, only_error, small_description

from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (
    IdcValidationError,
    inventory_layout,
    parse_description,
)

REPO = Path(__file__).resolve().parents[2]
S0_PATH = "rooms[room-a].racks[a01].hosts[s0]"
S1_PATH = "rooms[room-a].racks[a02].hosts[s1]"


def ceph_description():
    """small_description with a Ceph a rack-aware cluster can run: 3 mons in 3 racks, 2 mgrs, 6 OSDs, an MDS."""
    data = small_description()
    data["ceph"] = {"mode": "internal"}
    racks = [rack for room in data["rooms"] for rack in room["racks"]]
    racks[0]["hosts"].append(host("s0", "10.10.1.31", ["ceph_mon", "ceph_mgr", "ceph_osd"], osd_devices=["/dev/sdb"]))
    storage(data, "s1")["osd_devices"] = ["/dev/sdb", "/dev/sdc"]
    racks[2]["hosts"].append(
        host("s2", "10.10.3.31", ["ceph_mon", "ceph_osd", "ceph_mds"], osd_devices=["/dev/sdb", "/dev/sdc", "/dev/sdd"])
    )
    return data


@pytest.fixture
def desc():
    return ceph_description()


def storage(data, name):
    return next(h for room in data["rooms"] for rack in room["racks"] for h in rack["hosts"] if h["name"] == name)


def without_role(data, role, *names):
    for name in names:
        entry = storage(data, name)
        entry["roles"] = [r for r in entry["roles"] if r != role]
        if role == "ceph_osd":
            entry.pop("osd_devices", None)
    return data


def warnings_of(data) -> list[str]:
    return parse_description(data).warnings


def only_warning(data) -> str:
    warnings = warnings_of(data)
    assert len(warnings) == 1, warnings
    return warnings[0]


# -- a valid Ceph and what it gives the roles ------------------------------------------------


def test_a_rack_aware_ceph_is_valid_without_warnings(desc):
    model = parse_description(desc)
    assert model.warnings == []
    assert (model.ceph.mode, model.ceph.pool_size, model.ceph.failure_domain, model.ceph.declared) == (
        "internal",
        3,
        "rack",
        True,
    )
    assert [device.path for device in model.host("s2").osd_devices] == ["/dev/sdb", "/dev/sdc", "/dev/sdd"]
    assert model.host("m1").osd_devices == []


def test_idc_ceph_holds_the_section_the_mons_and_the_crush_tree(desc):
    layout = inventory_layout(parse_description(desc))
    assert layout["all_vars"]["idc_ceph"] == {
        "mode": "internal",
        "pool_size": 3,
        "failure_domain": "rack",
        "mons": ["10.10.1.31", "10.10.2.31", "10.10.3.31"],
        "crush_tree": [
            {"room": "room-a", "rack": "a01", "host": "s0"},
            {"room": "room-a", "rack": "a02", "host": "s1"},
            {"room": "room-b", "rack": "b01", "host": "s2"},
        ],
    }
    assert layout["hostvars"]["s1"]["idc_ceph_osd_devices"] == [
        {"path": "/dev/sdb", "file": False, "size_gib": None},
        {"path": "/dev/sdc", "file": False, "size_gib": None},
    ]
    assert layout["hostvars"]["m1"]["idc_ceph_osd_devices"] == []
    assert layout["groups"]["ceph_mds"] == ["s2"]


def test_ceph_roles_without_a_section_are_an_internal_cluster_with_the_defaults(desc):
    del desc["ceph"]
    model = parse_description(desc)
    assert (model.ceph.mode, model.ceph.pool_size, model.ceph.failure_domain, model.ceph.declared) == (
        "internal",
        3,
        "rack",
        False,
    )
    assert inventory_layout(model)["all_vars"]["idc_ceph"]["mons"] == ["10.10.1.31", "10.10.2.31", "10.10.3.31"]


@pytest.mark.parametrize("section", [None, "absent"])
def test_no_section_and_no_ceph_role_is_no_ceph(section):
    data = small_description()
    if section == "absent":
        del data["ceph"]
    else:
        data["ceph"] = section
    without_role(without_role(without_role(data, "ceph_mon", "s1"), "ceph_mgr", "s1"), "ceph_osd", "s1")
    storage(data, "s1")["roles"] = ["worker"]
    model = parse_description(data)
    assert model.ceph is None and model.warnings == [] and model.ceph_mons == [] and model.crush_tree() == []
    layout = inventory_layout(model)
    assert layout["all_vars"]["idc_ceph"] is None
    assert layout["hostvars"]["s1"]["idc_ceph_osd_devices"] == []


def test_file_backed_devices_for_a_lab(desc):
    storage(desc, "s0")["osd_devices"] = [{"file": "/var/lib/ceph-osd/s0-0.img", "size_gib": 2}, "/dev/vdb"]
    model = parse_description(desc)
    first, second = model.host("s0").osd_devices
    assert (first.path, first.file, first.size_gib) == ("/var/lib/ceph-osd/s0-0.img", True, 2)
    assert (second.path, second.file) == ("/dev/vdb", False)
    assert inventory_layout(model)["hostvars"]["s0"]["idc_ceph_osd_devices"] == [
        {"path": "/var/lib/ceph-osd/s0-0.img", "file": True, "size_gib": 2},
        {"path": "/dev/vdb", "file": False, "size_gib": None},
    ]


def test_the_computed_ceph_variables_cannot_be_set_in_vars(desc):
    desc["vars"] = {"idc_ceph": {}}
    storage(desc, "s0")["vars"] = {"idc_ceph_osd_devices": []}
    assert errors_of(desc) == [
        "vars.idc_ceph: idc_ceph is computed from the description and cannot be set in vars; fix: change the "
        "description field it comes from, or use another variable name",
        f"{S0_PATH}.vars.idc_ceph_osd_devices: idc_ceph_osd_devices is computed from the description and cannot be "
        "set in vars; fix: change the description field it comes from, or use another variable name",
    ]


# -- the mons --------------------------------------------------------------------------------


def test_no_mon_is_refused(desc):
    without_role(desc, "ceph_mon", "s0", "s1", "s2")
    assert only_error(desc) == (
        "role ceph_mon: no host has it, and the description places Ceph daemons (s0: ceph_mgr, ceph_osd; "
        "s1: ceph_mgr, ceph_osd; s2: ceph_osd, ceph_mds); fix: give ceph_mon to 3 hosts in 3 racks (1 for a small "
        "lab cluster): without mons there is no cluster"
    )


@pytest.mark.parametrize("mons, even", [(("s1", "s2"), "2 hosts have it (s1, s2)"), (("s0", "s1", "s2", "m3"), None)])
def test_an_even_mon_count_is_refused(desc, mons, even):
    without_role(desc, "ceph_mon", "s0", "s1", "s2")
    for name in mons:
        storage(desc, name)["roles"].append("ceph_mon")
    error = only_error(desc)
    count = len(mons)
    assert error.startswith(f"role ceph_mon: {count} hosts have it (")
    assert error.endswith(
        f"an even number; fix: use an odd number of ceph_mon hosts (e.g. {count - 1} or {count + 1}): an even count "
        "survives no more failures than one member fewer, and a half/half split stops it"
    )
    if even:
        assert even in error


def test_a_single_mon_is_a_warning(desc):
    without_role(desc, "ceph_mon", "s0", "s1")
    assert only_warning(desc) == (
        "role ceph_mon: 1 host has it (s2): the cluster stops whenever that host does; fix: give ceph_mon to 3 hosts "
        "in 3 racks for a cluster that outlives a host; one mon is for a lab or a test"
    )


def test_five_mons_in_five_racks_are_fine(desc):
    desc["rooms"][1]["racks"] += [
        {
            "name": f"b0{n}",
            "subnet": f"10.10.{n + 2}.0/24",
            "gateway": f"10.10.{n + 2}.1",
            "tor": {"as": 65100 + n + 2, "peer": f"10.10.{n + 2}.254"},
            "hosts": [host(f"s{n + 1}", f"10.10.{n + 2}.31", ["ceph_mon"])],
        }
        for n in (2, 3)
    ]
    assert warnings_of(desc) == []


def test_seven_mons_are_a_warning(desc):
    for name in ("m1", "m2", "m3", "w1"):
        storage(desc, name)["roles"].append("ceph_mon")
    warnings = warnings_of(desc)
    assert warnings[0] == (
        "role ceph_mon: 7 hosts have it (m1, w1, s0, m2, s1 and 2 more); fix: use 5 (or 3): every map update waits "
        "for a majority of the mons, so each mon beyond 5 slows the cluster, and 5 already outlive 2 failures"
    )


def test_mons_in_fewer_racks_than_they_could_be_are_a_warning(desc):
    without_role(desc, "ceph_mon", "s2")
    storage(desc, "m1")["roles"].append("ceph_mon")
    assert only_warning(desc) == (
        "role ceph_mon: the 3 mons are in 2 racks (m1, s0 in rack a01; s1 in rack a02), and 3 racks hold hosts; "
        "fix: give ceph_mon to hosts in 3 different racks, one mon per rack: losing rack a01 takes 2 of the 3 mons, "
        "and with them the quorum"
    )


def test_five_mons_with_a_majority_in_one_rack_are_a_warning(desc):
    for name in ("m1", "w1"):
        storage(desc, name)["roles"].append("ceph_mon")
    assert only_warning(desc) == (
        "role ceph_mon: the 5 mons are in 3 racks (m1, w1, s0 in rack a01; s1 in rack a02; s2 in rack b01), and 3 "
        "racks hold hosts; fix: give ceph_mon to hosts in 3 different racks, at most 2 mons per rack: losing rack "
        "a01 takes 3 of the 5 mons, and with them the quorum"
    )


def test_mons_spread_as_far_as_the_racks_allow_are_fine(desc):
    # 5 mons in 3 racks: 2, 2 and 1 is the best there is
    for name in ("w1", "m2"):
        storage(desc, name)["roles"].append("ceph_mon")
    assert warnings_of(desc) == []


def test_three_mons_where_only_two_racks_hold_hosts_are_fine(desc):
    # one of the two racks must hold two mons: nothing better is possible
    desc["rooms"][1]["racks"][0]["hosts"] = []
    desc["rooms"][0]["racks"][1]["hosts"] += [
        host("m3", "10.10.2.13", ["etcd", "control_plane"]),
        host("s2", "10.10.2.32", ["ceph_mon", "ceph_osd"], osd_devices=["/dev/sdb"]),
    ]
    desc["ceph"]["failure_domain"] = "host"
    assert warnings_of(desc) == []


# -- the daemons a cluster needs -------------------------------------------------------------


def test_a_cluster_without_a_mgr_is_refused(desc):
    without_role(desc, "ceph_mgr", "s0", "s1")
    assert only_error(desc) == (
        "role ceph_mgr: no host has it, and the description places Ceph daemons (s0: ceph_mon, ceph_osd; s1: "
        "ceph_mon, ceph_osd; s2: ceph_mon, ceph_osd, ceph_mds); fix: give ceph_mgr to 2 hosts (one active, one "
        "standby), e.g. two of the mon hosts: without a mgr the cluster has no PG statistics, no PG autoscaler and "
        "no ceph fs subvolume (the mgr's volumes module)"
    )


def test_mds_without_any_osd_is_refused(desc):
    without_role(desc, "ceph_osd", "s0", "s1", "s2")
    assert only_error(desc) == (
        "role ceph_osd: no host has it, and the description places Ceph daemons (s0: ceph_mon, ceph_mgr; s1: "
        "ceph_mon, ceph_mgr; s2: ceph_mon, ceph_mds); fix: give ceph_osd (with osd_devices) to hosts in at least 3 "
        "racks (ceph.pool_size replicas, one per rack): pools, RBD images and CephFS (its metadata too) live on OSDs"
    )


def test_a_ceph_section_without_ceph_hosts_is_refused(desc):
    for name in ("s0", "s1", "s2"):
        storage(desc, name)["roles"] = ["worker"]
        storage(desc, name).pop("osd_devices")
    assert only_error(desc) == (
        "ceph: asks for a Ceph cluster the collection deploys (mode internal), and no host has a Ceph role; fix: "
        "give ceph_mon, ceph_mgr and ceph_osd to the storage hosts, set mode: external to use the storage team's "
        "cluster, or remove the ceph section"
    )


def test_the_ceph_rules_hold_in_a_partial_description_too(desc):
    desc["cluster"]["partial"] = True
    without_role(desc, "ceph_mgr", "s0", "s1")
    assert only_error(desc).startswith("role ceph_mgr: no host has it")


# -- OSD devices -----------------------------------------------------------------------------


def test_an_osd_host_without_devices_is_refused(desc):
    del storage(desc, "s1")["osd_devices"]
    assert only_error(desc) == (
        f"{S1_PATH}.osd_devices: missing, and host s1 has the ceph_osd role; fix: name the devices its OSDs take, one "
        "OSD per device, e.g. osd_devices: [/dev/sdb, /dev/sdc]; in a lab a file-backed one: "
        "[{file: /var/lib/ceph-osd/s1-0.img, size_gib: 10}]"
    )


def test_devices_on_a_host_without_the_osd_role_are_refused(desc):
    storage(desc, "m1")["osd_devices"] = ["/dev/sdb"]
    assert only_error(desc) == (
        "rooms[room-a].racks[a01].hosts[m1].osd_devices: host m1 has osd_devices and not the ceph_osd role; fix: add "
        "ceph_osd to its roles, or remove osd_devices"
    )


def test_a_device_named_twice_on_a_host_is_refused(desc):
    storage(desc, "s1")["osd_devices"] = ["/dev/sdb", "/dev/sdc", "/dev/sdb"]
    assert only_error(desc) == (
        f"{S1_PATH}.osd_devices[2]: /dev/sdb is listed twice (also at {S1_PATH}.osd_devices[0]); fix: list each "
        "device once: one device is one OSD"
    )


def test_the_same_device_name_on_two_hosts_is_fine(desc):
    assert storage(desc, "s0")["osd_devices"][0] == storage(desc, "s1")["osd_devices"][0] == "/dev/sdb"
    parse_description(desc)


@pytest.mark.parametrize(
    "device, problem",
    [
        ("sdb", "'sdb' is not an absolute path; fix: write the whole path, e.g. /dev/sdb"),
        (
            "/var/lib/osd.img",
            "'/var/lib/osd.img' is not a device under /dev; fix: name a block device (/dev/sdb, /dev/disk/by-id/...), "
            "or write a file-backed device as {file: /var/lib/osd.img, size_gib: 10}",
        ),
        (
            "/dev//sdb",
            "'/dev//sdb' is not a plain path; fix: write it without '.', '..', repeated or trailing '/': /dev/sdb",
        ),
        (
            "/dev/../sdb",
            "'/dev/../sdb' is not a plain path; fix: write it without '.', '..', repeated or trailing '/': /sdb",
        ),
        ("/dev/sd b", "'/dev/sd b' holds a space; fix: name a path without spaces, e.g. /dev/sdb"),
        (
            7,
            "expected a device path or a mapping, got an integer 7; fix: write a block device as /dev/sdb, or a "
            "file-backed device as {file: /var/lib/ceph-osd/osd-0.img, size_gib: 10}",
        ),
    ],
)
def test_device_paths_are_plain_absolute_paths_under_dev(desc, device, problem):
    storage(desc, "s1")["osd_devices"] = ["/dev/sdb", device]
    assert only_error(desc) == f"{S1_PATH}.osd_devices[1]: {problem}"


@pytest.mark.parametrize(
    "device, problem",
    [
        (
            {"file": "/dev/loop0", "size_gib": 2},
            ".file: '/dev/loop0' is under /dev; fix: name a block device as a plain string (/dev/loop0); file: is a "
            "file the role makes, e.g. /var/lib/ceph-osd/osd-0.img",
        ),
        (
            {"file": "osd.img", "size_gib": 2},
            ".file: 'osd.img' is not an absolute path; fix: write the whole path, e.g. ",
        ),
        (
            {"file": "/srv/osd.img", "size_gib": "10"},
            ".size_gib: expected a positive number, got a string '10'; fix: write the file's size in GiB without "
            "quotes, e.g. 10",
        ),
        ({"file": "/srv/osd.img", "size_gib": 0}, ".size_gib: expected a positive number, got an integer 0; fix: "),
        ({"file": "/srv/osd.img"}, ".size_gib: missing; fix: add it, e.g. size_gib: 10"),
        ({"size_gib": 2}, ".file: missing; fix: add it, e.g. file: /var/lib/ceph-osd/osd-0.img"),
        (
            {"file": "/srv/osd.img", "size_gib": 2, "sise_gib": 2},
            ".sise_gib: unknown key 'sise_gib'; fix: did you mean size_gib?",
        ),
    ],
)
def test_file_backed_devices_need_an_absolute_file_and_a_size(desc, device, problem):
    storage(desc, "s1")["osd_devices"] = [device]
    assert only_error(desc).startswith(f"{S1_PATH}.osd_devices[0]{problem}")


@pytest.mark.parametrize(
    "value, problem",
    [
        (
            [],
            "is empty; fix: name the host's OSD devices, e.g. osd_devices: [/dev/sdb], or remove the key from a host "
            "without the ceph_osd role",
        ),
        (
            "/dev/sdb",
            "expected a list, got a string '/dev/sdb'; fix: write it as a YAML list, e.g. [/dev/sdb, /dev/sdc]",
        ),
    ],
)
def test_osd_devices_is_a_list_of_at_least_one(desc, value, problem):
    storage(desc, "s1")["osd_devices"] = value
    assert only_error(desc) == f"{S1_PATH}.osd_devices: {problem}"


# -- the pool size against the OSDs and the failure domains ----------------------------------


def test_a_pool_size_above_the_osd_count_is_refused(desc):
    desc["ceph"]["pool_size"] = 7
    errors = errors_of(desc)
    assert errors[0] == (
        "ceph.pool_size: 7 is above the 6 OSDs the description names (osd_devices of s0, s1, s2); fix: set pool_size "
        "to at most 6, or name more osd_devices: a pool with more replicas than OSDs never becomes active+clean"
    )
    # 7 replicas do not fit 3 racks either
    assert errors[1].startswith("ceph.pool_size: 7 is above the 3 racks that hold OSDs (a01, a02, b01)")


def test_the_default_pool_size_above_the_racks_holding_osds_is_refused(desc):
    without_role(desc, "ceph_osd", "s2")
    assert only_error(desc) == (
        "ceph.pool_size: 3 (the default) is above the 2 racks that hold OSDs (a01, a02), and ceph.failure_domain is "
        "rack (the default); fix: give ceph_osd (with osd_devices) to hosts in 3 racks, set pool_size to 2, or set failure_domain "
        "to host: CRUSH puts each replica in a different rack, so with fewer racks than replicas the PGs stay "
        "undersized"
    )


def test_the_pool_size_against_rooms(desc):
    desc["ceph"]["failure_domain"] = "room"
    assert only_error(desc) == (
        "ceph.pool_size: 3 (the default) is above the 2 rooms that hold OSDs (room-a, room-b), and "
        "ceph.failure_domain is room; fix: give ceph_osd (with osd_devices) to hosts in 3 rooms, set pool_size to 2, "
        "or set failure_domain to rack or host: CRUSH puts each replica in a different room, so with fewer rooms "
        "than replicas the PGs stay undersized"
    )
    desc["ceph"]["pool_size"] = 2
    assert parse_description(desc).ceph.failure_domain == "room"


def test_the_pool_size_against_hosts(desc):
    desc["ceph"].update(failure_domain="host", pool_size=3)
    without_role(desc, "ceph_osd", "s2")
    assert only_error(desc) == (
        "ceph.pool_size: 3 is above the 2 hosts that hold OSDs (s0, s1), and ceph.failure_domain is host; fix: give "
        "ceph_osd (with osd_devices) to 3 hosts, or set pool_size to 2: CRUSH puts each replica in a different host, "
        "so with fewer hosts than replicas the PGs stay undersized"
    )


def test_without_the_rack_failure_domain_two_osd_hosts_in_one_rack_count_twice(desc):
    desc["ceph"]["failure_domain"] = "host"
    without_role(desc, "ceph_osd", "s2")
    storage(desc, "m2")["roles"].append("ceph_osd")
    storage(desc, "m2")["osd_devices"] = ["/dev/nvme0n1"]
    assert parse_description(desc).ceph.failure_domain == "host"


def test_a_pool_size_of_one_is_a_warning(desc):
    desc["ceph"]["pool_size"] = 1
    assert only_warning(desc) == (
        "ceph.pool_size: 1 keeps a single copy of every object: losing one OSD loses data; fix: use 3 (2 at the "
        "least) for data that matters; a pool size of 1 is for a lab, and Ceph accepts it only with "
        "mon_allow_pool_size_one"
    )


@pytest.mark.parametrize(
    "value, shown", [(0, "an integer 0"), (11, "an integer 11"), ("3", "a string '3'"), (True, "a boolean True")]
)
def test_pool_size_is_an_integer_1_to_10(desc, value, shown):
    desc["ceph"]["pool_size"] = value
    assert only_error(desc) == (
        f"ceph.pool_size: expected a pool size 1..10, got {shown}; fix: write the number of replicas without quotes, "
        "e.g. 3"
    )


# -- the section's fields --------------------------------------------------------------------


def test_an_unknown_mode_suggests_the_closest(desc):
    desc["ceph"]["mode"] = "externel"
    assert only_error(desc) == (
        "ceph.mode: expected one of internal, external, got a string 'externel'; fix: did you mean external? "
        "internal: the collection deploys Ceph on the hosts with the Ceph roles; external: the storage team's "
        "cluster, reached at ceph.external.mons"
    )


def test_an_unknown_failure_domain_lists_the_known_ones(desc):
    desc["ceph"]["failure_domain"] = "datacenter"
    assert only_error(desc) == (
        "ceph.failure_domain: expected one of host, rack, room, got a string 'datacenter'; fix: the level of the "
        "description each replica goes to a different one of: rack (the default), room or host"
    )


def test_unknown_keys_in_the_ceph_section(desc):
    desc["ceph"]["poolsize"] = 3
    assert only_error(desc) == "ceph.poolsize: unknown key 'poolsize'; fix: did you mean pool_size?"


def test_the_section_is_a_mapping(desc):
    desc["ceph"] = ["internal"]
    assert only_error(desc) == (
        "ceph: expected a mapping, got a list ['internal']; fix: write it as a mapping, e.g. "
        "{mode: internal, pool_size: 3}"
    )


def test_external_is_refused_in_internal_mode(desc):
    desc["ceph"]["external"] = {"mons": ["10.20.0.11"]}
    assert only_error(desc) == (
        "ceph.external: is set, and ceph.mode is internal; fix: set mode: external to use the storage team's "
        "cluster, or remove external: in internal mode the mons are the hosts with the ceph_mon role"
    )


def test_a_broken_section_holds_back_the_rules_that_need_it(desc):
    # with pool_size unreadable the devices and pool rules would only add noise
    desc["ceph"]["pool_size"] = "3"
    del storage(desc, "s1")["osd_devices"]
    assert only_error(desc).startswith("ceph.pool_size: expected a pool size 1..10")


def test_a_mistyped_role_holds_back_the_ceph_rules(desc):
    storage(desc, "s0")["roles"] = ["ceph_mgr", "ceph_osdd"]
    without_role(desc, "ceph_mgr", "s1")
    assert only_error(desc).startswith(f"{S0_PATH}.roles: unknown role 'ceph_osdd'; fix: did you mean ceph_osd?")


# -- the CRUSH names -------------------------------------------------------------------------


def test_a_rack_named_like_an_osd_host_is_refused(desc):
    desc["rooms"][0]["racks"][1]["name"] = "s0"
    assert only_error(desc) == (
        "rooms[room-a].racks[s0].name: rack s0 has the CRUSH name of host s0 (rooms[room-a].racks[a01].hosts[s0].name); "
        "fix: rename one of them: the CRUSH map names the root (default), rooms, racks and hosts in one name space"
    )


def test_a_room_named_like_the_crush_root_is_refused(desc):
    desc["rooms"][1]["name"] = "default"
    assert only_error(desc) == (
        "rooms[default].name: room default has the CRUSH name of the CRUSH root; fix: rename the room: the CRUSH map "
        "names the root (default), rooms, racks and hosts in one name space"
    )


def test_crush_names_only_count_where_osds_are(desc):
    # rack a01 holds no OSD host any more, so a host named a01 elsewhere does not meet it in CRUSH
    without_role(desc, "ceph_osd", "s0")
    storage(desc, "s1")["osd_devices"] = ["/dev/sdb"]
    desc["ceph"]["pool_size"] = 2
    parse_description(desc)


# -- external mode ---------------------------------------------------------------------------


def external(data, mons=("10.20.0.11", "10.20.0.12", "10.20.0.13")):
    for name in ("s0", "s1", "s2"):
        entry = storage(data, name)
        entry["roles"] = ["worker"]
        entry.pop("osd_devices")
    data["ceph"] = {"mode": "external", "external": {"mons": list(mons)}}
    return data


def test_external_mode_gives_the_storage_teams_mons(desc):
    model = parse_description(external(desc))
    assert model.warnings == []
    assert inventory_layout(model)["all_vars"]["idc_ceph"] == {
        "mode": "external",
        "pool_size": 3,
        "failure_domain": None,
        "mons": ["10.20.0.11", "10.20.0.12", "10.20.0.13"],
        "crush_tree": [],
    }


def test_external_mode_refuses_ceph_daemon_roles(desc):
    external(desc)
    storage(desc, "s0")["roles"] = ["worker", "ceph_mon", "ceph_osd"]
    assert only_error(desc) == (
        f"{S0_PATH}.roles: host s0 has ceph_mon, ceph_osd, and ceph.mode is external; fix: remove the Ceph roles: in "
        "external mode the storage team runs the mons, mgrs, OSDs and MDSs, and the collection only connects to "
        "ceph.external.mons"
    )


def test_external_mode_needs_the_mons(desc):
    external(desc)
    del desc["ceph"]["external"]
    assert only_error(desc) == (
        "ceph.external: missing; fix: add it, e.g. external: {mons: [10.20.0.11, 10.20.0.12, 10.20.0.13]}"
    )
    desc["ceph"]["external"] = {"mons": []}
    assert only_error(desc) == (
        "ceph.external.mons: is empty; fix: list the addresses of the storage team's mons, e.g. [10.20.0.11]"
    )


def test_external_mons_are_addresses_each_once(desc):
    external(desc, mons=("10.20.0.11", "10.20.0.11", "mon-a"))
    assert errors_of(desc) == [
        "ceph.external.mons[1]: 10.20.0.11 is listed twice (also at ceph.external.mons[0]); fix: list each mon once",
        "ceph.external.mons[2]: 'mon-a' is not a valid IP address; fix: write it as e.g. 10.20.0.11",
    ]


def test_external_mons_are_in_the_clusters_address_family(desc):
    external(desc, mons=("10.20.0.11", "fd00:20::11"))
    assert only_error(desc) == (
        "ceph.external.mons[1]: fd00:20::11 is IPv6, but cluster.pod_cidr 10.244.0.0/16 is IPv4; fix: give the mons' "
        "IPv4 addresses: the hosts reach them over the cluster's one address family"
    )


def test_external_mode_refuses_a_failure_domain(desc):
    external(desc)["ceph"]["failure_domain"] = "rack"
    assert only_error(desc) == (
        "ceph.failure_domain: 'rack' is set, and ceph.mode is external; fix: remove it: the storage team's CRUSH map "
        "decides where its replicas go"
    )


def test_devices_in_external_mode_are_refused(desc):
    external(desc)
    storage(desc, "s1")["osd_devices"] = ["/dev/sdb"]
    assert only_error(desc) == (
        f"{S1_PATH}.osd_devices: host s1 has osd_devices and not the ceph_osd role; fix: add ceph_osd to its roles, "
        "or remove osd_devices"
    )


def test_every_ceph_problem_is_reported_at_once(desc):
    desc["ceph"]["pool_size"] = 3
    without_role(desc, "ceph_mgr", "s0", "s1")
    del storage(desc, "s1")["osd_devices"]
    storage(desc, "m1")["osd_devices"] = ["/dev/sdb"]
    with pytest.raises(IdcValidationError) as info:
        parse_description(desc)
    assert [error.split(":")[0] for error in info.value.errors] == [
        "rooms[room-a].racks[a01].hosts[m1].osd_devices",
        "role ceph_mgr",
        f"{S1_PATH}.osd_devices",
    ]


# -- the shipped descriptions ----------------------------------------------------------------


def test_the_sample_has_a_rack_aware_ceph_without_warnings():
    model = parse_description(yaml.safe_load((REPO / "inventories/sample/idc.yml").read_text()))
    assert model.warnings == []
    ceph = inventory_layout(model)["all_vars"]["idc_ceph"]
    assert (ceph["mode"], ceph["pool_size"], ceph["failure_domain"]) == ("internal", 3, "rack")
    assert len(ceph["mons"]) == 3
    assert len({entry["rack"] for entry in ceph["crush_tree"]}) == 4
    assert all(len(model.host(entry["host"]).osd_devices) == 3 for entry in ceph["crush_tree"])


@pytest.mark.parametrize("size", [float("inf"), float("nan"), -1, True])
def test_a_file_size_is_a_finite_positive_number(desc, size):
    storage(desc, "s1")["osd_devices"] = [{"file": "/srv/osd.img", "size_gib": size}]
    assert ".osd_devices[0].size_gib: expected a positive number, got " in only_error(desc)
    # an integer too large for a float is still a number, and must not crash the check
    storage(desc, "s1")["osd_devices"] = [{"file": "/srv/osd.img", "size_gib": 10**400}]
    parse_description(desc)
