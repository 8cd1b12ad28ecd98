#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: etcd_snapshot
short_description: Save, verify and restore etcd v3 snapshots
version_added: 0.1.0
description:
  - V(saved) streams a snapshot from etcd through the v3 JSON gateway (HTTPS, client certificate)
    into a temp file next to the destination, checks the sha256 trailer etcd appends, fsyncs and
    renames it into place (mode 0600). Then C(etcdutl snapshot status) reports its revision.
  - V(verified) checks a snapshot file offline, the sha256 trailer and C(etcdutl snapshot status).
  - V(restored) runs C(etcdutl snapshot restore) into a temp dir next to O(data_dir) and renames it
    into place. A data dir that already holds a member is left alone unless O(force=true), and then
    it is moved aside to C(<data_dir>.bak-<timestamp>), never deleted.
  - Runs on the etcd host with the Python standard library only; commands run with C(LANG=C).
author:
  - idcloud developers
extends_documentation_fragment:
  - idcloud.platform.etcd_client
attributes:
  check_mode:
    support: full
    description:
      - V(saved) and V(restored) report C(changed) without writing; V(verified) runs normally (read-only).
  diff_mode:
    support: none
options:
  state:
    description:
      - V(saved) writes a new snapshot file; always C(changed).
      - V(verified) checks an existing file; never C(changed). Fails on a bad trailer or an etcdutl error.
      - V(restored) builds a data dir from O(path).
    type: str
    choices: [saved, verified, restored]
    default: saved
  path:
    description:
      - V(saved) the file to write (replaced atomically if it exists); or use O(dest_dir).
      - V(verified) the file to check; V(restored) the snapshot to restore.
    type: path
  dest_dir:
    description:
      - V(saved) directory for a timestamped file C(<name_prefix>-YYYYmmddTHHMMSSZ.db) (UTC), instead of O(path).
    type: path
  name_prefix:
    description:
      - File name prefix used with O(dest_dir).
    type: str
    default: etcd-snapshot
  etcdutl_path:
    description:
      - Path of C(etcdutl). Required by V(verified) and V(restored); with V(saved) it only adds
        revision, total_key and hash to the result (a warning is returned when it is missing).
    type: path
    default: /usr/local/bin/etcdutl
  data_dir:
    description:
      - V(restored) the etcd data dir to create (C(--data-dir) of the member that will start on it).
    type: path
  member_name:
    description:
      - V(restored) C(--name) of the member that will start on O(data_dir).
    type: str
  initial_cluster:
    description:
      - V(restored) C(--initial-cluster) of the restored cluster, C(name=peer_url,...); it must contain
        O(member_name) with O(initial_advertise_peer_urls).
    type: str
  initial_advertise_peer_urls:
    description:
      - V(restored) peer URLs of O(member_name).
    type: list
    elements: str
  initial_cluster_token:
    description:
      - V(restored) C(--initial-cluster-token); use a new one for a restored cluster so its members
        never talk to members of the old one. etcdutl defaults to C(etcd-cluster).
    type: str
  owner:
    description:
      - V(restored) owner (name or uid) of the restored data dir, applied recursively.
    type: str
  group:
    description:
      - V(restored) group (name or gid) of the restored data dir, applied recursively.
    type: str
  force:
    description:
      - V(restored) restore even when O(data_dir) already holds a member; the old dir is moved aside
        to C(<data_dir>.bak-<timestamp>).
      - Refused while an etcd process runs on O(data_dir) (its C(member/snap/db) is locked); stop etcd first.
    type: bool
    default: false
  skip_hash_check:
    description:
      - V(restored)/V(verified) accept a file without the sha256 trailer, such as a C(member/snap/db)
        copied out of a data dir (C(--skip-hash-check)).
    type: bool
    default: false
  bump_revision:
    description:
      - V(restored) raise the revision by this much and mark it compacted (C(--bump-revision N
        --mark-compacted)), so Kubernetes watchers resynchronise instead of missing events. 0 keeps
        the snapshot's revision.
    type: int
    default: 0
notes:
  - The connection options are only used by V(saved).
  - A snapshot holds every secret stored in etcd; saved files are mode 0600.
seealso:
  - module: idcloud.platform.etcd_member
"""

EXAMPLES = r"""
- name: Save a timestamped snapshot
  idcloud.platform.etcd_snapshot:
    state: saved
    dest_dir: /var/backups/etcd
    name_prefix: "{{ inventory_hostname }}"
    ca_file: /etc/etcd/pki/ca.crt
    cert_file: /etc/etcd/pki/admin.crt
    key_file: /etc/etcd/pki/admin.key
  register: etcd_snapshot

- name: Verify it
  idcloud.platform.etcd_snapshot:
    state: verified
    path: "{{ etcd_snapshot.path }}"

- name: Restore it into the data dir of etcd1 of a spare cluster
  idcloud.platform.etcd_snapshot:
    state: restored
    path: /var/backups/etcd/etcd-snapshot-20250101T000000Z.db
    data_dir: /var/lib/etcd
    member_name: etcd1
    initial_cluster: etcd1=https://10.0.1.1:2380,etcd2=https://10.0.1.2:2380,etcd3=https://10.0.1.3:2380
    initial_advertise_peer_urls: ["https://10.0.1.1:2380"]
    initial_cluster_token: spare-20250101
    owner: etcd
    group: etcd
"""

RETURN = r"""
path:
  description: The snapshot file written, checked or restored from.
  returned: always
  type: str
  sample: /var/backups/etcd/etcd-snapshot-20250101T000000Z.db
size:
  description: File size in bytes (C(null) in check mode for V(saved)).
  returned: state is saved or verified
  type: int
sha256:
  description: sha256 of the whole file, as C(sha256sum) prints it (C(null) in check mode).
  returned: state is saved or verified
  type: str
revision:
  description:
    - Revision of the snapshot (from C(etcdutl snapshot status)); C(null) in check mode for V(saved),
      when etcdutl is missing for V(saved), and when V(restored) did nothing.
  returned: always
  type: int
total_key:
  description: Number of keys in the snapshot (C(totalKey) of C(etcdutl snapshot status)).
  returned: always
  type: int
hash:
  description: Hash of the keyspace (C(hash) of C(etcdutl snapshot status)).
  returned: always
  type: int
total_size:
  description: Size of the bbolt database (C(totalSize) of C(etcdutl snapshot status)).
  returned: when etcdutl ran
  type: int
version:
  description: Storage version of the snapshot.
  returned: when known
  type: str
endpoint:
  description: The etcd endpoint the snapshot was streamed from.
  returned: state is saved and not check mode
  type: str
data_dir:
  description: The data dir restored into.
  returned: state is restored
  type: str
backup_dir:
  description: Where the previous data dir was moved (C(null) when nothing was moved).
  returned: state is restored
  type: str
cmd:
  description: The etcdutl restore command line.
  returned: state is restored and a restore ran
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import EtcdError, client_from_params
from ansible_collections.idcloud.platform.plugins.module_utils.etcd.etcd_snapshot import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    SnapshotError,
    run_restored,
    run_saved,
    run_verified,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    p = module.params
    try:
        if p["state"] == "saved":
            result = run_saved(p, client_from_params(p), module.run_command, module.check_mode)
        elif p["state"] == "verified":
            result = run_verified(p, module.run_command)
        else:
            result = run_restored(p, module.run_command, module.check_mode)
    except SnapshotError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except EtcdError as exc:
        module.fail_json(msg="etcd call failed: %s" % exc, error=exc.to_dict())
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (getattr(exc, "filename", None) or p.get("path"), exc))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
