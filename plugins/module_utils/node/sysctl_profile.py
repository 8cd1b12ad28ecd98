# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Plan and apply a sysctl profile: one sysctl.d file plus the live values in /proc/sys.

The work is split in two steps, like ansible.posix.sysctl:
  plan_profile()  reads the file and the live values and decides everything;
  SysctlProfileRunner.run() acts on the plan in one place that honours check mode.
The proc root is an argument so unit tests can use a temporary directory.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile

PROC_SYS = "/proc/sys"
DEFAULT_PATH = "/etc/sysctl.d/90-idcloud.conf"

HEADER = (
    "# Managed by idcloud (idcloud.platform.sysctl_profile). Do not edit by hand:\n"
    "# local changes are overwritten on the next run. Change the inventory instead.\n"
)

ARGUMENT_SPEC = dict(
    values=dict(type="dict", required=True),
    path=dict(type="path", default=DEFAULT_PATH),
    apply=dict(type="bool", default=True),
    unsupported=dict(type="str", default="warn", choices=["warn", "fail"]),
    raise_only=dict(type="list", elements="str", default=[]),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)

ABSENT = "absent from the running kernel (module not loaded, or not in this network namespace)"
READ_ONLY = "read-only here (a global key in a container or network namespace, or a read-only /proc/sys)"

# Keys as sysctl(8) accepts them: dotted, or slashed when a component (a VLAN device) holds a dot.
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@/+-]*$")
_INT_RE = re.compile(r"^-?[0-9]+$")


class SysctlProfileError(Exception):
    """An error the user can fix; the message names the key, the value and the fix."""


def normalize_value(value):
    """Return the canonical string form of a sysctl value, or None to leave the key out.

    Multi-value keys are compared with single spaces: the kernel prints tabs
    (ip_local_port_range reads back as "1024\\t65535").
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return " ".join(normalize_value(v) for v in value)
    return " ".join(str(value).split())


def key_to_path(key, proc_root=PROC_SYS):
    """Map "net.ipv4.ip_forward" (or "net/ipv4/conf/eth0.1/rp_filter") to its /proc/sys file."""
    if not _KEY_RE.match(key) or ".." in key.split("/") or "//" in key:
        raise SysctlProfileError(
            "sysctl key %r is not a valid name: use dots (net.ipv4.ip_forward) or, when a "
            "component holds a dot, slashes (net/ipv4/conf/eth0.100/rp_filter)" % key
        )
    relative = key if "/" in key else key.replace(".", "/")
    return os.path.join(proc_root, relative)


def render_file(values):
    """Render the sysctl.d file: a fixed header and one sorted "key = value" line per key."""
    lines = ["%s = %s\n" % (key, values[key]) for key in sorted(values)]
    return HEADER + "".join(lines)


def read_text(path):
    """Return a file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise


def read_live(path):
    """Return (normalised live value, None) or (None, reason it could not be read)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return normalize_value(handle.read()), None
    except OSError as exc:
        return None, "cannot read %s: %s" % (path, exc.strerror or exc)


def _writable(path):
    """Whether this process may write a /proc/sys file (mode, namespace owner, read-only mount)."""
    return os.access(path, os.W_OK)


def _write_proc(path, value):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(value)


def _is_int(text):
    return text is not None and bool(_INT_RE.match(text))


def _render_live(values):
    return "".join("%s = %s\n" % (key, values[key]) for key in sorted(values))


class Plan:
    """Everything decided before acting: what the file and the live values should become."""

    def __init__(self):
        self.desired = {}  # key -> value to write to the file (after raise_only)
        self.live = {}  # key -> live value read from /proc/sys (readable keys only)
        self.drift = {}  # key -> {'live', 'desired'}: live values that differ
        self.to_set = {}  # key -> value: live values this run will set
        self.unsupported = {}  # key -> reason: kernel lacks the key or will not let us set it
        self.file_before = None  # current file content (None: no file)
        self.file_after = ""

    @property
    def file_changed(self):
        return self.file_before != self.file_after

    @property
    def changed(self):
        return self.file_changed or bool(self.to_set)


def plan_profile(values, path, apply=True, raise_only=(), proc_root=PROC_SYS):
    """Read the file and the live values and decide what to change; change nothing."""
    plan = Plan()
    raise_only = set(raise_only or ())
    for key in sorted(values):
        desired = normalize_value(values[key])
        if desired is None:
            continue
        if desired == "":
            raise SysctlProfileError(
                "sysctl key %s has an empty value: give it a value, or null to leave it out of the profile" % key
            )
        proc_path = key_to_path(key, proc_root)
        if not os.path.isfile(proc_path):
            plan.desired[key] = desired
            plan.unsupported[key] = ABSENT
            continue
        live, reason = read_live(proc_path)
        if reason:
            plan.desired[key] = desired
            plan.unsupported[key] = reason
            continue
        plan.live[key] = live
        if key in raise_only and _is_int(live) and _is_int(desired) and int(live) > int(desired):
            # A floor, not a cap: keep a higher value (memory-scaled kernel default, kube-proxy).
            desired = live
        plan.desired[key] = desired
        if live == desired:
            continue
        plan.drift[key] = {"live": live, "desired": desired}
        if not apply:
            continue
        if not _writable(proc_path):
            plan.unsupported[key] = READ_ONLY
            del plan.drift[key]
            continue
        plan.to_set[key] = desired
    plan.file_before = read_text(path)
    plan.file_after = render_file(plan.desired)
    return plan


def write_live(key, value, proc_root=PROC_SYS):
    """Write one live value. Return None, or the reason the kernel refused it."""
    proc_path = key_to_path(key, proc_root)
    try:
        _write_proc(proc_path, value)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.EROFS):
            return "the kernel refused to set it here (%s; not permitted in this container or namespace)" % (
                exc.strerror or exc
            )
        raise SysctlProfileError(
            "the kernel rejected %s = %s (%s): fix the value in the profile or its override"
            % (key, value, exc.strerror or exc)
        ) from exc
    return None


class SysctlProfileRunner:
    """Run the plan for an AnsibleModule; the only place that changes anything."""

    def __init__(self, module, proc_root=PROC_SYS):
        self.module = module
        self.proc_root = proc_root

    def _write_file(self, path, content):
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(prefix=".idcloud-sysctl-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
            os.chmod(tmp, 0o644)
            self.module.atomic_move(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _fail_unsupported(self, plan, path, changed):
        keys = sorted(plan.unsupported)
        self.module.fail_json(
            msg="sysctl keys not supported on this host: %s. Load the kernel module that provides "
            "them, leave them out of the profile (null in the overrides), or use "
            "unsupported=warn to only write them to %s"
            % ("; ".join("%s: %s" % (k, plan.unsupported[k]) for k in keys), path),
            unsupported=keys,
            unsupported_reasons=plan.unsupported,
            changed=changed,
        )

    def run(self):
        params = self.module.params
        path = params["path"]
        strict = params["unsupported"] == "fail"
        try:
            plan = plan_profile(
                params["values"], path, apply=params["apply"], raise_only=params["raise_only"], proc_root=self.proc_root
            )
        except SysctlProfileError as exc:
            self.module.fail_json(msg=str(exc))
        if strict and plan.unsupported:
            self._fail_unsupported(plan, path, changed=False)

        written = {}
        if not self.module.check_mode:
            if plan.file_changed:
                self._write_file(path, plan.file_after)
            for key in sorted(plan.to_set):
                try:
                    reason = write_live(key, plan.to_set[key], self.proc_root)
                except SysctlProfileError as exc:
                    self.module.fail_json(msg=str(exc), changed=plan.file_changed or bool(written))
                if reason:
                    # Only the write itself can tell (capability checks): same handling as read-only.
                    plan.unsupported[key] = reason
                    continue
                written[key] = read_live(key_to_path(key, self.proc_root))[0]
            for key in plan.unsupported:
                plan.to_set.pop(key, None)
                plan.drift.pop(key, None)
            if strict and plan.unsupported:
                self._fail_unsupported(plan, path, changed=plan.file_changed or bool(written))

        for key in sorted(written):
            if written[key] != plan.to_set[key]:
                self.module.warn(
                    "sysctl %s: wrote %s but the kernel reads back %s; set the profile value to %s "
                    "or every run will report a change" % (key, plan.to_set[key], written[key], written[key])
                )
        unsupported = sorted(plan.unsupported)
        if unsupported:
            # One warning per run, grouped by reason: a container host has several such keys.
            groups = {}
            for key in unsupported:
                shown = "%s=%s" % (key, plan.desired[key])
                if key in plan.live and plan.live[key] != plan.desired[key]:
                    shown += " (live %s)" % plan.live[key]
                groups.setdefault(plan.unsupported[key], []).append(shown)
            self.module.warn(
                "sysctl keys not applied live, still written to %s for the next boot. %s"
                % (
                    path,
                    " ".join(
                        "%s%s: %s." % (reason[0].upper(), reason[1:], ", ".join(keys))
                        for reason, keys in sorted(groups.items())
                    ),
                )
            )

        result = dict(
            changed=plan.changed,
            path=path,
            values=plan.desired,
            changed_keys=sorted(plan.to_set),
            file_changed=plan.file_changed,
            drift=plan.drift,
            unsupported=unsupported,
            unsupported_reasons=plan.unsupported,
        )
        if self.module._diff:
            live_before = dict((k, v) for k, v in plan.live.items() if k in plan.desired)
            live_after = dict(live_before)
            live_after.update(plan.to_set)
            result["diff"] = [
                dict(before_header=path, after_header=path, before=plan.file_before or "", after=plan.file_after),
                dict(
                    before_header="live values (%s)" % self.proc_root,
                    after_header="live values (%s)" % self.proc_root,
                    before=_render_live(live_before),
                    after=_render_live(live_after),
                ),
            ]
        return result
