"""Adding and removing etcd members by editing the IDC description and re-running.

A lab of five hosts: three start as the etcd cluster, two as workers. Giving the two
workers the etcd role and re-running etcd.yml must grow the cluster to five voters
(learner, then promoted, one at a time) without restarting the others; a further run
must change nothing; taking the role away again must shrink it back to three and stop
etcd on the two hosts. Everything is read from the real cluster.
"""

import shutil

import pytest

from lab_helpers import lab, lab_net, member_list, one_rack_description, playbook, podman_exec, write_inventory

LAB = "it-members"
pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


def description(etcd_hosts):
    return one_rack_description(
        LAB,
        lab_net(LAB),
        {f"m{i}": ["etcd"] if f"m{i}" in etcd_hosts else ["worker"] for i in range(1, 6)},
        tor_as=65301,
        registry=False,
    )


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("members"))
    idc = write_inventory(directory, description({"m1", "m2", "m3"}))
    lab(idc, "down")  # leftovers of an interrupted run would carry old etcd data
    lab(idc, "up")
    yield directory
    lab(idc, "down")


def pids(hosts):
    return {
        h: podman_exec(f"{LAB}-{h}", "systemctl", "show", "-p", "MainPID", "--value", "etcd").stdout.strip()
        for h in hosts
    }


def test_grow_to_five_and_shrink_back_to_three(inventory, tmp_path):
    idc = write_inventory(inventory, description({"m1", "m2", "m3"}))
    playbook(idc, "etcd.yml", log=tmp_path / "three.log")
    members = member_list(f"{LAB}-m1")
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
    before = pids(["m1", "m2", "m3"])

    idc = write_inventory(inventory, description({"m1", "m2", "m3", "m4", "m5"}))
    playbook(idc, "etcd.yml", log=tmp_path / "five.log")
    members = member_list(f"{LAB}-m1")
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3", "m4", "m5"]
    assert not any(m.get("isLearner") for m in members), members
    # joining members must not restart the members that were already running
    assert pids(["m1", "m2", "m3"]) == before
    health = podman_exec(f"{LAB}-m4", "etcdctl-cluster", "endpoint", "health", "--cluster").stdout
    assert health.count("is healthy") == 5, health

    recap = playbook(idc, "etcd.yml", log=tmp_path / "five-again.log")
    assert recap and all(changed == 0 for _, changed, _, _ in recap.values()), recap

    idc = write_inventory(inventory, description({"m1", "m2", "m3"}))
    playbook(idc, "etcd.yml", log=tmp_path / "back-to-three.log")
    members = member_list(f"{LAB}-m1")
    assert sorted(m["name"] for m in members) == ["m1", "m2", "m3"]
    for host in ("m4", "m5"):
        state = podman_exec(f"{LAB}-{host}", "systemctl", "is-active", "etcd", check=False).stdout.strip()
        assert state == "inactive", f"{host}: etcd is {state}"
        kept = podman_exec(f"{LAB}-{host}", "sh", "-c", "ls -d /var/lib/etcd.removed-*").stdout
        assert kept.strip(), f"{host}: the removed member's data was not kept"
    health = podman_exec(f"{LAB}-m1", "etcdctl-cluster", "endpoint", "health", "--cluster").stdout
    assert health.count("is healthy") == 3, health


def unit_start_usec(host):
    out = podman_exec(
        f"{LAB}-{host}", "systemctl", "show", "-p", "ExecMainStartTimestampMonotonic", "--value", "etcd"
    ).stdout.strip()
    return int(out)


def test_changed_flag_restarts_members_one_at_a_time_after_a_snapshot(inventory, tmp_path):
    """A tuned flag changes: each member is snapshotted, restarted and healthy before the next."""
    idc = write_inventory(inventory, description({"m1", "m2", "m3"}))
    playbook(idc, "etcd.yml", log=tmp_path / "converged.log")
    hosts = ["m1", "m2", "m3"]
    before = pids(hosts)
    for host in hosts:
        podman_exec(f"{LAB}-{host}", "sh", "-c", "rm -f /var/backups/etcd/pre-restart-*.db")

    playbook(idc, "etcd.yml", "-e", "etcd_snapshot_count=20000", log=tmp_path / "restart.log")
    after = pids(hosts)
    assert all(after[h] != before[h] for h in hosts), (before, after)
    for host in hosts:
        env = podman_exec(f"{LAB}-{host}", "cat", "/etc/etcd/etcd.env").stdout
        assert "ETCD_SNAPSHOT_COUNT=20000" in env
        snaps = podman_exec(f"{LAB}-{host}", "sh", "-c", f"ls /var/backups/etcd/pre-restart-{host}-*.db").stdout.split()
        assert len(snaps) == 1, f"{host}: expected one pre-restart snapshot, found {snaps}"

    # The containers share one kernel, so monotonic start times are comparable: the
    # restarts happened in sequence, each after the previous member was back (health gate).
    starts = sorted(unit_start_usec(h) for h in hosts)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(gap > 500_000 for gap in gaps), f"members restarted together: gaps {gaps} us"
    log = (tmp_path / "restart.log").read_text()
    order = [
        line
        for line in log.splitlines()
        if line.startswith("TASK [idcloud.platform.service_restart : ")
        and (
            "Snapshot the cluster before restarting" in line
            or "Restart etcd on" in line
            or "Wait until healthy again" in line
        )
    ]
    assert len(order) == 9, order
    for i, line in enumerate(order):
        assert ("Snapshot", "Restart", "Wait")[i % 3] in line, order
    assert [line.rstrip("]* ").split()[-1] for line in order[::3]] == sorted(after), order
    health = podman_exec(f"{LAB}-m1", "etcdctl-cluster", "endpoint", "health", "--cluster").stdout
    assert health.count("is healthy") == 3, health

    recap = playbook(idc, "etcd.yml", "-e", "etcd_snapshot_count=20000", log=tmp_path / "again.log")
    assert recap and all(changed == 0 for _, changed, _, _ in recap.values()), recap
