# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""etcd_member and etcd_snapshot against real etcd members on 127.0.0.1 with TLS.

The modules run for real through ``ansible localhost -m idcloud.platform.<module>``.
etcd binaries (``etcd`` or ``server``, ``etcdutl``) are looked up in
IDCLOUD_ETCD_BIN_DIR, else unpacked from the release archive the artifact builder
caches (~/.cache/idcloud/artifacts/etcd/<version>/*.tar.gz, what `make test` builds)
into ~/.cache/idcloud/test-bin/. Missing binaries are a failure, not a skip.
Only loopback is used; every process started here is killed in teardown.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_COLLECTIONS = REPO / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import EtcdClient, EtcdConnectionError  # noqa: E402

HOST = "127.0.0.1"


CACHE = Path(os.environ.get("IDCLOUD_CACHE", os.path.expanduser("~/.cache/idcloud")))


def _unpacked_release():
    """The newest cached etcd release archive, unpacked once into the test-bin cache."""
    archives = sorted(glob.glob(str(CACHE / "artifacts" / "etcd" / "*" / "etcd-*.tar.gz")), reverse=True)
    if not archives:
        return None
    archive = archives[0]
    dest = CACHE / "test-bin" / os.path.basename(archive)[: -len(".tar.gz")]
    if not (dest / "etcdutl").exists():
        tmp = Path(str(dest) + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and os.path.basename(member.name) in ("etcd", "etcdctl", "etcdutl"):
                    member.name = os.path.basename(member.name)
                    tar.extract(member, tmp, filter="data")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    return str(dest)


def _find_bins():
    d = os.environ.get("IDCLOUD_ETCD_BIN_DIR") or _unpacked_release()
    if d is None:
        return None, (
            "no etcd release archive in %s/artifacts/etcd/ (run `make artifacts`, or set IDCLOUD_ETCD_BIN_DIR)" % CACHE
        )
    server = next((os.path.join(d, n) for n in ("etcd", "server") if os.access(os.path.join(d, n), os.X_OK)), None)
    etcdutl = os.path.join(d, "etcdutl")
    if server and os.access(etcdutl, os.X_OK):
        return server, etcdutl
    return None, "no etcd server binary (etcd or server) with etcdutl in %s" % d


ETCD, ETCDUTL = _find_bins()
ANSIBLE = shutil.which("ansible", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
OPENSSL = shutil.which("openssl")
TARGET_PYTHON = os.environ.get("IDCLOUD_TEST_TARGET_PYTHON") or (
    "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
)


@pytest.fixture(autouse=True)
def _prerequisites():
    assert ETCD is not None, ETCDUTL
    assert ANSIBLE is not None, "ansible is not installed next to this python nor on PATH"
    assert OPENSSL is not None, "openssl is needed to make the throwaway test CA"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def make_pki(d):
    """Throwaway CA, a server/peer cert for 127.0.0.1 and a client cert (keys 0600, never printed)."""
    d.mkdir(mode=0o700)

    def run(*args):
        subprocess.run([OPENSSL, *args], cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=idcloud-test-ca")
    for name, eku in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        run("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        (d / (name + ".ext")).write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=%s\n" % eku)
        run(
            "x509",
            "-req",
            "-in",
            name + ".csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            name + ".crt",
            "-days",
            "1",
            "-extfile",
            name + ".ext",
        )
    for key in d.glob("*.key"):
        key.chmod(0o600)
    return d


class Member:
    def __init__(self, name, base):
        self.name = name
        self.client_port, self.peer_port = free_port(), free_port()
        self.client_url = "https://%s:%d" % (HOST, self.client_port)
        self.peer_url = "https://%s:%d" % (HOST, self.peer_port)
        self.data_dir = base / ("%s.etcd" % name)
        self.log = base / ("%s.log" % name)
        self.proc = None


class Lab:
    """Starts and stops etcd members; owns only the processes it started."""

    def __init__(self, base):
        self.base = base
        self.pki = make_pki(base / "pki")
        self.members = []
        self.token = "idcloud-test-%d" % os.getpid()

    @property
    def conn(self):
        return {
            "ca_file": str(self.pki / "ca.crt"),
            "cert_file": str(self.pki / "client.crt"),
            "key_file": str(self.pki / "client.key"),
        }

    def client(self, *members, timeout=5):
        return EtcdClient([m.client_url for m in members], timeout=timeout, **self.conn)

    def new_member(self, name):
        member = Member(name, self.base)
        self.members.append(member)
        return member

    def start(self, member, initial_cluster, state="new", token=None):
        p = self.pki
        argv = [
            ETCD,
            "--name",
            member.name,
            "--data-dir",
            str(member.data_dir),
            "--listen-client-urls",
            member.client_url,
            "--advertise-client-urls",
            member.client_url,
            "--listen-peer-urls",
            member.peer_url,
            "--initial-advertise-peer-urls",
            member.peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            token or self.token,
            "--client-cert-auth",
            "--trusted-ca-file",
            str(p / "ca.crt"),
            "--cert-file",
            str(p / "server.crt"),
            "--key-file",
            str(p / "server.key"),
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            str(p / "ca.crt"),
            "--peer-cert-file",
            str(p / "server.crt"),
            "--peer-key-file",
            str(p / "server.key"),
            "--log-level",
            "warn",
        ]
        with open(member.log, "ab") as log:
            member.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        return member

    def wait_healthy(self, member, seconds=20):
        client = self.client(member, timeout=2)
        deadline = time.monotonic() + seconds
        reason = ""
        while time.monotonic() < deadline:
            if member.proc.poll() is not None:
                raise AssertionError(
                    "etcd %s exited rc=%s:\n%s" % (member.name, member.proc.returncode, member.log.read_text()[-3000:])
                )
            ok, reason = client.health(member.client_url)
            if ok:
                return
            time.sleep(0.2)
        raise AssertionError(
            "etcd %s not healthy after %ss: %s\n%s" % (member.name, seconds, reason, member.log.read_text()[-3000:])
        )

    def stop(self, member):
        proc = member.proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def stop_all(self):
        for member in self.members:
            try:
                self.stop(member)
            except ProcessLookupError:
                pass


def run_module(module, args, tmp_path, check=False, diff=False):
    """Run idcloud.platform.<module> via ad-hoc ansible; -> (rc, result dict)."""
    tree = Path(tmp_path) / ("tree-%d" % time.monotonic_ns())
    cmd = [
        ANSIBLE,
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % TARGET_PYTHON,
        "-m",
        "idcloud.platform.%s" % module,
        "-a",
        json.dumps(args),
        "--tree",
        str(tree),
    ]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="0",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
    )
    proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=60)
    result_file = tree / "localhost"
    if not result_file.exists():
        raise AssertionError(
            "ansible gave no result (rc=%s):\n%s\n%s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        )
    return proc.returncode, json.loads(result_file.read_text())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("etcd-lab"))
    try:
        m1 = lab.new_member("m1")
        lab.start(m1, "m1=%s" % m1.peer_url)
        lab.wait_healthy(m1)
        yield lab
    finally:
        lab.stop_all()


def args(lab, *members, **kw):
    a = dict(lab.conn, endpoints=[m.client_url for m in members])
    a.update(kw)
    return a


def test_add_learner_promote_remove(lab, tmp_path):
    m1 = lab.members[0]
    m2 = lab.new_member("m2")
    add = args(lab, m1, name="m2", peer_urls=[m2.peer_url])

    rc, res = run_module("etcd_member", dict(add, check_health=True), tmp_path, check=True)
    assert rc == 0 and res["changed"] is True and res["action"] == "add"
    assert [(m["name"], m["peer_urls"], m["healthy"], m["is_learner"]) for m in res["members"]] == [
        ("m1", [m1.peer_url], True, False),
        ("", [m2.peer_url], False, True),
    ]
    assert res["members"][0]["id"].isdigit() and res["members"][1]["id"] is None
    assert len(lab.client(m1).member_list()) == 1, "check mode wrote nothing"

    rc, res = run_module("etcd_member", add, tmp_path)
    assert rc == 0 and res["changed"] is True, res
    assert res["member"]["is_learner"] is True and res["member"]["name"] == ""
    # etcd lists members by id, so the order is not the order of joining.
    assert sorted(res["initial_cluster"].split(",")) == ["m1=%s" % m1.peer_url, "m2=%s" % m2.peer_url]
    live = lab.client(m1).member_list()
    assert sorted((m["name"], m["is_learner"]) for m in live) == [("", True), ("m1", False)]

    rc, res = run_module("etcd_member", add, tmp_path)
    assert rc == 0 and res["changed"] is False, "an unstarted member is matched on its peer URLs"
    initial_cluster = res["initial_cluster"]

    # Not started yet: etcd refuses, the module fails with etcd's reason (by peer URL: no name yet).
    promote = args(lab, m1, name="m2", peer_urls=[m2.peer_url], state="promoted")
    rc, res = run_module("etcd_member", promote, tmp_path)
    assert rc != 0 and "in sync with leader" in res["msg"] and "retry" in res["msg"]

    lab.start(m2, initial_cluster, state="existing")
    lab.wait_healthy(m2)
    # A learner refuses member list ("rpc not supported for learner"): the client moves on to m1.
    learner_first = lab.client(m2, m1)
    assert len(learner_first.member_list()) == 2 and learner_first.last_endpoint == m1.client_url

    # As the role runs it on the joining host: its own (learner) endpoint first.
    promote = args(lab, m2, m1, name="m2", state="promoted")
    deadline = time.monotonic() + 20
    while True:  # what `until:` does in a playbook
        rc, res = run_module("etcd_member", promote, tmp_path)
        if rc == 0 or time.monotonic() > deadline:
            break
        assert "in sync" in res["msg"], res["msg"]
        time.sleep(1)
    assert rc == 0 and res["changed"] is True, res
    assert res["member"]["is_learner"] is False
    rc, res = run_module("etcd_member", promote, tmp_path)
    assert rc == 0 and res["changed"] is False

    # Learner -> voter is visible to a client of the new member too, and both are healthy.
    rc, res = run_module("etcd_member", args(lab, m2, m1, state="list", check_health=True), tmp_path)
    assert sorted((m["name"], m["is_learner"], m["healthy"]) for m in res["members"]) == [
        ("m1", False, True),
        ("m2", False, True),
    ]

    remove = args(lab, m1, m2, name="m2", state="absent")
    rc, res = run_module("etcd_member", remove, tmp_path, check=True)
    assert rc == 0 and res["changed"] is True and [m["name"] for m in res["members"]] == ["m1"]
    assert len(lab.client(m1).member_list()) == 2, "check mode wrote nothing"

    rc, res = run_module("etcd_member", remove, tmp_path)
    assert rc == 0 and res["changed"] is True, res
    lab.stop(m2)
    assert [m["name"] for m in lab.client(m1).member_list()] == ["m1"]
    lab.wait_healthy(m1)

    rc, res = run_module("etcd_member", remove, tmp_path)
    assert rc == 0 and res["changed"] is False

    rc, res = run_module("etcd_member", args(lab, m1, name="m1", state="absent"), tmp_path)
    assert rc != 0 and "last member" in res["msg"]


def test_snapshot_save_verify_restore(lab, tmp_path):
    m1 = lab.members[0]
    c = lab.client(m1)
    for i in range(50):
        c.put("/drill/key-%02d" % i, "value-%d" % i)
    revision, total = c.range_count()

    backups = tmp_path / "backups"
    backups.mkdir()
    rc, res = run_module(
        "etcd_snapshot",
        args(lab, m1, state="saved", dest_dir=str(backups), name_prefix="m1", etcdutl_path=ETCDUTL),
        tmp_path,
        check=True,
    )
    assert rc == 0 and res["changed"] is True and list(backups.iterdir()) == []

    rc, res = run_module(
        "etcd_snapshot",
        args(lab, m1, state="saved", dest_dir=str(backups), name_prefix="m1", etcdutl_path=ETCDUTL),
        tmp_path,
    )
    assert rc == 0 and res["changed"] is True, res
    snap = Path(res["path"])
    assert snap.parent == backups and snap.name.startswith("m1-") and snap.name.endswith("Z.db")
    assert (snap.stat().st_mode & 0o777) == 0o600
    assert res["size"] == snap.stat().st_size and res["revision"] == revision
    assert [p.name for p in backups.iterdir()] == [snap.name], "no temp file left"

    rc, ver = run_module("etcd_snapshot", {"state": "verified", "path": str(snap), "etcdutl_path": ETCDUTL}, tmp_path)
    assert rc == 0 and ver["changed"] is False and ver["revision"] == revision and ver["sha256"] == res["sha256"]
    status = json.loads(
        subprocess.run(
            [ETCDUTL, "snapshot", "status", "-w", "json", str(snap)], check=True, capture_output=True, text=True
        ).stdout
    )
    assert status["revision"] == revision and status["totalKey"] == ver["total_key"] and status["hash"] == ver["hash"]

    r1 = lab.new_member("r1")
    restore = {
        "state": "restored",
        "path": str(snap),
        "data_dir": str(r1.data_dir),
        "member_name": "r1",
        "initial_cluster": "r1=%s" % r1.peer_url,
        "initial_advertise_peer_urls": [r1.peer_url],
        "initial_cluster_token": "restored-test",
        "etcdutl_path": ETCDUTL,
    }
    rc, res = run_module("etcd_snapshot", restore, tmp_path)
    assert rc == 0 and res["changed"] is True, res
    assert res["revision"] == revision and res["backup_dir"] is None
    assert (r1.data_dir / "member").is_dir() and (r1.data_dir.stat().st_mode & 0o777) == 0o700

    rc, res = run_module("etcd_snapshot", restore, tmp_path)
    assert rc == 0 and res["changed"] is False, "an existing member dir is left alone"

    lab.start(r1, "r1=%s" % r1.peer_url, token="restored-test")
    lab.wait_healthy(r1)
    rc2 = lab.client(r1)
    assert rc2.range_count() == (revision, total)
    assert rc2.get("/drill/key-07") == (revision, b"value-7")
    assert [m["name"] for m in rc2.member_list()] == ["r1"], "restored cluster does not know the old one"

    rc, res = run_module("etcd_snapshot", dict(restore, force=True), tmp_path)
    assert rc != 0 and "running etcd" in res["msg"], "force never moves the data dir of a running member"
    lab.stop(r1)
    rc, res = run_module("etcd_snapshot", dict(restore, force=True), tmp_path)
    assert rc == 0 and res["changed"] is True and res["backup_dir"], res
    assert (Path(res["backup_dir"]) / "member").is_dir(), "the old data dir is kept"


def test_client_without_certificate_is_refused(lab, tmp_path):
    m1 = lab.members[0]
    no_cert = EtcdClient([m1.client_url], ca_file=str(lab.pki / "ca.crt"), timeout=5)
    with pytest.raises(EtcdConnectionError):
        no_cert.member_list()
    rc, res = run_module(
        "etcd_member", {"endpoints": [m1.client_url], "ca_file": str(lab.pki / "ca.crt"), "state": "list"}, tmp_path
    )
    assert rc != 0 and "certificate" in res["msg"]
