"""Shared setup for the unit tests: make this collection importable and runnable.

The repository root is the collection idcloud.platform; Python and Ansible find it as
ansible_collections.idcloud.platform under a collections root. The bootstrap step links
collections/ansible_collections/idcloud/platform to the repo root; on a checkout without
that link the tests make the same link in a private temp dir.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _collections_root() -> Path:
    root = REPO_ROOT / "collections"
    if (root / "ansible_collections" / "idcloud" / "platform" / "galaxy.yml").is_file():
        return root
    # a fresh checkout has no link yet; a temp one keeps the tests independent of the bootstrap
    temp = Path(tempfile.mkdtemp(prefix="idcloud-collections-"))
    atexit.register(shutil.rmtree, temp, True)
    (temp / "ansible_collections" / "idcloud").mkdir(parents=True)
    (temp / "ansible_collections" / "idcloud" / "platform").symlink_to(REPO_ROOT, target_is_directory=True)
    return temp


COLLECTIONS_ROOT = _collections_root()

if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))

# set before anything imports ansible.constants, so in-process Ansible finds this collection
# first wherever pytest runs from; the repo's collections/ (requirements.yml) stays on the path
_paths = [str(COLLECTIONS_ROOT), str(REPO_ROOT / "collections")]
_paths += [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(dict.fromkeys(_paths))

# Ansible's collection finder, installed before any test imports ansible_collections.*, as the
# CLIs and ansible-test do: plugins then load with their collection's metadata in-process, and
# tests and plugins share one copy of each module_utils module.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader()


def ansible_command(name: str) -> str:
    """Path of an Ansible CLI (ansible-inventory, ansible-doc, ...) from the running venv."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def collections_root() -> Path:
    return COLLECTIONS_ROOT


@pytest.fixture
def ansible_env(tmp_path) -> dict[str, str]:
    """Environment for Ansible CLIs run as subprocesses: this collection, no user config."""
    config = tmp_path / "ansible-test.cfg"
    config.write_text("[defaults]\n")
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_COLLECTIONS_PATH=os.environ["ANSIBLE_COLLECTIONS_PATH"],
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        LANG="C.UTF-8",
    )
    return env


@pytest.fixture
def run_ansible(ansible_env):
    """Run an Ansible CLI and return the CompletedProcess; never raises on a non-zero exit."""

    def run(name: str, *args: str, cwd: Path | str | None = None, env: dict[str, str] | None = None):
        return subprocess.run(
            [ansible_command(name), *args],
            cwd=cwd,
            env={**ansible_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


# --- the CSI driver (csi/idcloud_csi): importable as idcloud_csi; its gRPC stubs are generated
# (never committed) by scripts/csi-stubs with this interpreter's grpcio-tools, cached by version
CSI_DIR = REPO_ROOT / "csi"
if str(CSI_DIR) not in sys.path:
    sys.path.insert(0, str(CSI_DIR))


@pytest.fixture(scope="session")
def csi_stubs() -> str:
    """The stubs' directory, made once per CSI spec version (go fetches the protos the first time)."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "csi-stubs"), "generate", "--toolchain", "grpc_tools"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"scripts/csi-stubs generate failed:\n{proc.stderr[-3000:]}"
    directory = proc.stdout.strip().splitlines()[-1]
    os.environ["IDCLOUD_CSI_STUBS"] = directory
    return directory
