# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Keep a set of X.509 certificates signed by local CAs, in one call on the control host.

Three steps, like community.crypto's backends but for the whole set at once:
  read_state()            reads every CA, key and certificate file once, through PkiFiles;
  plan_certificate_set()  pure: decides per certificate keep / issue / new_key, with a reason;
  CertificateSetRunner    acts on the plan in one `if not check_mode` block.
PkiFiles is the I/O seam: unit tests use a temporary directory or a recording fake.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import os
import re
import stat
import tempfile
from dataclasses import dataclass, field

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # reported by the module with missing_required_lib
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

ARGUMENT_SPEC = dict(
    directory=dict(type="path", required=True),
    cas=dict(type="dict", required=True),
    certificates=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(
            name=dict(type="str", required=True),
            cn=dict(type="str", required=True),
            o=dict(type="list", elements="str", default=[]),
            sans=dict(type="list", elements="str", default=[]),
            usage=dict(type="str", required=True, choices=["server", "client", "server_client"]),
            ca=dict(type="str", required=True),
        ),
    ),
    validity_days=dict(type="int", default=365),
    renew_before_days=dict(type="int", default=30),
    reissue_before=dict(type="str"),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True)

KEEP = "keep"
ISSUE = "issue"
NEW_KEY = "new_key"

KEY_MODE = 0o600
CERT_MODE = 0o644
ASN1_TIME = "%Y%m%d%H%M%SZ"

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]*$")


class CertificateSetError(Exception):
    """Errors the user can fix; ``errors`` holds one "path: problem; fix: ..." per problem."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__(self.errors)

    def __str__(self):
        count = len(self.errors)
        head = "x509_certificate_set has %d error%s:" % (count, "" if count == 1 else "s")
        return "\n".join([head] + ["  - %s" % error for error in self.errors])


# --- desired state ------------------------------------------------------------------------


@dataclass(frozen=True)
class CertSpec:
    name: str
    cn: str
    o: tuple
    sans: frozenset  # of (kind, value) pairs, see _san_key
    usage: str
    ca: str

    @property
    def ekus(self):
        """The extended key usages, in the order they are written."""
        return {
            "server": (ExtendedKeyUsageOID.SERVER_AUTH,),
            "client": (ExtendedKeyUsageOID.CLIENT_AUTH,),
            "server_client": (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        }[self.usage]

    @property
    def subject_pairs(self):
        return sorted([("O", o) for o in self.o] + [("CN", self.cn)])


def _san_key(text):
    """'DNS:Example' -> ('DNS', 'example'); 'IP:fd00::1' -> ('IP', 'fd00::1'). ValueError otherwise."""
    kind, sep, value = text.partition(":")
    kind = kind.upper()
    if not sep or not value or kind not in ("DNS", "IP"):
        raise ValueError("%r is neither DNS:<name> nor IP:<address>" % text)
    if kind == "DNS":
        return ("DNS", value.lower())
    try:
        return ("IP", str(ipaddress.ip_address(value)))
    except ValueError:
        raise ValueError("%r: %r is not an IP address" % (text, value))


def _san_text(key):
    return "%s:%s" % key


def parse_specs(certificates, cas):
    """Validate the certificates option; return [CertSpec] or raise CertificateSetError."""
    errors = []
    specs = []
    seen = {}
    for index, item in enumerate(certificates):
        where = "certificates[%d]" % index
        name = item["name"]
        if not _NAME_RE.match(name or ""):
            errors.append(
                "%s.name: %r is not a plain file name; fix: use letters, digits and "
                '"-_.", no "/" (it becomes <name>.key and <name>.crt)' % (where, name)
            )
        elif name in seen:
            errors.append(
                "%s.name: %r is given twice (also certificates[%d]); fix: give each "
                "certificate its own name, or drop the repeated entry" % (where, name, seen[name])
            )
        else:
            seen[name] = index
        if not item["cn"]:
            errors.append("%s.cn: empty common name for %r; fix: give the subject CN" % (where, name))
        if item["ca"] not in cas:
            close = difflib.get_close_matches(item["ca"], list(cas), n=1)
            hint = "did you mean %s?" % close[0] if close else "use one of: %s" % ", ".join(sorted(cas))
            errors.append(
                "%s.ca: %r is not one of cas (%s); fix: %s" % (where, item["ca"], ", ".join(sorted(cas)), hint)
            )
        sans = set()
        for text in item["sans"]:
            try:
                sans.add(_san_key(text))
            except ValueError as exc:
                errors.append("%s.sans: %s; fix: write DNS:host.example or IP:192.0.2.1" % (where, exc))
        if not item["sans"] and item["cn"]:
            # community.crypto's openssl_csr (use_common_name_for_san) named the CN as the only
            # DNS SAN; the same here, so certificates it issued stay equal and are kept
            sans.add(("DNS", item["cn"].lower()))
        specs.append(
            CertSpec(
                name=name, cn=item["cn"], o=tuple(item["o"]), sans=frozenset(sans), usage=item["usage"], ca=item["ca"]
            )
        )
    if errors:
        raise CertificateSetError(errors)
    return specs


def check_validity(validity_days, renew_before_days):
    errors = []
    if validity_days < 1:
        errors.append("validity_days: %d is not a positive number of days; fix: e.g. 365" % validity_days)
    if renew_before_days < 0:
        errors.append("renew_before_days: %d is negative; fix: 0 or more, e.g. 30" % renew_before_days)
    elif renew_before_days >= validity_days > 0:
        errors.append(
            "renew_before_days: %d is not less than validity_days %d, so every run would "
            "re-issue every certificate; fix: lower it, e.g. 30" % (renew_before_days, validity_days)
        )
    if errors:
        raise CertificateSetError(errors)


# --- reading --------------------------------------------------------------------------------


class PkiFiles:
    """Every file access of the module: read, mode, atomic write, chmod."""

    def read(self, path):
        """Bytes of the file, or None when it does not exist."""
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def mode(self, path):
        try:
            return stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            return None

    def ensure_directory(self, path):
        if not os.path.isdir(path):
            os.makedirs(path, 0o700)

    def write(self, path, data, mode):
        """Temp file in the same directory, mode set before any byte is written, then os.replace."""
        fd, tmp = tempfile.mkstemp(
            prefix=".%s." % os.path.basename(path), suffix=".tmp", dir=os.path.dirname(path) or "."
        )
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def chmod(self, path, mode):
        os.chmod(path, mode)


@dataclass
class CA:
    name: str
    cert_path: str
    key_path: str
    cert: object
    key: object


@dataclass
class Existing:
    """What is on disk for one certificate; *_error says why a present file could not be used."""

    key_path: str
    cert_path: str
    key: object = None
    key_error: str = None
    key_mode: int = None
    cert: object = None
    cert_error: str = None
    cert_mode: int = None


def _public_der(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_cas(cas, files):
    """Load every CA named in cas ({name: {cert, key}}); raise CertificateSetError naming each problem."""
    errors = []
    loaded = {}
    for name in sorted(cas):
        entry = cas[name]
        if not isinstance(entry, dict) or not entry.get("cert") or not entry.get("key"):
            errors.append("cas.%s: %r is not {cert: <path>, key: <path>}; fix: give both paths" % (name, entry))
            continue
        cert_path = os.path.expanduser(entry["cert"])
        key_path = os.path.expanduser(entry["key"])
        cert = key = None
        data = files.read(cert_path)
        if data is None:
            errors.append(
                "%s: does not exist (cas.%s.cert); fix: create the CA first (the kube_pki "
                "role's tasks_from: ca) or point cas.%s.cert at it" % (cert_path, name, name)
            )
        else:
            try:
                cert = x509.load_pem_x509_certificates(data)[0]
            except ValueError:
                errors.append(
                    "%s: is not a PEM certificate (cas.%s.cert); fix: give the CA certificate "
                    "in PEM" % (cert_path, name)
                )
        data = files.read(key_path)
        if data is None:
            errors.append(
                "%s: does not exist (cas.%s.key); fix: create the CA first (the kube_pki "
                "role's tasks_from: ca) or point cas.%s.key at it" % (key_path, name, name)
            )
        else:
            try:
                key = serialization.load_pem_private_key(data, password=None)
            except (ValueError, TypeError):
                errors.append(
                    "%s: is not an unencrypted PEM private key (cas.%s.key); fix: give the CA "
                    "key without a passphrase" % (key_path, name)
                )
        if cert is not None and key is not None and _public_der(cert.public_key()) != _public_der(key.public_key()):
            errors.append(
                "%s: is not the key of %s (cas.%s.key); fix: give the key that belongs to the "
                "CA certificate" % (key_path, cert_path, name)
            )
        loaded[name] = CA(name=name, cert_path=cert_path, key_path=key_path, cert=cert, key=key)
    if errors:
        raise CertificateSetError(errors)
    return loaded


def read_existing(directory, spec, files):
    found = Existing(
        key_path=os.path.join(directory, spec.name + ".key"), cert_path=os.path.join(directory, spec.name + ".crt")
    )
    data = files.read(found.key_path)
    if data is not None:
        found.key_mode = files.mode(found.key_path)
        try:
            found.key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            found.key_error = "is not an unencrypted PEM private key"
    data = files.read(found.cert_path)
    if data is not None:
        found.cert_mode = files.mode(found.cert_path)
        try:
            found.cert = x509.load_pem_x509_certificate(data)
        except ValueError:
            found.cert_error = "is not a PEM certificate"
    return found


def read_state(directory, specs, cas, files):
    """All the files the plan needs: the CAs and, per certificate, its key and certificate."""
    return load_cas(cas, files), {spec.name: read_existing(directory, spec, files) for spec in specs}


# --- planning (pure) ------------------------------------------------------------------------


def _is_p256(key):
    return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)


def _subject_pairs(name):
    short = {NameOID.COMMON_NAME: "CN", NameOID.ORGANIZATION_NAME: "O"}
    return sorted((short.get(a.oid, a.oid.dotted_string), a.value) for a in name)


def _pairs_text(pairs):
    return ", ".join("%s=%s" % pair for pair in pairs) or "(empty)"


def _cert_sans(cert):
    try:
        names = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return frozenset()
    found = set()
    for general in names:
        if isinstance(general, x509.DNSName):
            found.add(("DNS", general.value.lower()))
        elif isinstance(general, x509.IPAddress):
            found.add(("IP", str(general.value)))
        else:
            found.add((type(general).__name__, str(general.value)))
    return frozenset(found)


def _cert_ekus(cert):
    try:
        return frozenset(cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value)
    except x509.ExtensionNotFound:
        return frozenset()


def _eku_text(oids):
    names = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth", ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth"}
    return ", ".join(sorted(names.get(oid, oid.dotted_string) for oid in oids)) or "none"


def _signed_by(cert, ca_cert):
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_reissue_before(text, now):
    """The time of a forced rotation: every certificate issued before it is issued again."""
    if not text:
        return None
    try:
        when = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise CertificateSetError(
            ["reissue_before: %r is not a UTC time as YYYY-MM-DDTHH:MM:SSZ; fix: e.g. %s" % (text, iso(now))]
        )
    if when > now:
        raise CertificateSetError(
            [
                "reissue_before: %s is in the future (now %s), so every run until then would re-issue "
                "every certificate; fix: the time the rotation started, at most now" % (text, iso(now))
            ]
        )
    return when


def certificate_problems(spec, ca, cert, key, now, renew_before_days, reissue_before=None):
    """Why an existing certificate is not the one wanted (empty list: keep it)."""
    problems = []
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        problems.append("its public key is not the one of %s.key" % spec.name)
    have = _subject_pairs(cert.subject)
    if have != spec.subject_pairs:
        problems.append("subject is %s, want %s" % (_pairs_text(have), _pairs_text(spec.subject_pairs)))
    sans = _cert_sans(cert)
    if sans != spec.sans:
        change = ["add " + _san_text(s) for s in sorted(spec.sans - sans)]
        change += ["drop " + _san_text(s) for s in sorted(sans - spec.sans)]
        problems.append("SANs differ: %s" % ", ".join(change))
    ekus = _cert_ekus(cert)
    if ekus != frozenset(spec.ekus):
        problems.append("extended key usage is %s, want %s" % (_eku_text(ekus), _eku_text(spec.ekus)))
    if cert.issuer != ca.cert.subject:
        problems.append(
            "issued by %s, not by CA %s (%s)"
            % (cert.issuer.rfc4514_string(), ca.name, ca.cert.subject.rfc4514_string())
        )
    elif not _signed_by(cert, ca.cert):
        problems.append("its signature does not verify with the key of CA %s" % ca.name)
    not_after = cert.not_valid_after_utc
    if not_after - now <= datetime.timedelta(days=renew_before_days):
        problems.append(
            "%s %s, within renew_before_days (%d)"
            % ("expired" if not_after <= now else "expires", iso(not_after), renew_before_days)
        )
    if reissue_before is not None and cert.not_valid_before_utc < reissue_before:
        problems.append("issued %s, before reissue_before %s" % (iso(cert.not_valid_before_utc), iso(reissue_before)))
    return problems


@dataclass
class Decision:
    spec: CertSpec
    action: str
    reason: str
    existing: Existing
    mode_fixes: list = field(default_factory=list)  # [(path, mode now, mode wanted)]


def plan_certificate(spec, ca, existing, now, renew_before_days, reissue_before=None):
    """Decide one certificate: keep, issue (for its existing key) or new_key (and issue)."""
    if existing.key is None:
        reason = (
            ("%s.key %s" % (spec.name, existing.key_error)) if existing.key_error else "no key file %s.key" % spec.name
        )
        return Decision(spec, NEW_KEY, reason, existing)
    if not _is_p256(existing.key):
        return Decision(spec, NEW_KEY, "%s.key is not an ECC secp256r1 key" % spec.name, existing)
    fixes = []
    if existing.key_mode is not None and existing.key_mode != KEY_MODE:
        fixes.append((existing.key_path, existing.key_mode, KEY_MODE))
    if existing.cert is None:
        reason = (
            ("%s.crt %s" % (spec.name, existing.cert_error))
            if existing.cert_error
            else "no certificate %s.crt" % spec.name
        )
        return Decision(spec, ISSUE, reason, existing, fixes)
    problems = certificate_problems(spec, ca, existing.cert, existing.key, now, renew_before_days, reissue_before)
    if problems:
        return Decision(spec, ISSUE, "; ".join(problems), existing, fixes)
    if existing.cert_mode is not None and existing.cert_mode != CERT_MODE:
        fixes.append((existing.cert_path, existing.cert_mode, CERT_MODE))
    return Decision(spec, KEEP, "valid until %s" % iso(existing.cert.not_valid_after_utc), existing, fixes)


def plan_certificate_set(specs, cas, existing, now, renew_before_days, reissue_before=None):
    return [
        plan_certificate(spec, cas[spec.ca], existing[spec.name], now, renew_before_days, reissue_before)
        for spec in specs
    ]


# --- issuing --------------------------------------------------------------------------------


def generate_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    # PKCS#1-style "EC PRIVATE KEY", the format community.crypto's openssl_privatekey wrote
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _digest_for(key):
    return None if isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()


def build_certificate(spec, public_key, ca, now, validity_days):
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in spec.o]
        + [x509.NameAttribute(NameOID.COMMON_NAME, spec.cn)]
    )
    names = [
        x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value))
        for kind, value in sorted(spec.sans)
    ]
    try:
        ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(list(spec.ekus)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    return builder.sign(ca.key, _digest_for(ca.key))


# --- running --------------------------------------------------------------------------------


def _common_name(name):
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return values[0].value if values else None


def describe(cert):
    return dict(
        subject=_common_name(cert.subject),
        issuer=_common_name(cert.issuer),
        not_after=cert.not_valid_after_utc.strftime(ASN1_TIME),
    )


def _utcnow():
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def render_diff(decisions):
    """Before/after text, one line per certificate (and per mode fix); never key material."""
    before, after = [], []
    for d in sorted(decisions, key=lambda d: d.spec.name):
        cert = d.existing.cert
        was = "%s: %s" % (
            d.spec.name,
            ("valid until %s" % iso(cert.not_valid_after_utc)) if cert is not None else "absent",
        )
        before.append(was)
        after.append(was if d.action == KEEP else "%s: %s (%s)" % (d.spec.name, d.action, d.reason))
        for path, mode, wanted in d.mode_fixes:
            before.append("%s: mode %04o" % (path, mode))
            after.append("%s: mode %04o" % (path, wanted))
    return "\n".join(before) + "\n", "\n".join(after) + "\n"


class CertificateSetRunner:
    def __init__(self, module, files=None, now=None):
        self.module = module
        self.files = files or PkiFiles()
        self.now = now or _utcnow()

    def run(self):
        params = self.module.params
        directory = params["directory"]
        # every error at once: the options, then the CA files
        errors = []
        try:
            check_validity(params["validity_days"], params["renew_before_days"])
        except CertificateSetError as exc:
            errors.extend(exc.errors)
        reissue_before = None
        try:
            reissue_before = parse_reissue_before(params.get("reissue_before"), self.now)
        except CertificateSetError as exc:
            errors.extend(exc.errors)
        try:
            specs = parse_specs(params["certificates"], params["cas"])
        except CertificateSetError as exc:
            specs = []
            errors.extend(exc.errors)
        try:
            cas, existing = read_state(directory, specs, params["cas"], self.files)
        except CertificateSetError as exc:
            errors.extend(exc.errors)
        if errors:
            exc = CertificateSetError(errors)
            self.module.fail_json(msg=str(exc), errors=exc.errors)
        decisions = plan_certificate_set(specs, cas, existing, self.now, params["renew_before_days"], reissue_before)
        to_issue = [d for d in decisions if d.action != KEEP]
        mode_fixes = [fix for d in decisions for fix in d.mode_fixes]
        changed = bool(to_issue or mode_fixes)

        issued = {}
        if not self.module.check_mode:
            if to_issue:
                self.files.ensure_directory(directory)
            for d in to_issue:
                key = d.existing.key
                if d.action == NEW_KEY:
                    key = generate_key()
                    self.files.write(d.existing.key_path, key_pem(key), KEY_MODE)
                cert = build_certificate(d.spec, key.public_key(), cas[d.spec.ca], self.now, params["validity_days"])
                self.files.write(d.existing.cert_path, cert.public_bytes(serialization.Encoding.PEM), CERT_MODE)
                issued[d.spec.name] = cert
            for path, _mode, wanted in mode_fixes:
                self.files.chmod(path, wanted)

        certificates = {}
        for d in decisions:
            entry = dict(action=d.action, reason=d.reason, path=d.existing.cert_path)
            if d.action == KEEP:
                entry.update(describe(d.existing.cert))
            elif d.spec.name in issued:
                entry.update(describe(issued[d.spec.name]))
            else:  # check mode: what the new certificate would say
                not_after = self.now + datetime.timedelta(days=params["validity_days"])
                entry.update(
                    subject=d.spec.cn,
                    issuer=_common_name(cas[d.spec.ca].cert.subject),
                    not_after=not_after.strftime(ASN1_TIME),
                )
            certificates[d.spec.name] = entry
        result = dict(
            changed=changed,
            certificates=certificates,
            cas={name: dict(describe(ca.cert), path=ca.cert_path) for name, ca in cas.items()},
            issued=sorted(d.spec.name for d in to_issue),
            new_keys=sorted(d.spec.name for d in to_issue if d.action == NEW_KEY),
            modes_fixed=sorted(path for path, _mode, _wanted in mode_fixes),
        )
        if self.module._diff:
            before, after = render_diff(decisions)
            result["diff"] = dict(before_header=directory, after_header=directory, before=before, after=after)
        return result
