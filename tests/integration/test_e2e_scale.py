"""End to end, adding a worker to the running cluster with the documented command.

conftest.py runs this after every check and before the drills (marker `scale`): it grows
the session's cluster by e2e.ADDED_WORKER, a host the fixture's lab does not have, and
leaves the grown description in the `cluster` fixture, so the drills after it see every
node that runs.
"""

import os
import time

import pytest

from e2e import (
    ADDED_WORKER,
    FIGURES,
    ctr,
    grown_description,
    rack_of,
    ready,
    service_pids,
    tor_neighbors,
    wait_for,
)
from lab_helpers import lab, playbook, podman_exec, run_playbook, write_inventory

pytestmark = pytest.mark.scale


def test_scale_refuses_a_run_without_limit(cluster):
    rc, recap, log = run_playbook(cluster["idc"], "scale.yml", log=os.path.join(cluster["logs"], "scale-nolimit.log"))
    with open(log) as f:
        out = f.read()
    assert rc != 0 and "no --limit" in out, out[-2000:]
    # the guard stopped the run before any host was touched
    assert all(r[1] == 0 for r in recap.values()), recap


def test_adding_a_worker_leaves_the_existing_hosts_alone(cluster, tmp_path):
    name = ADDED_WORKER["name"]
    desc = grown_description(cluster["desc"])
    before = service_pids(cluster["desc"])
    assert all(before.values()), before  # every host and ToR has services to compare
    idc = write_inventory(str(tmp_path), desc)
    lab(idc, "up")
    assert podman_exec(ctr(name), "systemctl", "is-system-running", check=False).stdout.strip() in (
        "running",
        "degraded",
    )
    # the preview on the fresh host reports its changes and touches nothing
    rc, recap, log = run_playbook(
        idc, "scale.yml", "--limit", name, "--check", "--diff", log=os.path.join(cluster["logs"], "scale-check.log")
    )
    assert rc == 0, f"scale.yml --check failed (see {log})"
    assert set(recap) == {name} and recap[name][1] > 0, recap

    started = time.monotonic()
    recap = playbook(idc, "scale.yml", "--limit", name, log=os.path.join(cluster["logs"], "scale-1.log"))
    FIGURES["scale_add_worker_s"] = round(time.monotonic() - started, 1)
    assert set(recap) == {name}, recap

    assert ready(cluster["core"].read_node(name)), cluster["core"].read_node(name).status.conditions
    assert cluster["core"].read_node(name).metadata.labels["idcloud.io/rack"] == ADDED_WORKER["rack"]
    rack = rack_of(desc, name)
    states = wait_for(
        f"{rack['tor']['name']}'s session with {name}",
        lambda: (lambda s: s if s.get(ADDED_WORKER["address"]) == "Established" else None)(tor_neighbors(desc, rack)),
        60,
    )
    FIGURES["scale_tor_neighbors"] = states

    after = service_pids(cluster["desc"])
    changed = {
        host: {svc: (pid, after[host].get(svc)) for svc, pid in svcs.items() if after[host].get(svc) != pid}
        for host, svcs in before.items()
    }
    assert {h: c for h, c in changed.items() if c} == {}, "services restarted on existing hosts"

    recap = playbook(idc, "scale.yml", "--limit", name, log=os.path.join(cluster["logs"], "scale-2.log"))
    assert {h: r[1] for h, r in recap.items() if r[1]} == {}, "the second scale.yml changed something"
    # the rest of the session sees the grown cluster
    cluster["desc"], cluster["idc"] = desc, idc
