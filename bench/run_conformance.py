#!/usr/bin/env python3
"""Run the Kubernetes conformance suite (e2e.test) against a cluster and tabulate the result.

  bench/run_conformance.py [--idc inventories/lab/idc.yml] [--kubeconfig FILE]
                      [--focus REGEX] [--nodes N] [--out bench/results/conformance]

By default every [Conformance] test that is neither [Serial] nor [Disruptive] (`make
conformance`); --focus narrows it (the CI subset of tests/integration/test_e2e_conformance.py
passes one). Steps: build e2e.test, ginkgo and agnhost (lab/artifacts/build kubernetes-test,
cached), build the suite's images (lab/registry-images/conformance.yml, cached) and push
those the registry lacks, write the KUBE_TEST_REPO_LIST that maps the suite's registries to
the lab's, run the suite in parallel under ginkgo, and write <out>.xml (the JUnit result of
the selected tests) and <out>.md (passed, failed, skipped, time, and every failure with its
message). Exit status: 0 when no selected test failed, 1 otherwise, 2 when the suite could
not run. docs/conformance.md says what the run needs and lists the known failures.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "lab"))
from idclab.common import cache_dir  # noqa: E402
from idclab.plan import LabPlan  # noqa: E402

BIN = os.path.join(REPO, ".venv", "bin")
PYTHON = os.path.join(BIN, "python") if os.access(os.path.join(BIN, "python"), os.X_OK) else sys.executable
ARTIFACT = "kubernetes-test"
IMAGES = os.path.join(REPO, "lab", "registry-images", "conformance.yml")
CONFORMANCE = r"\[Conformance\]"
NOT_SERIAL = r"\[Serial\]|\[Disruptive\]"
# the suite's registries, as named in k8s.io/kubernetes test/utils/image/manifest.go, and the
# repository prefix each takes in the lab's registry (the repositories of conformance.yml)
REPO_LIST = {
    "promoterE2eRegistry": "e2e-test-images",
    "buildImageRegistry": "build-image",
    "gcRegistry": "k8s",
    "gcEtcdRegistry": "k8s",
    "sigStorageRegistry": "sig-storage",
    "dockerLibraryRegistry": "library",
    "cloudProviderGcpRegistry": "cloud-provider-gcp",
}


def log(msg):
    print(f"[conformance] {msg}", flush=True)


def artifact_paths(name=ARTIFACT):
    """name -> path of the kubernetes-test binaries (and kubectl from the kubernetes entry)."""
    with open(os.path.join(cache_dir("artifacts"), "manifest.json")) as f:
        manifest = json.load(f)
    paths = {}
    for entry, wanted in ((name, ("e2e.test", "ginkgo")), ("kubernetes", ("kubectl",))):
        files = manifest[entry]["files"]
        for binary in wanted:
            paths[binary] = os.path.join(cache_dir("artifacts"), files[f"bin/linux/amd64/{binary}"]["path"])
    return paths


def repo_list(registry):
    """The KUBE_TEST_REPO_LIST document: every registry of the suite mapped into ours. The
    invalid and private registries stay as they are: tests expect their pulls to fail."""
    return {key: f"{registry}/{prefix}" for key, prefix in REPO_LIST.items()}


def select_cases(root, focus, skip):
    """The testcases of an e2e JUnit document that the run selected, as
    (element, name, state) tuples. Specs the filters left out are in the document too (as
    skipped), so selection is decided here again from the name, like ginkgo did."""
    focus_re, skip_re = re.compile(focus), re.compile(skip) if skip else None
    cases = []
    for case in root.iter("testcase"):
        name = case.get("name", "")
        if (
            name.startswith("[SynchronizedBeforeSuite]")
            or name.startswith("[SynchronizedAfterSuite]")
            or name.startswith("[ReportAfterSuite]")
            or name.startswith("[BeforeSuite]")
        ):
            # the suite's own set-up: counted only when it failed (then nothing ran)
            if case.find("failure") is not None or case.find("error") is not None:
                cases.append((case, name, "failed"))
            continue
        if not focus_re.search(name) or (skip_re and skip_re.search(name)):
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            state = "failed"
        elif case.find("skipped") is not None:
            state = "skipped"
        else:
            state = "passed"
        cases.append((case, name, state))
    return cases


def summarize(cases, elapsed):
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for _, _, state in cases:
        counts[state] += 1
    counts["total"] = len(cases)
    counts["seconds"] = round(elapsed, 1)
    return counts


def failure_text(case):
    node = case.find("failure")
    if node is None:
        node = case.find("error")
    text = (node.get("message") or node.text or "").strip() if node is not None else ""
    return " ".join(text.split())[:400]


def write_results(out, cases, counts, meta):
    """<out>.xml: a JUnit document of the selected cases; <out>.md: the table."""
    suite = ET.Element(
        "testsuite",
        name="Kubernetes e2e suite (conformance)",
        tests=str(counts["total"]),
        failures=str(counts["failed"]),
        skipped=str(counts["skipped"]),
        errors="0",
        time=str(counts["seconds"]),
    )
    for case, _, _ in cases:
        suite.append(case)
    root = ET.Element(
        "testsuites", tests=str(counts["total"]), failures=str(counts["failed"]), time=str(counts["seconds"])
    )
    root.append(suite)
    ET.indent(root)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    ET.ElementTree(root).write(out + ".xml", encoding="utf-8", xml_declaration=True)
    minutes, seconds = divmod(int(counts["seconds"]), 60)
    lines = [
        "# Kubernetes conformance: e2e.test against the lab cluster",
        "",
        f"Written by bench/run_conformance.py on {meta['date']}: e2e.test {meta['version']}, "
        f"{meta['nodes']} parallel ginkgo processes, kubeconfig {meta['kubeconfig']}.",
        "",
        f"Focus `{meta['focus']}`, skip `{meta['skip']}`.",
        "",
        "| passed | failed | skipped | total | time |",
        "|---:|---:|---:|---:|---:|",
        f"| {counts['passed']} | {counts['failed']} | {counts['skipped']} | {counts['total']} | "
        f"{minutes} min {seconds} s |",
        "",
    ]
    failed = [(name, failure_text(case)) for case, name, state in cases if state == "failed"]
    if failed:
        lines += ["## Failures (docs/conformance.md gives the reason of each known one)", ""]
        lines += [f"- {name}: {text}" for name, text in failed]
        lines.append("")
    skipped = [name for _, name, state in cases if state == "skipped"]
    if skipped:
        lines += ["## Skipped by the suite itself", ""] + [f"- {name}" for name in skipped] + [""]
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines))


def run(cmd, **kwargs):
    log("$ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--idc",
        default=os.path.join(REPO, "inventories", "lab", "idc.yml"),
        help="IDC description of the lab (cluster name, registry): %(default)s",
    )
    parser.add_argument("--kubeconfig", help="default: ~/.idcloud/<cluster name>/admin.conf")
    parser.add_argument("--registry", help="HOST:PORT of the registry to push to (default: the lab's mirror)")
    parser.add_argument(
        "--registry-cert-dir", help="directory with the registry's CA as ca.crt (default: the one `lab up` keeps)"
    )
    parser.add_argument("--focus", default=CONFORMANCE, help="ginkgo focus regex (default: %(default)s)")
    parser.add_argument("--skip", default=NOT_SERIAL, help="ginkgo skip regex (default: %(default)s)")
    parser.add_argument("--nodes", type=int, default=4, help="parallel ginkgo processes (default: %(default)s)")
    parser.add_argument("--timeout", default="3h", help="ginkgo's suite timeout (default: %(default)s)")
    parser.add_argument(
        "--out",
        default=os.path.join(REPO, "bench", "results", "conformance"),
        help="writes OUT.xml and OUT.md (default: %(default)s)",
    )
    args = parser.parse_args()

    with open(args.idc) as f:
        data = yaml.safe_load(f)
    plan = LabPlan.from_data(data, args.idc)
    cluster = (data.get("cluster") or {}).get("name")
    kubeconfig = os.path.expanduser(args.kubeconfig or f"~/.idcloud/{cluster}/admin.conf")
    registry = args.registry or plan.registry
    cert_dir = args.registry_cert_dir or os.path.join(plan.state_dir, "certs.d", registry)
    if not os.path.exists(kubeconfig):
        sys.exit(
            f"--kubeconfig: {kubeconfig} does not exist; fix: converge the cluster (make site) or pass "
            "the admin kubeconfig"
        )
    if not os.path.exists(os.path.join(cert_dir, "ca.crt")):
        sys.exit(
            f"--registry-cert-dir: {cert_dir}/ca.crt does not exist; fix: bring the lab up, or pass the "
            "directory holding the registry's CA"
        )

    run([PYTHON, os.path.join(REPO, "lab", "artifacts", "build"), ARTIFACT, "kubernetes"])
    run(
        [
            PYTHON,
            os.path.join(REPO, "lab", "registry-images", "build"),
            "--images",
            IMAGES,
            "--push",
            registry,
            "--cert-dir",
            cert_dir,
        ]
    )
    paths = artifact_paths()

    with tempfile.TemporaryDirectory(prefix="idcloud-conformance-") as work:
        repo_list_file = os.path.join(work, "repo-list.yml")
        with open(repo_list_file, "w") as f:
            yaml.safe_dump(repo_list(registry), f)
        report_dir = os.path.join(work, "report")
        os.makedirs(report_dir)
        env = dict(os.environ, KUBE_TEST_REPO_LIST=repo_list_file, KUBECONFIG=kubeconfig)
        cmd = [
            paths["ginkgo"],
            "run",
            f"--procs={args.nodes}",
            f"--focus={args.focus}",
            f"--timeout={args.timeout}",
            "--no-color",
            "--silence-skips",
        ]
        if args.skip:
            cmd.append(f"--skip={args.skip}")
        cmd += [
            paths["e2e.test"],
            "--",
            f"--kubeconfig={kubeconfig}",
            "--provider=skeleton",
            f"--kubectl-path={paths['kubectl']}",
            f"--report-dir={report_dir}",
        ]
        started = time.monotonic()
        log("$ " + " ".join(cmd))
        proc = subprocess.run(cmd, env=env, cwd=work)
        elapsed = time.monotonic() - started
        junit = os.path.join(report_dir, "junit_01.xml")
        if not os.path.exists(junit):
            sys.exit(f"e2e.test wrote no JUnit result (ginkgo exit {proc.returncode}); see its output above")
        cases = select_cases(ET.parse(junit).getroot(), args.focus, args.skip)
    counts = summarize(cases, elapsed)
    version = subprocess.run([paths["e2e.test"], "--version"], capture_output=True, text=True).stdout.strip()
    version = version.split()[-1] if version else "?"
    write_results(
        args.out,
        cases,
        counts,
        {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "version": version,
            "nodes": args.nodes,
            "kubeconfig": kubeconfig.replace(os.path.expanduser("~"), "~"),
            "focus": args.focus,
            "skip": args.skip,
        },
    )
    log(
        f"passed {counts['passed']}, failed {counts['failed']}, skipped {counts['skipped']} of "
        f"{counts['total']} in {counts['seconds']} s: {args.out}.md, {args.out}.xml"
    )
    with open(args.out + ".json", "w") as f:
        json.dump(counts, f, indent=2, sort_keys=True)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
