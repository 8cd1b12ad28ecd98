# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""etcd snapshot files: offline checks, etcdutl calls and the etcd_snapshot logic.

Pure helpers (verify_snapshot, *_argv, parse_*) are unit-tested directly; the
run_* functions take a ``run_command`` callable with AnsibleModule.run_command's
signature and return the module result, so the module file stays small.
"""

import datetime
import errno
import fcntl
import grp
import hashlib
import json
import os
import pwd
import shutil
import struct
import tempfile

from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import etcd_connection_argument_spec

SHA256_SIZE = 32
BBOLT_MAGIC = 0xED0CDAED
# bbolt page header (id u64, flags u16, count u16, overflow u32) precedes the meta magic.
BBOLT_MAGIC_OFFSET = 16
READ_CHUNK = 1024 * 1024
LANG_C = {"LANG": "C", "LC_ALL": "C", "LC_MESSAGES": "C"}

# the module's options (DOCUMENTATION in plugins/modules/etcd_snapshot.py)
ARGUMENT_SPEC = dict(
    etcd_connection_argument_spec(),
    state=dict(type="str", default="saved", choices=["saved", "verified", "restored"]),
    path=dict(type="path"),
    dest_dir=dict(type="path"),
    name_prefix=dict(type="str", default="etcd-snapshot"),
    etcdutl_path=dict(type="path", default="/usr/local/bin/etcdutl"),
    data_dir=dict(type="path"),
    member_name=dict(type="str"),
    initial_cluster=dict(type="str"),
    initial_advertise_peer_urls=dict(type="list", elements="str"),
    initial_cluster_token=dict(type="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
    force=dict(type="bool", default=False),
    skip_hash_check=dict(type="bool", default=False),
    bump_revision=dict(type="int", default=0),
)
ARGUMENT_CONSTRAINTS = dict(
    supports_check_mode=True,
    mutually_exclusive=[("path", "dest_dir")],
    required_together=[("cert_file", "key_file")],
    required_if=[
        ("state", "saved", ("path", "dest_dir"), True),
        ("state", "verified", ("path",)),
        ("state", "restored", ("path", "data_dir", "member_name", "initial_cluster", "initial_advertise_peer_urls")),
    ],
)


class SnapshotError(Exception):
    """A user-visible snapshot failure; the message names the field/file and the fix."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def utc_stamp(now=None):
    """YYYYmmddTHHMMSSZ in UTC."""
    now = now or datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y%m%dT%H%M%SZ")


def snapshot_file_name(dest_dir, name_prefix, now=None):
    return os.path.join(dest_dir, "%s-%s.db" % (name_prefix, utc_stamp(now)))


# -- offline integrity ----------------------------------------------------------
def verify_snapshot(path):
    """Check a snapshot made through the snapshot API: bbolt magic + sha256 trailer.

    etcd appends sha256(db) as the final 32 bytes; the db itself is a multiple of
    512 bytes, so ``size % 512 == 32`` tells a trailer is there (the same test
    etcdutl uses). -> dict(path, size, sha256 (whole file), db_sha256 (trailer)).
    Raises SnapshotError.
    """
    try:
        size = os.path.getsize(path)
        fobj = open(path, "rb")
    except OSError as exc:
        raise SnapshotError("cannot read snapshot path %s: %s" % (path, exc.strerror or exc))
    with fobj:
        head = fobj.read(BBOLT_MAGIC_OFFSET + 4)
        if len(head) < BBOLT_MAGIC_OFFSET + 4 or struct.unpack("<I", head[BBOLT_MAGIC_OFFSET:])[0] != BBOLT_MAGIC:
            raise SnapshotError(
                "%s is not an etcd snapshot: no bbolt database header (wrong file or truncated at the start)" % path
            )
        if size % 512 != SHA256_SIZE:
            raise SnapshotError(
                "%s has no sha256 trailer (size %d): it was not saved through the snapshot API "
                "or it is truncated. A db copied from a data dir (member/snap/db) has no trailer; "
                "restore such a file with skip_hash_check: true" % (path, size)
            )
        fobj.seek(0)
        body = hashlib.sha256()
        whole = hashlib.sha256()
        remaining = size - SHA256_SIZE
        while remaining > 0:
            chunk = fobj.read(min(READ_CHUNK, remaining))
            if not chunk:
                raise SnapshotError("%s shrank while being read" % path)
            body.update(chunk)
            whole.update(chunk)
            remaining -= len(chunk)
        trailer = fobj.read(SHA256_SIZE)
        whole.update(trailer)
    if body.digest() != trailer:
        raise SnapshotError(
            "%s failed the sha256 trailer check: the file is corrupt "
            "(expected %s, computed %s)" % (path, trailer.hex(), body.hexdigest())
        )
    return {"path": path, "size": size, "sha256": whole.hexdigest(), "db_sha256": trailer.hex()}


# -- etcdutl ----------------------------------------------------------------------
def snapshot_status_argv(etcdutl_path, path):
    return [etcdutl_path, "snapshot", "status", "-w", "json", path]


def parse_snapshot_status(stdout):
    """``etcdutl snapshot status -w json`` output -> dict with snake_case keys.

    etcdutl 3.6 prints ``{"hash":3493156912,"revision":202,"totalKey":201,
    "totalSize":266240,"version":"3.6.0"}`` (log lines may precede it).
    """
    doc = None
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if "revision" in doc:
                break
            doc = None
    if doc is None:
        raise SnapshotError("etcdutl snapshot status printed no JSON status: %r" % stdout[-300:])
    return {
        "revision": int(doc.get("revision", 0)),
        "total_key": int(doc.get("totalKey", 0)),
        "hash": int(doc.get("hash", 0)),
        "total_size": int(doc.get("totalSize", 0)),
        "version": doc.get("version", ""),
    }


def parse_initial_cluster(initial_cluster):
    """'a=https://x:2380,b=https://y:2380' -> {'a': ['https://x:2380'], 'b': [...]}."""
    members = {}
    for item in [i.strip() for i in initial_cluster.split(",") if i.strip()]:
        if "=" not in item:
            raise SnapshotError(
                "initial_cluster entry %r is not name=peer_url "
                "(expected e.g. 'etcd1=https://10.0.0.1:2380,etcd2=...')" % item
            )
        name, url = item.split("=", 1)
        members.setdefault(name.strip(), []).append(url.strip())
    return members


def snapshot_restore_argv(
    etcdutl_path,
    snapshot_path,
    data_dir,
    member_name,
    initial_cluster,
    initial_advertise_peer_urls,
    initial_cluster_token=None,
    skip_hash_check=False,
    bump_revision=0,
):
    """Build the ``etcdutl snapshot restore`` argv; validate what etcd would reject late."""
    if isinstance(initial_advertise_peer_urls, (list, tuple)):
        peer_urls = [u.strip() for u in initial_advertise_peer_urls if u and u.strip()]
    else:
        peer_urls = [u.strip() for u in str(initial_advertise_peer_urls or "").split(",") if u.strip()]
    if not member_name:
        raise SnapshotError("member_name is required to restore (the --name the restored member starts with)")
    if not peer_urls:
        raise SnapshotError("initial_advertise_peer_urls is required to restore, e.g. [https://10.0.0.1:2380]")
    cluster = parse_initial_cluster(initial_cluster or "")
    if member_name not in cluster:
        raise SnapshotError(
            "member_name %r is not in initial_cluster %r; add %s=%s to it"
            % (member_name, initial_cluster, member_name, peer_urls[0])
        )
    if sorted(cluster[member_name]) != sorted(peer_urls):
        raise SnapshotError(
            "initial_cluster gives %s the peer URLs %s but initial_advertise_peer_urls is %s; "
            "they must be the same" % (member_name, ",".join(cluster[member_name]), ",".join(peer_urls))
        )
    if bump_revision and bump_revision < 0:
        raise SnapshotError("bump_revision must be >= 0, got %s" % bump_revision)
    argv = [
        etcdutl_path,
        "snapshot",
        "restore",
        snapshot_path,
        "--data-dir",
        data_dir,
        "--name",
        member_name,
        "--initial-cluster",
        initial_cluster,
        "--initial-advertise-peer-urls",
        ",".join(peer_urls),
    ]
    if initial_cluster_token:
        argv += ["--initial-cluster-token", initial_cluster_token]
    if skip_hash_check:
        argv.append("--skip-hash-check")
    if bump_revision:
        # Kubernetes watchers need a revision above any they saw, and compacted history.
        argv += ["--bump-revision", str(int(bump_revision)), "--mark-compacted"]
    return argv


def _require_etcdutl(etcdutl_path):
    if not (os.path.isfile(etcdutl_path) and os.access(etcdutl_path, os.X_OK)):
        raise SnapshotError(
            "etcdutl_path %s is not an executable file; install etcdutl "
            "(it ships with etcd) or set etcdutl_path" % etcdutl_path
        )


def snapshot_status(run_command, etcdutl_path, path):
    """Run ``etcdutl snapshot status -w json`` (read-only) -> parse_snapshot_status()."""
    _require_etcdutl(etcdutl_path)
    argv = snapshot_status_argv(etcdutl_path, path)
    rc, out, err = run_command(argv, environ_update=LANG_C)
    if rc != 0:
        raise SnapshotError(
            "etcdutl snapshot status %s failed (rc=%s): %s" % (path, rc, (err or out).strip()[-1000:]), rc=rc, cmd=argv
        )
    return parse_snapshot_status(out)


# -- module logic -----------------------------------------------------------------
def run_saved(params, client, run_command, check_mode, now=None):
    """state=saved: stream a new snapshot file; always changed."""
    path = params.get("path")
    if not path:
        if not params.get("dest_dir"):
            raise SnapshotError("state=saved needs path or dest_dir")
        path = snapshot_file_name(params["dest_dir"], params.get("name_prefix") or "etcd-snapshot", now)
    path = os.path.abspath(path)
    result = {
        "changed": True,
        "path": path,
        "size": None,
        "sha256": None,
        "revision": None,
        "total_key": None,
        "hash": None,
    }
    if check_mode:
        if not os.path.isdir(os.path.dirname(path)):
            raise SnapshotError("the directory of path %s does not exist; create it first" % path)
        return result
    info = client.snapshot(path)
    result.update(
        size=info["size"],
        sha256=info["sha256"],
        revision=info.get("revision"),
        endpoint=info.get("endpoint"),
        version=info.get("version"),
    )
    etcdutl_path = params.get("etcdutl_path")
    warnings = []
    if etcdutl_path and os.access(etcdutl_path, os.X_OK):
        status = snapshot_status(run_command, etcdutl_path, path)
        result.update(
            revision=status["revision"],
            total_key=status["total_key"],
            hash=status["hash"],
            total_size=status["total_size"],
        )
    else:
        warnings.append(
            "etcdutl_path %s not found: the snapshot is saved and its sha256 trailer checked, "
            "but revision/total_key/hash are not reported" % etcdutl_path
        )
    if warnings:
        result["warnings"] = warnings
    return result


def run_verified(params, run_command):
    """state=verified: trailer check + etcdutl status; never changed."""
    path = os.path.abspath(params["path"])
    if not os.path.isfile(path):
        raise SnapshotError("path %s does not exist or is not a file" % path)
    result = {"changed": False, "path": path}
    if params.get("skip_hash_check"):
        result.update(size=os.path.getsize(path), sha256=_file_sha256(path))
    else:
        info = verify_snapshot(path)
        result.update(size=info["size"], sha256=info["sha256"])
    result.update(snapshot_status(run_command, params["etcdutl_path"], path))
    return result


def _file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fobj:
        for chunk in iter(lambda: fobj.read(READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _resolve_ids(owner, group):
    uid = gid = -1
    if owner not in (None, ""):
        try:
            uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise SnapshotError("owner %r does not exist on this host; create the user first" % owner)
    if group not in (None, ""):
        try:
            gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise SnapshotError("group %r does not exist on this host; create the group first" % group)
    return uid, gid


def _chown_tree(top, uid, gid):
    if uid == -1 and gid == -1:
        return
    os.lchown(top, uid, gid)
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)


def _backup_name(data_dir, now=None):
    base = "%s.bak-%s" % (data_dir, utc_stamp(now))
    candidate, n = base, 1
    while os.path.lexists(candidate):
        candidate = "%s.%d" % (base, n)
        n += 1
    return candidate


def run_restored(params, run_command, check_mode, now=None):
    """state=restored: etcdutl restore into a temp dir next to data_dir, then rename.

    An existing data_dir/member means a member already lives there: no change
    unless force, and then the old dir is moved aside (never deleted).
    """
    data_dir = os.path.abspath(params["data_dir"]).rstrip("/")
    path = os.path.abspath(params["path"])
    force = bool(params.get("force"))
    has_member = os.path.isdir(os.path.join(data_dir, "member"))
    result = {
        "changed": False,
        "data_dir": data_dir,
        "path": path,
        "backup_dir": None,
        "revision": None,
        "total_key": None,
        "hash": None,
    }
    if has_member and not force:
        result["msg"] = (
            "%s already holds an etcd member (member/ exists): nothing restored; "
            "set force: true to move it aside to %s.bak-<timestamp> and restore" % (data_dir, data_dir)
        )
        return result

    if has_member and data_dir_in_use(data_dir):
        raise SnapshotError(
            "data_dir %s is in use by a running etcd (member/snap/db is locked); stop etcd "
            "before restoring over it with force: true" % data_dir
        )
    uid, gid = _resolve_ids(params.get("owner"), params.get("group"))
    parent = os.path.dirname(data_dir)
    if not os.path.isdir(parent):
        raise SnapshotError("the parent directory %s of data_dir does not exist; create it first" % parent)
    if not os.path.isfile(path):
        raise SnapshotError("path %s (the snapshot to restore) does not exist or is not a file" % path)
    if not params.get("skip_hash_check"):
        verify_snapshot(path)
    status = snapshot_status(run_command, params["etcdutl_path"], path)
    result.update(
        revision=status["revision"], total_key=status["total_key"], hash=status["hash"], total_size=status["total_size"]
    )
    # Validate arguments before anything moves; the real --data-dir is the temp dir.
    snapshot_restore_argv(
        params["etcdutl_path"],
        path,
        data_dir,
        params.get("member_name"),
        params.get("initial_cluster"),
        params.get("initial_advertise_peer_urls"),
        params.get("initial_cluster_token"),
        params.get("skip_hash_check"),
        params.get("bump_revision") or 0,
    )
    backup_dir = None
    if os.path.lexists(data_dir) and not _is_empty_dir(data_dir):
        backup_dir = _backup_name(data_dir, now)
    result.update(changed=True, backup_dir=backup_dir)
    if check_mode:
        return result

    workdir = tempfile.mkdtemp(dir=parent, prefix=".%s.restore-" % os.path.basename(data_dir))
    staged = os.path.join(workdir, "data")
    try:
        argv = snapshot_restore_argv(
            params["etcdutl_path"],
            path,
            staged,
            params.get("member_name"),
            params.get("initial_cluster"),
            params.get("initial_advertise_peer_urls"),
            params.get("initial_cluster_token"),
            params.get("skip_hash_check"),
            params.get("bump_revision") or 0,
        )
        rc, out, err = run_command(argv, environ_update=LANG_C)
        if rc != 0 or not os.path.isdir(os.path.join(staged, "member")):
            raise SnapshotError(
                "etcdutl snapshot restore failed (rc=%s): %s" % (rc, (err or out).strip()[-1500:]), rc=rc, cmd=argv
            )
        os.chmod(staged, 0o700)  # etcd warns about (and 3.6 may refuse) a group/world-readable data dir
        _chown_tree(staged, uid, gid)
        if backup_dir:
            os.rename(data_dir, backup_dir)
        elif os.path.isdir(data_dir) and not os.path.islink(data_dir):
            os.rmdir(data_dir)  # empty: nothing to keep
        try:
            os.rename(staged, data_dir)
        except OSError:
            if backup_dir:
                os.rename(backup_dir, data_dir)
            raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # only our own temp dir
    result["cmd"] = argv
    return result


def data_dir_in_use(data_dir):
    """True when a running etcd holds data_dir: bbolt keeps an exclusive flock on member/snap/db."""
    db = os.path.join(data_dir, "member", "snap", "db")
    try:
        fd = os.open(db, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)


def _is_empty_dir(path):
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)
