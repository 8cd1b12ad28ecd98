# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for idcloud.platform.calico_bgp_status against a fake BIRD 1.x on a temp unix socket.

The fake speaks BIRD's control protocol as calico-node's BIRD (v0.3.3+birdv1.6.8) does: greeting,
one reply per command line, 4-digit codes with '-' or ' ', continuation lines starting with a space.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.idcloud.platform.plugins.module_utils.calico import calico_bgp_status as bs  # noqa: E402
from ansible_collections.idcloud.platform.plugins.modules import calico_bgp_status as module  # noqa: E402

GREETING = "0001 BIRD v0.3.3+birdv1.6.8 ready.\n"

SHOW_STATUS = (
    "1000-BIRD v0.3.3+birdv1.6.8\n"
    "1011-Router ID is 10.10.1.11\n"
    " Current server time is 2026-11-22 07:40:12\n"
    " Last reboot on 2026-11-22 06:58:40\n"
    " Last reconfiguration on 2026-11-22 07:01:03\n"
    "0013 Daemon is up and running\n"
)

# A node in rack a01: its ToR session is up (exports the node's /27 blocks, imports nothing), a
# mesh session to a node that is down keeps trying (Active), plus Calico's non-BGP protocols.
SHOW_PROTOCOLS_ALL = (
    "2002-name     proto    table    state  since       info\n"
    "1002-static1  Static   master   up     06:58:40    \n"
    "1006-  Preference:     200\n"
    "   Input filter:   ACCEPT\n"
    "   Output filter:  REJECT\n"
    "   Routes:         3 imported, 0 exported, 3 preferred\n"
    "   Route change stats:     received   rejected   filtered    ignored   accepted\n"
    "     Import updates:              3          0          0          0          3\n"
    "     Import withdraws:            0          0        ---          0          0\n"
    "     Export updates:              0          0          0        ---          0\n"
    "     Export withdraws:            0        ---        ---        ---          0\n"
    " \n"
    "1002-kernel1  Kernel   master   up     06:58:40    \n"
    "1006-  Preference:     10\n"
    "   Input filter:   ACCEPT\n"
    "   Output filter:  calico_kernel_programming\n"
    "   Routes:         4 imported, 5 exported, 4 preferred\n"
    " \n"
    "1002-device1  Device   master   up     06:58:40    \n"
    "1006-  Preference:     240\n"
    " \n"
    "1002-direct1  Direct   master   up     06:58:40    \n"
    "1006-  Preference:     240\n"
    "   Input filter:   ACCEPT\n"
    "   Output filter:  REJECT\n"
    "   Routes:         1 imported, 0 exported, 1 preferred\n"
    " \n"
    "1002-Node_10_10_1_254 BGP      master   up     07:01:05    Established   \n"
    "1006-  Description:    Connection to BGP peer\n"
    "   Preference:     100\n"
    "   Input filter:   ACCEPT\n"
    "   Output filter:  calico_export_to_bgp_peers\n"
    "   Routes:         0 imported, 3 exported, 0 preferred\n"
    "   Route change stats:     received   rejected   filtered    ignored   accepted\n"
    "     Import updates:              2          0          2          0          0\n"
    "     Import withdraws:            0          0        ---          0          0\n"
    "     Export updates:              7          0          4        ---          3\n"
    "     Export withdraws:            0        ---        ---        ---          0\n"
    "   BGP state:          Established\n"
    "     Neighbor address: 10.10.1.254\n"
    "     Neighbor AS:      65101\n"
    "     Neighbor ID:      10.10.1.254\n"
    "     Neighbor caps:    refresh enhanced-refresh restart-able AS4\n"
    "     Session:          external AS4\n"
    "     Source address:   10.10.1.11\n"
    "     Hold timer:       171/240\n"
    "     Keepalive timer:  35/80\n"
    " \n"
    "1002-Mesh_10_10_2_12 BGP      master   start  07:01:05    Active        Socket: Connection refused\n"
    "1006-  Description:    Connection to BGP peer\n"
    "   Preference:     100\n"
    "   Input filter:   ACCEPT\n"
    "   Output filter:  calico_export_to_bgp_peers\n"
    "   BGP state:          Active\n"
    "     Neighbor address: 10.10.2.12\n"
    "     Neighbor AS:      64512\n"
    "     Connect delay:    3/5\n"
    "     Last error:       Socket: Connection refused\n"
    " \n"
    "0000 \n"
)

TOR = [{"address": "10.10.1.254", "as": 65101}]


class FakeBird:
    """A BIRD control socket in a thread. mode: 'ok', 'close' (accept, then hang up), 'garbage';
    hang_up_after: close the connection after answering that command."""

    def __init__(self, path, replies=None, mode="ok", greeting=GREETING, hang_up_after=None):
        self.path = path
        self.hang_up_after = hang_up_after
        self.replies = (
            replies if replies is not None else {"show status": SHOW_STATUS, "show protocols all": SHOW_PROTOCOLS_ALL}
        )
        self.mode = mode
        self.greeting = greeting
        self.commands = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                if self.mode == "close":
                    continue
                if self.mode == "garbage":
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    continue
                conn.sendall(self.greeting.encode())
                self._answer(conn)

    def _answer(self, conn):
        with conn.makefile("rb") as reader:
            for raw in reader:
                command = raw.decode().strip()
                self.commands.append(command)
                conn.sendall(self.replies.get(command, "9001 syntax error, unexpected CF_SYM_UNDEFINED\n").encode())
                if command == self.hang_up_after:
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def close(self):
        self.server.close()


@pytest.fixture
def sock_dir():
    # a short path: unix socket paths are limited to 108 bytes, pytest's tmp_path can be longer
    with tempfile.TemporaryDirectory(prefix="bird-") as d:
        yield d


@pytest.fixture
def bird(sock_dir):
    fake = FakeBird(os.path.join(sock_dir, "bird.ctl"))
    yield fake
    fake.close()


def by_name(result):
    return {s["name"]: s for s in result["sessions"]}


# -- protocol and parsing -----------------------------------------------------------------------
def test_reads_greeting_status_and_every_bgp_session(bird):
    res = bs.inspect_bird(bird.path, TOR)
    assert bird.commands == ["show status", "show protocols all"]
    assert res["bird_running"] is True and res["bird_version"] == "v0.3.3+birdv1.6.8"
    assert res["router_id"] == "10.10.1.11"
    assert [s["name"] for s in res["sessions"]] == ["Node_10_10_1_254", "Mesh_10_10_2_12"], "BGP only"
    tor = by_name(res)["Node_10_10_1_254"]
    assert tor == {
        "name": "Node_10_10_1_254",
        "kind": "node",
        "state": "up",
        "info": "Established",
        "bgp_state": "Established",
        "since": "07:01:05",
        "neighbor_address": "10.10.1.254",
        "neighbor_as": 65101,
        "neighbor_id": "10.10.1.254",
        "source_address": "10.10.1.11",
        "description": "Connection to BGP peer",
        "routes_imported": 0,
        "routes_filtered": 0,
        "routes_exported": 3,
        "routes_preferred": 0,
        "import_updates": {"received": 2, "rejected": 0, "filtered": 2, "ignored": 0, "accepted": 0},
        "import_withdraws": {"received": 0, "rejected": 0, "filtered": None, "ignored": 0, "accepted": 0},
        "export_updates": {"received": 7, "rejected": 0, "filtered": 4, "ignored": None, "accepted": 3},
        "export_withdraws": {"received": 0, "rejected": None, "filtered": None, "ignored": None, "accepted": 0},
        "last_error": None,
        "expected": True,
    }
    mesh = by_name(res)["Mesh_10_10_2_12"]
    assert (mesh["kind"], mesh["state"], mesh["bgp_state"], mesh["info"]) == (
        "mesh",
        "start",
        "Active",
        "Active Socket: Connection refused",
    )
    assert mesh["neighbor_as"] == 64512 and mesh["routes_imported"] is None and mesh["expected"] is False
    assert mesh["last_error"] == "Socket: Connection refused"


def test_active_session_is_the_only_problem(bird):
    res = bs.inspect_bird(bird.path, TOR)
    assert res["ok"] is False and len(res["problems"]) == 1
    problem = res["problems"][0]
    assert "Mesh_10_10_2_12 (neighbor 10.10.2.12, AS 64512) is not Established" in problem
    assert "Active Socket: Connection refused" in problem and "since 07:01:05" in problem


def test_all_established_is_ok(sock_dir):
    healthy = SHOW_PROTOCOLS_ALL.split("1002-Mesh_10_10_2_12")[0] + "0000 \n"
    fake = FakeBird(
        os.path.join(sock_dir, "bird.ctl"), replies={"show status": SHOW_STATUS, "show protocols all": healthy}
    )
    try:
        res = bs.inspect_bird(fake.path, TOR)
    finally:
        fake.close()
    assert res["ok"] is True and res["problems"] == [] and len(res["sessions"]) == 1


def test_expected_peer_without_session_and_wrong_as(bird):
    res = bs.inspect_bird(bird.path, [{"address": "10.10.1.254", "as": 65199}, {"address": "10.10.9.254", "as": 65109}])
    problems = "\n".join(res["problems"])
    assert "talks to AS 65101, expected AS 65199 for 10.10.1.254" in problems
    assert "expected BGP peer 10.10.9.254 (AS 65109) has no session in BIRD" in problems


def test_routes_imported_from_tor_is_a_problem(sock_dir):
    leaky = SHOW_PROTOCOLS_ALL.replace(
        "Routes:         0 imported, 3 exported, 0 preferred", "Routes:         12 imported, 3 exported, 12 preferred"
    )
    fake = FakeBird(
        os.path.join(sock_dir, "bird.ctl"), replies={"show status": SHOW_STATUS, "show protocols all": leaky}
    )
    try:
        res = bs.inspect_bird(fake.path, TOR)
        no_tor = bs.inspect_bird(fake.path, [])
    finally:
        fake.close()
    assert any("imported 12 routes from the ToR" in p and "BGPFilter" in p for p in res["problems"])
    assert not any("imported" in p for p in no_tor["problems"]), "only sessions to expected peers count"


def test_missing_socket(sock_dir):
    res = bs.inspect_bird(os.path.join(sock_dir, "nope.ctl"), TOR)
    assert res["bird_running"] is False and res["ok"] is False and res["sessions"] == []
    assert res["problems"] == [
        "calico-node or BIRD is down on this node: socket %s does not exist" % os.path.join(sock_dir, "nope.ctl")
    ]


def test_stale_socket_refuses(sock_dir):
    path = os.path.join(sock_dir, "bird.ctl")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: what a crashed BIRD leaves
    res = bs.inspect_bird(path, TOR)
    assert res["problems"][0].startswith(bs.DOWN_PREFIX) and "refuses connections" in res["problems"][0]


def test_socket_that_accepts_then_closes(sock_dir):
    fake = FakeBird(os.path.join(sock_dir, "bird.ctl"), mode="close")
    try:
        res = bs.inspect_bird(fake.path, TOR, timeout=2)
    finally:
        fake.close()
    assert res["bird_running"] is False
    assert res["problems"] == [
        bs.DOWN_PREFIX + "%s: BIRD closed the connection before answering the greeting (after 0 lines)" % fake.path
    ]


def test_something_else_on_the_socket(sock_dir):
    fake = FakeBird(os.path.join(sock_dir, "bird.ctl"), mode="garbage")
    try:
        res = bs.inspect_bird(fake.path, [], timeout=2)
    finally:
        fake.close()
    assert res["bird_running"] is False and "not BIRD control protocol" in res["problems"][0]


def test_closing_in_the_middle_of_a_reply(sock_dir):
    cut = SHOW_PROTOCOLS_ALL[: SHOW_PROTOCOLS_ALL.index("1002-Mesh")]  # no final line
    fake = FakeBird(
        os.path.join(sock_dir, "bird.ctl"),
        replies={"show status": SHOW_STATUS, "show protocols all": cut},
        hang_up_after="show protocols all",
    )
    try:
        res = bs.inspect_bird(fake.path, TOR, timeout=2)
    finally:
        fake.close()
    assert res["bird_running"] is False and "before answering 'show protocols all'" in res["problems"][0]


def test_error_reply_is_reported(sock_dir):
    fake = FakeBird(os.path.join(sock_dir, "bird.ctl"), replies={"show status": SHOW_STATUS})
    try:
        res = bs.inspect_bird(fake.path, [])
    finally:
        fake.close()
    assert "BIRD refused 'show protocols all': 9001 syntax error" in res["problems"][0]


def test_async_notices_are_skipped_and_iso_long_since_is_kept():
    lines = [(1002, "Global_10_10_1_253 BGP      master   up     2026-11-20 07:01:05    Established")]
    sessions = bs.parse_protocols(lines)
    assert sessions[0]["since"] == "2026-11-20 07:01:05" and sessions[0]["info"] == "Established"
    assert sessions[0]["kind"] == "global" and sessions[0]["neighbor_address"] == "10.10.1.253"


def test_routes_line_with_filtered_column():
    session = bs.parse_protocols(
        [
            (1002, "Node_10_0_0_1 BGP master up 07:01:05 Established"),
            (1006, "  Routes:         1 imported, 2 filtered, 3 exported, 1 preferred"),
        ]
    )[0]
    assert (
        session["routes_imported"],
        session["routes_filtered"],
        session["routes_exported"],
        session["routes_preferred"],
    ) == (1, 2, 3, 1)


def test_version_from_greeting_when_status_has_none():
    assert bs.version_from_greeting("BIRD 1.6.8 ready.") == "1.6.8"
    assert bs.parse_status([(13, "Daemon is up and running")]) == {"version": None, "router_id": None}


# -- the module ---------------------------------------------------------------------------------
def run_main(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_module_reports_and_never_changes(bird, capsys):
    rc, out = run_main(
        capsys,
        {
            "socket": bird.path,
            "expected_peers": [{"address": "10.10.1.254", "as": "65101"}],
            "_ansible_check_mode": True,
        },
    )
    assert rc == 0 and out["changed"] is False and out["ok"] is False and len(out["problems"]) == 1
    assert out["sessions"][0]["expected"] is True


def test_module_fail_on_problem(bird, capsys):
    rc, out = run_main(capsys, {"socket": bird.path, "expected_peers": TOR, "fail_on_problem": True})
    assert rc == 1 and out["failed"] is True and "Mesh_10_10_2_12" in out["msg"] and out["sessions"]


def test_module_socket_missing_fails_only_when_asked(sock_dir, capsys):
    rc, out = run_main(capsys, {"socket": os.path.join(sock_dir, "x.ctl")})
    assert rc == 0 and out["bird_running"] is False and out["problems"][0].startswith(bs.DOWN_PREFIX)
    rc, out = run_main(capsys, {"socket": os.path.join(sock_dir, "x.ctl"), "fail_on_problem": True})
    assert rc == 1 and out["msg"].startswith("calico-node or BIRD is down on this node")


def test_module_rejects_peer_without_as(capsys):
    rc, out = run_main(capsys, {"expected_peers": [{"address": "10.10.1.254"}]})
    assert rc == 1 and "as" in out["msg"]


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(module.DOCUMENTATION)["options"]
    spec = module.ARGUMENT_SPEC
    assert set(doc) == set(spec)
    for name, s in spec.items():
        assert doc[name]["type"] == s["type"] and doc[name].get("default") == s.get("default"), name
        assert doc[name].get("elements") == s.get("elements"), name
    assert {k: v["type"] for k, v in doc["expected_peers"]["suboptions"].items()} == {"address": "str", "as": "int"}
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


# -- playbooks/inspect_network.yml on three local "nodes" ------------------------------------------
def test_inspect_network_playbook_lists_only_nodes_with_problems(sock_dir, tmp_path, repo_root, run_ansible):
    healthy = SHOW_PROTOCOLS_ALL.split("1002-Mesh_10_10_2_12")[0] + "0000 \n"
    good = FakeBird(
        os.path.join(sock_dir, "good.ctl"), replies={"show status": SHOW_STATUS, "show protocols all": healthy}
    )
    bad = FakeBird(os.path.join(sock_dir, "bad.ctl"))
    node = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "idc_tor_peer": "10.10.1.254",
        "idc_tor_as": 65101,
        "inspect_network_become": False,
    }
    inventory = {
        "all": {
            "children": {
                "kube_node": {
                    "hosts": {
                        "node-a": dict(node, inspect_network_bird_socket=good.path),
                        "node-b": dict(node, inspect_network_bird_socket=bad.path),
                        "node-c": dict(node, inspect_network_bird_socket=os.path.join(sock_dir, "missing.ctl")),
                    }
                }
            }
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    try:
        proc = run_ansible(
            "ansible-playbook",
            "-i",
            str(tmp_path / "inventory.yml"),
            "-v",
            str(repo_root / "playbooks" / "inspect_network.yml"),
            cwd=tmp_path,
            env={"ANSIBLE_LOCALHOST_WARNING": "0"},
        )
    finally:
        good.close()
        bad.close()
    out = proc.stdout
    assert proc.returncode == 2, out + proc.stderr
    assert "fatal: [localhost]" in out and "2 of 3 nodes have BGP problems: node-b, node-c" in out
    problems = out.split("TASK [Nodes with BGP problems]")[1].split("TASK [")[0]
    assert "node-b" in problems and "Mesh_10_10_2_12" in problems and "node-a" not in problems
    assert "calico-node or BIRD is down on this node: socket" in problems
    table = out.split("TASK [Sessions and prefix counts of every node]")[1].split("TASK [")[0]
    assert "Node_10_10_1_254       up     Established         0        3" in table
    assert "Mesh_10_10_2_12        start  Active              -        -" in table and "(BIRD not answering)" in table
    assert "changed=0" in out.split("PLAY RECAP")[1]
