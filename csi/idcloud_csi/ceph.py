"""Talking to Ceph as the cephx user the CO names in each call's secrets.

A session writes the user's key to a keyring file (0600, in a 0700 directory of its own) and a
ceph.conf with the cluster's mons, runs `ceph`/`rbd` with `--id <user>` against them, and
removes both at the end. The key is never on a command line or in a log line (runner.redact).
Secrets: `userID` (the cephx id, without `client.`) and `userKey` (its key).
"""

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager

from idcloud_csi.errors import CsiError, invalid
from idcloud_csi.runner import CommandFailed, remember_secret

ENOENT = 2
_USER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_KEY = re.compile(r"^[A-Za-z0-9+/=]{16,128}$")


def credentials(secrets, call):
    """(user id, key) from a call's secrets, checked; the key is remembered for redaction."""
    secrets = secrets or {}
    user, key = secrets.get("userID"), secrets.get("userKey")
    if not user or not key:
        missing = [name for name in ("userID", "userKey") if not secrets.get(name)]
        raise invalid(
            f"secrets: {', '.join(missing)} missing in {call}; fix: reference a Secret with userID (the cephx id, "
            "without client.) and userKey (its key) in the StorageClass's csi.storage.k8s.io/*-secret-name"
        )
    remember_secret(key)
    if not _USER.match(user):
        raise invalid(f"secrets: userID {user!r} is not a cephx id; fix: give the id without client., like csi-rbd")
    if not _KEY.match(key):
        raise invalid("secrets: userKey is not a cephx key (base64); fix: give the key `ceph auth get-key` prints")
    return user, key


def mon_hosts_from_conf(path):
    """mon_host (or `mon host`) of a ceph.conf's [global] section, or None."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    section = None
    for line in text.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("["):
            section = line.strip("[]").strip()
        elif "=" in line and section == "global":
            name, value = (part.strip() for part in line.split("=", 1))
            if name.replace(" ", "_") == "mon_host":
                return value
    return None


class Session:
    """The files and base arguments of one cephx user's connection."""

    def __init__(self, runner, directory, user, mon_host, timeout):
        self.runner = runner
        self.dir = directory
        self.user = user
        self.mon_host = mon_host
        self.keyring = os.path.join(directory, "keyring")
        self.conf = os.path.join(directory, "ceph.conf")
        self.timeout = timeout
        with open(self.conf, "w") as f:
            f.write(f"[global]\nmon_host = {mon_host}\nkeyring = {self.keyring}\n")

    def write_key(self, key):
        fd = os.open(self.keyring, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"[client.{self.user}]\n\tkey = {key}\n")

    def args(self):
        """What ceph, rbd and ceph-fuse take to connect as this user."""
        return ["--conf", self.conf, "--id", self.user, "--keyring", self.keyring]

    def _run(self, binary, args, json_out=True, missing_ok=False):
        timeout_flag = ["--connect-timeout", str(self.timeout)] if binary == "ceph" else []
        cmd = [binary, *self.args(), *timeout_flag, *args] + (["--format", "json"] if json_out else [])
        try:
            _, out, _ = self.runner.run(cmd, timeout=self.timeout + 30)
        except CommandFailed as exc:
            if missing_ok and exc.rc == ENOENT:
                return None
            raise CsiError(_code(exc), str(exc)) from None
        if not json_out:
            return out
        try:
            return json.loads(out) if out.strip() else None
        except ValueError:
            raise CsiError("INTERNAL", f"`{binary} {' '.join(args)}` printed no JSON") from None

    def ceph(self, *args, **kw):
        return self._run("ceph", list(args), **kw)

    def rbd(self, *args, **kw):
        return self._run("rbd", list(args), **kw)


def _code(exc):
    """The status for a failed ceph/rbd command: a refused key or cap is PERMISSION_DENIED, an
    unreachable cluster UNAVAILABLE (the CO retries both), anything else INTERNAL."""
    text = (exc.err or exc.out or "").lower()
    if exc.rc in (1, 13) and ("permission denied" in text or "access denied" in text or "auth" in text):
        return "PERMISSION_DENIED"
    if exc.rc in (-1, 110) or "timed out" in text or "connection refused" in text:
        return "UNAVAILABLE"
    if exc.rc == ENOENT:
        return "NOT_FOUND"
    return "INTERNAL"


class Ceph:
    """The cluster this driver serves: its mons (one cluster per driver instance)."""

    def __init__(self, runner, mon_host, work_dir="/run/idcloud-csi", timeout=30):
        self.runner = runner
        self.mon_host = mon_host
        self.work_dir = work_dir
        self.timeout = timeout

    def mon_host_list(self):
        return kernel_mon_list(self.mon_host)

    @contextmanager
    def session(self, user, key):
        os.makedirs(self.work_dir, mode=0o700, exist_ok=True)
        directory = tempfile.mkdtemp(prefix="session-", dir=self.work_dir)
        try:
            session = Session(self.runner, directory, user, self.mon_host, self.timeout)
            session.write_key(key)
            yield session
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    @contextmanager
    def for_call(self, secrets, call):
        user, key = credentials(secrets, call)
        with self.session(user, key) as session:
            yield session


def kernel_mon_list(mon_host):
    """`10.0.0.1:6789,10.0.0.2:6789` from a mon_host in any of Ceph's spellings (the kernel client
    takes msgr1 addresses): `[v2:ip:3300,v1:ip:6789],...`, `ip1,ip2`, `ip:6789 ip2`."""
    addresses = []
    for group in re.findall(r"\[([^\]]*)\]|([^\s,\[\]]+)", mon_host):
        entries = (group[0] or group[1]).split(",")
        v1 = [e[3:] for e in entries if e.startswith("v1:")]
        plain = [e for e in entries if not e.startswith(("v1:", "v2:"))]
        for address in v1 or plain:
            addresses.append(address if ":" in address else f"{address}:6789")
    return ",".join(addresses)
