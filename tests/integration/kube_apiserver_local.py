# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A throwaway etcd + kube-apiserver on 127.0.0.1 for tests that need a real Kubernetes API.

Binaries come from the artifact cache (~/.cache/idcloud/artifacts, or IDCLOUD_ARTIFACTS):
the etcd release tarball under etcd/<version>/ and kube-apiserver/kubectl under
kubernetes/<version>/bin/linux/amd64/. ``find_binaries()`` says what is missing so a
test can skip with that reason. Certificates are made with the ``cryptography``
package in the given directory; nothing listens beyond loopback, and ``stop()``
ends only the two processes started here (each in its own session).
"""

from __future__ import annotations

import datetime
import glob
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"
ARTIFACTS = Path(os.environ.get("IDCLOUD_ARTIFACTS", os.path.expanduser("~/.cache/idcloud/artifacts")))


def find_binaries():
    """-> (dict(etcd_tarball, kube_apiserver, kubectl), None) or (None, reason)."""
    tarballs = sorted(glob.glob(str(ARTIFACTS / "etcd" / "*" / "etcd-*-linux-amd64.tar.gz")), reverse=True)
    kube_dirs = sorted(glob.glob(str(ARTIFACTS / "kubernetes" / "*" / "bin" / "linux" / "amd64")), reverse=True)
    kube_dir = next(
        (
            Path(d)
            for d in kube_dirs
            if os.access(Path(d) / "kube-apiserver", os.X_OK) and os.access(Path(d) / "kubectl", os.X_OK)
        ),
        None,
    )
    missing = []
    if not tarballs:
        missing.append("no etcd tarball at %s/etcd/*/etcd-*-linux-amd64.tar.gz" % ARTIFACTS)
    if kube_dir is None:
        missing.append("no kube-apiserver + kubectl at %s/kubernetes/*/bin/linux/amd64/" % ARTIFACTS)
    if missing:
        return None, "; ".join(missing) + " (build the artifacts first, or set IDCLOUD_ARTIFACTS)"
    return {
        "etcd_tarball": Path(tarballs[0]),
        "kube_apiserver": kube_dir / "kube-apiserver",
        "kubectl": kube_dir / "kubectl",
    }, None


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _write_pki(d: Path):
    """CA, apiserver serving cert (127.0.0.1), admin client cert (system:masters), SA key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key, path):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        path.chmod(0o600)

    def name(cn, org=None):
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("idcloud-test-kube-ca"))
        .issuer_name(name("idcloud-test-kube-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    key_pem(ca_key, d / "ca.key")

    def leaf(stem, subject, usage, sans=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (d / (stem + ".crt")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_pem(key, d / (stem + ".key"))

    leaf(
        "apiserver",
        name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")],
    )
    leaf("admin", name("idcloud-test-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    key_pem(sa_key, d / "sa.key")
    (d / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


class LocalKubeApi:
    """One etcd member and one kube-apiserver on loopback, with an admin kubeconfig."""

    def __init__(self, base: Path, binaries: dict):
        self.base = Path(base)
        self.bins = binaries
        self.pki = self.base / "pki"
        self.etcd_port, self.etcd_peer_port, self.api_port = free_port(), free_port(), free_port()
        self.server = "https://%s:%d" % (HOST, self.api_port)
        self.kubeconfig = self.base / "admin.kubeconfig"
        self.procs = []
        self.logs = {}

    # -- lifecycle ------------------------------------------------------------------
    def start(self, timeout=45):
        self.pki.mkdir(mode=0o700, parents=True)
        _write_pki(self.pki)
        etcd = self._unpack_etcd()
        etcd_url = "http://%s:%d" % (HOST, self.etcd_port)
        peer_url = "http://%s:%d" % (HOST, self.etcd_peer_port)
        self._spawn(
            "etcd",
            [
                str(etcd),
                "--name",
                "kube-test",
                "--data-dir",
                str(self.base / "etcd-data"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                "kube-test=" + peer_url,
                "--log-level",
                "warn",
            ],
        )
        p = self.pki
        self._spawn(
            "kube-apiserver",
            [
                str(self.bins["kube_apiserver"]),
                "--bind-address",
                HOST,
                "--advertise-address",
                HOST,
                "--secure-port",
                str(self.api_port),
                "--etcd-servers",
                etcd_url,
                "--etcd-prefix",
                "/idcloud-test",
                "--tls-cert-file",
                str(p / "apiserver.crt"),
                "--tls-private-key-file",
                str(p / "apiserver.key"),
                "--client-ca-file",
                str(p / "ca.crt"),
                "--service-account-issuer",
                "https://kubernetes.default.svc",
                "--service-account-key-file",
                str(p / "sa.pub"),
                "--service-account-signing-key-file",
                str(p / "sa.key"),
                "--service-cluster-ip-range",
                "10.96.0.0/24",
                "--authorization-mode",
                "RBAC",
                "--cert-dir",
                str(self.base / "apiserver-certs"),
                "--enable-priority-and-fairness=false",
                "--v",
                "1",
            ],
        )
        self._write_kubeconfig()
        self._wait_ready(timeout)
        return self

    def stop(self):
        for _name, proc in reversed(self.procs):
            if proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass

    # -- helpers --------------------------------------------------------------------
    def kubectl(self, *args, check=True):
        return subprocess.run(
            [str(self.bins["kubectl"]), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def log_tail(self, name, size=3000):
        path = self.logs.get(name)
        return path.read_text(errors="replace")[-size:] if path and path.exists() else ""

    def _unpack_etcd(self):
        dest = self.base / "etcd-bin"
        with tarfile.open(self.bins["etcd_tarball"]) as tar:
            member = next(m for m in tar.getmembers() if m.isfile() and m.name.endswith("/etcd"))
            member.name = "etcd"
            tar.extract(member, dest, filter="data")
        binary = dest / "etcd"
        binary.chmod(0o755)
        return binary

    def _spawn(self, name, argv):
        log = self.base / (name + ".log")
        self.logs[name] = log
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.procs.append((name, proc))

    def _write_kubeconfig(self):
        p = self.pki
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: local\n  cluster:\n    server: %s\n    certificate-authority: %s\n"
            "users:\n- name: admin\n  user:\n    client-certificate: %s\n    client-key: %s\n"
            "contexts:\n- name: local\n  context: {cluster: local, user: admin}\n"
            "current-context: local\n" % (self.server, p / "ca.crt", p / "admin.crt", p / "admin.key")
        )
        self.kubeconfig.chmod(0o600)

    def _wait_ready(self, timeout):
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError("%s exited rc=%s:\n%s" % (name, proc.returncode, self.log_tail(name)))
            try:
                with urllib.request.urlopen(self.server + "/readyz", context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(
            "kube-apiserver not ready after %ss (%s):\n%s" % (timeout, last, self.log_tail("kube-apiserver"))
        )
