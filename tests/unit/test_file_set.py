# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for idcloud.platform.file_set: the list's checks, the tag selection, the plan
against a fake host, the runner in check mode and for real, and the real file system seam in
a temporary directory."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.idcloud.platform.plugins.module_utils.node import file_set as fs


class FakeHost:
    """A file system in a dict: path -> Stat, plus file bytes; records every write in order."""

    USERS = {"root": 0, "etcd": 998}
    GROUPS = {"root": 0, "etcd": 998}

    def __init__(self, nodes=None):
        self.nodes = {"/": fs.Stat("directory", 0o755)}
        self.data = {}
        self.calls = []
        for path, value in (nodes or {}).items():
            self.add(path, value)

    def add(self, path, value, mode=None, uid=0, gid=0):
        if value is None:
            self.nodes[path] = fs.Stat("directory", 0o755 if mode is None else mode, uid, gid)
        elif isinstance(value, tuple):  # ("link", target)
            self.nodes[path] = fs.Stat("link", target=value[1])
        else:
            self.nodes[path] = fs.Stat("file", 0o644 if mode is None else mode, uid, gid)
            self.data[path] = value.encode()

    # --- the seam
    def lstat(self, path):
        return self.nodes.get(path)

    def isdir(self, path):
        node = self.nodes.get(path)
        return node is not None and node.kind == "directory"

    def listdir(self, path):
        return [os.path.basename(p) for p in self.nodes if p != path and os.path.dirname(p) == path]

    def read(self, path):
        return self.data[path]

    def uid_of(self, name):
        return self.USERS.get(name)

    def gid_of(self, name):
        return self.GROUPS.get(name)

    def user_name(self, uid):
        return {v: k for k, v in self.USERS.items()}.get(uid, str(uid))

    def group_name(self, gid):
        return {v: k for k, v in self.GROUPS.items()}.get(gid, str(gid))

    def own_uid(self):
        return 0

    def own_gid(self):
        return 0

    def _parent_exists(self, path):
        assert self.isdir(os.path.dirname(path)), "%s written before its parent" % path

    def write_file(self, path, data, mode, uid, gid):
        self._parent_exists(path)
        self.calls.append(("write", path))
        old = self.nodes.get(path)
        self.nodes[path] = fs.Stat(
            "file", mode, old.uid if uid is None and old else (uid or 0), old.gid if gid is None and old else (gid or 0)
        )
        self.data[path] = data

    def make_directory(self, path, mode, uid, gid):
        self._parent_exists(path)
        self.calls.append(("mkdir", path))
        self.nodes[path] = fs.Stat("directory", mode, uid or 0, gid or 0)

    def set_attributes(self, path, mode, uid, gid):
        self.calls.append(("attributes", path))
        node = self.nodes[path]
        node.mode = mode
        node.uid = node.uid if uid is None else uid
        node.gid = node.gid if gid is None else gid

    def make_link(self, path, target):
        self._parent_exists(path)
        self.calls.append(("link", path))
        self.nodes[path] = fs.Stat("link", target=target)

    def remove(self, path):
        self.calls.append(("remove", path))
        del self.nodes[path]
        self.data.pop(path, None)


def host_with_etc():
    return FakeHost({"/etc": None, "/etc/default": None})


def entries(*files, **defaults):
    return fs.check_entries(list(files), **defaults)


def run(host, files, check_mode=False, diff=False, **params):
    args = dict(params, files=files, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=fs.ARGUMENT_SPEC, **fs.ARGUMENT_CONSTRAINTS)
        return fs.FileSetRunner(module, io=host).run()


def run_failing(capsys, host, files, **params):
    with pytest.raises(SystemExit):
        run(host, files, **params)
    return json.loads(capsys.readouterr().out)


CHRONY = {"dest": "/etc/chrony/chrony.conf", "content": "server 10.0.0.1 iburst\n", "owner": "root", "mode": "0644"}
DEFAULTS = {"dest": "/etc/default/chrony", "content": 'DAEMON_OPTS="-F 1"\n', "mode": "0644"}


# --- the list's checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0644", 0o644),
        ("644", 0o644),
        ("0750", 0o750),
        (0o600, 0o600),
        ("04755", 0o4755),
        ("u+x", None),
        ("0999", None),
    ],
)
def test_parse_mode(value, expected):
    assert fs.parse_mode(value) == expected


def test_check_entries_defaults_and_normalises():
    got = entries(
        {"dest": "/etc//x/../app.conf", "content": "a"},
        {"dest": "/etc/app", "state": "directory"},
        {"dest": "/usr/bin/app", "state": "link", "src": "/opt/app"},
        owner="root",
        group="root",
    )
    assert [e["dest"] for e in got] == ["/etc/app.conf", "/etc/app", "/usr/bin/app"]
    assert [e["mode"] for e in got] == [0o644, 0o755, None]
    assert [e["owner"] for e in got] == ["root", "root", None]  # a link takes no default owner


def test_check_entries_lists_every_problem_with_its_fix():
    with pytest.raises(fs.FileSetError) as caught:
        entries(
            {"dest": "etc/app.conf", "content": "a"},
            {"dest": "/etc/a", "content": "a", "template": "a.j2"},
            {"dest": "/etc/a", "content": "b"},
            {"dest": "/etc/b", "state": "directory", "content": "x"},
            {"dest": "/etc/c", "state": "link"},
            {"dest": "/etc/d", "content": "x", "mode": "rw-r--r--"},
            {"dest": "/etc/e", "content": "x", "onwer": "root"},
            {"dest": "/etc/f"},
        )
    errors = caught.value.errors
    assert str(caught.value).startswith("file_set has 8 errors:")
    assert errors[0].startswith("files[0].dest: 'etc/app.conf' is not an absolute path; fix:")
    assert "exactly one of template, content, copy, found template, content" in errors[1]
    assert "files[2].dest: /etc/a is also files[1]" in errors[2]
    assert "a directory has no content" in errors[3]
    assert "files[4] (/etc/c).src: a link needs src" in errors[4]
    assert "files[5] (/etc/d).mode: 'rw-r--r--' is not an octal mode" in errors[5]
    assert "files[6] (/etc/e).onwer: is not a file_set entry key; fix: did you mean 'owner'?" in errors[6]
    assert "found none" in errors[7]


def test_a_disabled_entry_is_not_checked():
    got = entries({"dest": "", "state": "directory", "enabled": False}, {"dest": "/etc/a", "content": "a"})
    assert fs.selected_entries(got, [], ["all"], [])[1] == [""]


def test_on_the_host_a_file_needs_its_text():
    with pytest.raises(fs.FileSetError, match="run file_set as a task"):
        fs.check_entries([{"dest": "/etc/a", "template": "a.j2"}], on_controller=False)


# --- tags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, only, skip, expected",
    [
        (set(), ["all"], [], True),
        ({"x"}, ["all"], [], True),
        ({"x", "never"}, ["all"], [], False),
        ({"x"}, ["y"], [], False),
        ({"x"}, ["x"], [], True),
        ({"always"}, ["y"], [], True),
        ({"x"}, ["tagged"], [], True),
        (set(), ["tagged"], [], False),
        (set(), ["untagged"], [], True),
        ({"x"}, ["all"], ["x"], False),
        ({"x"}, ["all"], ["tagged"], False),
        ({"always"}, ["all"], ["all"], True),
        ({"always"}, ["all"], ["all", "always"], False),
    ],
)
def test_tags_select_follows_ansible(tags, only, skip, expected):
    assert fs.tags_select(tags, only, skip) is expected


def test_selected_entries_by_section_tags():
    listed = entries(
        {"dest": "/etc/a", "content": "a", "tags": ["role_a"]},
        {"dest": "/etc/b", "content": "b", "tags": ["role_b"]},
        {"dest": "/etc/c", "content": "c"},
        {"dest": "/etc/d", "content": "d", "enabled": False},
    )
    # the task as a role would write it: tagged always, inside an import tagged `role`
    task_tags = ["always", "role"]

    def chosen(only, skip=()):
        picked, left = fs.selected_entries(listed, task_tags, only, skip)
        return [e["dest"] for e in picked], left

    assert chosen(["all"]) == (["/etc/a", "/etc/b", "/etc/c"], ["/etc/d"])
    assert chosen(["role"]) == (["/etc/a", "/etc/b", "/etc/c"], ["/etc/d"])
    assert chosen(["role_b"]) == (["/etc/b"], ["/etc/a", "/etc/c", "/etc/d"])
    assert chosen(["all"], ["role_a"]) == (["/etc/b", "/etc/c"], ["/etc/a", "/etc/d"])
    assert chosen(["other_role"]) == ([], ["/etc/a", "/etc/b", "/etc/c", "/etc/d"])
    assert chosen(["all"], ["role"]) == ([], ["/etc/a", "/etc/b", "/etc/c", "/etc/d"])


def test_untagged_entries_of_an_untagged_task_follow_the_task():
    listed = entries({"dest": "/etc/a", "content": "a"})
    assert fs.selected_entries(listed, [], ["all"], [])[1] == []
    assert fs.selected_entries(listed, [], ["untagged"], [])[1] == []


# --- the plan -----------------------------------------------------------------------------------


def test_fresh_host_plans_parents_and_files_without_touching_anything():
    host = host_with_etc()
    plan = fs.plan_file_set(entries(CHRONY, DEFAULTS), host)
    assert plan.parents == ["/etc/chrony"]
    assert [(i.dest, i.changes) for i in plan.entries] == [
        ("/etc/chrony/chrony.conf", ["state"]),
        ("/etc/default/chrony", ["state"]),
    ]
    assert host.calls == []


def test_parent_that_is_a_file_is_an_error():
    host = FakeHost({"/etc": None, "/etc/chrony": "not a directory"})
    with pytest.raises(fs.FileSetError, match=r"/etc/chrony/chrony.conf: /etc/chrony is not a directory"):
        fs.plan_file_set(entries(CHRONY), host)


def test_converged_host_plans_nothing():
    host = FakeHost({"/etc": None, "/etc/chrony": None})
    host.add("/etc/chrony/chrony.conf", CHRONY["content"])
    plan = fs.plan_file_set(entries(CHRONY), host)
    assert not plan.changed and plan.parents == []


def test_each_kind_of_change_is_named():
    host = FakeHost({"/etc": None, "/etc/app": None})
    host.add("/etc/app/a.conf", "old\n")
    host.add("/etc/app/b.conf", "same\n", mode=0o600, uid=998)
    host.add("/etc/app/link", ("link", "/opt/old"))
    host.add("/etc/app/gone", "x")
    host.add("/etc/app/sub", None, mode=0o700)
    plan = fs.plan_file_set(
        entries(
            {"dest": "/etc/app/a.conf", "content": "new\n"},
            {"dest": "/etc/app/b.conf", "content": "same\n", "owner": "root", "group": "etcd"},
            {"dest": "/etc/app/link", "state": "link", "src": "/opt/new"},
            {"dest": "/etc/app/gone", "state": "absent"},
            {"dest": "/etc/app/never", "state": "absent"},
            {"dest": "/etc/app/sub", "state": "directory", "mode": "0750"},
        ),
        host,
    )
    assert [i.changes for i in plan.entries] == [
        ["content"],
        ["mode", "owner", "group"],
        ["target"],
        ["state"],
        [],
        ["mode"],
    ]


def test_a_link_at_a_file_dest_is_replaced_and_other_kinds_refused():
    host = FakeHost({"/etc": None, "/etc/d": None})
    host.add("/etc/l", ("link", "/elsewhere"))
    host.add("/etc/f", "x")
    plan = fs.plan_file_set(entries({"dest": "/etc/l", "content": "x"}), host)
    assert plan.entries[0].changes == ["state"]
    with pytest.raises(fs.FileSetError) as caught:
        fs.plan_file_set(
            entries({"dest": "/etc/d", "content": "x"}, {"dest": "/etc/f", "state": "directory"}),
            host,
        )
    assert caught.value.errors[0].startswith("/etc/d: is a directory on the host, not a file; fix:")
    assert caught.value.errors[1].startswith("/etc/f: is a file on the host, not a directory; fix:")


def test_a_directory_entry_is_not_also_an_implicit_parent():
    host = host_with_etc()
    plan = fs.plan_file_set(
        entries(
            {"dest": "/etc/app/conf.d/x.conf", "content": "x"},
            {"dest": "/etc/app", "state": "directory", "mode": "0700"},
        ),
        host,
    )
    assert plan.parents == ["/etc/app/conf.d"]


# --- the runner --------------------------------------------------------------------------------


def test_check_mode_on_a_fresh_host_reports_everything_and_writes_nothing():
    host = host_with_etc()
    result = run(host, [CHRONY, DEFAULTS], check_mode=True, diff=True)
    assert result["changed"] is True
    assert result["changed_paths"] == ["/etc/chrony/chrony.conf", "/etc/default/chrony"]
    assert result["made_directories"] == ["/etc/chrony"]
    assert host.calls == []
    texts = [d for d in result["diff"] if isinstance(d["after"], str)]
    assert [(d["after_header"], d["before"], d["after"]) for d in texts] == [
        ("/etc/chrony/chrony.conf", "", CHRONY["content"]),
        ("/etc/default/chrony", "", DEFAULTS["content"]),
    ]


def test_real_run_makes_parents_first_then_is_idempotent():
    host = host_with_etc()
    files = [CHRONY, DEFAULTS, {"dest": "/etc/chrony/conf.d", "state": "directory", "mode": "0750"}]
    first = run(host, files)
    assert first["changed"]
    assert host.calls == [
        ("mkdir", "/etc/chrony"),
        ("mkdir", "/etc/chrony/conf.d"),
        ("write", "/etc/chrony/chrony.conf"),
        ("write", "/etc/default/chrony"),
    ]
    assert host.nodes["/etc/chrony/conf.d"].mode == 0o750
    host.calls.clear()
    second = run(host, files, diff=True)
    assert not second["changed"] and second["changed_paths"] == [] and second["diff"] == []
    assert host.calls == []


def test_only_the_changed_file_is_named_and_rewritten():
    host = host_with_etc()
    run(host, [CHRONY, DEFAULTS])
    host.calls.clear()
    result = run(host, [CHRONY, dict(DEFAULTS, content='DAEMON_OPTS="-F 1 -x"\n')])
    assert result["changed_paths"] == ["/etc/default/chrony"]
    assert [f["changes"] for f in result["files"]] == [[], ["content"]]
    assert host.calls == [("write", "/etc/default/chrony")]


def test_attribute_change_is_applied_in_place():
    host = FakeHost({"/etc": None})
    host.add("/etc/token", "secret\n", mode=0o644)
    result = run(host, [{"dest": "/etc/token", "content": "secret\n", "mode": "0600"}], diff=True)
    assert result["files"][0]["changes"] == ["mode"]
    assert host.calls == [("attributes", "/etc/token")]
    assert result["diff"] == [
        dict(
            before_header="/etc/token",
            after_header="/etc/token",
            before={"path": "/etc/token", "state": "file", "mode": "0644", "owner": "root", "group": "root"},
            after={"path": "/etc/token", "state": "file", "mode": "0600", "owner": "root", "group": "root"},
        )
    ]


def test_diff_false_hides_the_text_everywhere():
    host = FakeHost({"/etc": None})
    host.add("/etc/token", "old-secret\n", mode=0o600)
    result = run(host, [{"dest": "/etc/token", "content": "new-secret\n", "mode": "0600", "diff": False}], diff=True)
    assert result["changed_paths"] == ["/etc/token"]
    assert "secret" not in json.dumps(result)
    assert result["diff"][0]["before"] == result["diff"][0]["after"] == fs.HIDDEN


def test_unknown_owner_fails_a_real_run_and_warns_in_check_mode(capsys, monkeypatch):
    host = FakeHost({"/etc": None})
    files = [{"dest": "/etc/kafka.conf", "content": "x", "owner": "kafka"}]
    warnings = []
    with patch_module_args(dict(files=files, _ansible_check_mode=True)):
        module = AnsibleModule(argument_spec=fs.ARGUMENT_SPEC, **fs.ARGUMENT_CONSTRAINTS)
        monkeypatch.setattr(module, "warn", warnings.append)
        result = fs.FileSetRunner(module, io=host).run()
    assert result["changed_paths"] == ["/etc/kafka.conf"]
    assert len(warnings) == 1 and "/etc/kafka.conf: owner kafka: no such user on this host" in warnings[0]
    failed = run_failing(capsys, host, files)
    assert failed["failed"] and "/etc/kafka.conf: owner kafka: no such user" in failed["msg"]
    assert host.calls == []


def test_plan_errors_change_nothing(capsys):
    host = FakeHost({"/etc": None, "/etc/d": None})
    failed = run_failing(capsys, host, [{"dest": "/etc/new", "content": "x"}, {"dest": "/etc/d", "content": "x"}])
    assert "is a directory on the host" in failed["msg"]
    assert host.calls == []


def test_removals_come_last_deepest_first():
    host = FakeHost({"/etc": None, "/etc/old": None})
    host.add("/etc/old/a", "x")
    run(
        host,
        [
            {"dest": "/etc/old", "state": "absent"},
            {"dest": "/etc/old/a", "state": "absent"},
            {"dest": "/etc/new", "content": "n"},
        ],
    )
    assert host.calls == [("write", "/etc/new"), ("remove", "/etc/old/a"), ("remove", "/etc/old")]


def test_absent_refuses_a_directory_with_content():
    host = FakeHost({"/etc": None, "/etc/old": None})
    host.add("/etc/old/a", "x")
    with pytest.raises(fs.FileSetError, match="not empty"):
        fs.plan_file_set(entries({"dest": "/etc/old", "state": "absent"}), host)


# --- the real file system ----------------------------------------------------------------------


def test_local_files_end_to_end(tmp_path):
    root = tmp_path / "etc"
    root.mkdir()
    (root / "link").symlink_to("/nowhere")
    files = [
        {"dest": str(root / "app" / "conf.d" / "a.conf"), "content": "a\n", "mode": "0640"},
        {"dest": str(root / "link"), "content": "was a link\n"},
        {"dest": str(root / "bin"), "state": "link", "src": "app"},
    ]
    host = fs.LocalFiles()
    first = run(host, files)
    assert first["made_directories"] == [str(root / "app"), str(root / "app" / "conf.d")]
    written = root / "app" / "conf.d" / "a.conf"
    assert written.read_text() == "a\n" and stat.S_IMODE(written.stat().st_mode) == 0o640
    assert stat.S_IMODE((root / "app").stat().st_mode) == 0o755
    assert not (root / "link").is_symlink() and (root / "link").read_text() == "was a link\n"
    assert os.readlink(root / "bin") == "app"
    assert sorted(p.name for p in (root / "app" / "conf.d").iterdir()) == ["a.conf"]  # no temp file left
    assert run(host, files)["changed"] is False


# --- the action and the module together, on this machine --------------------------------------

ROLE_TASKS = """
- name: The template the old way, to compare
  ansible.builtin.template:
    src: app.conf.j2
    dest: "{{ out }}/builtin.conf"
    mode: "0644"
  tags: [always]

- name: The role's files
  idcloud.platform.file_set:
    files:
      - dest: "{{ out }}/etc/app.conf"
        template: app.conf.j2
        tags: [demo_config]
      - dest: "{{ out }}/etc/logrotate"
        copy: logrotate
        mode: "0640"
        tags: [demo_logs]
      - dest: "{{ out }}/etc/token"
        content: "token {{ demo_token }}\\n"
        mode: "0600"
        diff: false
        tags: [demo_config]
      - dest: ""
        state: directory
        enabled: false
  register: demo_files
  tags: [always]

- name: Keep the result
  ansible.builtin.copy:
    content: "{{ demo_files | to_json }}"
    dest: "{{ out }}/result.json"
    mode: "0644"
  check_mode: false
  diff: false
  tags: [always]
"""


@pytest.fixture
def playbook(tmp_path):
    role = tmp_path / "roles" / "demo"
    for sub in ("tasks", "templates", "files"):
        (role / sub).mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (role / "templates" / "app.conf.j2").write_text(
        "# {{ ansible_managed }}\n{% for s in demo_servers %}\nserver {{ s }}\n{% endfor %}\n"
    )
    (role / "files" / "logrotate").write_text("/var/log/app/*.log { daily }\n")
    (tmp_path / "out").mkdir()
    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n    - role: demo\n      tags: [demo]\n")
    return tmp_path


def play(run_ansible, where, *args, token="one"):
    proc = run_ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % sys.executable,
        "-e",
        "out=%s" % (where / "out"),
        "-e",
        '{"demo_servers": ["10.0.0.1", "10.0.0.2"], "demo_token": "%s"}' % token,
        str(where / "play.yml"),
        *args,
        cwd=where,
        env={"ANSIBLE_ROLES_PATH": str(where / "roles"), "ANSIBLE_LOCALHOST_WARNING": "false"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, json.loads((where / "out" / "result.json").read_text())


def test_action_renders_on_the_controller_and_the_module_writes(run_ansible, playbook):
    out = playbook / "out"
    proc, checked = play(run_ansible, playbook, "--check", "--diff")
    assert checked["changed_paths"] == [str(out / "etc" / f) for f in ("app.conf", "logrotate", "token")]
    assert checked["made_directories"] == [str(out / "etc")] and not (out / "etc").exists()
    assert checked["left_out"] == [""]
    assert "server 10.0.0.2" in proc.stdout and "token one" not in proc.stdout

    proc, first = play(run_ansible, playbook)
    assert first["changed"] and "token one" not in proc.stdout + json.dumps(first)
    assert (out / "etc" / "app.conf").read_bytes() == (out / "builtin.conf").read_bytes()
    assert (out / "etc" / "logrotate").read_text() == "/var/log/app/*.log { daily }\n"
    assert stat.S_IMODE((out / "etc" / "token").stat().st_mode) == 0o600

    _, second = play(run_ansible, playbook)
    assert not second["changed"] and second["changed_paths"] == []

    # a new token, but only the logs section selected (and the role's tag inherited): the token is left out
    _, logs_only = play(run_ansible, playbook, "--tags", "demo_logs", token="two")
    assert logs_only["changed_paths"] == [] and str(out / "etc" / "token") in logs_only["left_out"]
