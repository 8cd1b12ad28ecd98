#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: x509_certificate_set
short_description: Keep a whole set of keys and certificates signed by local CAs, in one call
version_added: 0.1.0
description:
  - Keeps, in one directory, an ECC secp256r1 key C(<name>.key) (mode 0600) and a certificate
    C(<name>.crt) (mode 0644) for every entry of O(certificates), each signed by the CA it names.
    Meant for the control host, where one call replaces a C(community.crypto.openssl_privatekey),
    C(openssl_csr) and C(x509_certificate) task per host and per certificate.
  - Plans first (reads every CA, key and certificate once and decides, per certificate, V(keep),
    V(issue) or V(new_key) with a reason), then acts in one place. Check mode writes nothing and
    reports the same decisions.
  - A certificate is kept when it exists, its public key is the one of its key file, its subject
    (CN and O), SANs and extended key usage are the wanted ones, its issuer is the CA's subject and
    its signature verifies with the CA's key, and it does not expire within O(renew_before_days).
    Otherwise it is issued again for the same key. A missing or unusable key (not an unencrypted
    PEM ECC secp256r1 key) is generated anew, and its certificate with it.
  - Certificates issued by C(community.crypto) with the same fields are kept, so switching to this
    module changes nothing. Request (C(.csr)) files are neither written nor removed.
  - Files are written atomically (a temporary file in the same directory, then a rename). Wrong
    modes on kept files are corrected.
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
requirements:
  - cryptography >= 40
options:
  directory:
    description:
      - Where the keys and certificates are kept. Created (mode 0700) when something is written.
    type: path
    required: true
  cas:
    description:
      - The signing CAs, by name; each is a mapping with C(cert) and C(key), paths to PEM files
        (the key unencrypted). All must exist; the module fails naming every missing file.
    type: dict
    required: true
  certificates:
    description:
      - The certificates to keep. Names must be unique; the module fails naming a repeated one.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: File stem, C(<directory>/<name>.key) and C(<directory>/<name>.crt).
        type: str
        required: true
      cn:
        description: Subject common name.
        type: str
        required: true
      o:
        description: Subject organisations (Kubernetes groups), in order.
        type: list
        elements: str
        default: []
      sans:
        description:
          - Subject alternative names, each C(DNS:<name>) or C(IP:<address>); compared as a set.
          - When empty, the CN is the only DNS SAN, as C(community.crypto.openssl_csr) does by default
            (C(use_common_name_for_san)).
        type: list
        elements: str
        default: []
      usage:
        description:
          - V(server) (extended key usage serverAuth), V(client) (clientAuth), or V(server_client)
            (both, for an etcd member's certificate, which serves clients and is a client of its peers).
            Key usage is always digitalSignature and keyEncipherment, critical.
        type: str
        required: true
        choices: [server, client, server_client]
      ca:
        description: Name of the signing CA in O(cas).
        type: str
        required: true
  validity_days:
    description: Validity of an issued certificate, from now.
    type: int
    default: 365
  renew_before_days:
    description:
      - A certificate that expires within this many days is issued again (for the same key).
      - Must be less than O(validity_days).
    type: int
    default: 30
  reissue_before:
    description:
      - A forced rotation. Every certificate issued (its notBefore) before this UTC time,
        C(YYYY-MM-DDTHH:MM:SSZ), is issued again, for the same key; certificates issued since are
        kept, so a rotation that stopped half way resumes when run again with the same time.
      - Must not be in the future. Unset, no certificate is re-issued for its age.
    type: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One line per certificate before and after, with the action and its reason, and one per
        corrected file mode. Never key material.
  platform:
    platforms: [posix]
notes:
  - Run it once, on the control host (C(run_once), C(delegate_to=localhost)), over every host's
    certificates; the result carries each certificate's expiry, subject and issuer.
seealso:
  - module: community.crypto.x509_certificate
  - module: community.crypto.openssl_privatekey
"""

EXAMPLES = r"""
- name: Issue the cluster's certificates on the control host
  idcloud.platform.x509_certificate_set:
    directory: "{{ lookup('ansible.builtin.env', 'HOME') }}/.idcloud/lab/pki/kubernetes"
    cas:
      cluster: {cert: /srv/pki/ca.crt, key: /srv/pki/ca.key}
    certificates:
      - {name: admin, cn: idcloud-admin, o: [system:masters], usage: client, ca: cluster}
      - name: apiserver-cp1
        cn: kube-apiserver
        sans: [DNS:kubernetes, DNS:localhost, IP:127.0.0.1, IP:10.96.0.1]
        usage: server
        ca: cluster
    validity_days: 365
    renew_before_days: 30
  run_once: true
  delegate_to: localhost
  become: false
  register: issued

- name: Show what a run would re-issue, and why
  idcloud.platform.x509_certificate_set:
    directory: /srv/pki
    cas: {cluster: {cert: /srv/pki/ca.crt, key: /srv/pki/ca.key}}
    certificates: "{{ my_certificates }}"
  check_mode: true
  diff: true
"""

RETURN = r"""
certificates:
  description: Every certificate of O(certificates), by name. In check mode, what a certificate that
    would be issued would say.
  returned: always
  type: dict
  sample:
    apiserver-cp1:
      action: issue
      reason: "SANs differ: add IP:10.0.0.10"
      path: /srv/pki/apiserver-cp1.crt
      subject: kube-apiserver
      issuer: idlab-kubernetes-ca
      not_after: "20271122044705Z"
  contains:
    action:
      description: V(keep), V(issue) (a new certificate for the existing key) or V(new_key) (a new key
        and certificate).
      type: str
    reason:
      description: Why; for V(keep), until when it is valid.
      type: str
    path:
      description: The certificate file.
      type: str
    subject:
      description: Subject common name.
      type: str
    issuer:
      description: Issuer common name.
      type: str
    not_after:
      description: End of validity, ASN.1 time (as C(community.crypto.x509_certificate_info) returns it).
      type: str
cas:
  description: Each CA of O(cas) with C(path), C(subject), C(issuer) and C(not_after) as above.
  returned: always
  type: dict
  sample: {cluster: {path: /srv/pki/ca.crt, subject: idlab-kubernetes-ca, issuer: idlab-kubernetes-ca,
                     not_after: "20451117044705Z"}}
issued:
  description: Names of the certificates issued (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [apiserver-cp1]
new_keys:
  description: Names whose key was (would be) generated; a subset of RV(issued).
  returned: always
  type: list
  elements: str
  sample: []
modes_fixed:
  description: Files of kept keys or certificates whose mode was (would be) corrected.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.idcloud.platform.plugins.module_utils.pki.x509_certificate_set import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    CertificateSetRunner,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_IMPORT_ERROR))
    module.exit_json(**CertificateSetRunner(module).run())


if __name__ == "__main__":
    main()
