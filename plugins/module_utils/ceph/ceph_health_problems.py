# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What keeps a Ceph cluster from being whole and healthy, read from `ceph status --format json`.

The ceph role waits on it after a first start and between rolling restarts: every mon in the
quorum, a mgr available (and the standbys), every OSD up and in, every PG active+clean, the MDS
daemons up, and
the health HEALTH_OK or HEALTH_WARN with nothing but allowed checks (HEALTH_ERR never passes).
ceph_health_problems() is pure: the parsed status in, one line per problem out ([] = healthy).
"""

from __future__ import annotations

CLEAN = "active+clean"


class CephStatusError(ValueError):
    """The input is not the output of `ceph status --format json`."""


def _osdmap(status):
    osdmap = status.get("osdmap") or {}
    # Nautilus and Octopus nest the counts one level deeper than Pacific
    return osdmap.get("osdmap", osdmap)


def _mds_daemons(fsmap):
    """(active ranks, standbys) of `ceph status`'s fsmap."""
    ranks = fsmap.get("by_rank") or []
    active = sum(1 for rank in ranks if str(rank.get("status", "")).startswith("up:active"))
    return active, int(fsmap.get("up:standby") or 0)


def ceph_health_problems(status, mons=None, osds=None, mds=None, allowed_checks=(), mgrs=None):
    """Lines naming what is not yet whole and healthy; [] when nothing is.

    status: parsed `ceph status --format json`; mons, mgrs, osds, mds: the daemon counts the
    cluster should have (None: not checked); allowed_checks: health check codes (MON_DISK_LOW)
    that may stand as warnings.
    """
    if not isinstance(status, dict) or "health" not in status:
        raise CephStatusError(
            "not the output of `ceph status --format json` (no health): %s"
            % (sorted(status) if isinstance(status, dict) else type(status).__name__)
        )
    problems = []
    allowed = set(allowed_checks or ())
    health = status.get("health") or {}
    for code, check in sorted((health.get("checks") or {}).items()):
        severity = check.get("severity", "HEALTH_WARN")
        if check.get("muted") or (code in allowed and severity == "HEALTH_WARN"):
            continue
        message = (check.get("summary") or {}).get("message", "")
        problems.append("%s %s: %s" % (severity, code, message))
    if not problems and health.get("status") not in ("HEALTH_OK", "HEALTH_WARN"):
        problems.append("health is %s" % health.get("status"))

    quorum = status.get("quorum_names") or []
    if mons is not None and len(quorum) < int(mons):
        problems.append("quorum: %d of %d mons (%s)" % (len(quorum), int(mons), ", ".join(quorum) or "none"))
    mgrmap = status.get("mgrmap") or {}
    if not mgrmap.get("available", False):
        problems.append("mgr: none available")
    elif mgrs is not None and 1 + int(mgrmap.get("num_standbys") or 0) < int(mgrs):
        problems.append("mgrs: 1 active, %d standby of %d" % (int(mgrmap.get("num_standbys") or 0), int(mgrs)))

    osdmap = _osdmap(status)
    total, up, in_ = (int(osdmap.get(key) or 0) for key in ("num_osds", "num_up_osds", "num_in_osds"))
    if up < total or in_ < total or (osds is not None and total < int(osds)):
        wanted = "" if osds is None else ", %d expected" % int(osds)
        problems.append("OSDs: %d up, %d in of %d%s" % (up, in_, total, wanted))

    pgmap = status.get("pgmap") or {}
    others = [
        "%d %s" % (state.get("count", 0), state.get("state_name"))
        for state in pgmap.get("pgs_by_state") or []
        if state.get("state_name") != CLEAN
    ]
    if others:
        problems.append("PGs: %s of %d not active+clean" % (", ".join(others), int(pgmap.get("num_pgs") or 0)))

    if mds is not None and int(mds) > 0:
        active, standby = _mds_daemons(status.get("fsmap") or {})
        if active + standby < int(mds):
            problems.append("MDS: %d active, %d standby of %d" % (active, standby, int(mds)))
    return problems
