"""The e2e cluster's Ceph, placed by the lab's IDC description: a mon and a 3 GiB file OSD in
each of the three racks (on the control-plane hosts, where e2e.py moves the spares' roles), the
mgrs and MDSs on two, pool size 3 with the rack as failure domain (inventories/lab/idc.yml).

Everything is read from the cluster with the ceph command line on a mon host: the quorum and
where its mons are, the CRUSH tree against the description's rooms and racks, each PG's acting
set, the MDSs. A second run of ceph.yml changes nothing; a stopped mon leaves a quorum that
still serves writes, and the cluster is HEALTH_OK again when it returns.
"""

import json
import time

import pytest

from e2e import FIGURES, ctr, hosts_with, racks, wait_for
from lab_helpers import playbook, podman_exec

pytestmark = pytest.mark.storage


def ceph(cluster, *args, host=None):
    """`ceph <args> --format json` on a mon host, parsed."""
    host = host or hosts_with(cluster["desc"], "ceph_mon")[0]["name"]
    return json.loads(podman_exec(ctr(host), "ceph", *args, "--format", "json").stdout)


def last_json_object(text):
    """The JSON object that ends `text` (a command may print lines of progress before it)."""
    decoder = json.JSONDecoder()
    for start in (i for i, c in enumerate(text) if c == "{"):
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if not text[end:].strip():
            return value
    return {"output": text}


def rack_of_host(desc):
    return {h["name"]: rack["name"] for rack in racks(desc) for h in rack["hosts"]}


def test_three_mons_in_quorum_one_per_rack(cluster):
    desc = cluster["desc"]
    mons = sorted(h["name"] for h in hosts_with(desc, "ceph_mon"))
    assert len(mons) == 3, mons
    quorum = ceph(cluster, "quorum_status")["quorum_names"]
    assert sorted(quorum) == mons
    assert len({rack_of_host(desc)[m] for m in quorum}) == 3, quorum


def test_the_crush_tree_is_the_description_rooms_racks_and_hosts(cluster):
    desc = cluster["desc"]
    nodes = ceph(cluster, "osd", "tree")["nodes"]
    by_id = {n["id"]: n for n in nodes}
    parent = {child: n["name"] for n in nodes for child in n.get("children", [])}
    kind = {n["name"]: n["type"] for n in nodes}
    osd_hosts = {h["name"] for h in hosts_with(desc, "ceph_osd")}
    # every room and rack that holds an OSD host, under the room the description puts it in
    for room in desc["rooms"]:
        for rack in room["racks"]:
            hosts = osd_hosts & {h["name"] for h in rack["hosts"]}
            if not hosts:
                continue
            rack_id = next(n["id"] for n in nodes if n["name"] == rack["name"])
            assert kind[rack["name"]] == "rack" and parent[rack_id] == room["name"], (rack["name"], parent.get(rack_id))
            room_id = next(n["id"] for n in nodes if n["name"] == room["name"])
            assert kind[room["name"]] == "room" and parent[room_id] == "default"
            for host in hosts:
                host_id = next(n["id"] for n in nodes if n["name"] == host)
                assert kind[host] == "host" and parent[host_id] == rack["name"], (host, parent.get(host_id))
    osds = [n for n in by_id.values() if n["type"] == "osd"]
    assert sorted(parent[o["id"]] for o in osds) == sorted(osd_hosts)
    assert all(o["status"] == "up" and o["reweight"] == 1 for o in osds), osds


def test_each_pg_of_a_size_3_pool_has_its_replicas_in_three_racks(cluster):
    desc = cluster["desc"]
    rule = ceph(cluster, "osd", "crush", "rule", "dump", "replicated_rack")
    assert {"op": "chooseleaf_firstn", "num": 0, "type": "rack"} in rule["steps"], rule["steps"]
    pools = {p["pool_name"]: p for p in ceph(cluster, "osd", "pool", "ls", "detail")}
    for name in ("rbd", "cephfs.cephfs.meta", "cephfs.cephfs.data"):
        assert (pools[name]["size"], pools[name]["crush_rule"]) == (3, rule["rule_id"]), name
    rack = rack_of_host(desc)
    host_of = {
        c: n["name"] for n in ceph(cluster, "osd", "tree")["nodes"] if n["type"] == "host" for c in n["children"]
    }
    for name in ("rbd", "cephfs.cephfs.data"):
        listing = ceph(cluster, "pg", "ls-by-pool", name)
        pgs = listing["pg_stats"] if isinstance(listing, dict) else listing
        assert pgs, listing
        assert all(pg["state"] == "active+clean" for pg in pgs), [(pg["pgid"], pg["state"]) for pg in pgs]
        for pg in pgs:
            assert len({rack[host_of[osd]] for osd in pg["acting"]}) == 3, (pg["pgid"], pg["acting"])
    mapped = ceph(cluster, "pg", "map", pgs[0]["pgid"])
    assert len({rack[host_of[osd]] for osd in mapped["acting"]}) == 3, mapped


def test_health_ok_with_an_active_and_a_standby_mds(cluster):
    status = ceph(cluster, "status")
    assert status["health"]["status"] == "HEALTH_OK", status["health"]
    assert [rank["status"] for rank in status["fsmap"]["by_rank"]] == ["up:active"], status["fsmap"]
    assert status["fsmap"]["up:standby"] == 1, status["fsmap"]
    assert status["mgrmap"]["available"] and status["mgrmap"]["num_standbys"] == 1, status["mgrmap"]


def test_a_second_run_of_ceph_changes_nothing(cluster, tmp_path):
    """The make test cluster has no Ceph, so its site.yml no-op does not cover it."""
    started = time.monotonic()
    recap = playbook(cluster["idc"], "ceph.yml", log=str(tmp_path / "noop-ceph.log"))
    print(f"ceph.yml no-op: {time.monotonic() - started:.1f} s")
    ceph_hosts = {
        h["name"]
        for role in ("ceph_mon", "ceph_mgr", "ceph_osd", "ceph_mds")
        for h in hosts_with(cluster["desc"], role)
    }
    assert set(recap) == ceph_hosts, recap
    changed = {host: r[1] for host, r in recap.items() if r[1]}
    assert changed == {}, f"a second run of ceph.yml changed: {changed} (see {tmp_path}/noop-ceph.log)"


@pytest.mark.drill
def test_a_stopped_mon_leaves_a_quorum_that_serves_writes(cluster):
    desc = cluster["desc"]
    mons = [h["name"] for h in hosts_with(desc, "ceph_mon")]
    stopped, asker = mons[-1], mons[0]
    podman_exec(ctr(stopped), "systemctl", "stop", f"ceph-mon@{stopped}")
    try:
        quorum = wait_for(
            "the quorum without the stopped mon",
            lambda: (q := ceph(cluster, "quorum_status", host=asker)["quorum_names"]) and stopped not in q and q,
            timeout=60,
        )
        assert sorted(quorum) == sorted(mons[:-1])
        # the cluster still takes a write and reads it back
        podman_exec(
            ctr(asker),
            "sh",
            "-c",
            "echo idcloud-drill > /tmp/drill-in && rados -p rbd put drill-object /tmp/drill-in"
            " && rados -p rbd get drill-object /tmp/drill-out",
        )
        assert podman_exec(ctr(asker), "cat", "/tmp/drill-out").stdout.strip() == "idcloud-drill"
        podman_exec(ctr(asker), "sh", "-c", "rados -p rbd rm drill-object && rm /tmp/drill-in /tmp/drill-out")
    finally:
        podman_exec(ctr(stopped), "systemctl", "start", f"ceph-mon@{stopped}")
    wait_for(
        "HEALTH_OK with every mon back in the quorum",
        lambda: (
            (s := ceph(cluster, "status", host=asker))["health"]["status"] == "HEALTH_OK"
            and len(s["quorum_names"]) == len(mons)
        ),
        timeout=180,
        interval=3,
    )


def test_rados_bench_writes_for_reference(cluster):
    """`rados bench` 10 s of 4 MiB writes to the rbd pool (16 in flight), for the figures: the
    lab's three file OSDs share one disk and 2 cores, so this is a reference, not a target."""
    host = hosts_with(cluster["desc"], "ceph_mon")[0]["name"]
    out = podman_exec(
        ctr(host),
        "rados",
        "bench",
        "-p",
        "rbd",
        "10",
        "write",
        "--no-cleanup",
        "--run-name",
        "idcloud-bench",
        "--format",
        "json",
    ).stdout
    result = last_json_object(out)
    try:
        assert float(result.get("total_writes_made", 0)) > 0, result
        FIGURES["rados_bench_write_mib_s"] = round(float(result["bandwidth"]), 1)
        FIGURES["rados_bench_write_iops"] = round(float(result["average_iops"]), 1)
        FIGURES["rados_bench_avg_latency_s"] = round(float(result["average_latency"]), 3)
    finally:
        podman_exec(ctr(host), "rados", "-p", "rbd", "cleanup", "--run-name", "idcloud-bench")
    left = podman_exec(ctr(host), "rados", "-p", "rbd", "ls").stdout.split()
    assert not [o for o in left if o.startswith("benchmark_data")], left
