# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""docs/layout.md: every plugin's logic is plugins/module_utils/<domain>/<plugin name>.py, and a module's
ARGUMENT_SPEC there matches its DOCUMENTATION (doc fragments included)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
PKG = "ansible_collections.idcloud.platform.plugins"


def names(kind):
    return sorted(p.stem for p in (PLUGINS / kind).glob("*.py") if p.stem != "__init__")


def logic_of(name):
    found = sorted((PLUGINS / "module_utils").glob(f"*/{name}.py"))
    assert len(found) == 1, f"{name}: expected one plugins/module_utils/<domain>/{name}.py, found {found}"
    return found[0]


@pytest.mark.parametrize("name", names("modules") + names("filter") + names("inventory"))
def test_a_plugins_logic_is_found_from_its_name(name):
    logic_of(name)


def test_every_module_utils_domain_is_a_package():
    for domain in (PLUGINS / "module_utils").iterdir():
        if domain.is_dir() and domain.name != "__pycache__":
            assert (domain / "__init__.py").read_text() == "", f"{domain.name}/__init__.py must exist and be empty"
    assert not list((PLUGINS / "module_utils").glob("*.py")), "module_utils holds domain folders only"


def _doc_options(module_file):
    doc = yaml.safe_load(
        ast.literal_eval(
            next(
                node.value
                for node in ast.parse(module_file.read_text()).body
                if isinstance(node, ast.Assign) and node.targets[0].id == "DOCUMENTATION"
            )
        )
    )
    options = dict(doc.get("options") or {})
    for fragment in doc.get("extends_documentation_fragment") or []:
        if not fragment.startswith("idcloud.platform."):
            continue  # ansible.builtin's fragments add attributes, not options
        fragment_module = importlib.import_module(f"{PKG}.doc_fragments.{fragment.rsplit('.', 1)[-1]}")
        options.update(yaml.safe_load(fragment_module.ModuleDocFragment.DOCUMENTATION)["options"])
    return options


@pytest.mark.parametrize("name", names("modules"))
def test_module_interface_lives_with_its_logic_and_matches_the_docs(name):
    logic = importlib.import_module(f"{PKG}.module_utils.{logic_of(name).parent.name}.{name}")
    assert logic.ARGUMENT_CONSTRAINTS["supports_check_mode"] is True
    documented = _doc_options(PLUGINS / "modules" / f"{name}.py")
    assert set(documented) == set(logic.ARGUMENT_SPEC), name
    for option, spec in logic.ARGUMENT_SPEC.items():
        assert documented[option].get("type", "str") == spec.get("type", "str"), f"{name}.{option}"
        assert documented[option].get("default") == spec.get("default"), f"{name}.{option}"


@pytest.mark.parametrize("name", names("modules"))
def test_module_files_stay_entry_points(name):
    # DOCUMENTATION, EXAMPLES, RETURN and main(): no other function or class
    tree = ast.parse((PLUGINS / "modules" / f"{name}.py").read_text())
    defined = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    assert defined == ["main"], f"{name}: {defined}"
