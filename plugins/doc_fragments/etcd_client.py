# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)


class ModuleDocFragment:
    # Connection options shared by the etcd modules (see module_utils/etcd/client.py).
    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - etcd client URLs (C(https://host:port)) of the cluster, tried in order.
      - Reads fail over to the next endpoint on a connection error or when etcd answers UNAVAILABLE
        (no leader); writes fail over only when the request cannot have reached etcd
        (connection or TLS refused) or etcd refused it unapplied (no leader), so a write is never sent twice.
      - Both skip an endpoint that is a learner (it refuses these calls), so a joining member's own
        endpoint may come first.
      - The module runs on the etcd host, so the local member is the usual first endpoint.
    type: list
    elements: str
    default: ['https://127.0.0.1:2379']
  ca_file:
    description:
      - CA bundle that signed the etcd server certificates.
      - When omitted, the system trust store is used.
    type: path
  cert_file:
    description:
      - Client certificate (PEM) presented to etcd; required when etcd runs with C(--client-cert-auth).
    type: path
  key_file:
    description:
      - Private key (PEM) of O(cert_file). Its content is never logged.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request to one endpoint (a snapshot stream gets at least 60).
    type: int
    default: 10
notes:
  - Talks to the etcd v3 JSON gateway (C(/v3/...)) over HTTPS with the Python standard library only;
    no grpc or etcdctl is needed on the target.
  - Member ids are uint64. They are returned as decimal strings (C(id)), and as the hex form etcdctl
    prints (C(id_hex)).
"""
