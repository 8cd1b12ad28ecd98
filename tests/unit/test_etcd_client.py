# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for module_utils/etcd/client.py with a fake transport (JSON shapes as etcd 3.6.16 sends them)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.idcloud.platform.plugins.module_utils.etcd import client as ec  # noqa: E402

EP1 = "https://127.0.0.1:2379"
EP2 = "https://127.0.0.2:2379"
HEADER = {"cluster_id": "14398420247917935680", "member_id": "1654818993570247861", "raft_term": "2"}
# Verbatim shape of POST /v3/cluster/member/list from etcd 3.6.16 (one started voter, one unstarted learner).
MEMBER_LIST_36 = {
    "header": HEADER,
    "members": [
        {
            "ID": "1654818993570247861",
            "name": "m1",
            "peerURLs": ["https://127.0.0.1:23801"],
            "clientURLs": ["https://127.0.0.1:23791"],
        },
        {"ID": "2519622750122253812", "peerURLs": ["https://127.0.0.1:23802"], "isLearner": True},
    ],
}


class FakeTransport:
    """routes: {(endpoint, path): [answer, ...]}; an answer is (status, dict|bytes) or an exception."""

    def __init__(self, routes):
        self.routes = {k: list(v) for k, v in routes.items()}
        self.calls = []

    def __call__(self, method, url, body, timeout):
        endpoint, path = url[: url.index("/", 8)], url[url.index("/", 8) :]
        self.calls.append((method, endpoint, path, json.loads(body) if body else None))
        answers = self.routes.get((endpoint, path))
        if not answers:
            raise ec.EtcdConnectionError("connection refused", endpoint=endpoint, request_sent=False)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        status, payload = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return status, io.BytesIO(data)


def client(routes, endpoints=(EP1,)):
    transport = FakeTransport(routes)
    return ec.EtcdClient(list(endpoints), transport=transport), transport


# -- ids and members ----------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (1654818993570247861, 1654818993570247861),
        ("1654818993570247861", 1654818993570247861),
        ("16f7191b6752f4b5", 1654818993570247861),
        ("0x16F7191B6752F4B5", 1654818993570247861),
        (str(2**64 - 1), 2**64 - 1),
    ],
)
def test_member_id_forms(value, expected):
    assert ec.member_id_int(value) == expected
    assert ec.member_id_str(value) == str(expected)


@pytest.mark.parametrize("bad", [-1, 2**64, "etcd1", "", True])
def test_member_id_rejects(bad):
    with pytest.raises(ValueError):
        ec.member_id_int(bad)


def test_member_list_parses_36_shape():
    c, t = client({(EP1, "/v3/cluster/member/list"): [(200, MEMBER_LIST_36)]})
    members = c.member_list()
    assert members == [
        {
            "id": "1654818993570247861",
            "id_hex": "16f7191b6752f4b5",
            "name": "m1",
            "peer_urls": ["https://127.0.0.1:23801"],
            "client_urls": ["https://127.0.0.1:23791"],
            "is_learner": False,
        },
        {
            "id": "2519622750122253812",
            "id_hex": "22f77f8aad079df4",
            "name": "",
            "peer_urls": ["https://127.0.0.1:23802"],
            "client_urls": [],
            "is_learner": True,
        },
    ]
    assert t.calls[0][0] == "POST" and t.calls[0][3] == {"linearizable": True}


def test_member_add_sends_camel_case_and_returns_new_member():
    resp = dict(MEMBER_LIST_36, member=MEMBER_LIST_36["members"][1])
    c, t = client({(EP1, "/v3/cluster/member/add"): [(200, resp)]})
    member, members = c.member_add(["https://127.0.0.1:23802"], is_learner=True)
    assert t.calls[0][3] == {"peerURLs": ["https://127.0.0.1:23802"], "isLearner": True}
    assert member["id"] == "2519622750122253812" and member["is_learner"] is True
    assert len(members) == 2


def test_member_remove_and_promote_send_id_as_decimal_string():
    c, t = client(
        {
            (EP1, "/v3/cluster/member/remove"): [(200, {"header": HEADER, "members": []})],
            (EP1, "/v3/cluster/member/promote"): [(200, MEMBER_LIST_36)],
        }
    )
    c.member_remove(0x22F77F8AAD079DF4)
    c.member_promote("2519622750122253812")
    assert t.calls[0][3] == {"ID": "2519622750122253812"}
    assert t.calls[1][3] == {"ID": "2519622750122253812"}


def test_server_error_keeps_endpoint_message_and_code():
    err = (400, {"code": 9, "message": "etcdserver: can only promote a learner member which is in sync with leader"})
    c, t = client(
        {(EP1, "/v3/cluster/member/promote"): [err], (EP2, "/v3/cluster/member/promote"): [(200, MEMBER_LIST_36)]},
        endpoints=(EP1, EP2),
    )
    with pytest.raises(ec.EtcdError) as info:
        c.member_promote(1)
    assert info.value.endpoint == EP1
    assert info.value.code == 9 and info.value.http_status == 400
    assert "in sync with leader" in str(info.value) and EP1 in str(info.value)
    assert len(t.calls) == 1, "a precondition failure must not be retried on another endpoint"


# -- failover -----------------------------------------------------------------
def test_read_fails_over_to_next_endpoint():
    c, t = client({(EP2, "/v3/cluster/member/list"): [(200, MEMBER_LIST_36)]}, endpoints=(EP1, EP2))
    assert len(c.member_list()) == 2
    assert c.last_endpoint == EP2
    assert [call[1] for call in t.calls] == [EP1, EP2]


def test_read_fails_over_on_unavailable_answer():
    c, _ = client(
        {
            (EP1, "/v3/kv/range"): [(503, {"code": 14, "message": "etcdserver: no leader"})],
            (EP2, "/v3/kv/range"): [(200, {"header": dict(HEADER, revision="7"), "count": "3"})],
        },
        endpoints=(EP1, EP2),
    )
    assert c.range_count() == (7, 3)


@pytest.mark.parametrize(
    "path, call",
    [
        ("/v3/cluster/member/list", lambda c: c.member_list()),
        ("/v3/cluster/member/promote", lambda c: c.member_promote(1)),
    ],
)
def test_learner_endpoint_is_skipped(path, call):
    # Verbatim etcd 3.6.16 answer of a learner to member list / range / member calls.
    learner = (400, {"code": 9, "message": "etcdserver: rpc not supported for learner"})
    c, t = client({(EP1, path): [learner], (EP2, path): [(200, MEMBER_LIST_36)]}, endpoints=(EP1, EP2))
    call(c)
    assert c.last_endpoint == EP2 and [x[1] for x in t.calls] == [EP1, EP2]


def test_read_fails_over_after_timeout():
    timeout = ec.EtcdConnectionError("timed out", endpoint=EP1, request_sent=True)
    c, _ = client(
        {(EP1, "/v3/cluster/member/list"): [timeout], (EP2, "/v3/cluster/member/list"): [(200, MEMBER_LIST_36)]},
        endpoints=(EP1, EP2),
    )
    assert len(c.member_list()) == 2


def test_write_not_resent_after_a_timeout():
    timeout = ec.EtcdConnectionError("timed out", endpoint=EP1, request_sent=True)
    c, t = client(
        {(EP1, "/v3/cluster/member/add"): [timeout], (EP2, "/v3/cluster/member/add"): [(200, MEMBER_LIST_36)]},
        endpoints=(EP1, EP2),
    )
    with pytest.raises(ec.EtcdConnectionError):
        c.member_add(["https://x:2380"])
    assert len(t.calls) == 1


def test_write_not_resent_after_server_timeout():
    timeout = (503, {"code": 14, "message": "etcdserver: request timed out"})
    c, t = client(
        {(EP1, "/v3/cluster/member/remove"): [timeout], (EP2, "/v3/cluster/member/remove"): [(200, MEMBER_LIST_36)]},
        endpoints=(EP1, EP2),
    )
    with pytest.raises(ec.EtcdError, match="timed out"):
        c.member_remove(1)
    assert len(t.calls) == 1


def test_write_fails_over_on_no_leader():
    no_leader = (503, {"code": 14, "message": "etcdserver: no leader"})
    c, t = client(
        {(EP1, "/v3/cluster/member/remove"): [no_leader], (EP2, "/v3/cluster/member/remove"): [(200, MEMBER_LIST_36)]},
        endpoints=(EP1, EP2),
    )
    c.member_remove(1)
    assert c.last_endpoint == EP2


def test_write_fails_over_when_refused():
    resp = dict(MEMBER_LIST_36, member=MEMBER_LIST_36["members"][1])
    c, t = client({(EP2, "/v3/cluster/member/add"): [(200, resp)]}, endpoints=(EP1, EP2))
    member, _ = c.member_add(["https://127.0.0.1:23802"], True)
    assert member["peer_urls"] == ["https://127.0.0.1:23802"] and c.last_endpoint == EP2


def test_all_endpoints_down_names_each():
    c, _ = client({}, endpoints=(EP1, EP2))
    with pytest.raises(ec.EtcdError) as info:
        c.member_list()
    assert EP1 in str(info.value) and EP2 in str(info.value)


# -- health / status ----------------------------------------------------------
def test_health_answers():
    c, _ = client(
        {
            (EP1, "/health"): [(200, {"health": "true", "reason": ""})],
            (EP2, "/health"): [(503, {"health": "false", "reason": "RAFT NO LEADER"})],
        }
    )
    assert c.health(EP1) == (True, "")
    assert c.health(EP2) == (False, "RAFT NO LEADER")
    ok, reason = c.health("https://127.0.0.9:2379")
    assert ok is False and "refused" in reason


def test_status_converts_36_fields():
    body = {
        "header": dict(HEADER, revision="202"),
        "version": "3.6.16",
        "dbSize": "266240",
        "leader": "1654818993570247861",
        "raftIndex": "211",
        "raftTerm": "2",
        "raftAppliedIndex": "211",
        "dbSizeInUse": "258048",
        "storageVersion": "3.6.0",
        "dbSizeQuota": "2147483648",
        "downgradeInfo": {},
    }
    c, _ = client({(EP1, "/v3/maintenance/status"): [(200, body)]})
    st = c.status(EP1)
    assert st["is_leader"] is True and st["leader"] == "1654818993570247861"
    assert (st["raft_index"], st["db_size"], st["revision"], st["version"]) == (211, 266240, 202, "3.6.16")


# -- keys -----------------------------------------------------------------------
def test_range_count_whole_keyspace_and_empty_count():
    c, t = client({(EP1, "/v3/kv/range"): [(200, {"header": dict(HEADER, revision="9")})]})
    assert c.range_count() == (9, 0)  # etcd omits count when 0
    assert t.calls[0][3] == {"key": "AA==", "range_end": "AA==", "count_only": True}


def test_range_count_prefix():
    c, t = client({(EP1, "/v3/kv/range"): [(200, {"header": dict(HEADER, revision="9"), "count": "4"})]})
    assert c.range_count("/registry/") == (9, 4)
    payload = t.calls[0][3]
    assert base64.b64decode(payload["key"]) == b"/registry/"
    assert base64.b64decode(payload["range_end"]) == b"/registry0"


@pytest.mark.parametrize("prefix, end", [("a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), ("/x/", b"/x0")])
def test_prefix_range_end(prefix, end):
    assert ec.prefix_range_end(prefix) == end


def test_put_get_roundtrip_base64():
    kv = {
        "key": base64.b64encode(b"foo").decode(),
        "value": base64.b64encode(b"bar").decode(),
        "create_revision": "2",
        "mod_revision": "2",
        "version": "1",
    }
    c, t = client(
        {
            (EP1, "/v3/kv/put"): [(200, {"header": dict(HEADER, revision="2")})],
            (EP1, "/v3/kv/range"): [
                (200, {"header": dict(HEADER, revision="2"), "kvs": [kv], "count": "1"}),
                (200, {"header": dict(HEADER, revision="2")}),
            ],
        }
    )
    assert c.put("foo", "bar") == 2
    assert t.calls[0][3] == {"key": "Zm9v", "value": "YmFy"}
    assert c.get("foo") == (2, b"bar")
    assert c.get("nope") == (2, None)


# -- snapshot -------------------------------------------------------------------
def fake_db(pages=3):
    """A bbolt-looking db (magic at offset 16) of pages*4096 bytes, plus its sha256 trailer."""
    db = bytearray(os.urandom(4096 * pages))
    db[16:20] = struct.pack("<I", 0xED0CDAED)
    db = bytes(db)
    return db + hashlib.sha256(db).digest()


def ndjson(data, chunk=5000, header_revision=None):
    """The gateway's newline-delimited stream, as etcd 3.6 sends it."""
    lines = []
    total = len(data) - 32
    for off in range(0, len(data), chunk):
        blob = data[off : off + chunk]
        result = {"blob": base64.b64encode(blob).decode(), "version": "3.6.0"}
        remaining = max(total - off - len(blob), 0)
        if remaining:
            result["remaining_bytes"] = str(remaining)
        if header_revision and off == 0:
            result["header"] = dict(HEADER, revision=str(header_revision))
        lines.append(json.dumps({"result": result}))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("chunk", [4096, 5000, 12288 + 16])  # the last split lands inside the trailer
def test_snapshot_streams_verifies_and_renames(tmp_path, chunk):
    data = fake_db()
    c, _ = client({(EP1, "/v3/maintenance/snapshot"): [(200, ndjson(data, chunk))]})
    dest = tmp_path / "snap.db"
    info = c.snapshot(str(dest))
    assert dest.read_bytes() == data
    assert info["size"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["db_sha256"] == data[-32:].hex()
    assert info["revision"] is None and info["version"] == "3.6.0" and info["endpoint"] == EP1
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert os.listdir(tmp_path) == ["snap.db"]


def test_snapshot_uses_header_revision_when_sent(tmp_path):
    c, _ = client({(EP1, "/v3/maintenance/snapshot"): [(200, ndjson(fake_db(), header_revision=42))]})
    assert c.snapshot(str(tmp_path / "s.db"))["revision"] == 42


def test_snapshot_bad_trailer_leaves_nothing(tmp_path):
    data = bytearray(fake_db())
    data[5000] ^= 0xFF
    c, _ = client({(EP1, "/v3/maintenance/snapshot"): [(200, ndjson(bytes(data)))]})
    (tmp_path / "snap.db").write_bytes(b"old")
    with pytest.raises(ec.EtcdError, match="trailer mismatch"):
        c.snapshot(str(tmp_path / "snap.db"))
    assert os.listdir(tmp_path) == ["snap.db"] and (tmp_path / "snap.db").read_bytes() == b"old"


def test_snapshot_truncated_stream_fails(tmp_path):
    stream = ndjson(fake_db(), 4096).split(b"\n")
    c, _ = client({(EP1, "/v3/maintenance/snapshot"): [(200, b"\n".join(stream[:2]) + b"\n")]})
    with pytest.raises(ec.EtcdError):
        c.snapshot(str(tmp_path / "snap.db"))
    assert os.listdir(tmp_path) == []


def test_snapshot_error_line_mid_stream(tmp_path):
    good = ndjson(fake_db(), 4096).split(b"\n")[0]
    err = json.dumps({"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: server stopped"}})
    c, _ = client({(EP1, "/v3/maintenance/snapshot"): [(200, good + b"\n" + err.encode() + b"\n")]})
    with pytest.raises(ec.EtcdError, match="server stopped"):
        c.snapshot(str(tmp_path / "snap.db"))
    assert os.listdir(tmp_path) == []


def test_snapshot_missing_dest_dir(tmp_path):
    c, _ = client({})
    with pytest.raises(ec.EtcdError, match="does not exist"):
        c.snapshot(str(tmp_path / "nope" / "snap.db"))


def test_connection_argument_spec_defaults():
    spec = ec.etcd_connection_argument_spec()
    assert spec["endpoints"]["default"] == ["https://127.0.0.1:2379"]
    assert spec["timeout"]["default"] == 10
    assert set(spec) == {"endpoints", "ca_file", "cert_file", "key_file", "timeout"}
