"""etcd with a CA the user brings (etcd_ca_source: provided), and the error when it is missing."""

import os
import shutil
import subprocess

import pytest

from lab_helpers import BIN, REPO, lab, lab_env, lab_net, one_rack_description, podman_exec, write_inventory

LAB = "it-ca"
DESC = one_rack_description(LAB, lab_net(LAB), {"ca1": ["etcd"]}, tor_as=65501, registry=False)

pytestmark = pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed")


def make_ca(directory):
    """A CA made outside the collection, as an IDC's own PKI would hand it over."""
    key, crt = os.path.join(directory, "own-ca.key"), os.path.join(directory, "own-ca.crt")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            crt,
            "-days",
            "30",
            "-subj",
            "/CN=idc-own-etcd-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def run_etcd(idc, *extra):
    return subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", idc, os.path.join(REPO, "playbooks", "etcd.yml"), *extra],
        cwd=REPO,
        env=lab_env(idc),
        text=True,
        capture_output=True,
    )


def test_provided_ca_signs_the_members_and_a_missing_one_is_refused(tmp_path):
    idc = write_inventory(str(tmp_path / "inv"), DESC)
    crt, key = make_ca(str(tmp_path))
    pki = str(tmp_path / "pki")
    lab(idc, "down")
    lab(idc, "up")
    try:
        missing = run_etcd(
            idc,
            "-e",
            "etcd_ca_source=provided",
            "-e",
            f"etcd_ca_cert_file={tmp_path}/nope.crt",
            "-e",
            f"etcd_ca_key_file={key}",
            "-e",
            f"etcd_pki_local_dir={pki}",
        )
        assert missing.returncode != 0
        assert "nope.crt does not exist on the control host" in missing.stdout, missing.stdout[-2000:]
        assert "etcd_ca_cert_file" in missing.stdout

        ok = run_etcd(
            idc,
            "-e",
            "etcd_ca_source=provided",
            "-e",
            f"etcd_ca_cert_file={crt}",
            "-e",
            f"etcd_ca_key_file={key}",
            "-e",
            f"etcd_pki_local_dir={pki}",
        )
        assert ok.returncode == 0, ok.stdout[-3000:]
        # the member's certificate on the host chains to the CA we brought, and serves
        served = podman_exec(f"{LAB}-ca1", "cat", "/etc/etcd/pki/member.crt").stdout
        (tmp_path / "member.crt").write_text(served)
        verify = subprocess.run(
            ["openssl", "verify", "-CAfile", crt, str(tmp_path / "member.crt")], text=True, capture_output=True
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        health = podman_exec(f"{LAB}-ca1", "etcdctl-cluster", "endpoint", "health").stdout
        assert "is healthy" in health, health
        assert not os.path.exists(os.path.join(pki, "ca.key")), "the role made a CA of its own"
    finally:
        lab(idc, "down")
