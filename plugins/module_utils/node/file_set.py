# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Keep a set of files, directories and links on a host in one task (module and action file_set).

A role used to spend one task per file it installs, and every task costs 25-40 ms per host
whatever it does (bench/README.md). file_set takes the role's whole list:
  check_entries()   checks the list, every problem at once (on the controller and again on the host);
  selected_entries() leaves out entries that the play's --tags/--skip-tags or `enabled` deselect;
  plan_file_set()   reads the host through an injected I/O object and decides everything;
  FileSetRunner     acts on the plan in one place that honours check mode.
The action plugin renders templates on the controller; the module only ever sees text content.
"""

from __future__ import annotations

import difflib
import grp
import os
import pwd
import stat
import tempfile
from dataclasses import dataclass, field

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ErrorCollector, ValidationError

__all__ = [
    "ARGUMENT_CONSTRAINTS",
    "ARGUMENT_SPEC",
    "FileSetError",
    "FileSetRunner",
    "LocalFiles",
    "check_entries",
    "plan_file_set",
    "selected_entries",
]

STATES = ("file", "directory", "link", "absent")
SOURCES = ("template", "content", "copy")
DEFAULT_MODES = {"file": 0o644, "directory": 0o755}
HIDDEN = "(not shown: diff is false for this entry)\n"

ENTRY_SPEC = dict(
    dest=dict(type="path", required=True),
    state=dict(type="str", default="file", choices=list(STATES)),
    template=dict(type="str"),
    content=dict(type="str"),
    copy=dict(type="str"),
    src=dict(type="str"),
    owner=dict(type="str"),
    group=dict(type="str"),
    mode=dict(type="raw"),
    diff=dict(type="bool", default=True),
    tags=dict(type="list", elements="str", default=[]),
    enabled=dict(type="bool", default=True),
)
ARGUMENT_SPEC = dict(
    files=dict(type="list", elements="dict", required=True, options=ENTRY_SPEC),
    owner=dict(type="str"),
    group=dict(type="str"),
    directory_mode=dict(type="raw", default="0755"),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)


class FileSetError(ValidationError):
    subject = "file_set"


# --- the list of entries ----------------------------------------------------------------------


def parse_mode(value):
    """An octal mode from "0644", "644" or an int (YAML's 0644 is already 420); None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 0o7777 else None
    if isinstance(value, str) and 3 <= len(value.strip()) <= 5 and value.strip().isdigit():
        try:
            mode = int(value.strip(), 8)
        except ValueError:
            return None
        return mode if mode <= 0o7777 else None
    return None


def _did_you_mean(key):
    close = difflib.get_close_matches(key, list(ENTRY_SPEC), n=1)
    return "did you mean %r?" % close[0] if close else "the keys are %s" % ", ".join(sorted(ENTRY_SPEC))


def check_entries(files, owner=None, group=None, directory_mode="0755", on_controller=True):
    """Return the entries normalised (dest normalised, mode an int, owner/group defaulted).

    on_controller: a file's text may still come from template or copy (the action plugin
    renders or reads it); on the host only content is accepted. Raises FileSetError with
    every problem of the list.
    """
    err = ErrorCollector()
    err.error_class = FileSetError
    if parse_mode(directory_mode) is None:
        err.fail(
            "directory_mode", "%r is not an octal mode" % (directory_mode,), 'write it as a quoted string, e.g. "0755"'
        )
    if not isinstance(files, list):
        err.fail("files", "is %s, not a list" % type(files).__name__, "give a list of entries, each with a dest")
        err.raise_if_any()
    entries = []
    seen = {}
    for index, raw in enumerate(files):
        where = "files[%d]" % index
        if not isinstance(raw, dict):
            err.fail(where, "is %s, not a mapping" % type(raw).__name__, "give a mapping with at least dest")
            continue
        # the module's own argument parsing fills every key with None: only set keys count
        given = dict((k, v) for k, v in raw.items() if v is not None)
        dest = given.get("dest")
        named = "%s (%s)" % (where, dest) if isinstance(dest, str) else where
        try:
            enabled = boolean(given.get("enabled", True), strict=True)
        except TypeError:
            err.fail(named + ".enabled", "%r is not a boolean" % (given["enabled"],), "use true or false")
            continue
        if not enabled:
            # left out as it is: a role may give an empty dest to an entry some hosts do not need
            entries.append(dict(dest=str(dest or ""), tags=[], enabled=False))
            continue
        for key in sorted(given):
            if key not in ENTRY_SPEC:
                err.fail("%s.%s" % (named, key), "is not a file_set entry key", _did_you_mean(key))
        if not isinstance(dest, str) or not dest.startswith("/"):
            err.fail(
                where + ".dest", "%r is not an absolute path" % (dest,), "give the full path, e.g. /etc/app/app.conf"
            )
            continue
        dest = os.path.normpath(dest)
        if dest in seen:
            err.fail(where + ".dest", "%s is also files[%d]" % (dest, seen[dest]), "list each path once")
            continue
        seen[dest] = index
        where = "files[%d] (%s)" % (index, dest)
        state = given.get("state", "file")
        if state not in STATES:
            err.fail(where + ".state", "%r is not a state" % (state,), "use one of %s" % ", ".join(STATES))
            continue
        sources = [key for key in SOURCES if key in given]
        if state == "file":
            allowed = SOURCES if on_controller else ("content",)
            if len(sources) != 1 or sources[0] not in allowed:
                err.fail(
                    where,
                    "a file needs exactly one of %s, found %s" % (", ".join(allowed), ", ".join(sources) or "none"),
                    "give its text as content, or a template (templates/) or copy (files/) to read on the controller"
                    if on_controller
                    else "run file_set as a task (its action plugin renders template and copy), not the module alone",
                )
            if "src" in given:
                err.fail(where + ".src", "only a link has src", "use content, template or copy for a file's text")
        elif sources:
            err.fail(where, "a %s has no %s" % (state, ", ".join(sources)), "remove %s, or use state file" % sources[0])
        if state == "link" and not isinstance(given.get("src"), str):
            err.fail(where + ".src", "a link needs src, the path it points to", "add src: /the/target")
        if state in ("directory", "absent") and "src" in given:
            err.fail(where + ".src", "only a link has src", "remove src")
        mode = given.get("mode")
        if mode is not None:
            if state in ("link", "absent"):
                err.fail(where + ".mode", "a %s has no mode" % state, "remove mode")
            elif parse_mode(mode) is None:
                err.fail(
                    where + ".mode", "%r is not an octal mode" % (mode,), 'write it as a quoted string, e.g. "0644"'
                )
        entry_owner = given.get("owner", owner)
        entry_group = given.get("group", group)
        if state in ("link", "absent"):
            # a link's own owner is never what a service reads; the defaults do not apply to it
            for key in ("owner", "group"):
                if key in given:
                    err.fail("%s.%s" % (where, key), "a %s has no %s" % (state, key), "remove %s" % key)
            entry_owner = entry_group = None
        flags = {}
        for key in ("diff",):
            try:
                flags[key] = boolean(given.get(key, True), strict=True)
            except TypeError:
                err.fail("%s.%s" % (where, key), "%r is not a boolean" % (given[key],), "use true or false")
        tags = given.get("tags", [])
        if isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list) or not all(isinstance(t, (str, int)) for t in tags):
            err.fail(where + ".tags", "%r is not a list of tags" % (tags,), "give a list, e.g. [myrole_config]")
            tags = []
        entries.append(
            dict(
                dest=dest,
                state=state,
                template=given.get("template"),
                content=given.get("content"),
                copy=given.get("copy"),
                src=given.get("src"),
                owner=None if entry_owner is None else str(entry_owner),
                group=None if entry_group is None else str(entry_group),
                mode=parse_mode(mode) if mode is not None else DEFAULT_MODES.get(state),
                diff=flags.get("diff", True),
                tags=[str(t) for t in tags],
                enabled=True,
            )
        )
    err.raise_if_any()
    return entries


def tags_select(tags, only_tags, skip_tags):
    """Whether --tags only_tags / --skip-tags skip_tags select something tagged `tags` (Ansible's rules)."""
    tags = set(tags) or {"untagged"}
    only_tags, skip_tags = set(only_tags or ()), set(skip_tags or ())
    run = True
    if only_tags:
        run = (
            "always" in tags
            or ("all" in only_tags and "never" not in tags)
            or not tags.isdisjoint(only_tags)
            or ("tagged" in only_tags and tags != {"untagged"} and "never" not in tags)
        )
    if run and skip_tags:
        if "all" in skip_tags:
            run = "always" in tags and "always" not in skip_tags
        elif not tags.isdisjoint(skip_tags) or ("tagged" in skip_tags and tags != {"untagged"}):
            run = False
    return run


def selected_entries(entries, task_tags=(), only_tags=(), skip_tags=()):
    """(entries to manage, dests left out): `enabled: false`, or tags the play does not select.

    An entry counts as tagged with its own tags plus the task's tags that no entry carries
    (those of the role or the import, e.g. `myrole`), `always` excepted, and is selected as a
    task so tagged would be. A task tagged `always` (Ansible then runs it whatever the
    selection) with entries tagged by section (`myrole_config`, `myrole_logs`) thus manages, on
    `--tags myrole_config` or `--skip-tags myrole_logs`, exactly the files the separate tasks did.
    """
    entry_tags = set()
    for entry in entries:
        entry_tags.update(entry["tags"])
    # (a disabled entry carries no tags: check_entries() keeps only its dest)
    inherited = set(str(t) for t in task_tags or ()) - entry_tags - {"always"}
    chosen, left_out = [], []
    for entry in entries:
        wanted = entry["enabled"] and tags_select(set(entry["tags"]) | inherited, only_tags, skip_tags)
        (chosen if wanted else left_out).append(entry)
    return chosen, [entry["dest"] for entry in left_out]


# --- planning ---------------------------------------------------------------------------------


@dataclass
class Stat:
    """What the planner needs of a path, as lstat sees it (a link is not followed)."""

    kind: str  # file, directory, link, other
    mode: int = 0
    uid: int = 0
    gid: int = 0
    target: str | None = None  # a link's target


@dataclass
class EntryPlan:
    entry: dict
    before: Stat | None
    changes: list = field(default_factory=list)  # state, content, mode, owner, group, target
    uid: int | None = None
    gid: int | None = None
    data: bytes | None = None
    before_data: bytes | None = None

    @property
    def dest(self):
        return self.entry["dest"]

    @property
    def changed(self):
        return bool(self.changes)


@dataclass
class Plan:
    entries: list = field(default_factory=list)  # EntryPlan, in the order given
    parents: list = field(default_factory=list)  # missing directories no entry names, made with directory_mode
    unknown_ids: list = field(default_factory=list)  # "files[i] (dest).owner: no user x"

    @property
    def changed(self):
        return bool(self.parents) or any(p.changed for p in self.entries)


def _resolve(name, lookup):
    """A uid/gid from a name or a number; None when the host has no such user or group."""
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    return lookup(name)


def _missing_parents(path, io, err, where):
    """The missing directories above path, the top one first; records a parent that is not a directory."""
    missing = []
    parent = os.path.dirname(path)
    while parent != "/" and io.lstat(parent) is None:
        missing.append(parent)
        parent = os.path.dirname(parent)
    if not io.isdir(parent):
        err.fail(where, "%s is not a directory" % parent, "remove it or choose another dest")
    return list(reversed(missing))


def plan_file_set(entries, io):
    """Read the host through io and decide every change; change nothing. Raises FileSetError."""
    err = ErrorCollector()
    err.error_class = FileSetError
    plan = Plan()
    named_dirs = set(e["dest"] for e in entries if e["state"] == "directory")
    removed = set(e["dest"] for e in entries if e["state"] == "absent")
    parents = {}
    for entry in entries:
        dest, state = entry["dest"], entry["state"]
        # the dest, not the index: entries left out on the controller shift the indices here
        where = dest
        item = EntryPlan(entry=entry, before=io.lstat(dest))
        plan.entries.append(item)
        before = item.before
        if state != "absent":
            for parent in _missing_parents(dest, io, err, where):
                if parent not in named_dirs:
                    parents.setdefault(parent, True)
        for key, lookup in (("owner", io.uid_of), ("group", io.gid_of)):
            value = _resolve(entry[key], lookup)
            if entry[key] is not None and value is None:
                plan.unknown_ids.append(
                    "%s: %s %s: no such %s on this host"
                    % (where, key, entry[key], "user" if key == "owner" else "group")
                )
            setattr(item, "uid" if key == "owner" else "gid", value)
        if state == "absent":
            if before is not None:
                left = (
                    [n for n in io.listdir(dest) if os.path.join(dest, n) not in removed]
                    if before.kind == "directory"
                    else []
                )
                if left:
                    err.fail(where, "is a directory that is not empty", "remove what is in it first, or keep it")
                item.changes.append("state")
            continue
        if before is not None and before.kind != state and not (state == "file" and before.kind == "link"):
            err.fail(
                where,
                "is a %s on the host, not a %s" % (before.kind, state),
                "remove it by hand (or with an absent entry before this one) if it should become a %s" % state,
            )
            continue
        if state == "link":
            if before is None:
                item.changes.append("state")
            elif before.target != entry["src"]:
                item.changes.append("target")
            continue
        if state == "file":
            item.data = entry["content"].encode("utf-8")
            if before is None or before.kind == "link":
                # a link at dest is replaced by the file, never written through
                item.changes.append("state")
                continue
            item.before_data = io.read(dest)
            if item.before_data != item.data:
                item.changes.append("content")
        elif before is None:
            item.changes.append("state")
            continue
        if before.mode != entry["mode"]:
            item.changes.append("mode")
        if item.uid is not None and before.uid != item.uid:
            item.changes.append("owner")
        if item.gid is not None and before.gid != item.gid:
            item.changes.append("group")
    err.raise_if_any()
    plan.parents = sorted(parents, key=lambda p: (p.count("/"), p))
    return plan


# --- reporting --------------------------------------------------------------------------------


def _text(data):
    return data.decode("utf-8", errors="replace") if data is not None else ""


def _attributes(io, item, after):
    if not after:
        before = item.before
        if before is None:
            return {"path": item.dest, "state": "absent"}
        shown = {"path": item.dest, "state": before.kind}
        if before.kind == "link":
            shown["src"] = before.target
        else:
            shown.update(mode="0%03o" % before.mode, owner=io.user_name(before.uid), group=io.group_name(before.gid))
        return shown
    entry = item.entry
    shown = {"path": item.dest, "state": entry["state"]}
    if entry["state"] == "link":
        shown["src"] = entry["src"]
    elif entry["state"] != "absent":
        before = item.before
        keep = before is not None and before.kind == entry["state"]
        shown["mode"] = "0%03o" % entry["mode"]
        shown["owner"] = entry["owner"] or (io.user_name(before.uid) if keep else io.user_name(io.own_uid()))
        shown["group"] = entry["group"] or (io.group_name(before.gid) if keep else io.group_name(io.own_gid()))
    return shown


def render_diff(plan, io, directory_mode):
    """Ansible's diff list: one text diff per file whose text changes, one attribute diff per other change."""
    diffs = []
    for parent in plan.parents:
        diffs.append(
            dict(
                before_header=parent,
                after_header=parent,
                before={"path": parent, "state": "absent"},
                after={"path": parent, "state": "directory", "mode": "0%03o" % directory_mode},
            )
        )
    for item in plan.entries:
        if not item.changed:
            continue
        entry = item.entry
        text_changed = entry["state"] == "file" and ("content" in item.changes or "state" in item.changes)
        if text_changed:
            if entry["diff"]:
                before, after = _text(item.before_data), _text(item.data)
            else:
                before, after = ("" if item.before_data is None else HIDDEN), HIDDEN
            diffs.append(dict(before_header=item.dest, after_header=item.dest, before=before, after=after))
        if set(item.changes) - {"content"}:
            diffs.append(
                dict(
                    before_header=item.dest,
                    after_header=item.dest,
                    before=_attributes(io, item, after=False),
                    after=_attributes(io, item, after=True),
                )
            )
    return diffs


# --- acting -----------------------------------------------------------------------------------


class LocalFiles:
    """The host's file system, as the planner and runner see it. Every write is atomic or a single call."""

    def lstat(self, path):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return Stat("link", target=os.readlink(path))
        kind = "file" if stat.S_ISREG(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "other"
        return Stat(kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)

    def isdir(self, path):
        return os.path.isdir(path)

    def listdir(self, path):
        return os.listdir(path)

    def read(self, path):
        with open(path, "rb") as handle:
            return handle.read()

    def uid_of(self, name):
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            return None

    def gid_of(self, name):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return None

    def user_name(self, uid):
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def group_name(self, gid):
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    def own_uid(self):
        return os.geteuid()

    def own_gid(self):
        return os.getegid()

    def write_file(self, path, data, mode, uid, gid):
        # the new text is complete on disk before it takes the name: a reader never sees half a file
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=".idcloud", dir=os.path.dirname(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            self.set_attributes(tmp, mode, uid, gid)
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise

    def make_directory(self, path, mode, uid, gid):
        os.mkdir(path, 0o700)
        self.set_attributes(path, mode, uid, gid)

    def set_attributes(self, path, mode, uid, gid):
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        # after chown, which clears setuid/setgid bits
        os.chmod(path, mode)

    def make_link(self, path, target):
        tmp = os.path.join(os.path.dirname(path), ".%s.%d.idcloud" % (os.path.basename(path), os.getpid()))
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def remove(self, path):
        if os.path.isdir(path) and not os.path.islink(path):
            os.rmdir(path)
        else:
            os.unlink(path)


def apply_plan(plan, io, directory_mode):
    """Make the plan true: directories top-down, then files and links in order, then removals."""
    directories = [(p, None) for p in plan.parents] + [
        (i.dest, i) for i in plan.entries if i.entry["state"] == "directory"
    ]
    for path, item in sorted(directories, key=lambda d: (d[0].count("/"), d[0])):
        if item is None:
            io.make_directory(path, directory_mode, None, None)
        elif "state" in item.changes:
            io.make_directory(path, item.entry["mode"], item.uid, item.gid)
        elif item.changed:
            io.set_attributes(path, item.entry["mode"], item.uid, item.gid)
    for item in plan.entries:
        entry = item.entry
        if not item.changed or entry["state"] in ("directory", "absent"):
            continue
        if entry["state"] == "link":
            io.make_link(item.dest, entry["src"])
        elif "state" in item.changes or "content" in item.changes:
            io.write_file(item.dest, item.data, entry["mode"], item.uid, item.gid)
        else:
            io.set_attributes(item.dest, entry["mode"], item.uid, item.gid)
    removals = [i for i in plan.entries if i.entry["state"] == "absent" and i.changed]
    for item in sorted(removals, key=lambda i: -i.dest.count("/")):
        io.remove(item.dest)


def summarize(plan):
    """The module's result without diff: what changed (or would), entry by entry."""
    return dict(
        changed=plan.changed,
        changed_paths=[i.dest for i in plan.entries if i.changed],
        made_directories=list(plan.parents),
        files=[
            dict(dest=i.dest, state=i.entry["state"], changed=i.changed, changes=list(i.changes)) for i in plan.entries
        ],
    )


class FileSetRunner:
    """Run file_set for an AnsibleModule; the only place that changes anything."""

    def __init__(self, module, io=None):
        self.module = module
        self.io = io or LocalFiles()

    def run(self):
        params = self.module.params
        try:
            entries = check_entries(
                params["files"], params["owner"], params["group"], params["directory_mode"], on_controller=False
            )
            entries = [entry for entry in entries if entry["enabled"]]
            directory_mode = parse_mode(params["directory_mode"])
            plan = plan_file_set(entries, self.io)
        except FileSetError as exc:
            self.module.fail_json(msg=str(exc))
        if plan.unknown_ids:
            if not self.module.check_mode:
                self.module.fail_json(
                    msg="file_set: owners or groups this host lacks: %s; fix: create them before this task, "
                    "or correct the names" % "; ".join(plan.unknown_ids)
                )
            # a fresh host: the package that makes the user may come earlier in the same run
            self.module.warn(
                "check mode: %s (a real run fails unless an earlier task makes them)" % "; ".join(plan.unknown_ids)
            )
        result = summarize(plan)
        if self.module._diff:
            result["diff"] = render_diff(plan, self.io, directory_mode)
        if not self.module.check_mode and plan.changed:
            try:
                apply_plan(plan, self.io, directory_mode)
            except OSError as exc:
                self.module.fail_json(
                    msg="file_set: %s: %s; fix: the path's permissions, a read-only mount or a full disk"
                    % (exc.filename or "?", exc.strerror or exc),
                    **result,
                )
        return result
