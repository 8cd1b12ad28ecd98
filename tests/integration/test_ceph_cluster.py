"""A real Ceph cluster from playbooks/ceph.yml, and the ceph modules against it.

A one-rack lab of three storage hosts, each a mon, a mgr and an OSD host (one bluestore OSD in a
3 GiB file), two of them also MDSs (one active, one standby), pool size 3 with the host as failure
domain. Check mode on the fresh hosts must pass; the converge must give a quorum of three, the
CRUSH tree of the description (default > room > rack > hosts), three OSDs up and in, a rule
with the host as failure domain, HEALTH_OK, and the PGs of the rbd pool active+clean with each
acting set on three different hosts; a second run and a check run change nothing. Then
ceph_user, rbd_image and cephfs_subvolume make, grow and keep what they manage, read back with
the ceph and rbd command lines. Then a fourth host, c4, in another IDC description whose ceph
section is external, uses that cluster as a storage team's (roles/ceph_external): it becomes a
client with the key of a user made for it, and keeps a pool, a user, an image and a subvolume
there. Everything is read from the cluster.
"""

import json
import os
import shutil
import time

import pytest

from lab_helpers import lab, lab_net, one_rack_description, playbook, podman_exec, run_playbook, write_inventory

LAB = "it-ceph"
HOSTS = ["c1", "c2", "c3"]
# a host with no Ceph role: the client of the cluster in the external mode's tests
CLIENT = "c4"
MDS = ["c1", "c2"]
OSD_GIB = 3
RULE = "replicated_host"
MODULES = os.path.join("..", "tests", "integration", "playbooks", "ceph_modules.yml")
GIB = 1024**3
# its own lab, about 10 minutes: `make e2e-extra` (make test's budget)
pytestmark = pytest.mark.storage


def description():
    """The storage hosts, and c4 (a worker here: ceph.yml leaves it alone) for the external mode."""
    roles = {
        h: ["ceph_mon", "ceph_mgr", "ceph_osd"] + (["ceph_mds"] if h in MDS else []) + (["etcd"] if h == "c1" else [])
        for h in HOSTS
    }
    # etcd: a description needs its members even when, as here, only ceph.yml runs
    desc = one_rack_description(LAB, lab_net(LAB), {**roles, CLIENT: ["worker"]}, tor_as=65320, registry=False)
    desc["ceph"] = {"pool_size": 3, "failure_domain": "host"}
    for host in desc["rooms"][0]["racks"][0]["hosts"]:
        if host["name"] in HOSTS:
            host["osd_devices"] = [{"file": f"/var/lib/ceph-osd/{host['name']}-0.img", "size_gib": OSD_GIB}]
    return desc


def external_description():
    """Another IDC, which uses the cluster of description() as a storage team's: its only host
    is c4 (etcd, control plane), and its ceph section names c1..c3 as the team's mons."""
    desc = description()
    rack = desc["rooms"][0]["racks"][0]
    mons = [host["address"] for host in rack["hosts"] if host["name"] in HOSTS]
    rack["hosts"] = [dict(host, roles=["etcd", "control_plane"]) for host in rack["hosts"] if host["name"] == CLIENT]
    desc["ceph"] = {"mode": "external", "pool_size": 3, "external": {"mons": mons}}
    return desc


def ceph(*args, host="c1"):
    """`ceph <args> --format json` on a lab host, parsed."""
    out = podman_exec(f"{LAB}-{host}", "ceph", *args, "--format", "json").stdout
    return json.loads(out)


def unchanged(recap):
    return recap and all(changed == 0 for _, changed, _, _ in recap.values())


@pytest.fixture(scope="module")
def idc(tmp_path_factory):
    path = write_inventory(str(tmp_path_factory.mktemp(LAB)), description())
    lab(path, "down")  # leftovers of an interrupted run would carry an old cluster
    # a new lab is a new cluster: the fsid and keys an earlier lab left on the control host go too
    shutil.rmtree(os.path.expanduser(f"~/.idcloud/{LAB}/ceph"), ignore_errors=True)
    try:
        lab(path, "up")
        yield path
    finally:
        lab(path, "down")


@pytest.fixture(scope="module")
def converged(idc, tmp_path_factory):
    """Check mode on the fresh hosts, then the converge; its recap and time."""
    logs = tmp_path_factory.mktemp("ceph-logs")
    playbook(idc, "ceph.yml", "--check", log=logs / "check-fresh.log")
    start = time.monotonic()
    recap = playbook(idc, "ceph.yml", log=logs / "converge.log")
    elapsed = time.monotonic() - start
    print(f"ceph.yml converged in {elapsed:.0f} s (logs in {logs})")
    return {"recap": recap, "seconds": elapsed, "logs": logs}


def test_a_block_device_missing_on_its_host_stops_the_run_before_anything_is_installed(idc, tmp_path):
    """Runs first, on the fresh hosts: c2 names a disk it does not have; the run fails naming the
    host and the device, on every host before the packages step, and nothing is installed."""
    desc = description()
    c2 = next(h for h in desc["rooms"][0]["racks"][0]["hosts"] if h["name"] == "c2")
    c2["osd_devices"] = c2["osd_devices"] + ["/dev/disk/by-id/idcloud-no-such-disk"]
    bad = write_inventory(str(tmp_path), desc)
    rc, _, _ = run_playbook(bad, "ceph.yml", log=str(tmp_path / "missing-device.log"))
    out = (tmp_path / "missing-device.log").read_text()
    assert rc != 0, out[-2000:]
    assert "c2: /dev/disk/by-id/idcloud-no-such-disk" in out, out[-3000:]
    assert "Install the packages" not in out, "the run went on past the checks"
    for host in HOSTS:
        installed = podman_exec(f"{LAB}-{host}", "dpkg-query", "-W", "ceph-common", check=False)
        assert installed.returncode != 0, f"{host}: ceph-common installed: {installed.stdout}"


def test_three_mons_in_quorum(converged):
    assert sorted(ceph("quorum_status")["quorum_names"]) == HOSTS


def test_crush_tree_mirrors_the_description_and_every_osd_is_up_and_in(converged):
    nodes = {node["id"]: node for node in ceph("osd", "tree")["nodes"]}
    parent = {child: node["name"] for node in nodes.values() for child in node.get("children", [])}
    by_name = {node["name"]: node for node in nodes.values()}
    assert by_name["default"]["type"] == "root"
    assert by_name["r"]["type"] == "room" and parent[by_name["r"]["id"]] == "default"
    assert by_name["k1"]["type"] == "rack" and parent[by_name["k1"]["id"]] == "r"
    osds = [node for node in nodes.values() if node["type"] == "osd"]
    assert len(osds) == 3
    assert sorted(parent[osd["id"]] for osd in osds) == HOSTS
    for host in HOSTS:
        assert by_name[host]["type"] == "host" and parent[by_name[host]["id"]] == "k1"
    assert all(osd["status"] == "up" and osd["reweight"] == 1 for osd in osds), osds
    stat = ceph("osd", "stat")
    assert (stat["num_osds"], stat["num_up_osds"], stat["num_in_osds"]) == (3, 3, 3)


def test_the_rule_puts_replicas_on_different_hosts(converged):
    rule = ceph("osd", "crush", "rule", "dump", RULE)
    steps = rule["steps"]
    assert steps[0] == {"op": "take", "item": steps[0]["item"], "item_name": "default"}
    assert {"op": "chooseleaf_firstn", "num": 0, "type": "host"} in steps, steps
    pools = {pool["pool_name"]: pool for pool in ceph("osd", "pool", "ls", "detail")}
    rbd = pools["rbd"]
    assert (rbd["size"], rbd["min_size"], rbd["crush_rule"]) == (3, 2, rule["rule_id"])
    assert "rbd" in rbd["application_metadata"]
    for name in ("cephfs.cephfs.meta", "cephfs.cephfs.data"):
        assert pools[name]["crush_rule"] == rule["rule_id"], name


def test_health_ok_with_an_active_and_a_standby_mds(converged):
    status = ceph("status")
    assert status["health"]["status"] == "HEALTH_OK", status["health"]
    fsmap = status["fsmap"]
    assert [rank["status"] for rank in fsmap["by_rank"]] == ["up:active"], fsmap
    assert fsmap["up:standby"] == 1, fsmap


def test_each_pg_of_a_size_3_pool_acts_on_three_hosts(converged):
    host_of = {}
    nodes = ceph("osd", "tree")["nodes"]
    for node in nodes:
        if node["type"] == "host":
            for child in node["children"]:
                host_of[child] = node["name"]
    listing = ceph("pg", "ls-by-pool", "rbd")
    pgs = listing["pg_stats"] if isinstance(listing, dict) else listing
    assert pgs, listing
    assert all(pg["state"] == "active+clean" for pg in pgs), [(pg["pgid"], pg["state"]) for pg in pgs]
    for pg in pgs:
        assert sorted(host_of[osd] for osd in pg["acting"]) == HOSTS, (pg["pgid"], pg["acting"])
    # the same read through `ceph pg map` for one of them
    mapped = ceph("pg", "map", pgs[0]["pgid"])
    assert sorted(host_of[osd] for osd in mapped["acting"]) == HOSTS, mapped


def test_second_run_and_check_mode_change_nothing(converged, idc):
    logs = converged["logs"]
    start = time.monotonic()
    again = playbook(idc, "ceph.yml", log=logs / "again.log")
    print(f"ceph.yml no-op re-run in {time.monotonic() - start:.0f} s")
    assert set(again) == set(HOSTS) and unchanged(again), again
    check = playbook(idc, "ceph.yml", "--check", log=logs / "check-converged.log")
    assert set(check) == set(HOSTS) and unchanged(check), check


def run_modules(idc, out, image_size, quota, *extra):
    """The module playbook on c1; {task: result} as it wrote them."""
    recap = playbook(
        idc,
        MODULES,
        "-e",
        f"ceph_test_out={out}",
        "-e",
        f"ceph_test_image_size={image_size}",
        "-e",
        f"ceph_test_quota={quota}",
        *extra,
        log=str(out) + ".log",
    )
    assert set(recap) == {"c1"}, recap
    with open(out) as f:
        return json.load(f)


def test_modules_make_grow_and_keep_a_user_an_image_and_a_subvolume(converged, idc, tmp_path):
    first = run_modules(idc, tmp_path / "first.json", "1G", "1G")
    assert first["user"]["changed"] and first["image"]["changed"] and first["subvolume"]["changed"]
    entity = ceph("auth", "get", "client.it-app")[0]
    assert entity["key"] == first["user"]["key"]
    assert entity["caps"] == {"mon": "profile rbd", "osd": "profile rbd pool=rbd"}
    image = json.loads(podman_exec(f"{LAB}-c1", "rbd", "info", "rbd/it-disk", "--format", "json").stdout)
    assert image["size"] == 1 * GIB
    path = first["subvolume"]["path"]
    assert path == podman_exec(f"{LAB}-c1", "ceph", "fs", "subvolume", "getpath", "cephfs", "it-share").stdout.strip()
    assert ceph("fs", "subvolume", "info", "cephfs", "it-share")["bytes_quota"] == 1 * GIB

    # check mode reports the growth and makes none of it
    dry = run_modules(idc, tmp_path / "dry.json", "2G", "2G", "--check")
    assert dry["image"]["changed"] and dry["subvolume"]["changed"] and not dry["user"]["changed"]
    image = json.loads(podman_exec(f"{LAB}-c1", "rbd", "info", "rbd/it-disk", "--format", "json").stdout)
    assert image["size"] == 1 * GIB

    grown = run_modules(idc, tmp_path / "grown.json", "2G", "2G")
    assert not grown["user"]["changed"] and grown["image"]["changed"] and grown["subvolume"]["changed"]
    image = json.loads(podman_exec(f"{LAB}-c1", "rbd", "info", "rbd/it-disk", "--format", "json").stdout)
    assert image["size"] == 2 * GIB
    assert ceph("fs", "subvolume", "info", "cephfs", "it-share")["bytes_quota"] == 2 * GIB
    assert grown["subvolume"]["path"] == path

    again = run_modules(idc, tmp_path / "again.json", "2G", "2G")
    assert not any(result["changed"] for result in again.values()), again
    assert again["user"]["key"] == first["user"]["key"]


EXTERNAL_USER = "idc-team"


@pytest.fixture(scope="module")
def external_idc(converged, tmp_path_factory):
    """The external description's inventory, and a vars file with the key of the user the
    "storage team" made for this IDC on its cluster (not client.admin), and what to keep there."""
    directory = tmp_path_factory.mktemp("external")
    path = write_inventory(str(directory / "inventory"), external_description())
    caps = ["mon", "allow *", "osd", "allow *", "mgr", "allow *", "mds", "allow *"]
    podman_exec(f"{LAB}-c1", "ceph", "auth", "get-or-create", f"client.{EXTERNAL_USER}", *caps)
    key = podman_exec(f"{LAB}-c1", "ceph", "auth", "print-key", f"client.{EXTERNAL_USER}").stdout.strip()
    settings = {
        "ceph_external_user": EXTERNAL_USER,
        "ceph_external_key": key,
        "ceph_pools": [{"name": "ext-rbd", "application": "rbd"}],
        "ceph_users": [{"name": "client.ext-app", "caps": {"mon": "profile rbd", "osd": "profile rbd pool=ext-rbd"}}],
        "ceph_rbd_images": [{"pool": "ext-rbd", "name": "ext-disk", "size": "1G"}],
        "ceph_cephfs_subvolumes": [{"name": "ext-share", "size": "1G"}],
    }
    with open(directory / "vars.json", "w") as f:
        json.dump(settings, f)
    return {"idc": path, "vars": f"@{directory / 'vars.json'}", "key": key, "logs": directory}


def test_external_mode_without_a_key_stops_before_anything_is_installed(external_idc):
    log = external_idc["logs"] / "no-key.log"
    rc, _, _ = run_playbook(external_idc["idc"], "ceph.yml", log=str(log))
    out = log.read_text()
    assert rc != 0, out[-2000:]
    assert "ceph_external_key is empty" in out and "Nothing was changed" in out, out[-3000:]
    installed = podman_exec(f"{LAB}-{CLIENT}", "dpkg-query", "-W", "ceph-common", check=False)
    assert installed.returncode != 0, f"ceph-common installed on {CLIENT}: {installed.stdout}"


def test_external_mode_keeps_a_pool_a_user_an_image_and_a_subvolume_in_the_teams_cluster(external_idc):
    idc, extra, logs = external_idc["idc"], ("-e", external_idc["vars"]), external_idc["logs"]
    # check mode on the fresh client: the install and the files reported, nothing made
    check = playbook(idc, "ceph.yml", "--check", *extra, log=logs / "check-fresh.log")
    assert set(check) == {CLIENT} and check[CLIENT][1] > 0, check
    assert podman_exec(f"{LAB}-{CLIENT}", "dpkg-query", "-W", "ceph-common", check=False).returncode != 0

    first = playbook(idc, "ceph.yml", *extra, log=logs / "converge.log")
    assert set(first) == {CLIENT} and first[CLIENT][1] > 0, first
    log = (logs / "converge.log").read_text()
    assert external_idc["key"] not in log, "the team's key is in the playbook's output"
    keyring = podman_exec(f"{LAB}-{CLIENT}", "stat", "-c", "%a %U", f"/etc/ceph/ceph.client.{EXTERNAL_USER}.keyring")
    assert keyring.stdout.split() == ["600", "root"], keyring.stdout
    assert podman_exec(f"{LAB}-{CLIENT}", "test", "-e", "/etc/ceph/ceph.client.admin.keyring", check=False).returncode

    # read back on the team's side, as client.admin on a mon
    pools = {pool["pool_name"]: pool for pool in ceph("osd", "pool", "ls", "detail")}
    assert pools["ext-rbd"]["size"] == 3 and pools["ext-rbd"]["min_size"] == 2, pools["ext-rbd"]
    assert "rbd" in pools["ext-rbd"]["application_metadata"], pools["ext-rbd"]
    entity = ceph("auth", "get", "client.ext-app")[0]
    assert entity["caps"] == {"mon": "profile rbd", "osd": "profile rbd pool=ext-rbd"}, entity
    image = json.loads(podman_exec(f"{LAB}-c1", "rbd", "info", "ext-rbd/ext-disk", "--format", "json").stdout)
    assert image["size"] == 1 * GIB, image
    assert ceph("fs", "subvolume", "info", "cephfs", "ext-share")["bytes_quota"] == 1 * GIB
    # and from the client, as the team's user
    status = json.loads(
        podman_exec(f"{LAB}-{CLIENT}", "ceph", "--id", EXTERNAL_USER, "status", "--format", "json").stdout
    )
    assert sorted(status["quorum_names"]) == HOSTS, status["quorum_names"]

    again = playbook(idc, "ceph.yml", *extra, log=logs / "again.log")
    assert set(again) == {CLIENT} and unchanged(again), again
    converged_check = playbook(idc, "ceph.yml", "--check", *extra, log=logs / "check-converged.log")
    assert set(converged_check) == {CLIENT} and unchanged(converged_check), converged_check

    # a file system the team does not serve stops the run before anything is kept, naming theirs
    wrong = logs / "wrong-fs.log"
    rc, _, _ = run_playbook(idc, "ceph.yml", *extra, "-e", "ceph_external_fs_name=nosuchfs", log=str(wrong))
    out = wrong.read_text()
    assert rc != 0 and "has no file system 'nosuchfs' (it has: cephfs)" in out, out[-2000:]
    assert "Keep the pools" not in out, "the run went on past the check"


def main_pids(host):
    units = [f"ceph-mon@{host}", f"ceph-mgr@{host}", f"ceph-osd@{HOSTS.index(host)}"]
    units += [f"ceph-mds@{host}"] if host in MDS else []
    out = podman_exec(f"{LAB}-{host}", "systemctl", "show", "-p", "MainPID", "--value", *units).stdout.split()
    return dict(zip(units, out))


@pytest.mark.long
def test_a_changed_setting_restarts_every_daemon_one_host_at_a_time(converged, idc):
    """A new mon memory target changes ceph.conf on every host: each daemon restarts, one host at a
    time (mons, mgrs, OSDs, MDSs), each restart followed by the gate before the next."""
    before = {host: main_pids(host) for host in HOSTS}
    target = 603979776
    log = converged["logs"] / "restart.log"
    playbook(idc, "ceph.yml", "-e", f"ceph_mon_memory_target={target}", log=log)
    after = {host: main_pids(host) for host in HOSTS}
    for host in HOSTS:
        assert all(after[host][unit] != before[host][unit] for unit in before[host]), (host, before, after)
    assert str(ceph("config", "show", "mon.c2", "mon_memory_target")) == str(target)
    assert ceph("status")["health"]["status"] == "HEALTH_OK"

    tasks = [
        line for line in log.read_text().splitlines() if line.startswith("TASK [idcloud.platform.service_restart : ")
    ]
    restarts = [line for line in tasks if " : Restart ceph-" in line]
    assert [line.split(" : Restart ")[1].rstrip("]* ") for line in restarts] == [
        f"ceph-{daemon}.target on {host}"
        for daemon, hosts in (("mon", HOSTS), ("mgr", HOSTS), ("osd", HOSTS), ("mds", MDS))
        for host in hosts
    ], restarts
    for line in restarts:
        host = line.rstrip("]* ").split()[-1]
        following = tasks[tasks.index(line) + 1 : tasks.index(line) + 4]
        assert any(f"Wait until the cluster has seen the restart on {host}" in t for t in following), following
        assert any(f"Wait until the cluster is whole and healthy (after {host})" in t for t in following), following

    again = playbook(idc, "ceph.yml", "-e", f"ceph_mon_memory_target={target}", log=converged["logs"] / "after.log")
    assert unchanged(again), again
