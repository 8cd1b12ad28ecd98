# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Read-only client of BIRD 1.x's control socket, and the BGP health of a Calico node.

BIRD's control protocol (what birdcl speaks): the daemon greets with ``0001 BIRD <version> ready.``;
every command is one line; each reply line is a 4-digit code followed by ``-`` (more lines follow)
or a space (the last line of the reply). A line that starts with a space continues the previous
code. Lines starting with ``+`` are asynchronous notices. Codes 8000-9999 are errors; a successful
reply to ``show protocols all`` ends with ``0000``.

Only ``show status`` and ``show protocols all`` are ever sent: nothing here changes BIRD.
"""

import errno
import ipaddress
import re
import socket

DEFAULT_SOCKET = "/var/run/calico/bird.ctl"
DOWN_PREFIX = "calico-node or BIRD is down on this node: "

# the module's options (DOCUMENTATION in plugins/modules/calico_bgp_status.py)
ARGUMENT_SPEC = dict(
    socket=dict(type="path", default=DEFAULT_SOCKET),
    expected_peers=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(address=dict(type="str", required=True), **{"as": dict(type="int", required=True)}),
    ),
    fail_on_problem=dict(type="bool", default=False),
    timeout=dict(type="int", default=5),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)

_LINE_RE = re.compile(r"^(\d{4})([ -])(.*)$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_RE = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_ROUTES_RE = re.compile(r"(\d+)\s+imported,\s+(?:(\d+)\s+filtered,\s+)?(\d+)\s+exported,\s+(\d+)\s+preferred")
_UPDATE_COLUMNS = ("received", "rejected", "filtered", "ignored", "accepted")
_UPDATE_ROWS = {
    "import updates": "import_updates",
    "import withdraws": "import_withdraws",
    "export updates": "export_updates",
    "export withdraws": "export_withdraws",
}
# Calico's protocol names: Mesh_<ip>, Node_<ip> (node-specific BGPPeer), Global_<ip> (global BGPPeer)
_KINDS = {"Mesh": "mesh", "Node": "node", "Global": "global"}


class BirdError(Exception):
    """BIRD could not be asked (no socket, no answer) or refused a command."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


class BirdClient:
    """One connection to BIRD's control socket; use as a context manager."""

    def __init__(self, path=DEFAULT_SOCKET, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.reader = None
        self.greeting = None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise BirdError(_describe_connect_error(self.path, exc))
        self.sock = sock
        self.reader = sock.makefile("rb")
        lines = self._read_reply("the greeting")
        code, text = lines[-1]
        if code != 1:
            raise BirdError("%s did not greet like BIRD (got %04d %s)" % (self.path, code, text))
        self.greeting = text
        return text

    def close(self):
        for thing in (self.reader, self.sock):
            if thing is not None:
                try:
                    thing.close()
                except OSError:
                    pass
        self.reader = self.sock = None

    def command(self, text):
        """Send one command -> list of (code, text) reply lines; raises BirdError on an error reply."""
        try:
            self.sock.sendall(text.encode("ascii") + b"\n")
        except OSError as exc:
            raise BirdError("%s: sending %r failed: %s" % (self.path, text, exc))
        lines = self._read_reply(repr(text))
        code, last = lines[-1]
        if code >= 8000:
            raise BirdError("BIRD refused %r: %04d %s" % (text, code, last), code=code)
        return lines

    def _read_reply(self, what):
        lines = []
        code = None
        while True:
            try:
                raw = self.reader.readline()
            except (TimeoutError, OSError) as exc:
                raise BirdError("%s: no complete answer to %s within %ss: %s" % (self.path, what, self.timeout, exc))
            if not raw:
                raise BirdError(
                    "%s: BIRD closed the connection before answering %s (after %d lines)"
                    % (self.path, what, len(lines))
                )
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("+"):
                continue  # asynchronous notice, not part of this reply
            if line.startswith(" "):
                if code is None:
                    raise BirdError(
                        "%s: continuation line before any code in the answer to %s: %r" % (self.path, what, line)
                    )
                lines.append((code, line[1:]))
                continue
            match = _LINE_RE.match(line)
            if not match:
                raise BirdError("%s: not BIRD control protocol in the answer to %s: %r" % (self.path, what, line))
            code = int(match.group(1))
            lines.append((code, match.group(3)))
            if match.group(2) == " ":
                return lines


def _describe_connect_error(path, exc):
    if exc.errno == errno.ENOENT:
        return "socket %s does not exist" % path
    if exc.errno == errno.ECONNREFUSED:
        return "socket %s refuses connections (stale socket, BIRD not running)" % path
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "no permission to open %s (run the task with become: true)" % path
    return "cannot connect to %s: %s" % (path, exc)


# -- parsing ------------------------------------------------------------------------------
def _int(text):
    text = text.strip()
    return int(text) if text.isdigit() else None


def parse_status(lines):
    """``show status`` lines -> dict(version, router_id)."""
    info = {"version": None, "router_id": None}
    for code, text in lines:
        if code == 1000 and text.strip():
            info["version"] = re.sub(r"^BIRD\s+", "", text.strip())
        match = re.search(r"Router ID is (\S+)", text)
        if match:
            info["router_id"] = match.group(1)
    return info


def version_from_greeting(greeting):
    match = re.match(r"^BIRD\s+(.*?)\s+ready\.?$", (greeting or "").strip())
    return match.group(1) if match else None


def _split_summary(text):
    tokens = text.split()
    if len(tokens) < 4:
        return None
    name, proto, table, state = tokens[:4]
    rest = tokens[4:]
    if len(rest) >= 2 and _DATE_RE.match(rest[0]) and _TIME_RE.match(rest[1]):
        since, info = rest[0] + " " + rest[1], rest[2:]  # "timeformat protocol iso long"
    elif rest:
        since, info = rest[0], rest[1:]
    else:
        since, info = "", []
    return {"name": name, "proto": proto, "table": table, "state": state, "since": since, "info": " ".join(info)}


def _kind(name):
    prefix = name.split("_", 1)[0]
    return _KINDS.get(prefix, "other")


def _address_from_name(name):
    """Node_10_10_1_254 -> 10.10.1.254 (IPv4 names only; IPv6 ones are ambiguous)."""
    parts = name.split("_")[1:]
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return ".".join(parts)
    return None


def _new_session(summary):
    info = summary["info"]
    return {
        "name": summary["name"],
        "kind": _kind(summary["name"]),
        "state": summary["state"],
        "info": info,
        "bgp_state": info.split()[0] if info else None,
        "since": summary["since"],
        "neighbor_address": None,
        "neighbor_as": None,
        "neighbor_id": None,
        "source_address": None,
        "description": None,
        "routes_imported": None,
        "routes_filtered": None,
        "routes_exported": None,
        "routes_preferred": None,
        "import_updates": None,
        "import_withdraws": None,
        "export_updates": None,
        "export_withdraws": None,
        "last_error": None,
        "expected": False,
    }


def _apply_detail(session, text):
    stripped = text.strip()
    if ":" not in stripped:
        return
    key, value = stripped.split(":", 1)
    key, value = key.strip().lower(), value.strip()
    if key == "routes":
        match = _ROUTES_RE.search(value)
        if match:
            session["routes_imported"] = int(match.group(1))
            session["routes_filtered"] = int(match.group(2)) if match.group(2) else 0
            session["routes_exported"] = int(match.group(3))
            session["routes_preferred"] = int(match.group(4))
    elif key in _UPDATE_ROWS:
        cells = value.split()
        session[_UPDATE_ROWS[key]] = dict(
            (col, _int(cells[i]) if i < len(cells) else None) for i, col in enumerate(_UPDATE_COLUMNS)
        )
    elif key == "bgp state":
        session["bgp_state"] = value
    elif key == "neighbor address":
        session["neighbor_address"] = value.split("%")[0]
    elif key == "neighbor as":
        session["neighbor_as"] = _int(value)
    elif key == "neighbor id":
        session["neighbor_id"] = value
    elif key == "source address":
        session["source_address"] = value
    elif key == "description":
        session["description"] = value
    elif key == "last error":
        session["last_error"] = value


def parse_protocols(lines):
    """``show protocols all`` lines -> list of BGP sessions (other protocols are skipped)."""
    sessions = []
    current = None
    for code, text in lines:
        if code == 1002:
            summary = _split_summary(text)
            current = None
            if summary and summary["proto"].upper() == "BGP":
                current = _new_session(summary)
                sessions.append(current)
        elif code == 1006 and current is not None:
            _apply_detail(current, text)
    for session in sessions:
        if session["neighbor_address"] is None:
            session["neighbor_address"] = _address_from_name(session["name"])
    return sessions


# -- judging ------------------------------------------------------------------------------
def _same_ip(a, b):
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return str(a) == str(b)


def _label(session):
    return "%s (neighbor %s, AS %s)" % (
        session["name"],
        session["neighbor_address"] or "?",
        session["neighbor_as"] if session["neighbor_as"] is not None else "?",
    )


def find_problems(sessions, expected_peers):
    """-> list of problem sentences; marks sessions['expected'] for the expected peers."""
    problems = []
    for peer in expected_peers or []:
        matches = [s for s in sessions if s["neighbor_address"] and _same_ip(s["neighbor_address"], peer["address"])]
        if not matches:
            problems.append(
                "expected BGP peer %s (AS %s) has no session in BIRD: check the BGPPeer for this node "
                "(peerIP, nodeSelector) and the node's labels" % (peer["address"], peer["as"])
            )
            continue
        for session in matches:
            session["expected"] = True
            if (
                peer.get("as") is not None
                and session["neighbor_as"] is not None
                and int(session["neighbor_as"]) != int(peer["as"])
            ):
                problems.append(
                    "BGP session %s talks to AS %s, expected AS %s for %s: fix asNumber of the BGPPeer "
                    "or the ToR AS in the inventory"
                    % (session["name"], session["neighbor_as"], peer["as"], peer["address"])
                )
    for session in sessions:
        if session["bgp_state"] != "Established":
            detail = session["info"] or session["state"]
            if session["last_error"] and session["last_error"] not in detail:
                detail += "; last error: %s" % session["last_error"]
            problems.append(
                "BGP session %s is not Established: %s, since %s (BIRD state %s)"
                % (_label(session), detail, session["since"] or "?", session["state"])
            )
        if session["expected"] and (session["routes_imported"] or 0) > 0:
            problems.append(
                "BGP session %s imported %d routes from the ToR: a node should learn no routes from "
                "its ToR (check the BGPFilter of the BGPPeer)" % (_label(session), session["routes_imported"])
            )
    return problems


def inspect_bird(socket_path=DEFAULT_SOCKET, expected_peers=None, timeout=5.0):
    """Ask BIRD and judge -> dict(bird_running, bird_version, router_id, sessions, problems, ok)."""
    result = {
        "socket": socket_path,
        "bird_running": False,
        "bird_version": None,
        "router_id": None,
        "sessions": [],
        "problems": [],
        "ok": False,
    }
    try:
        with BirdClient(socket_path, timeout=timeout) as client:
            result["bird_running"] = True
            result["bird_version"] = version_from_greeting(client.greeting)
            status = parse_status(client.command("show status"))
            result["bird_version"] = status["version"] or result["bird_version"]
            result["router_id"] = status["router_id"]
            result["sessions"] = parse_protocols(client.command("show protocols all"))
    except BirdError as exc:
        result["bird_running"] = False
        result["problems"] = [DOWN_PREFIX + str(exc)]
        return result
    result["problems"] = find_problems(result["sessions"], expected_peers)
    result["ok"] = not result["problems"]
    return result
