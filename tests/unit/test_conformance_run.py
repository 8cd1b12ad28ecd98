"""bench/run_conformance.py: what it counts from e2e's JUnit, and where the suite's images come from."""

import importlib.util
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def load_runner():
    spec = importlib.util.spec_from_file_location("run_conformance", REPO / "bench" / "run_conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the shape e2e's framework/internal/junit writes: every spec of the suite, the ones the
# filters left out as skipped, failures without a message attribute
JUNIT = """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="6" disabled="0" errors="0" failures="1" time="30.1">
  <testsuite name="Kubernetes e2e suite" tests="6" skipped="3" failures="1" errors="0" time="30.1">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="1.2"/>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster  [Conformance]"
              classname="Kubernetes e2e suite" status="passed" time="9.5"/>
    <testcase name="[It] [sig-network] Services should serve a basic endpoint from pods  [Conformance]"
              classname="Kubernetes e2e suite" status="failed" time="20.3">
      <failure type="failed">[FAILED] Timed out after 120s.
        Expected endpoints</failure>
    </testcase>
    <testcase name="[It] [sig-node] Pods should be updated [NodeConformance] [Conformance]"
              classname="Kubernetes e2e suite" status="skipped" time="0.1">
      <skipped message="skipped - the provider does not support it"/>
    </testcase>
    <testcase name="[It] [sig-apps] Daemon set [Serial] should rollback without unnecessary restarts [Conformance]"
              classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"/></testcase>
    <testcase name="[It] [sig-storage] CSI mock volume should expand volume" classname="Kubernetes e2e suite"
              status="skipped" time="0"><skipped message="skipped"/></testcase>
  </testsuite>
</testsuites>
"""


def test_counts_only_the_selected_conformance_specs():
    run = load_runner()
    cases = run.select_cases(ET.fromstring(JUNIT), run.CONFORMANCE, run.NOT_SERIAL)
    states = {name.split("] ", 2)[-1][:20]: state for _, name, state in cases}
    assert len(cases) == 3, states  # no suite set-up, no [Serial], no spec outside the focus
    counts = run.summarize(cases, 30.14)
    assert counts == {"passed": 1, "failed": 1, "skipped": 1, "total": 3, "seconds": 30.1}


def test_a_failed_suite_setup_counts_as_a_failure():
    run = load_runner()
    broken = JUNIT.replace(
        '<testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="1.2"/>',
        '<testcase name="[SynchronizedBeforeSuite]" status="failed"><failure>no nodes</failure></testcase>',
    )
    cases = run.select_cases(ET.fromstring(broken), run.CONFORMANCE, run.NOT_SERIAL)
    assert run.summarize(cases, 1)["failed"] == 2


def test_results_name_each_failure_with_its_text(tmp_path):
    run = load_runner()
    cases = run.select_cases(ET.fromstring(JUNIT), run.CONFORMANCE, run.NOT_SERIAL)
    counts = run.summarize(cases, 75)
    out = str(tmp_path / "conformance")
    run.write_results(
        out,
        cases,
        counts,
        {
            "date": "d",
            "version": "v1.36.3",
            "nodes": 2,
            "kubeconfig": "k",
            "focus": run.CONFORMANCE,
            "skip": run.NOT_SERIAL,
        },
    )
    table = (tmp_path / "conformance.md").read_text()
    assert "| 1 | 1 | 1 | 3 | 1 min 15 s |" in table
    assert (
        "Services should serve a basic endpoint from pods  [Conformance]: [FAILED] Timed out after 120s. "
        "Expected endpoints" in table
    )
    root = ET.parse(tmp_path / "conformance.xml").getroot()
    assert root.get("tests") == "3" and root.get("failures") == "1"
    assert len(list(root.iter("testcase"))) == 3


def test_every_registry_of_the_suite_maps_into_the_lab_registry():
    run = load_runner()
    listing = run.repo_list("10.210.1.250:5000")
    assert listing["promoterE2eRegistry"] == "10.210.1.250:5000/e2e-test-images"
    assert listing["gcRegistry"] == "10.210.1.250:5000/k8s"
    # the failures some tests expect stay failures
    assert "invalidRegistry" not in listing and "privateRegistry" not in listing
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "conformance.yml").read_text())
    prefixes = set(run.REPO_LIST.values())
    for name, spec in images.items():
        assert spec["repository"].rsplit("/", 1)[0] in prefixes, name


def test_the_suite_images_take_agnhost_from_the_test_artifact():
    images = yaml.safe_load((REPO / "lab" / "registry-images" / "conformance.yml").read_text())
    versions = yaml.safe_load((REPO / "lab" / "artifacts" / "versions.yml").read_text())
    agnhost = images["e2e-agnhost"]
    entry = versions[agnhost["artifact"]["name"]]
    assert "agnhost" in entry["binaries"] and "e2e.test" in entry["test_binaries"]
    # the suite runs /agnhost by that path
    assert agnhost["entrypoint"] == ["/agnhost"] and agnhost["install"] == {"bin/linux/amd64/agnhost": "agnhost"}
    # the conformance images never take a name of the lab's own images (one manifest.json)
    own = yaml.safe_load((REPO / "lab" / "registry-images" / "images.yml").read_text())
    assert not set(images) & set(own)
