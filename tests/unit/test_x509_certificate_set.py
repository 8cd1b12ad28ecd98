# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for idcloud.platform.x509_certificate_set, on CAs and files in a temp dir.

The last test makes certificates with the community.crypto tasks kube_pki used before
this module (through ansible-playbook on localhost) and checks the module keeps them.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import sys
import textwrap

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from ansible_collections.idcloud.platform.plugins.module_utils.pki import x509_certificate_set as xs
from ansible_collections.idcloud.platform.plugins.modules import x509_certificate_set as xs_module

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)

APISERVER = dict(
    name="apiserver-cp1",
    cn="kube-apiserver",
    o=[],
    sans=["DNS:kubernetes", "DNS:localhost", "IP:127.0.0.1", "IP:10.96.0.1", "IP:fd00::1"],
    usage="server",
    ca="cluster",
)
ADMIN = dict(name="admin", cn="idcloud-admin", o=["system:masters"], sans=[], usage="client", ca="cluster")
FRONT = dict(name="front-proxy-client", cn="front-proxy-client", o=[], sans=[], usage="client", ca="front_proxy")
KUBELET = dict(name="kubelet-w1", cn="system:node:w1", o=["system:nodes"], sans=[], usage="client", ca="cluster")


def make_ca(directory, stem, cn, not_before=NOW - datetime.timedelta(days=1)):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=7300))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / (stem + ".crt"), directory / (stem + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(xs.key_pem(key))
    return {"cert": str(cert_path), "key": str(key_path)}


@pytest.fixture
def cas(tmp_path):
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    return {
        "cluster": make_ca(ca_dir, "ca", "test-kubernetes-ca"),
        "front_proxy": make_ca(ca_dir, "front-proxy-ca", "test-front-proxy-ca"),
    }


@pytest.fixture
def pki(tmp_path):
    return tmp_path / "pki"


def run(pki, cas, certificates, check_mode=False, diff=False, now=NOW, files=None, **params):
    args = dict(directory=str(pki), cas=cas, certificates=certificates, **params)
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=xs.ARGUMENT_SPEC, supports_check_mode=True)
        return xs.CertificateSetRunner(module, files=files, now=now).run()


def run_failing(capsys, pki, cas, certificates, **params):
    with pytest.raises(SystemExit):
        run(pki, cas, certificates, **params)
    return json.loads(capsys.readouterr().out)


def load_cert(pki, name):
    return x509.load_pem_x509_certificate((pki / (name + ".crt")).read_bytes())


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot(directory):
    if not directory.exists():
        return None
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, mode(p)) for p in sorted(directory.iterdir())}


def action(result, name):
    return result["certificates"][name]["action"], result["certificates"][name]["reason"]


# --- first run and keep ----------------------------------------------------------------------


def test_missing_certificates_get_a_key_and_a_certificate(pki, cas):
    result = run(pki, cas, [APISERVER, ADMIN, FRONT])
    assert result["changed"]
    assert result["issued"] == ["admin", "apiserver-cp1", "front-proxy-client"]
    assert result["new_keys"] == result["issued"]
    assert action(result, "admin") == ("new_key", "no key file admin.key")

    cert = load_cert(pki, "apiserver-cp1")
    assert cert.subject.rfc4514_string() == "CN=kube-apiserver"
    sans = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    assert sorted(str(n.value) for n in sans) == sorted(
        ["kubernetes", "localhost", "127.0.0.1", "10.96.0.1", "fd00::1"]
    )
    assert list(cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + datetime.timedelta(days=365)
    key = serialization.load_pem_private_key((pki / "apiserver-cp1.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert (pki / "apiserver-cp1.key").read_bytes().startswith(b"-----BEGIN EC PRIVATE KEY-----")

    admin = load_cert(pki, "admin")
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    # no SANs given: the CN is the DNS SAN, as community.crypto's openssl_csr made it
    assert [n.value for n in admin.extensions.get_extension_for_class(x509.SubjectAlternativeName).value] == [
        "idcloud-admin"
    ]
    front = load_cert(pki, "front-proxy-client")
    assert front.issuer.rfc4514_string() == "CN=test-front-proxy-ca"
    front.verify_directly_issued_by(x509.load_pem_x509_certificate(open(cas["front_proxy"]["cert"], "rb").read()))

    info = result["certificates"]["admin"]
    assert info["subject"] == "idcloud-admin" and info["issuer"] == "test-kubernetes-ca"
    assert info["not_after"] == "20270601120000Z"
    assert result["cas"]["cluster"]["subject"] == "test-kubernetes-ca"
    ca_end = NOW - datetime.timedelta(days=1) + datetime.timedelta(days=7300)
    assert result["cas"]["cluster"]["not_after"] == ca_end.strftime("%Y%m%d%H%M%SZ")


def test_second_run_keeps_everything(pki, cas):
    run(pki, cas, [APISERVER, ADMIN, FRONT, KUBELET])
    before = snapshot(pki)
    result = run(pki, cas, [APISERVER, ADMIN, FRONT, KUBELET], now=NOW + datetime.timedelta(days=100))
    assert not result["changed"] and result["issued"] == [] and result["modes_fixed"] == []
    assert action(result, "kubelet-w1") == ("keep", "valid until 2027-06-01T12:00:00Z")
    assert result["certificates"]["kubelet-w1"]["not_after"] == "20270601120000Z"
    assert snapshot(pki) == before


def test_existing_csr_files_are_left_alone(pki, cas):
    run(pki, cas, [ADMIN])
    (pki / "admin.csr").write_text("left by community.crypto\n")
    run(pki, cas, [dict(ADMIN, cn="renamed")])
    assert (pki / "admin.csr").read_text() == "left by community.crypto\n"


# --- the planner's decisions -------------------------------------------------------------


def test_key_mismatch_reissues_for_the_key_file(pki, cas):
    run(pki, cas, [ADMIN])
    other = ec.generate_private_key(ec.SECP256R1())
    (pki / "admin.key").write_bytes(xs.key_pem(other))
    os.chmod(pki / "admin.key", 0o600)
    result = run(pki, cas, [ADMIN])
    assert action(result, "admin") == ("issue", "its public key is not the one of admin.key")
    assert (pki / "admin.key").read_bytes() == xs.key_pem(other)
    assert xs._public_der(load_cert(pki, "admin").public_key()) == xs._public_der(other.public_key())


def test_san_change_reissues_for_the_same_key(pki, cas):
    run(pki, cas, [APISERVER])
    key_before = (pki / "apiserver-cp1.key").read_bytes()
    wanted = dict(APISERVER, sans=APISERVER["sans"][:-1] + ["IP:192.0.2.10", "DNS:k8s.example.internal"])
    result = run(pki, cas, [wanted])
    assert action(result, "apiserver-cp1") == (
        "issue",
        "SANs differ: add DNS:k8s.example.internal, add IP:192.0.2.10, drop IP:fd00::1",
    )
    assert result["new_keys"] == []
    assert (pki / "apiserver-cp1.key").read_bytes() == key_before
    # the same SANs in another order and spelling are equal
    same = dict(wanted, sans=["ip:192.0.2.10", "DNS:K8S.example.internal"] + list(reversed(wanted["sans"][:-2])))
    assert action(run(pki, cas, [same]), "apiserver-cp1")[0] == "keep"


def test_cn_and_o_changes_reissue(pki, cas):
    run(pki, cas, [KUBELET])
    result = run(pki, cas, [dict(KUBELET, cn="system:node:w1b", sans=["DNS:system:node:w1"])])
    assert action(result, "kubelet-w1") == (
        "issue",
        "subject is CN=system:node:w1, O=system:nodes, want CN=system:node:w1b, O=system:nodes",
    )
    result = run(pki, cas, [dict(KUBELET, cn="system:node:w1b", sans=["DNS:system:node:w1"], o=[])])
    assert "subject is CN=system:node:w1b, O=system:nodes, want CN=system:node:w1b" in action(result, "kubelet-w1")[1]


def test_usage_change_reissues(pki, cas):
    run(pki, cas, [APISERVER])
    result = run(pki, cas, [dict(APISERVER, usage="client")])
    assert action(result, "apiserver-cp1") == ("issue", "extended key usage is serverAuth, want clientAuth")
    result = run(pki, cas, [dict(APISERVER, usage="server_client")])
    assert action(result, "apiserver-cp1") == ("issue", "extended key usage is clientAuth, want clientAuth, serverAuth")


def test_server_client_certificates_carry_both_usages(pki, cas):
    member = dict(APISERVER, name="member-cp1", usage="server_client")
    run(pki, cas, [member])
    ekus = load_cert(pki, "member-cp1").extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(ekus) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    result = run(pki, cas, [member])
    assert action(result, "member-cp1")[0] == "keep" and not result["changed"]


def test_other_ca_reissues(pki, cas):
    run(pki, cas, [ADMIN])
    result = run(pki, cas, [dict(ADMIN, ca="front_proxy")])
    assert action(result, "admin") == (
        "issue",
        "issued by CN=test-kubernetes-ca, not by CA front_proxy (CN=test-front-proxy-ca)",
    )
    assert load_cert(pki, "admin").issuer.rfc4514_string() == "CN=test-front-proxy-ca"


def test_new_ca_with_the_same_name_reissues(tmp_path, pki, cas):
    run(pki, cas, [ADMIN])
    again = tmp_path / "ca-again"
    again.mkdir()
    replaced = dict(cas, cluster=make_ca(again, "ca", "test-kubernetes-ca"))
    result = run(pki, replaced, [ADMIN])
    assert action(result, "admin") == ("issue", "its signature does not verify with the key of CA cluster")
    assert action(run(pki, replaced, [ADMIN]), "admin")[0] == "keep"


def test_expiring_and_expired_certificates_are_renewed(pki, cas):
    run(pki, cas, [ADMIN], validity_days=90)
    key_before = (pki / "admin.key").read_bytes()
    assert action(run(pki, cas, [ADMIN], check_mode=True, now=NOW + datetime.timedelta(days=59)), "admin")[0] == "keep"
    late = NOW + datetime.timedelta(days=61)
    result = run(pki, cas, [ADMIN], check_mode=True, now=late)
    assert action(result, "admin") == ("issue", "expires 2026-08-30T12:00:00Z, within renew_before_days (30)")
    result = run(pki, cas, [ADMIN], now=NOW + datetime.timedelta(days=91))
    assert action(result, "admin") == ("issue", "expired 2026-08-30T12:00:00Z, within renew_before_days (30)")
    assert (pki / "admin.key").read_bytes() == key_before
    assert result["certificates"]["admin"]["not_after"] == "20270831120000Z"


def test_a_forced_rotation_reissues_what_was_issued_before_its_time_and_resumes(pki, cas):
    run(pki, cas, [ADMIN, FRONT])
    keys = {name: (pki / (name + ".key")).read_bytes() for name in ("admin", "front-proxy-client")}
    start = NOW + datetime.timedelta(days=1)
    # a rotation that stopped after the first certificate: that one is new, the other is not
    done = run(pki, cas, [ADMIN], now=start + datetime.timedelta(seconds=5), reissue_before="2026-06-02T12:00:00Z")
    assert action(done, "admin") == ("issue", "issued 2026-06-01T12:00:00Z, before reissue_before 2026-06-02T12:00:00Z")
    resumed = run(
        pki, cas, [ADMIN, FRONT], now=start + datetime.timedelta(minutes=3), reissue_before="2026-06-02T12:00:00Z"
    )
    assert action(resumed, "admin")[0] == "keep"
    assert action(resumed, "front-proxy-client")[0] == "issue"
    assert resumed["issued"] == ["front-proxy-client"]
    assert load_cert(pki, "front-proxy-client").not_valid_before_utc == start + datetime.timedelta(minutes=3)
    # the keys stay: a rotation renews certificates
    assert {name: (pki / (name + ".key")).read_bytes() for name in keys} == keys
    again = run(
        pki, cas, [ADMIN, FRONT], now=start + datetime.timedelta(hours=1), reissue_before="2026-06-02T12:00:00Z"
    )
    assert again["changed"] is False


def test_reissue_before_must_be_a_past_utc_time(capsys, pki, cas):
    out = run_failing(capsys, pki, cas, [ADMIN], reissue_before="2026-06-01 12:00")
    assert out["errors"] == [
        "reissue_before: '2026-06-01 12:00' is not a UTC time as YYYY-MM-DDTHH:MM:SSZ; fix: e.g. 2026-06-01T12:00:00Z"
    ]
    out = run_failing(capsys, pki, cas, [ADMIN], reissue_before="2026-06-01T12:00:01Z")
    assert out["errors"][0].startswith(
        "reissue_before: 2026-06-01T12:00:01Z is in the future (now 2026-06-01T12:00:00Z)"
    )
    assert not pki.exists()


def test_unusable_key_and_certificate_files(pki, cas):
    run(pki, cas, [ADMIN, FRONT])
    (pki / "admin.key").write_text("garbage\n")
    (pki / "front-proxy-client.crt").write_text("garbage\n")
    result = run(pki, cas, [ADMIN, FRONT], check_mode=True)
    assert action(result, "admin") == ("new_key", "admin.key is not an unencrypted PEM private key")
    assert action(result, "front-proxy-client") == ("issue", "front-proxy-client.crt is not a PEM certificate")
    rsa_like = ec.generate_private_key(ec.SECP384R1())
    (pki / "admin.key").write_bytes(xs.key_pem(rsa_like))
    result = run(pki, cas, [ADMIN], check_mode=True)
    assert action(result, "admin") == ("new_key", "admin.key is not an ECC secp256r1 key")


def test_planner_is_pure(pki, cas):
    run(pki, cas, [ADMIN])
    specs = xs.parse_specs([dict(ADMIN, sans=[])], cas)
    loaded, existing = xs.read_state(str(pki), specs, cas, xs.PkiFiles())
    decisions = xs.plan_certificate_set(specs, loaded, existing, NOW, 30)
    assert [(d.spec.name, d.action) for d in decisions] == [("admin", "keep")]
    later = xs.plan_certificate_set(specs, loaded, existing, NOW + datetime.timedelta(days=340), 30)
    assert later[0].action == "issue" and decisions[0].action == "keep"


# --- check mode, diff, modes ------------------------------------------------------------------


class RecordingFiles(xs.PkiFiles):
    def __init__(self):
        self.writes = []

    def write(self, path, data, mode):
        self.writes.append(path)
        super().write(path, data, mode)

    def chmod(self, path, mode):
        self.writes.append(path)
        super().chmod(path, mode)

    def ensure_directory(self, path):
        self.writes.append(path)
        super().ensure_directory(path)


def test_check_mode_writes_nothing(pki, cas):
    files = RecordingFiles()
    result = run(pki, cas, [APISERVER, ADMIN], check_mode=True, diff=True, files=files)
    assert result["changed"] and result["new_keys"] == ["admin", "apiserver-cp1"]
    assert files.writes == [] and not pki.exists()
    assert result["certificates"]["admin"] == dict(
        action="new_key",
        reason="no key file admin.key",
        path=str(pki / "admin.crt"),
        subject="idcloud-admin",
        issuer="test-kubernetes-ca",
        not_after="20270601120000Z",
    )

    run(pki, cas, [APISERVER, ADMIN])
    os.chmod(pki / "admin.key", 0o644)
    before = snapshot(pki)
    result = run(pki, cas, [dict(APISERVER, cn="other"), ADMIN], check_mode=True, files=files)
    assert result["changed"] and result["issued"] == ["apiserver-cp1"]
    assert result["modes_fixed"] == [str(pki / "admin.key")]
    assert files.writes == [] and snapshot(pki) == before


def test_diff_lists_names_and_reasons_without_key_material(pki, cas):
    run(pki, cas, [APISERVER, ADMIN])
    os.chmod(pki / "admin.crt", 0o600)
    result = run(pki, cas, [dict(APISERVER, usage="client"), ADMIN, FRONT], diff=True, check_mode=True)
    diff = result["diff"]
    assert diff["before"].splitlines() == [
        "admin: valid until 2027-06-01T12:00:00Z",
        "%s: mode 0600" % (pki / "admin.crt"),
        "apiserver-cp1: valid until 2027-06-01T12:00:00Z",
        "front-proxy-client: absent",
    ]
    assert diff["after"].splitlines() == [
        "admin: valid until 2027-06-01T12:00:00Z",
        "%s: mode 0644" % (pki / "admin.crt"),
        "apiserver-cp1: issue (extended key usage is serverAuth, want clientAuth)",
        "front-proxy-client: new_key (no key file front-proxy-client.key)",
    ]
    assert "PRIVATE" not in json.dumps(result)
    assert "diff" not in run(pki, cas, [ADMIN], check_mode=True)


def test_file_modes_and_atomic_writes(pki, cas):
    run(pki, cas, [ADMIN])
    assert mode(pki) == 0o700
    assert mode(pki / "admin.key") == 0o600 and mode(pki / "admin.crt") == 0o644
    os.chmod(pki / "admin.key", 0o640)
    os.chmod(pki / "admin.crt", 0o600)
    result = run(pki, cas, [ADMIN])
    assert result["changed"] and result["issued"] == []
    assert result["modes_fixed"] == [str(pki / "admin.crt"), str(pki / "admin.key")]
    assert mode(pki / "admin.key") == 0o600 and mode(pki / "admin.crt") == 0o644
    assert not run(pki, cas, [ADMIN])["changed"]
    # a re-issue replaces the file (a new inode), leaving no temp file behind
    inode = os.stat(pki / "admin.crt").st_ino
    run(pki, cas, [dict(ADMIN, o=[])])
    assert os.stat(pki / "admin.crt").st_ino != inode
    assert sorted(p.name for p in pki.iterdir()) == ["admin.crt", "admin.key"]


# --- errors ---------------------------------------------------------------------------------


def test_duplicate_names_fail_naming_the_duplicate(capsys, pki, cas):
    out = run_failing(capsys, pki, cas, [ADMIN, FRONT, dict(ADMIN, cn="x")])
    assert out["failed"] and not pki.exists()
    assert out["errors"] == [
        "certificates[2].name: 'admin' is given twice (also certificates[0]); fix: give "
        "each certificate its own name, or drop the repeated entry"
    ]


def test_missing_ca_file_fails_naming_path_and_option(capsys, tmp_path, pki, cas):
    os.unlink(cas["front_proxy"]["key"])
    out = run_failing(capsys, pki, cas, [ADMIN])
    assert out["errors"] == [
        "%s: does not exist (cas.front_proxy.key); fix: create the CA first (the kube_pki "
        "role's tasks_from: ca) or point cas.front_proxy.key at it" % cas["front_proxy"]["key"]
    ]
    assert not pki.exists()


def test_every_error_at_once(capsys, pki, cas):
    broken = dict(cas, cluster=dict(cas["cluster"], key=cas["front_proxy"]["key"]))
    out = run_failing(
        capsys,
        pki,
        broken,
        [dict(ADMIN, ca="frontproxy", sans=["DNS:ok", "mail:x", "IP:10.0.0.300"]), dict(FRONT, name="a/b")],
        validity_days=30,
        renew_before_days=30,
    )
    errors = out["errors"]
    assert errors[0].startswith("renew_before_days: 30 is not less than validity_days 30")
    assert (
        "certificates[0].ca: 'frontproxy' is not one of cas (cluster, front_proxy); fix: did you mean "
        "front_proxy?" in errors
    )
    assert (
        "certificates[0].sans: 'mail:x' is neither DNS:<name> nor IP:<address>; fix: write "
        "DNS:host.example or IP:192.0.2.1" in errors
    )
    assert any("'IP:10.0.0.300': '10.0.0.300' is not an IP address" in e for e in errors)
    assert any(e.startswith("certificates[1].name: 'a/b' is not a plain file name") for e in errors)
    assert (
        "%s: is not the key of %s (cas.cluster.key); fix: give the key that belongs to the CA certificate"
        % (cas["front_proxy"]["key"], cas["cluster"]["cert"])
        in errors
    )
    assert out["msg"].startswith("x509_certificate_set has %d errors:" % len(errors))


def test_module_main_runs_and_documents_itself(capsys, pki, cas):
    import yaml

    args = dict(directory=str(pki), cas=cas, certificates=[ADMIN], _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        xs_module.main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] and out["new_keys"] == ["admin"] and not pki.exists()
    doc = yaml.safe_load(xs_module.DOCUMENTATION)
    assert set(doc["options"]) == set(xs.ARGUMENT_SPEC)
    assert set(doc["options"]["certificates"]["suboptions"]) == set(xs.ARGUMENT_SPEC["certificates"]["options"])


# --- compatibility with the certificates kube_pki issued with community.crypto ---------------

# The role's tasks before this module (roles/kube_pki/tasks/ca.yml and the former issue.yml),
# with the fields of vars/main.yml, plus x509_certificate_info as the former install.yml ran it.
OLD_TASKS = textwrap.dedent("""\
    - hosts: localhost
      gather_facts: false
      vars:
        d: "{{ pki }}"
        cas:
          cluster: {cert: "{{ d }}/ca.crt", key: "{{ d }}/ca.key", cn: idlab-kubernetes-ca}
          front_proxy: {cert: "{{ d }}/front-proxy-ca.crt", key: "{{ d }}/front-proxy-ca.key", cn: idlab-front-proxy-ca}
      tasks:
        - ansible.builtin.file: {path: "{{ d }}", state: directory, mode: "0700"}
        - community.crypto.openssl_privatekey: {path: "{{ item.value.key }}", type: ECC, curve: secp256r1, mode: "0600"}
          loop: "{{ cas | dict2items }}"
        - community.crypto.openssl_csr:
            path: "{{ (item.value.key | splitext | first) ~ '.csr' }}"
            privatekey_path: "{{ item.value.key }}"
            common_name: "{{ item.value.cn }}"
            basic_constraints: ["CA:TRUE"]
            basic_constraints_critical: true
            key_usage: [keyCertSign, cRLSign, digitalSignature]
            key_usage_critical: true
            mode: "0644"
          loop: "{{ cas | dict2items }}"
        - community.crypto.x509_certificate:
            path: "{{ item.value.cert }}"
            csr_path: "{{ (item.value.key | splitext | first) ~ '.csr' }}"
            privatekey_path: "{{ item.value.key }}"
            provider: selfsigned
            selfsigned_not_after: "+7300d"
            mode: "0644"
          loop: "{{ cas | dict2items }}"
        - community.crypto.openssl_privatekey:
            path: "{{ d }}/{{ item.name }}.key"
            type: ECC
            curve: secp256r1
            mode: "0600"
          loop: "{{ issue }}"
        - community.crypto.openssl_csr:
            path: "{{ d }}/{{ item.name }}.csr"
            privatekey_path: "{{ d }}/{{ item.name }}.key"
            common_name: "{{ item.cn }}"
            organization_name: "{{ item.o[0] if item.o | length > 0 else omit }}"
            subject_alt_name: "{{ item.sans if item.sans | length > 0 else omit }}"
            extended_key_usage: "{{ {'server': ['serverAuth'], 'client': ['clientAuth'],
                                     'server_client': ['serverAuth', 'clientAuth']}[item.usage] }}"
            key_usage: [digitalSignature, keyEncipherment]
            key_usage_critical: true
            mode: "0644"
          loop: "{{ issue }}"
        - community.crypto.x509_certificate:
            path: "{{ d }}/{{ item.name }}.crt"
            csr_path: "{{ d }}/{{ item.name }}.csr"
            provider: ownca
            ownca_path: "{{ cas[item.ca].cert }}"
            ownca_privatekey_path: "{{ cas[item.ca].key }}"
            ownca_not_after: "+365d"
            mode: "0644"
          loop: "{{ issue }}"
        - community.crypto.x509_certificate_info:
            path: "{{ item }}"
          loop: "{{ info_paths }}"
          register: info
        - ansible.builtin.copy:
            dest: "{{ d }}/info.json"
            mode: "0644"
            content: |
              {% set out = {} %}
              {% for r in info.results %}
              {%   set _ = out.update({r.item: {'subject': r.subject.commonName, 'issuer': r.issuer.commonName,
                                                'not_after': r.not_after}}) %}
              {% endfor %}
              {{ out | to_json }}
    """)


def test_certificates_issued_by_community_crypto_are_kept(tmp_path, run_ansible):
    pki = tmp_path / "old-pki"
    issue = [
        APISERVER,
        ADMIN,
        FRONT,
        KUBELET,
        dict(
            name="kubelet-serving-w1",
            cn="system:node:w1",
            o=["system:nodes"],
            sans=["DNS:w1", "IP:10.1.0.11"],
            usage="server",
            ca="cluster",
        ),
        # as the etcd role issued its members' certificates with community.crypto
        dict(
            name="member-cp1",
            cn="etcd-cp1",
            o=[],
            sans=["DNS:cp1", "DNS:localhost", "IP:127.0.0.1", "IP:10.1.0.1"],
            usage="server_client",
            ca="cluster",
        ),
    ]
    playbook = tmp_path / "old.yml"
    playbook.write_text(OLD_TASKS)
    info_paths = [str(pki / "ca.crt"), str(pki / "front-proxy-ca.crt")] + [
        str(pki / (c["name"] + ".crt")) for c in issue
    ]
    (tmp_path / "vars.json").write_text(json.dumps({"pki": str(pki), "issue": issue, "info_paths": info_paths}))
    done = run_ansible(
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter=%s" % sys.executable,
        "-e",
        "@%s" % (tmp_path / "vars.json"),
        str(playbook),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (pki / "kubelet-w1.csr").exists()

    cas = {
        "cluster": {"cert": str(pki / "ca.crt"), "key": str(pki / "ca.key")},
        "front_proxy": {"cert": str(pki / "front-proxy-ca.crt"), "key": str(pki / "front-proxy-ca.key")},
    }
    before = snapshot(pki)
    now = datetime.datetime.now(datetime.UTC)
    result = run(pki, cas, issue, diff=True, now=now)
    assert {name: c["action"] for name, c in result["certificates"].items()} == {c["name"]: "keep" for c in issue}, (
        result["diff"]["after"]
    )
    assert not result["changed"] and snapshot(pki) == before

    # the fact kube_pki publishes gets the same subject, issuer and not_after as from x509_certificate_info
    info = json.loads((pki / "info.json").read_text())
    ours = {c["path"]: {k: c[k] for k in ("subject", "issuer", "not_after")} for c in result["certificates"].values()}
    ours.update({c["path"]: {k: c[k] for k in ("subject", "issuer", "not_after")} for c in result["cas"].values()})
    assert ours == info

    # and a changed field is still noticed on those files
    moved = dict(KUBELET, cn="system:node:w9")
    result = run(pki, cas, [moved], check_mode=True, now=now)
    assert action(result, "kubelet-w1")[0] == "issue"
