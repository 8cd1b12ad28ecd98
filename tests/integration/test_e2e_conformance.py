"""End to end, the Kubernetes conformance suite's CI subset on the session's cluster (conftest.py).

bench/run_conformance.py runs e2e.test (the kubernetes-test artifact, at the release of the
server binaries) with the suite's images from the lab registry, focused on DNS, Services,
Pods, ConfigMaps and Secrets, and kubectl: [Conformance] tests only, no [Serial] or
[Disruptive] one. The whole non-serial suite is `make conformance` (docs/conformance.md).
"""

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from e2e import FIGURES
from lab_helpers import ENV, REPO

# The CI subset: every [Conformance] test of these areas, 64 at v1.36.3 (NetworkPolicy has
# none in this release; the ConfigMap and Secret volume tests of sig-storage are left out for
# time). A test added to one of them upstream joins the subset at the next release.
CI_FOCUS = (
    r"\[sig-network\] (DNS|Services) .*\[Conformance\]"
    r"|\[sig-node\] (Pods|ConfigMap|Secrets) .*\[Conformance\]"
    r"|\[sig-cli\] Kubectl client .*\[Conformance\]"
    r"|NetworkPolicy.*\[Conformance\]"
)
CI_PROCS = 3
MIN_TESTS = 40

# `make conformance-ci` (Makefile): out of `make test` for its budget (docs/conformance.md)
pytestmark = pytest.mark.conformance


def test_conformance_subset_passes(cluster):
    out = os.path.join(cluster["logs"], "conformance-ci")
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "bench", "run_conformance.py"),
            "--idc",
            cluster["idc"],
            "--focus",
            CI_FOCUS,
            "--nodes",
            str(CI_PROCS),
            "--timeout",
            "30m",
            "--out",
            out,
        ],
        cwd=REPO,
        env=ENV,
        text=True,
        capture_output=True,
    )
    FIGURES["conformance_ci_s"] = round(time.monotonic() - started, 1)
    with open(out + ".log", "w") as f:
        f.write(proc.stdout + proc.stderr)
    assert os.path.exists(out + ".xml"), (
        f"no JUnit result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    # read the JUnit document itself, not the runner's summary
    cases = list(ET.parse(out + ".xml").getroot().iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    ran = len(cases) - len(skipped)
    FIGURES["conformance_ci"] = {
        "passed": ran - len(failed),
        "failed": len(failed),
        "skipped": len(skipped),
        "suite_s": json.load(open(out + ".json"))["seconds"],
    }
    assert all(
        "[Conformance]" in c.get("name") and "[Serial]" not in c.get("name") and "[Disruptive]" not in c.get("name")
        for c in cases
    ), "the subset left its focus"
    assert not failed, f"{len(failed)} of {ran} conformance tests failed (see {out}.md):\n" + "\n".join(failed)
    assert ran >= MIN_TESTS, f"only {ran} conformance tests ran, the subset needs {MIN_TESTS} (see {out}.md)"
    assert proc.returncode == 0, proc.stdout[-3000:]
