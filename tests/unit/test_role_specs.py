"""Every role's meta/argument_specs.yml against its defaults and its tasks.

For each role and each entry point (tasks/<entry point>.yml):
- every variable of defaults/main.yml is declared in some entry point;
- every declared option whose variable has a default (in defaults/main.yml, or in the
  defaults of a role it depends on, as Ansible merges them) states that same default, and
  no option states a default that the role does not have;
- every role variable that the entry point can reach is declared in it. Reach is decided
  statically: the entry point's task files, the files they import or include by a literal
  name, the templates they render, the handlers when a task notifies one, and the role
  variables (defaults, vars/) whose values those name, transitively. A role variable is a
  variable of the role's own defaults/main.yml.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_NAMES = sorted(p.name for p in ROLES.iterdir() if (p / "tasks").is_dir() or (p / "defaults").is_dir())

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TEMPLATE_NAME = re.compile(r"""['"]?([\w./-]+\.j2)['"]?""")
INCLUDES = {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}
TEMPLATE_MODULES = {"template", "ansible.builtin.template"}
BLOCK_KEYS = ("block", "rescue", "always")


def _load(path: Path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def role_defaults(role: str) -> dict:
    return _load(ROLES / role / "defaults" / "main.yml") or {}


def role_vars(role: str) -> dict:
    return _load(ROLES / role / "vars" / "main.yml") or {}


def dependency_defaults(role: str) -> dict:
    """Defaults of the role's meta dependencies (recursively), as Ansible merges them under its own."""
    merged: dict = {}
    meta = _load(ROLES / role / "meta" / "main.yml") or {}
    for dep in meta.get("dependencies") or []:
        name = (dep["role"] if isinstance(dep, dict) else dep).split(".")[-1]
        merged.update(dependency_defaults(name))
        merged.update(role_defaults(name))
    return merged


def argument_specs(role: str) -> dict:
    return (_load(ROLES / role / "meta" / "argument_specs.yml") or {}).get("argument_specs", {})


def _strings(node, skip_keys=("name",)):
    """Every string value (and templated key) below node, without task names."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in skip_keys and isinstance(value, str):
                continue
            yield from _strings(value, skip_keys)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, skip_keys)


def _tasks(tasks):
    for task in tasks or []:
        yield task
        for key in BLOCK_KEYS:
            if key in task:
                yield from _tasks(task[key])


def _loop_names(name: str, loop) -> list[str]:
    """A file name, or one per item of a literal loop when the name is made from the item."""
    if "{{ item }}" in name and isinstance(loop, list):
        return [name.replace("{{ item }}", item) for item in loop if isinstance(item, str)]
    return [name]


def entry_point_reach(role: str, entry_point: str) -> tuple[list[str], bool]:
    """The texts an entry point can reach (task files, templates, handlers), and whether it notifies."""
    base = ROLES / role
    texts: list[str] = []
    seen: set[Path] = set()
    notifies = False

    def visit_tasks(path: Path):
        nonlocal notifies
        if path in seen or not path.is_file():
            return
        seen.add(path)
        tasks = _load(path) or []
        texts.extend(_strings(tasks))
        for task in _tasks(tasks):
            notifies = notifies or "notify" in task
            for key, value in task.items():
                if key in INCLUDES:
                    name = value.get("file") if isinstance(value, dict) else value
                    if isinstance(name, str) and "{" not in name:
                        # beside the including file, else in tasks/ (where handlers' includes live)
                        visit_tasks(path.parent / name if (path.parent / name).is_file() else base / "tasks" / name)
                if key in TEMPLATE_MODULES and isinstance(value, dict) and isinstance(value.get("src"), str):
                    for name in _loop_names(value["src"], task.get("loop")):
                        visit_template(name)
            for text in _strings(task):
                if "ansible.builtin.template" in text or "lookup('template'" in text:
                    for name in TEMPLATE_NAME.findall(text):
                        visit_template(name)

    def visit_template(name: str):
        path = base / "templates" / name
        if path not in seen and path.is_file():
            seen.add(path)
            texts.append(path.read_text())

    visit_tasks(base / "tasks" / f"{entry_point}.yml")
    if notifies:
        visit_tasks(base / "handlers" / "main.yml")
    return texts, notifies


def used_role_variables(role: str, entry_point: str) -> set[str]:
    defaults, internal = role_defaults(role), role_vars(role)
    known = {**internal, **defaults}
    texts, _ = entry_point_reach(role, entry_point)
    pending = {word for text in texts for word in IDENTIFIER.findall(text) if word in known}
    used: set[str] = set()
    while pending:
        name = pending.pop()
        used.add(name)
        for text in _strings(known[name], skip_keys=()):
            pending |= {word for word in IDENTIFIER.findall(text) if word in known and word not in used}
    return used & set(defaults)


def spec_problems(role: str) -> list[str]:
    """Every mismatch between the role's argument_specs, defaults and tasks, as text."""
    problems = []
    defaults = role_defaults(role)
    visible = {**dependency_defaults(role), **defaults}
    specs = argument_specs(role)
    if not specs:
        return [f"{role}: no meta/argument_specs.yml entry points" + (" but defaults exist" if defaults else "")]
    declared_anywhere = set()
    for entry_point, spec in specs.items():
        options = spec.get("options") or {}
        declared_anywhere |= set(options)
        for name, option in options.items():
            if "default" in option:
                if name not in visible:
                    problems.append(
                        f"{role}/{entry_point}: {name} has default {option['default']!r} in argument_specs "
                        "but no default in defaults/main.yml (or a dependency's)"
                    )
                elif option["default"] != visible[name]:
                    problems.append(
                        f"{role}/{entry_point}: {name} default {option['default']!r} in argument_specs, "
                        f"{visible[name]!r} in defaults"
                    )
            elif name in visible:
                problems.append(
                    f"{role}/{entry_point}: {name} has default {visible[name]!r} but argument_specs states none"
                )
        if (ROLES / role / "tasks" / f"{entry_point}.yml").is_file():
            for name in sorted(used_role_variables(role, entry_point) - set(options)):
                problems.append(f"{role}/{entry_point}: tasks use {name}, which this entry point does not declare")
        elif (ROLES / role / "tasks").is_dir():
            problems.append(f"{role}/{entry_point}: no tasks/{entry_point}.yml")
    for name in sorted(set(defaults) - declared_anywhere):
        problems.append(f"{role}: {name} is in defaults/main.yml but in no entry point of argument_specs")
    return problems


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_argument_specs_match_defaults_and_tasks(role):
    assert spec_problems(role) == []


# The checker itself, on a role made up for the purpose: it must see each kind of mismatch.
def _fake_role(tmp_path, defaults, options, tasks, templates=None, handlers=None, internal=None):
    role = tmp_path / "demo"
    for sub in ("defaults", "meta", "tasks", "templates", "handlers", "vars"):
        (role / sub).mkdir(parents=True)
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": options}))
    (role / "meta" / "main.yml").write_text(yaml.safe_dump({"dependencies": []}))
    for name, content in tasks.items():
        (role / "tasks" / name).write_text(yaml.safe_dump(content))
    for name, content in (templates or {}).items():
        (role / "templates" / name).write_text(content)
    if handlers is not None:
        (role / "handlers" / "main.yml").write_text(yaml.safe_dump(handlers))
    if internal is not None:
        (role / "vars" / "main.yml").write_text(yaml.safe_dump(internal))
    return "demo"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "ROLES", tmp_path)
    return lambda **kw: _fake_role(tmp_path, **kw)


def test_checker_sees_an_undeclared_default_a_wrong_default_and_an_unused_entry_point_variable(fake):
    role = fake(
        defaults={"demo_a": 1, "demo_b": "{{ demo_c }}/x", "demo_c": "/srv", "demo_d": [1], "demo_e": "e"},
        options={
            "main": {
                "options": {
                    "demo_a": {"type": "int", "default": 2},
                    "demo_b": {"type": "str", "default": "{{ demo_c }}/x"},
                }
            },
            "other": {"options": {"demo_d": {"type": "list"}}},
        },
        tasks={
            "main.yml": [{"name": "t", "ansible.builtin.template": {"src": "x.j2", "dest": "/x"}}],
            "other.yml": [{"name": "demo_e is only a name here", "ansible.builtin.debug": {"msg": "{{ demo_d }}"}}],
        },
        templates={"x.j2": "{{ demo_b }}\n"},
    )
    assert spec_problems(role) == [
        "demo/main: demo_a default 2 in argument_specs, 1 in defaults",
        "demo/main: tasks use demo_c, which this entry point does not declare",
        "demo/other: demo_d has default [1] but argument_specs states none",
        "demo: demo_c is in defaults/main.yml but in no entry point of argument_specs",
        "demo: demo_e is in defaults/main.yml but in no entry point of argument_specs",
    ]


def test_checker_follows_includes_handlers_and_internal_vars(fake):
    role = fake(
        defaults={"demo_a": 1, "demo_b": 2, "demo_c": 3},
        options={"main": {"options": {"demo_a": {"type": "int", "default": 1}}}},
        tasks={
            "main.yml": [{"name": "b", "block": [{"name": "i", "ansible.builtin.include_tasks": "more.yml"}]}],
            "more.yml": [{"name": "n", "ansible.builtin.debug": {"msg": "{{ demo_internal }}"}, "notify": "h"}],
        },
        handlers=[{"name": "h", "ansible.builtin.debug": {"msg": "{{ demo_c }}"}}],
        internal={"demo_internal": "{{ demo_a + demo_b }}"},
    )
    assert spec_problems(role) == [
        "demo/main: tasks use demo_b, which this entry point does not declare",
        "demo/main: tasks use demo_c, which this entry point does not declare",
        "demo: demo_b is in defaults/main.yml but in no entry point of argument_specs",
        "demo: demo_c is in defaults/main.yml but in no entry point of argument_specs",
    ]
