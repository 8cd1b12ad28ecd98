# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Small etcd v3 client over the JSON gRPC gateway (HTTPS + client certificate).

It runs on the managed etcd host with the Python standard library only
(urllib + ssl): no grpc, no requests.

Conventions:
- Member ids are uint64. The gateway sends them as decimal strings (a JSON number
  would lose precision above 2**53). This client returns them as decimal strings
  (``id``) plus the hex form etcdctl prints (``id_hex``), and accepts an int, a
  decimal string or a hex string (``0x`` prefix or ``id_hex`` form) as input.
- Keys and values are bytes on the wire (base64 in JSON); ``put``/``get`` accept
  str (UTF-8) or bytes and ``get`` returns bytes.
- Every failure raises EtcdError carrying the endpoint and the server's message.
"""

import base64
import hashlib
import json
import os
import socket
import ssl
import tempfile
from urllib.error import HTTPError, URLError
from urllib.request import HTTPSHandler, ProxyHandler, Request, build_opener

DEFAULT_ENDPOINTS = ["https://127.0.0.1:2379"]

# gRPC codes that mean "this endpoint cannot serve now, another one may":
# 14 UNAVAILABLE (no leader, stopping, not capable), 4 DEADLINE_EXCEEDED.
FAILOVER_GRPC_CODES = (4, 14)
# A learner refuses member and kv calls before applying them (etcd 3.6: code 9, HTTP 400).
LEARNER_REFUSAL = "not supported for learner"
# UNAVAILABLE answers after which a write may still be applied: never resent elsewhere.
WRITE_MAYBE_APPLIED = ("timed out", "timeout", "leader changed")

SHA256_SIZE = 32


class EtcdError(Exception):
    """An etcd call failed. ``endpoint`` and the server's ``message`` are kept apart."""

    def __init__(self, message, endpoint=None, code=None, http_status=None):
        self.message = message
        self.endpoint = endpoint
        self.code = code
        self.http_status = http_status
        text = message
        if endpoint:
            text = "%s: %s" % (endpoint, message)
        super().__init__(text)

    def to_dict(self):
        return {
            "endpoint": self.endpoint,
            "message": self.message,
            "grpc_code": self.code,
            "http_status": self.http_status,
        }


class EtcdConnectionError(EtcdError):
    """The endpoint could not be reached or the TLS handshake failed.

    ``request_sent`` is False when the request cannot have reached etcd
    (connection refused, TLS refused), so retrying a write elsewhere is safe.
    """

    def __init__(self, message, endpoint=None, request_sent=True):
        super().__init__(message, endpoint=endpoint)
        self.request_sent = request_sent


def member_id_int(member_id):
    """Return a member id as int from an int, a decimal string or a hex string."""
    if isinstance(member_id, bool):
        raise ValueError("member id must be an integer, got %r" % (member_id,))
    if isinstance(member_id, int):
        value = member_id
    else:
        text = str(member_id).strip().lower()
        if text.startswith("0x"):
            value = int(text[2:], 16)
        elif text.isdigit():
            value = int(text)
        elif text and all(c in "0123456789abcdef" for c in text):
            value = int(text, 16)
        else:
            raise ValueError("member id %r is neither decimal nor hex" % (member_id,))
    if value < 0 or value >= 2**64:
        raise ValueError("member id %r is outside uint64" % (member_id,))
    return value


def member_id_str(member_id):
    """Decimal string form of a member id, as the JSON gateway sends it."""
    return str(member_id_int(member_id))


def normalize_member(raw):
    """Gateway member JSON -> dict with snake_case keys and the id as a string.

    etcd 3.6 sends ``{"ID": "123", "name": "m1", "peerURLs": [...],
    "clientURLs": [...], "isLearner": true}``; empty fields are omitted (an
    added but not yet started member has no name and no client URLs).
    """
    raw_id = raw.get("ID", raw.get("id", 0))
    mid = member_id_int(raw_id) if raw_id not in (None, "") else 0
    return {
        "id": str(mid),
        "id_hex": "%x" % mid,
        "name": raw.get("name", "") or "",
        "peer_urls": list(raw.get("peerURLs", raw.get("peer_urls", [])) or []),
        "client_urls": list(raw.get("clientURLs", raw.get("client_urls", [])) or []),
        "is_learner": bool(raw.get("isLearner", raw.get("is_learner", False))),
    }


def _b64(data):
    if not isinstance(data, bytes):
        data = str(data).encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def _to_bytes(data):
    if isinstance(data, bytes):
        return data
    return str(data).encode("utf-8")


def prefix_range_end(prefix):
    """range_end for "all keys with this prefix" (etcd's GetPrefixRangeEnd)."""
    key = bytearray(_to_bytes(prefix))
    for i in range(len(key) - 1, -1, -1):
        if key[i] < 0xFF:
            key[i] += 1
            return bytes(key[: i + 1])
    # All 0xff: no upper bound -> "\0" means "to the end of the keyspace".
    return b"\0"


def _int(value, default=0):
    if value in (None, ""):
        return default
    return int(value)


def _server_message(body):
    """Best message from a gateway error body ({"code":9,"message":"..."})."""
    try:
        doc = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:500] or None, None
    if isinstance(doc, dict):
        err = doc.get("error") if isinstance(doc.get("error"), dict) else doc
        code = err.get("code", err.get("grpc_code"))
        msg = err.get("message") or err.get("error") or json.dumps(doc)[:500]
        return msg, code
    return json.dumps(doc)[:500], None


class UrllibTransport:
    """Default transport: urllib with an SSL context built from the client cert.

    A transport is a callable ``(method, url, body_bytes_or_None, timeout)`` that
    returns ``(http_status, fileobj)`` (a file object the caller closes) and
    raises EtcdConnectionError when no HTTP response came back. Unit tests pass
    a fake one.
    """

    def __init__(self, ca_file=None, cert_file=None, key_file=None):
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self._opener = None

    def _context(self):
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def opener(self):
        if self._opener is None:
            try:
                ctx = self._context()
            except (OSError, ssl.SSLError) as exc:
                # Names the files, never their content.
                raise EtcdError(
                    "cannot load TLS files (ca_file=%s, cert_file=%s, key_file=%s): %s"
                    % (self.ca_file, self.cert_file, self.key_file, exc)
                )
            # Empty ProxyHandler: etcd is always reached directly, whatever *_proxy says.
            self._opener = build_opener(ProxyHandler({}), HTTPSHandler(context=ctx))
        return self._opener

    def __call__(self, method, url, body, timeout):
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        req = Request(url, data=body, headers=headers)
        req.get_method = lambda: method
        opener = self.opener()
        try:
            resp = opener.open(req, timeout=timeout)
            return resp.getcode(), resp
        except HTTPError as exc:
            return exc.code, exc
        except URLError as exc:
            reason = exc.reason
            raise EtcdConnectionError(
                _describe_socket_error(reason), endpoint=_base(url), request_sent=not _not_sent(reason)
            )
        except ssl.SSLError as exc:
            raise EtcdConnectionError(_describe_socket_error(exc), endpoint=_base(url), request_sent=False)
        except (TimeoutError, OSError) as exc:
            raise EtcdConnectionError(_describe_socket_error(exc), endpoint=_base(url), request_sent=not _not_sent(exc))


def _not_sent(reason):
    return isinstance(reason, (ConnectionRefusedError, ssl.SSLError, socket.gaierror)) or (
        isinstance(reason, OSError) and getattr(reason, "errno", None) in (101, 113)
    )


def _describe_socket_error(reason):
    if isinstance(reason, ssl.SSLCertVerificationError):
        return "TLS: the server certificate was not accepted (check ca_file and the endpoint host): %s" % reason
    if isinstance(reason, ssl.SSLError):
        return (
            "TLS handshake failed (etcd refuses clients without a certificate signed by its "
            "trusted CA; check cert_file/key_file): %s" % reason
        )
    if isinstance(reason, ConnectionResetError):
        return (
            "connection reset during the TLS handshake (a missing or untrusted client "
            "certificate looks like this; check cert_file/key_file): %s" % reason
        )
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is etcd running and listening there?)"
    if isinstance(reason, socket.timeout):
        return "timed out"
    return str(reason)


def _base(url):
    parts = url.split("/", 3)
    return "/".join(parts[:3])


class EtcdClient:
    """etcd v3 client over the JSON gateway.

    ``endpoints``: client URLs (``https://host:2379``), tried in order for
    cluster-level calls. Reads fail over on any connection error or UNAVAILABLE
    answer; writes (member add/remove/promote, put) fail over only when the
    request cannot have reached etcd (connection refused, TLS refused) or when
    etcd answered UNAVAILABLE, so a write is never sent twice after a timeout.
    Both fail over when the endpoint is a learner ("rpc not supported for
    learner"): a joining member's local endpoint can come first in the list.
    """

    def __init__(self, endpoints=None, ca_file=None, cert_file=None, key_file=None, timeout=10, transport=None):
        endpoints = list(endpoints or DEFAULT_ENDPOINTS)
        if not endpoints:
            raise EtcdError("no endpoints given")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self.transport = transport or UrllibTransport(ca_file, cert_file, key_file)
        self.last_endpoint = None

    # -- plumbing ---------------------------------------------------------------
    def _open(self, endpoint, method, path, payload=None, timeout=None):
        endpoint = endpoint.rstrip("/")
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        status, fobj = self.transport(method, endpoint + path, body, self.timeout if timeout is None else timeout)
        return status, fobj

    def _call(self, endpoint, path, payload=None, method="POST"):
        status, fobj = self._open(endpoint, method, path, {} if payload is None and method == "POST" else payload)
        try:
            try:
                data = fobj.read()
            except (TimeoutError, OSError) as exc:
                raise EtcdConnectionError(
                    "reading the answer of %s: %s" % (path, _describe_socket_error(exc)), endpoint=endpoint
                )
        finally:
            fobj.close()
        if status >= 400:
            msg, code = _server_message(data)
            raise EtcdError(msg or "HTTP %s" % status, endpoint=endpoint, code=code, http_status=status)
        try:
            return json.loads(data.decode("utf-8")) if data.strip() else {}
        except ValueError:
            raise EtcdError("%s returned invalid JSON: %r" % (path, data[:200]), endpoint=endpoint)

    def _failover(self, func, write=False):
        """Run func(endpoint) on the first endpoint that answers."""
        errors = []
        for endpoint in self.endpoints:
            try:
                result = func(endpoint)
                self.last_endpoint = endpoint
                return result
            except EtcdConnectionError as exc:
                errors.append(exc)
                if write and exc.request_sent:
                    raise
            except EtcdError as exc:
                message = exc.message or ""
                retry = exc.code in FAILOVER_GRPC_CODES
                if write and (exc.code == 4 or any(m in message for m in WRITE_MAYBE_APPLIED)):
                    retry = False
                if retry or LEARNER_REFUSAL in message:
                    errors.append(exc)
                    continue
                raise
        if len(errors) == 1:
            raise errors[0]
        raise EtcdError(
            "no endpoint answered: " + "; ".join(str(e) for e in errors),
            endpoint=",".join(self.endpoints),
            code=errors[-1].code if errors else None,
        )

    def call(self, path, payload=None, write=False):
        """POST path to the first endpoint that answers; returns the decoded JSON."""
        return self._failover(lambda ep: self._call(ep, path, payload), write=write)

    # -- cluster ----------------------------------------------------------------
    def member_list(self):
        """-> list of members (see normalize_member)."""
        resp = self.call("/v3/cluster/member/list", {"linearizable": True})
        return [normalize_member(m) for m in resp.get("members", [])]

    def member_add(self, peer_urls, is_learner=False):
        """-> (added member, all members after the add)."""
        resp = self.call(
            "/v3/cluster/member/add", {"peerURLs": list(peer_urls), "isLearner": bool(is_learner)}, write=True
        )
        return (normalize_member(resp.get("member", {})), [normalize_member(m) for m in resp.get("members", [])])

    def member_remove(self, member_id):
        """-> members after the removal."""
        resp = self.call("/v3/cluster/member/remove", {"ID": member_id_str(member_id)}, write=True)
        return [normalize_member(m) for m in resp.get("members", [])]

    def member_promote(self, member_id):
        """-> members after the promotion. A learner not yet in sync raises EtcdError
        ("can only promote a learner member which is in sync with leader")."""
        resp = self.call("/v3/cluster/member/promote", {"ID": member_id_str(member_id)}, write=True)
        return [normalize_member(m) for m in resp.get("members", [])]

    # -- one endpoint -----------------------------------------------------------
    def health(self, endpoint):
        """GET <endpoint>/health -> (healthy: bool, reason: str). Never raises for
        an unreachable endpoint: that is an unhealthy answer."""
        endpoint = endpoint.rstrip("/")
        try:
            status, fobj = self._open(endpoint, "GET", "/health")
            try:
                data = fobj.read()
            finally:
                fobj.close()
        except EtcdError as exc:
            return False, exc.message
        except (TimeoutError, OSError) as exc:
            return False, _describe_socket_error(exc)
        try:
            doc = json.loads(data.decode("utf-8"))
        except ValueError:
            return False, "HTTP %s, not JSON: %r" % (status, data[:200])
        healthy = str(doc.get("health", "")).lower() == "true" and status < 400
        reason = doc.get("reason", "") or ("" if healthy else "HTTP %s" % status)
        return healthy, reason

    def status(self, endpoint):
        """/v3/maintenance/status of one endpoint, with ints and snake_case keys."""
        resp = self._call(endpoint.rstrip("/"), "/v3/maintenance/status", {})
        header = resp.get("header", {})
        member_id = _int(header.get("member_id"))
        leader = _int(resp.get("leader"))
        return {
            "endpoint": endpoint,
            "member_id": str(member_id),
            "leader": str(leader),
            "is_leader": leader != 0 and leader == member_id,
            "is_learner": bool(resp.get("isLearner", False)),
            "version": resp.get("version", ""),
            "storage_version": resp.get("storageVersion", ""),
            "db_size": _int(resp.get("dbSize")),
            "db_size_in_use": _int(resp.get("dbSizeInUse")),
            "db_size_quota": _int(resp.get("dbSizeQuota")),
            "raft_index": _int(resp.get("raftIndex")),
            "raft_term": _int(resp.get("raftTerm")),
            "raft_applied_index": _int(resp.get("raftAppliedIndex")),
            "revision": _int(header.get("revision")),
            "cluster_id": str(_int(header.get("cluster_id"))),
            "errors": list(resp.get("errors", []) or []),
        }

    # -- keys -------------------------------------------------------------------
    def range_count(self, prefix=None):
        """-> (revision, count) of the whole keyspace, or of the keys under prefix."""
        if prefix is None:
            key, end = b"\0", b"\0"
        else:
            key, end = _to_bytes(prefix), prefix_range_end(prefix)
        resp = self.call("/v3/kv/range", {"key": _b64(key), "range_end": _b64(end), "count_only": True})
        return _int(resp.get("header", {}).get("revision")), _int(resp.get("count"))

    def put(self, key, value):
        """-> revision of the write."""
        resp = self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, write=True)
        return _int(resp.get("header", {}).get("revision"))

    def get(self, key):
        """-> (revision, value bytes or None when the key does not exist)."""
        resp = self.call("/v3/kv/range", {"key": _b64(key)})
        kvs = resp.get("kvs") or []
        value = base64.b64decode(kvs[0].get("value", "")) if kvs else None
        return _int(resp.get("header", {}).get("revision")), value

    # -- snapshot ---------------------------------------------------------------
    def snapshot(self, dest_path, mode=0o600):
        """Stream a snapshot into dest_path, atomically.

        The stream goes to a temp file in the destination directory; the sha256
        trailer etcd appends (the last 32 bytes: sha256 of everything before) is
        checked, the file fsynced and renamed into place, and the directory fsynced.

        -> dict(path, size, sha256 (of the whole file, as sha256sum prints it),
        db_sha256 (the trailer), revision (from a response header, None when etcd
        does not send one: 3.6 does not), version (storage version), endpoint).
        """
        dest_path = os.path.abspath(dest_path)
        dest_dir = os.path.dirname(dest_path)
        if not os.path.isdir(dest_dir):
            raise EtcdError("snapshot destination directory %s does not exist" % dest_dir)
        return self._failover(lambda ep: self._snapshot_from(ep, dest_path, dest_dir, mode))

    def _snapshot_from(self, endpoint, dest_path, dest_dir, mode):
        status, fobj = self._open(endpoint, "POST", "/v3/maintenance/snapshot", {}, timeout=max(self.timeout, 60))
        if status >= 400:
            try:
                data = fobj.read()
            finally:
                fobj.close()
            msg, code = _server_message(data)
            raise EtcdError(msg or "HTTP %s" % status, endpoint=endpoint, code=code, http_status=status)
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=".%s." % os.path.basename(dest_path), suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                info = _copy_snapshot_stream(fobj, out, endpoint)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, mode)
            os.rename(tmp, dest_path)
            tmp = None
            _fsync_dir(dest_dir)
        finally:
            fobj.close()
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
        info.update(path=dest_path, endpoint=endpoint)
        return info


def _copy_snapshot_stream(fobj, out, endpoint):
    """Decode the newline-delimited gateway stream into out; verify the trailer.

    Each line is ``{"result": {"remaining_bytes": "N", "blob": "<b64>",
    "version": "3.6.0"}}`` (``remaining_bytes`` omitted when 0, ``header`` only
    if the server sends one); a failure mid-stream is ``{"error": {...}}``.
    """
    body_hash = hashlib.sha256()  # everything but the trailer
    file_hash = hashlib.sha256()  # the whole file
    tail = b""
    size = 0
    revision = None
    version = None
    messages = 0
    while True:
        try:
            line = fobj.readline()
        except (TimeoutError, OSError) as exc:
            raise EtcdConnectionError(
                "snapshot stream interrupted after %d bytes: %s" % (size, _describe_socket_error(exc)),
                endpoint=endpoint,
            )
        if not line:
            break
        if not line.strip():
            continue
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            raise EtcdError(
                "snapshot stream: invalid JSON line after %d bytes: %r" % (size, line[:200]), endpoint=endpoint
            )
        if msg.get("error"):
            err = msg["error"]
            raise EtcdError(
                "snapshot stream failed after %d bytes: %s" % (size, err.get("message", json.dumps(err)[:300])),
                endpoint=endpoint,
                code=err.get("grpc_code", err.get("code")),
            )
        result = msg.get("result", msg)
        messages += 1
        header = result.get("header") or {}
        if header.get("revision") not in (None, "") and revision is None:
            revision = _int(header.get("revision"))
        version = result.get("version", version)
        blob = base64.b64decode(result.get("blob", "") or "")
        if not blob:
            continue
        out.write(blob)
        size += len(blob)
        file_hash.update(blob)
        data = tail + blob
        body_hash.update(data[:-SHA256_SIZE])
        tail = data[-SHA256_SIZE:]
    if messages == 0 or size <= SHA256_SIZE:
        raise EtcdError("snapshot stream ended after %d bytes without data" % size, endpoint=endpoint)
    if body_hash.digest() != tail:
        raise EtcdError(
            "snapshot sha256 trailer mismatch after %d bytes (truncated or corrupt stream); nothing was written" % size,
            endpoint=endpoint,
        )
    return {
        "size": size,
        "sha256": file_hash.hexdigest(),
        "db_sha256": tail.hex(),
        "revision": revision,
        "version": version,
    }


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def etcd_connection_argument_spec():
    """Argument spec of the connection options (doc fragment idcloud.platform.etcd_client)."""
    return dict(
        endpoints=dict(type="list", elements="str", default=list(DEFAULT_ENDPOINTS)),
        ca_file=dict(type="path"),
        cert_file=dict(type="path"),
        key_file=dict(type="path"),
        timeout=dict(type="int", default=10),
    )


def client_from_params(params):
    """EtcdClient from module params holding the connection options."""
    return EtcdClient(
        params["endpoints"],
        params.get("ca_file"),
        params.get("cert_file"),
        params.get("key_file"),
        params.get("timeout") or 10,
    )
