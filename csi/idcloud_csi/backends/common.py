"""What both backends share: parameter checks and `ceph df` capacity."""

from idcloud_csi.errors import CsiError, invalid


def require(params, name, backend, example):
    value = (params or {}).get(name)
    if not value:
        raise invalid(
            f"parameters: {name} missing for backend {backend}; fix: set {name} in the StorageClass, like {example}"
        )
    return value


def known_params(params, allowed, backend):
    unknown = sorted(set(params or {}) - set(allowed) - {"backend"})
    # the CO's own keys (csi.storage.k8s.io/...) reach the driver too; only ours are checked
    unknown = [name for name in unknown if "/" not in name]
    if unknown:
        raise invalid(
            f"parameters: {', '.join(unknown)} not known to backend {backend}; fix: use only {', '.join(sorted(allowed))}"
        )


def pool_avail(session, pool):
    """Bytes a pool can still take (`ceph df` max_avail: free space over the replicas), or the
    cluster's raw free bytes when no pool is named."""
    df = session.ceph("df")
    if pool is None:
        return int(df["stats"]["total_avail_bytes"])
    for entry in df.get("pools", []):
        if entry.get("name") == pool:
            return int(entry["stats"]["max_avail"])
    raise CsiError("NOT_FOUND", f"parameters: pool {pool!r} is not in `ceph df`; fix: name an existing pool")
