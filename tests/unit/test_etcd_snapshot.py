# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for module_utils/etcd/etcd_snapshot.py: trailer checks, etcdutl argv, restore planning."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat
import struct
import sys
from pathlib import Path

import pytest

_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.idcloud.platform.plugins.module_utils.etcd import etcd_snapshot as sf  # noqa: E402
from ansible_collections.idcloud.platform.plugins.modules import etcd_snapshot as etcd_snapshot_module  # noqa: E402

NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
# Verbatim etcdutl 3.6.16 `snapshot status -w json` output.
STATUS_JSON = '{"hash":3493156912,"revision":202,"totalKey":201,"totalSize":266240,"version":"3.6.0"}\n'


def make_db(path, pages=2, trailer=True):
    db = bytearray(b"\x00" * (4096 * pages))
    db[16:20] = struct.pack("<I", 0xED0CDAED)
    db[4096:4100] = b"data"
    db = bytes(db)
    path.write_bytes(db + (hashlib.sha256(db).digest() if trailer else b""))
    return path


class FakeRun:
    """module.run_command stand-in: status prints STATUS_JSON; restore creates <data-dir>/member."""

    def __init__(self, restore_rc=0):
        self.calls = []
        self.restore_rc = restore_rc

    def __call__(self, argv, environ_update=None, **kw):
        self.calls.append((list(argv), environ_update))
        assert environ_update and environ_update.get("LANG") == "C"
        if argv[1:3] == ["snapshot", "status"]:
            return 0, STATUS_JSON, ""
        if argv[1:3] == ["snapshot", "restore"]:
            if self.restore_rc:
                return self.restore_rc, "", "Error: boom"
            data_dir = argv[argv.index("--data-dir") + 1]
            os.makedirs(os.path.join(data_dir, "member", "snap"))
            Path(data_dir, "member", "snap", "db").write_bytes(b"db")
            return 0, "", ""
        raise AssertionError(argv)


@pytest.fixture
def etcdutl(tmp_path):
    exe = tmp_path / "etcdutl"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return str(exe)


# -- verify_snapshot ------------------------------------------------------------------
def test_verify_good_snapshot(tmp_path):
    path = make_db(tmp_path / "s.db")
    info = sf.verify_snapshot(str(path))
    data = path.read_bytes()
    assert info["size"] == 8192 + 32
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["db_sha256"] == data[-32:].hex()


def test_verify_flipped_byte_fails(tmp_path):
    path = make_db(tmp_path / "s.db")
    data = bytearray(path.read_bytes())
    data[4097] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(sf.SnapshotError, match="corrupt"):
        sf.verify_snapshot(str(path))


def test_verify_without_trailer_names_the_fix(tmp_path):
    path = make_db(tmp_path / "db", trailer=False)
    with pytest.raises(sf.SnapshotError, match="skip_hash_check"):
        sf.verify_snapshot(str(path))


def test_verify_truncated_fails(tmp_path):
    path = make_db(tmp_path / "s.db")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(sf.SnapshotError):
        sf.verify_snapshot(str(path))


def test_verify_not_bbolt(tmp_path):
    path = tmp_path / "x.db"
    path.write_bytes(b"hello" * 1000)
    with pytest.raises(sf.SnapshotError, match="not an etcd snapshot"):
        sf.verify_snapshot(str(path))


def test_verify_missing_file(tmp_path):
    with pytest.raises(sf.SnapshotError, match="cannot read"):
        sf.verify_snapshot(str(tmp_path / "nope.db"))


# -- etcdutl helpers ------------------------------------------------------------------
def test_status_argv_and_parse():
    assert sf.snapshot_status_argv("/usr/local/bin/etcdutl", "/b/s.db") == [
        "/usr/local/bin/etcdutl",
        "snapshot",
        "status",
        "-w",
        "json",
        "/b/s.db",
    ]
    noisy = '{"level":"info","msg":"x"}\n' + STATUS_JSON
    assert sf.parse_snapshot_status(noisy) == {
        "revision": 202,
        "total_key": 201,
        "hash": 3493156912,
        "total_size": 266240,
        "version": "3.6.0",
    }


def test_parse_status_garbage():
    with pytest.raises(sf.SnapshotError):
        sf.parse_snapshot_status("Error: invalid database")


IC = "etcd1=https://10.0.1.1:2380,etcd2=https://10.0.1.2:2380,etcd3=https://10.0.1.3:2380"


def test_restore_argv_full():
    argv = sf.snapshot_restore_argv(
        "/usr/local/bin/etcdutl",
        "/b/s.db",
        "/var/lib/etcd",
        "etcd1",
        IC,
        ["https://10.0.1.1:2380"],
        "spare-1",
        skip_hash_check=True,
        bump_revision=1000,
    )
    assert argv == [
        "/usr/local/bin/etcdutl",
        "snapshot",
        "restore",
        "/b/s.db",
        "--data-dir",
        "/var/lib/etcd",
        "--name",
        "etcd1",
        "--initial-cluster",
        IC,
        "--initial-advertise-peer-urls",
        "https://10.0.1.1:2380",
        "--initial-cluster-token",
        "spare-1",
        "--skip-hash-check",
        "--bump-revision",
        "1000",
        "--mark-compacted",
    ]


def test_restore_argv_minimal_accepts_comma_string():
    argv = sf.snapshot_restore_argv("etcdutl", "s.db", "/d", "etcd1", IC, "https://10.0.1.1:2380")
    assert "--initial-cluster-token" not in argv and "--skip-hash-check" not in argv
    assert "--bump-revision" not in argv


@pytest.mark.parametrize(
    "name, urls, match",
    [
        ("etcd9", ["https://10.0.1.9:2380"], "not in initial_cluster"),
        ("etcd1", ["https://10.0.1.9:2380"], "must be the same"),
        ("", ["https://10.0.1.1:2380"], "member_name"),
        ("etcd1", [], "initial_advertise_peer_urls"),
    ],
)
def test_restore_argv_rejects(name, urls, match):
    with pytest.raises(sf.SnapshotError, match=match):
        sf.snapshot_restore_argv("etcdutl", "s.db", "/d", name, IC, urls)


def test_restore_argv_bad_initial_cluster():
    with pytest.raises(sf.SnapshotError, match="name=peer_url"):
        sf.snapshot_restore_argv("etcdutl", "s.db", "/d", "etcd1", "https://10.0.1.1:2380", ["https://10.0.1.1:2380"])


def test_snapshot_file_name():
    assert sf.snapshot_file_name("/b", "etcd1", NOW) == "/b/etcd1-20250102T030405Z.db"


# -- run_restored -------------------------------------------------------------------------
def restore_params(tmp_path, etcdutl, **kw):
    p = {
        "path": str(make_db(tmp_path / "s.db")),
        "data_dir": str(tmp_path / "etcd"),
        "member_name": "etcd1",
        "initial_cluster": IC,
        "initial_advertise_peer_urls": ["https://10.0.1.1:2380"],
        "initial_cluster_token": "spare",
        "owner": None,
        "group": None,
        "force": False,
        "skip_hash_check": False,
        "bump_revision": 0,
        "etcdutl_path": etcdutl,
    }
    p.update(kw)
    return p


def test_restore_noop_when_member_dir_exists(tmp_path, etcdutl):
    (tmp_path / "etcd" / "member" / "wal").mkdir(parents=True)
    run = FakeRun()
    res = sf.run_restored(restore_params(tmp_path, etcdutl), run, check_mode=False)
    assert res["changed"] is False and run.calls == [] and "force" in res["msg"]
    assert (tmp_path / "etcd" / "member" / "wal").is_dir()


def test_restore_into_missing_dir(tmp_path, etcdutl):
    run = FakeRun()
    res = sf.run_restored(restore_params(tmp_path, etcdutl), run, check_mode=False, now=NOW)
    assert res["changed"] is True and res["backup_dir"] is None
    assert (res["revision"], res["total_key"]) == (202, 201)
    data_dir = tmp_path / "etcd"
    assert (data_dir / "member" / "snap" / "db").is_file()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    restore_argv = run.calls[-1][0]
    staged = restore_argv[restore_argv.index("--data-dir") + 1]
    assert os.path.dirname(os.path.dirname(staged)) == str(tmp_path), "staged next to data_dir"
    assert sorted(os.listdir(tmp_path)) == ["etcd", "etcdutl", "s.db"], "temp dir cleaned"


def test_restore_replaces_empty_dir(tmp_path, etcdutl):
    (tmp_path / "etcd").mkdir()
    res = sf.run_restored(restore_params(tmp_path, etcdutl), FakeRun(), check_mode=False)
    assert res["changed"] is True and res["backup_dir"] is None
    assert (tmp_path / "etcd" / "member").is_dir()


def test_restore_force_moves_old_dir_aside(tmp_path, etcdutl):
    old = tmp_path / "etcd" / "member" / "wal"
    old.mkdir(parents=True)
    (old / "keep").write_text("precious")
    res = sf.run_restored(restore_params(tmp_path, etcdutl, force=True), FakeRun(), check_mode=False, now=NOW)
    backup = tmp_path / "etcd.bak-20250102T030405Z"
    assert res["changed"] is True and res["backup_dir"] == str(backup)
    assert (backup / "member" / "wal" / "keep").read_text() == "precious"
    assert (tmp_path / "etcd" / "member" / "snap" / "db").is_file()


def test_restore_force_refuses_a_running_member(tmp_path, etcdutl):
    import fcntl

    db = tmp_path / "etcd" / "member" / "snap" / "db"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"db")
    with open(db, "rb") as held:  # what bbolt does while etcd runs
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert sf.data_dir_in_use(str(tmp_path / "etcd")) is True
        with pytest.raises(sf.SnapshotError, match="running etcd"):
            sf.run_restored(restore_params(tmp_path, etcdutl, force=True), FakeRun(), check_mode=True)
    assert sf.data_dir_in_use(str(tmp_path / "etcd")) is False


def test_restore_force_check_mode_moves_nothing(tmp_path, etcdutl):
    (tmp_path / "etcd" / "member").mkdir(parents=True)
    run = FakeRun()
    res = sf.run_restored(restore_params(tmp_path, etcdutl, force=True), run, check_mode=True, now=NOW)
    assert res["changed"] is True and res["backup_dir"].endswith("etcd.bak-20250102T030405Z")
    assert [c[0][1:3] for c in run.calls] == [["snapshot", "status"]], "only the read-only status ran"
    assert sorted(os.listdir(tmp_path)) == ["etcd", "etcdutl", "s.db"]


def test_restore_failure_keeps_old_data(tmp_path, etcdutl):
    (tmp_path / "etcd" / "member").mkdir(parents=True)
    with pytest.raises(sf.SnapshotError, match="boom"):
        sf.run_restored(restore_params(tmp_path, etcdutl, force=True), FakeRun(restore_rc=1), check_mode=False)
    assert sorted(os.listdir(tmp_path)) == ["etcd", "etcdutl", "s.db"]
    assert (tmp_path / "etcd" / "member").is_dir()


def test_restore_rejects_corrupt_snapshot_before_anything(tmp_path, etcdutl):
    p = restore_params(tmp_path, etcdutl)
    Path(p["path"]).write_bytes(Path(p["path"]).read_bytes()[:-1] + b"\x00")
    run = FakeRun()
    with pytest.raises(sf.SnapshotError):
        sf.run_restored(p, run, check_mode=False)
    assert run.calls == [] and not (tmp_path / "etcd").exists()


def test_restore_unknown_owner(tmp_path, etcdutl):
    with pytest.raises(sf.SnapshotError, match="owner 'no-such-user-x'"):
        sf.run_restored(restore_params(tmp_path, etcdutl, owner="no-such-user-x"), FakeRun(), check_mode=False)


def test_restore_missing_etcdutl(tmp_path):
    with pytest.raises(sf.SnapshotError, match="etcdutl_path"):
        sf.run_restored(restore_params(tmp_path, str(tmp_path / "nope")), FakeRun(), check_mode=False)


# -- run_saved / run_verified ------------------------------------------------------------------
class FakeSnapClient:
    def __init__(self, tmp_path):
        self.calls = []

    def snapshot(self, path):
        self.calls.append(path)
        make_db(Path(path))
        return {
            "size": os.path.getsize(path),
            "sha256": "x",
            "revision": None,
            "version": "3.6.0",
            "endpoint": "https://127.0.0.1:2379",
            "path": path,
        }


def test_saved_check_mode_writes_nothing(tmp_path, etcdutl):
    client = FakeSnapClient(tmp_path)
    res = sf.run_saved(
        {"dest_dir": str(tmp_path), "name_prefix": "etcd1", "etcdutl_path": etcdutl},
        client,
        FakeRun(),
        check_mode=True,
        now=NOW,
    )
    assert res["changed"] is True and res["path"] == str(tmp_path / "etcd1-20250102T030405Z.db")
    assert client.calls == [] and not os.path.exists(res["path"])


def test_saved_reports_revision_from_etcdutl(tmp_path, etcdutl):
    client = FakeSnapClient(tmp_path)
    res = sf.run_saved({"path": str(tmp_path / "x.db"), "etcdutl_path": etcdutl}, client, FakeRun(), False)
    assert res["changed"] is True and res["revision"] == 202 and res["total_key"] == 201


def test_saved_without_etcdutl_warns(tmp_path):
    client = FakeSnapClient(tmp_path)
    res = sf.run_saved(
        {"path": str(tmp_path / "x.db"), "etcdutl_path": str(tmp_path / "nope")}, client, FakeRun(), False
    )
    assert res["revision"] is None and "etcdutl_path" in res["warnings"][0]


def test_verified(tmp_path, etcdutl):
    path = make_db(tmp_path / "s.db")
    res = sf.run_verified({"path": str(path), "etcdutl_path": etcdutl}, FakeRun())
    assert res["changed"] is False and res["revision"] == 202 and res["size"] == 8224


def test_module_verified_fails_on_bad_trailer(tmp_path, etcdutl, capsys):
    path = make_db(tmp_path / "s.db")
    path.write_bytes(path.read_bytes()[:-1] + b"\x01")
    with patch_module_args({"state": "verified", "path": str(path), "etcdutl_path": etcdutl}):
        with pytest.raises(SystemExit) as info:
            etcd_snapshot_module.main()
    out = json.loads(capsys.readouterr().out)
    assert info.value.code == 1 and "sha256 trailer" in out["msg"]


def test_module_restored_check_mode_noop_on_existing_member(tmp_path, etcdutl, capsys):
    (tmp_path / "etcd" / "member").mkdir(parents=True)
    args = restore_params(tmp_path, etcdutl)
    args.update(state="restored", _ansible_check_mode=True)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as info:
            etcd_snapshot_module.main()
    out = json.loads(capsys.readouterr().out)
    assert info.value.code == 0 and out["changed"] is False
