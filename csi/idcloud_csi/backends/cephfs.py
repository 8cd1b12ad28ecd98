"""CephFS: a volume is a subvolume whose quota is the volume's size; many nodes mount it.

Controller: `ceph fs subvolume create|info|getpath|resize|rm` in the subvolume group
(`subvolumeGroup`, default `csi`, made when missing). Node: the subvolume's path mounted at the
staging path by ceph-fuse (mounter `fuse`) or the kernel client (mounter `kernel`), then
bind-mounted into each pod's target path. A quota grows on the controller only (ceph-fuse and the
kernel client enforce it as it changes), so NodeExpandVolume has nothing to do.
"""

import os

from idcloud_csi.backends.common import known_params, pool_avail, require
from idcloud_csi.errors import CsiError, invalid, not_found
from idcloud_csi.volumes import VolumeId, size_fits, volume_name

PARAMS = ("fsName", "subvolumeGroup", "pool", "mode", "mounter")
MOUNTERS = ("fuse", "kernel")
DEFAULT_GROUP = "csi"


def _group(vid):
    return ["--group_name", vid.scope] if vid.scope else []


def _quota(info):
    quota = info.get("bytes_quota")
    return quota if isinstance(quota, int) else 0


class CephFSController:
    backend = "cephfs"

    def __init__(self, ceph, name_prefix, default_mounter):
        self.ceph = ceph
        self.prefix = name_prefix
        self.default_mounter = default_mounter

    def volume_id(self, request_name, params):
        known_params(params, PARAMS, self.backend)
        fs = require(params, "fsName", self.backend, "fsName: cephfs")
        mounter = params.get("mounter")
        if mounter and mounter not in MOUNTERS:
            raise invalid(f"parameters: mounter {mounter!r}; fix: use one of {', '.join(MOUNTERS)}")
        group = params.get("subvolumeGroup", DEFAULT_GROUP)
        return VolumeId(self.backend, fs, group, volume_name(self.prefix, request_name))

    def info(self, session, vid):
        return session.ceph("fs", "subvolume", "info", vid.location, vid.name, *_group(vid), missing_ok=True)

    def create(self, vid, size, required, limit, params, secrets):
        with self.ceph.for_call(secrets, "CreateVolume") as s:
            info = self.info(s, vid)
            if info is not None:
                quota = _quota(info)
                if not size_fits(quota, required, limit):
                    raise CsiError(
                        "ALREADY_EXISTS",
                        f"volume {vid.name} exists with {quota} bytes, outside the asked range "
                        f"({required}..{limit or 'no limit'}); fix: ask for its size, or use another name",
                    )
                size = quota
            else:
                if vid.scope:
                    s.ceph("fs", "subvolumegroup", "create", vid.location, vid.scope, json_out=False)
                cmd = ["fs", "subvolume", "create", vid.location, vid.name, "--size", str(size), *_group(vid)]
                if params.get("pool"):
                    cmd += ["--pool_layout", params["pool"]]
                if params.get("mode"):
                    cmd += ["--mode", params["mode"]]
                s.ceph(*cmd, json_out=False)
            path = s.ceph("fs", "subvolume", "getpath", vid.location, vid.name, *_group(vid), json_out=False).strip()
        context = {"backend": self.backend, "fsName": vid.location, "subvolumePath": path}
        if params.get("mounter"):
            context["mounter"] = params["mounter"]
        return size, context

    def delete(self, vid, secrets):
        with self.ceph.for_call(secrets, "DeleteVolume") as s:
            s.ceph("fs", "subvolume", "rm", vid.location, vid.name, *_group(vid), json_out=False, missing_ok=True)

    def expand(self, vid, size, secrets):
        with self.ceph.for_call(secrets, "ControllerExpandVolume") as s:
            info = self.info(s, vid)
            if info is None:
                raise not_found(f"volume {vid}: no subvolume {vid.name} in {vid.location}")
            if _quota(info) >= size:
                return _quota(info)
            s.ceph(
                "fs",
                "subvolume",
                "resize",
                vid.location,
                vid.name,
                str(size),
                *_group(vid),
                "--no_shrink",
                json_out=False,
            )
        return size

    def exists(self, vid, secrets):
        with self.ceph.for_call(secrets, "ValidateVolumeCapabilities") as s:
            return self.info(s, vid) is not None

    def capacity(self, session, params):
        fs = (params or {}).get("fsName")
        if not fs:
            return pool_avail(session, None)
        pool = params.get("pool")
        if not pool:
            for entry in session.ceph("fs", "ls") or []:
                if entry.get("name") == fs:
                    pool = entry["data_pools"][0]
            if not pool:
                raise not_found(f"parameters: fsName {fs!r} is not a file system of this cluster; fix: name one")
        return pool_avail(session, pool)


class CephFSNode:
    backend = "cephfs"

    def __init__(self, ceph, runner, mounter, default_mounter):
        self.ceph = ceph
        self.runner = runner
        self.mounter = mounter
        self.default_mounter = default_mounter

    def stage(self, vid, staging, cap, context, secrets):
        if self.mounter.is_mounted(staging):
            return
        kind = context.get("mounter") or self.default_mounter
        if kind not in MOUNTERS:
            raise invalid(f"volume_context: mounter {kind!r}; fix: use one of {', '.join(MOUNTERS)}")
        with self.ceph.for_call(secrets, "NodeStageVolume") as s:
            path = context.get("subvolumePath")
            if not path:
                path = s.ceph(
                    "fs", "subvolume", "getpath", vid.location, vid.name, *_group(vid), json_out=False
                ).strip()
            os.makedirs(staging, exist_ok=True)
            flags = list(cap.get("mount_flags") or [])
            if kind == "fuse":
                cmd = ["ceph-fuse", staging, *s.args(), f"--client_fs={vid.location}", "-r", path]
                if flags:
                    cmd += ["-o", ",".join(flags)]
                self.runner.run(cmd)
            else:
                secret = os.path.join(s.dir, "secret")
                with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(_key_of(s.keyring))
                options = [f"name={s.user}", f"secretfile={secret}", f"mds_namespace={vid.location}", *flags]
                self.mounter.mount(f"{self.ceph.mon_host_list()}:{path}", staging, "ceph", options)
        if not self.mounter.is_mounted(staging):
            raise CsiError("INTERNAL", f"{kind} mount of {vid} at {staging} returned but nothing is mounted there")

    def unstage(self, vid, staging):
        self.mounter.unmount(staging)

    def expand(self, vid, volume_path, required):
        return required  # the quota grew on the controller; nothing to do on a node


def _key_of(keyring):
    with open(keyring) as f:
        for line in f:
            if line.strip().startswith("key"):
                return line.split("=", 1)[1].strip()
    raise CsiError("INTERNAL", "the session keyring holds no key")
