"""The lab's podman runner: removing a container survives podman's race with the container's exit."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "lab"))

from idclab import runner as runner_module  # noqa: E402
from idclab.common import LabError  # noqa: E402
from idclab.runner import Runner  # noqa: E402

RACE = "Error: cannot remove container abc as it could not be stopped: ... container state improper: stopped"


class FakePodman:
    """Answers `podman rm` from a script of return codes; `exists` while the container is there."""

    def __init__(self, rm_codes):
        self.rm_codes = list(rm_codes)
        self.calls = []
        self.present = True

    def __call__(self, argv, **kwargs):
        args = argv[1:]
        self.calls.append(args)
        if args[:1] == ["rm"]:
            code = self.rm_codes.pop(0)
            if code == 0:
                self.present = False
            return subprocess.CompletedProcess(argv, code, "", "" if code == 0 else RACE)
        if args[:2] == ["container", "exists"]:
            return subprocess.CompletedProcess(argv, 0 if self.present else 1, "", "")
        raise AssertionError(f"unexpected podman call {args}")


@pytest.fixture
def fake(monkeypatch):
    def make(codes):
        fake = FakePodman(codes)
        monkeypatch.setattr(runner_module.subprocess, "run", fake)
        monkeypatch.setattr(runner_module.time, "sleep", lambda s: None)
        return fake

    return make


def rm_calls(fake):
    return [c for c in fake.calls if c[0] == "rm"]


def test_a_container_removed_at_once_is_removed_once(fake):
    podman = fake([0])
    Runner().remove_container("lab-w1")
    assert rm_calls(podman) == [["rm", "-f", "-t", "5", "lab-w1"]]


def test_a_lost_race_with_the_exit_is_retried(fake):
    podman = fake([2, 0])
    Runner().remove_container("lab-w1")
    assert len(rm_calls(podman)) == 2 and not podman.present


def test_a_container_that_never_goes_fails_naming_it_and_podmans_error(fake):
    podman = fake([2, 2, 2])
    with pytest.raises(LabError, match=r"podman rm -f -t 5 lab-w1 failed \(2\): .*state improper"):
        Runner().remove_container("lab-w1")
    assert len(rm_calls(podman)) == 3
