"""The lab's internal registry: TLS from the cluster CA, our images in it, and a lab host
whose containerd pulls and runs them (the path kubelet's sandboxes and the workload take)."""

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import yaml

from lab_helpers import CACHE, ENV, REPO, lab, lab_net, one_rack_description, podman_exec, write_inventory

LAB = "it-reg"
HOST = "n1"
REGISTRY = f"10.{lab_net(LAB)}.1.250:5000"
DESC = one_rack_description(LAB, lab_net(LAB), {HOST: ["etcd", "worker"]}, tor_as=65601)
ADDRESS = f"10.{lab_net(LAB)}.1.11"  # the first host of one_rack_description
CA = os.path.expanduser(f"~/.idcloud/{LAB}/pki/kubernetes/ca.crt")
CERTS_D = "/etc/containerd/certs.d"
ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
with open(os.path.join(REPO, "lab", "registry-images", "images.yml")) as _f:
    IMAGES = yaml.safe_load(_f)

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


def ref(name):
    return f"{REGISTRY}/{IMAGES[name]['repository']}:{IMAGES[name]['tag']}"


def registry(path, method="GET", headers=None):
    """A request to the registry, its certificate verified against the cluster CA only."""
    req = urllib.request.Request(f"https://{REGISTRY}{path}", method=method, headers=headers or {})
    return urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=CA))


def ctr(*args, check=True):
    return podman_exec(f"{LAB}-{HOST}", "ctr", "-n", "k8s.io", *args, check=check)


@pytest.fixture(scope="module")
def idc(tmp_path_factory):
    path = write_inventory(str(tmp_path_factory.mktemp(LAB)), DESC)
    lab(path, "down")  # leftovers of an interrupted run
    try:
        lab(path, "up")
        yield path
    finally:
        lab(path, "down")


@pytest.fixture(scope="module")
def containerd(idc):
    """containerd from Debian in the lab host, trusting the registry through the cluster CA."""
    host = f"{LAB}-{HOST}"
    podman_exec(
        host,
        "sh",
        "-c",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd >/dev/null",
    )
    podman_exec(host, "mkdir", "-p", f"{CERTS_D}/{REGISTRY}")
    subprocess.run(["podman", "cp", CA, f"{host}:{CERTS_D}/{REGISTRY}/ca.crt"], env=ENV, check=True)
    hosts_toml = (
        f'server = "https://{REGISTRY}"\n\n[host."https://{REGISTRY}"]\n'
        f'  capabilities = ["pull", "resolve"]\n  ca = "{CERTS_D}/{REGISTRY}/ca.crt"\n'
    )
    subprocess.run(
        ["podman", "exec", "-i", host, "sh", "-c", f"cat > {CERTS_D}/{REGISTRY}/hosts.toml"],
        input=hosts_toml,
        text=True,
        env=ENV,
        check=True,
    )
    for _i in range(40):
        if podman_exec(host, "ctr", "version", check=False).returncode == 0:
            break
        time.sleep(0.5)
    return host


def test_registry_serves_our_images_over_tls_from_the_cluster_ca(idc):
    with registry("/v2/_catalog") as resp:
        repositories = json.load(resp)["repositories"]
    assert {"idcloud/pause", "idcloud/web"} <= set(repositories)

    with open(os.path.join(CACHE, "images", "oci", "manifest.json")) as f:
        built = json.load(f)
    for name, spec in IMAGES.items():
        path = f"/v2/{spec['repository']}/manifests/{spec['tag']}"
        with registry(path, headers={"Accept": ACCEPT}) as resp:
            manifest = json.load(resp)
            # the registry serves the very digest the builder made (skopeo kept it)
            assert resp.headers["Docker-Content-Digest"] == built[name]["digest"]
        for blob in [manifest["config"], *manifest["layers"]]:
            with registry(f"/v2/{spec['repository']}/blobs/{blob['digest']}", method="HEAD") as resp:
                assert resp.status == 200

    # the certificate is the cluster CA's, not one the system trusts
    with pytest.raises(urllib.error.URLError) as exc:
        urllib.request.urlopen(f"https://{REGISTRY}/v2/", timeout=10)
    assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)

    # a second `up` finds the registry and the images in place: no playbook, no push
    again = lab(idc, "up")
    assert "registry https://" not in again and "pushed" not in again, again


def test_a_lab_host_pulls_the_web_image_with_containerd_and_serves_it(containerd):
    # without the CA, containerd refuses the registry: TLS is verified, not skipped
    refused = ctr("images", "pull", ref("web"), check=False)
    assert refused.returncode != 0 and "certificate" in refused.stderr, refused.stderr
    ctr("images", "pull", "--hosts-dir", CERTS_D, ref("web"))
    ctr("run", "-d", "--net-host", ref("web"), "web1")
    try:
        page = ""
        for _ in range(40):
            try:
                with urllib.request.urlopen(f"http://{ADDRESS}:8080/", timeout=2) as resp:
                    page = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.25)
        assert f"host: {HOST}" in page, page
        # runs as the image's non-root user
        pid = ctr("task", "ls").stdout.split("web1")[1].split()[0]
        status = podman_exec(containerd, "cat", f"/proc/{pid}/status").stdout
        assert "\nUid:\t65534\t" in status, status
        # the container's cgroup sits under the lab host's own cgroup,
        # not at the VM's root where every host's containers would meet
        host_pid = subprocess.run(
            ["podman", "inspect", "-f", "{{.State.Pid}}", containerd],
            env=ENV,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        with open(f"/proc/{host_pid}/cgroup") as f:
            init_cgroup = next(line.split(":", 2)[2].strip() for line in f if line.split(":")[1] == "pids")
        host_root = init_cgroup.removesuffix("/init.scope")  # systemd moves itself into init.scope
        assert os.path.isdir(f"/sys/fs/cgroup/pids{host_root}/k8s.io/web1"), host_root
        assert not os.path.exists("/sys/fs/cgroup/pids/k8s.io/web1")
    finally:
        ctr("task", "kill", "-s", "SIGKILL", "web1", check=False)
        time.sleep(0.5)
        ctr("task", "delete", "web1", check=False)
        ctr("containers", "delete", "web1", check=False)


def test_pause_reaps_orphans_and_exits_zero_promptly_on_sigterm(containerd):
    ctr("images", "pull", "--hosts-dir", CERTS_D, ref("pause"))
    run = subprocess.Popen(
        ["podman", "exec", containerd, "ctr", "-n", "k8s.io", "run", "--rm", ref("pause"), "pause1"],
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        pid = None
        for _ in range(40):
            tasks = ctr("task", "ls").stdout
            if "pause1" in tasks and "RUNNING" in tasks.split("pause1")[1].splitlines()[0]:
                pid = tasks.split("pause1")[1].split()[0]
                break
            time.sleep(0.25)
        assert pid, "pause1 did not start"
        # An orphan in the sandbox's PID namespace is handed to pause, which must reap it.
        podman_exec(containerd, "nsenter", "-t", pid, "-p", "--", "sh", "-c", "sleep 1 & true")
        children = podman_exec(containerd, "ps", "-o", "comm=", "--ppid", pid).stdout.split()
        assert children == ["sleep"], children
        time.sleep(2)
        left = podman_exec(containerd, "ps", "-o", "stat=,comm=", "--ppid", pid, check=False).stdout
        assert left.strip() == "", f"pause left children (Z: not reaped): {left}"

        started = time.monotonic()
        ctr("task", "kill", "-s", "SIGTERM", "pause1")
        assert run.wait(timeout=10) == 0, run.stderr.read()
        assert time.monotonic() - started < 3
    finally:
        if run.poll() is None:
            ctr("task", "kill", "-s", "SIGKILL", "pause1", check=False)
            run.wait(timeout=10)
