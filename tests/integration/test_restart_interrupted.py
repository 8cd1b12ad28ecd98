"""A rolling restart interrupted after its first member is finished by the next run.

A lab of three etcd members. A changed flag writes the new environment file on every member
and leaves a pending-restart marker on each (roles/service_restart); ansible-playbook is then
killed (SIGKILL of its process group, as a lost control host would be) once the first member
has been restarted and before the second is. The other two still run the old process under
the new file; the re-run with the same value must restart them (and report it), after which
every member's process carries the new value, the cluster is healthy, and a third run
changes nothing. Everything is read from the hosts.
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from lab_helpers import BIN, REPO, lab, lab_env, lab_net, one_rack_description, playbook, podman_exec, write_inventory

LAB = "it-restart"
HOSTS = ["m1", "m2", "m3"]
MARKER = "/var/lib/idcloud/restart-pending/etcd"
pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


@pytest.fixture(scope="module")
def idc(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("restart"))
    path = write_inventory(
        directory, one_rack_description(LAB, lab_net(LAB), {h: ["etcd"] for h in HOSTS}, tor_as=65317, registry=False)
    )
    lab(path, "down")  # leftovers of an interrupted run would carry old etcd data
    lab(path, "up")
    yield path
    lab(path, "down")


def main_pid(host):
    return podman_exec(f"{LAB}-{host}", "systemctl", "show", "-p", "MainPID", "--value", "etcd").stdout.strip()


def running_snapshot_count(host):
    """ETCD_SNAPSHOT_COUNT in the environment of the etcd process that runs now."""
    environ = podman_exec(f"{LAB}-{host}", "cat", f"/proc/{main_pid(host)}/environ").stdout
    values = [v.split("=", 1)[1] for v in environ.split("\0") if v.startswith("ETCD_SNAPSHOT_COUNT=")]
    return values[0] if values else None


def has_marker(host):
    return podman_exec(f"{LAB}-{host}", "test", "-e", MARKER, check=False).returncode == 0


def run_until_first_member_restarted(idc, log, timeout=600):
    """Start etcd.yml with a new snapshot count; SIGKILL it once one member is restarted and cleared.

    The moment: the rolling restart has started on its second member (its pre-restart snapshot
    task began), so the first member is restarted, gated and cleared and the others are not.
    Returns the first member's name.
    """
    out = open(log, "w")
    proc = subprocess.Popen(
        [
            os.path.join(BIN, "ansible-playbook"),
            "-i",
            idc,
            os.path.join(REPO, "playbooks", "etcd.yml"),
            "-e",
            "etcd_snapshot_count=12345",
        ],
        cwd=REPO,
        env=dict(lab_env(idc), PYTHONUNBUFFERED="1"),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    snapshot = re.compile(
        r"^TASK \[idcloud\.platform\.service_restart : Snapshot the cluster before restarting (\S+)\]", re.M
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            text = open(log).read()
            started = snapshot.findall(text)
            if len(started) >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return started[0]
            assert proc.poll() is None, (
                f"etcd.yml ended (rc {proc.returncode}) before its second restart:\n{text[-3000:]}"
            )
            time.sleep(0.05)
        raise AssertionError(f"no second restart within {timeout} s:\n{open(log).read()[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()


def test_rerun_finishes_a_rolling_restart_that_was_killed_after_its_first_member(idc, tmp_path):
    playbook(idc, "etcd.yml", log=tmp_path / "converge.log")
    before = {h: main_pid(h) for h in HOSTS}
    old = {h: running_snapshot_count(h) for h in HOSTS}
    assert all(v and v != "12345" for v in old.values()), old
    assert not any(has_marker(h) for h in HOSTS)

    first = run_until_first_member_restarted(idc, tmp_path / "interrupted.log")
    rest = [h for h in HOSTS if h != first]
    for host in HOSTS:
        env = podman_exec(f"{LAB}-{host}", "cat", "/etc/etcd/etcd.env").stdout
        assert "ETCD_SNAPSHOT_COUNT=12345" in env, f"{host}: the new settings were not written"
    assert main_pid(first) != before[first] and running_snapshot_count(first) == "12345"
    assert not has_marker(first), f"{first}: restarted and healthy, but its marker was kept"
    for host in rest:
        # the drift the marker is for: the old process under the new file
        assert main_pid(host) == before[host], f"{host} was restarted before the kill"
        assert running_snapshot_count(host) == old[host], host
        assert has_marker(host), f"{host}: its pending restart was not kept on the host"

    mid = {h: main_pid(h) for h in HOSTS}
    recap = playbook(idc, "etcd.yml", "-e", "etcd_snapshot_count=12345", log=tmp_path / "rerun.log")
    # a rolling restart's changes are reported on the host that walks the loop ("m1 -> m2")
    assert sum(changed for _, changed, _, _ in recap.values()) > 0, f"the re-run reported no change: {recap}"
    restarted = re.findall(
        r"^TASK \[idcloud\.platform\.service_restart : Restart etcd on (\S+)\]",
        (tmp_path / "rerun.log").read_text(),
        re.M,
    )
    assert restarted == rest, f"the re-run restarted {restarted}, not the members left pending {rest}"
    for host in rest:
        assert main_pid(host) != mid[host], f"{host}: the re-run did not restart it"
    assert main_pid(first) == mid[first], f"{first}: restarted again although nothing was pending"
    for host in HOSTS:
        assert running_snapshot_count(host) == "12345", host
        assert not has_marker(host), host
    health = podman_exec(f"{LAB}-m1", "etcdctl-cluster", "endpoint", "health", "--cluster").stdout
    assert health.count("is healthy") == 3, health

    recap = playbook(idc, "etcd.yml", "-e", "etcd_snapshot_count=12345", log=tmp_path / "again.log")
    assert recap and all(changed == 0 for _, changed, _, _ in recap.values()), recap
