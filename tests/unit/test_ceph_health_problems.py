"""ceph_health_problems: what keeps a Ceph cluster from being whole and healthy, from `ceph status`."""

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter.ceph_health_problems import FilterModule
from ansible_collections.idcloud.platform.plugins.module_utils.ceph.ceph_health_problems import (
    CephStatusError,
    ceph_health_problems,
)

# Shaped as Ceph 16.2 prints `ceph status --format json` (fields the filter does not read left out)
HEALTHY = {
    "fsid": "6f0c4d0e-2c4e-4b43-9d55-0d3e0e7b9a11",
    "health": {"status": "HEALTH_OK", "checks": {}, "mutes": []},
    "quorum": [0, 1, 2],
    "quorum_names": ["c1", "c2", "c3"],
    "monmap": {"epoch": 1, "num_mons": 3},
    "osdmap": {"epoch": 21, "num_osds": 3, "num_up_osds": 3, "num_in_osds": 3, "num_remapped_pgs": 0},
    "pgmap": {"pgs_by_state": [{"state_name": "active+clean", "count": 97}], "num_pools": 4, "num_pgs": 97},
    "fsmap": {
        "epoch": 5,
        "id": 1,
        "up": 1,
        "in": 1,
        "max": 1,
        "by_rank": [{"filesystem_id": 1, "rank": 0, "name": "c1", "status": "up:active", "gid": 4242}],
        "up:standby": 1,
    },
    "mgrmap": {"available": True, "num_standbys": 2},
}


def status(**changes):
    data = copy.deepcopy(HEALTHY)
    for key, value in changes.items():
        data[key] = value
    return data


def warn(code, message, severity="HEALTH_WARN", muted=False):
    return {code: {"severity": severity, "summary": {"message": message, "count": 1}, "muted": muted}}


def test_a_whole_healthy_cluster_has_no_problems():
    assert ceph_health_problems(HEALTHY, mons=3, mgrs=3, osds=3, mds=2) == []
    assert ceph_health_problems(HEALTHY) == []


def test_every_check_is_named_with_its_severity_and_message():
    checks = {**warn("OSD_DOWN", "1 osds down"), **warn("PG_AVAILABILITY", "Reduced data availability", "HEALTH_ERR")}
    got = ceph_health_problems(status(health={"status": "HEALTH_ERR", "checks": checks}))
    assert got == ["HEALTH_WARN OSD_DOWN: 1 osds down", "HEALTH_ERR PG_AVAILABILITY: Reduced data availability"]


def test_allowed_warnings_pass_errors_and_other_warnings_do_not():
    checks = {**warn("MON_DISK_LOW", "mons c1 are low on available space"), **warn("OSD_NEARFULL", "1 nearfull osd(s)")}
    sick = status(health={"status": "HEALTH_WARN", "checks": checks})
    assert ceph_health_problems(sick, allowed_checks=["MON_DISK_LOW"]) == [
        "HEALTH_WARN OSD_NEARFULL: 1 nearfull osd(s)"
    ]
    assert ceph_health_problems(sick, allowed_checks=["MON_DISK_LOW", "OSD_NEARFULL"]) == []
    err = status(health={"status": "HEALTH_ERR", "checks": warn("MON_DISK_CRIT", "low", "HEALTH_ERR")})
    assert ceph_health_problems(err, allowed_checks=["MON_DISK_CRIT"]) == ["HEALTH_ERR MON_DISK_CRIT: low"]


def test_a_muted_check_passes():
    muted = status(health={"status": "HEALTH_OK", "checks": warn("RECENT_CRASH", "1 daemons crashed", muted=True)})
    assert ceph_health_problems(muted) == []


def test_a_missing_mon_a_missing_mgr_and_osds_down_or_out():
    sick = status(
        quorum_names=["c1", "c2"],
        mgrmap={"available": False},
        osdmap={"num_osds": 3, "num_up_osds": 2, "num_in_osds": 3},
    )
    assert ceph_health_problems(sick, mons=3, osds=3) == [
        "quorum: 2 of 3 mons (c1, c2)",
        "mgr: none available",
        "OSDs: 2 up, 3 in of 3, 3 expected",
    ]
    assert ceph_health_problems(status(osdmap={"num_osds": 2, "num_up_osds": 2, "num_in_osds": 2}), osds=3) == [
        "OSDs: 2 up, 2 in of 2, 3 expected"
    ]


def test_mgrs_count_the_active_one_and_the_standbys():
    assert ceph_health_problems(HEALTHY, mgrs=3) == []
    assert ceph_health_problems(status(mgrmap={"available": True, "num_standbys": 1}), mgrs=3) == [
        "mgrs: 1 active, 1 standby of 3"
    ]


def test_older_releases_nest_the_osd_counts():
    nested = status(osdmap={"osdmap": {"num_osds": 3, "num_up_osds": 3, "num_in_osds": 2}})
    assert ceph_health_problems(nested) == ["OSDs: 3 up, 2 in of 3"]


def test_pgs_in_any_other_state_are_listed():
    pgmap = {
        "num_pgs": 97,
        "pgs_by_state": [
            {"state_name": "active+clean", "count": 60},
            {"state_name": "active+undersized+degraded", "count": 33},
            {"state_name": "peering", "count": 4},
        ],
    }
    assert ceph_health_problems(status(pgmap=pgmap)) == [
        "PGs: 33 active+undersized+degraded, 4 peering of 97 not active+clean"
    ]


def test_mds_daemons_count_active_and_standby():
    assert ceph_health_problems(HEALTHY, mds=2) == []
    assert ceph_health_problems(HEALTHY, mds=3) == ["MDS: 1 active, 1 standby of 3"]
    # before the file system exists every MDS is a standby
    assert ceph_health_problems(status(fsmap={"epoch": 2, "by_rank": [], "up:standby": 2}), mds=2) == []
    assert ceph_health_problems(status(fsmap={}), mds=0) == []


def test_not_a_status_is_refused_naming_what_it_got():
    with pytest.raises(CephStatusError, match=r"no health\): \['fsid'\]"):
        ceph_health_problems({"fsid": "x"})
    with pytest.raises(AnsibleFilterError, match="list"):
        FilterModule().filters()["ceph_health_problems"]([])


def test_the_filter_passes_its_arguments():
    sick = status(quorum_names=["c1"])
    assert FilterModule().filters()["ceph_health_problems"](sick, mons=3) == ["quorum: 1 of 3 mons (c1)"]
