"""The driver's calls as plain Python: dicts in, dicts out, CsiError for every failure.

service.py turns CSI's protobuf requests into these calls and back; nothing here imports gRPC,
so the unit tests drive it with fake commands and a fake mount table.
"""

import logging
import os
import shutil
import socket
import stat
import threading
from contextlib import contextmanager

from idcloud_csi.backends.cephfs import CephFSController, CephFSNode
from idcloud_csi.backends.rbd import RBDController, RBDNode
from idcloud_csi.ceph import Ceph, credentials
from idcloud_csi.errors import CsiError, invalid, not_found
from idcloud_csi.mounts import Mounter, block_size, volume_stats
from idcloud_csi.runner import redact
from idcloud_csi.volumes import BACKENDS, capability_problems, decode_volume_id, volume_size

log = logging.getLogger("idcloud_csi")
RACK_KEY = "topology.idcloud.io/rack"


class VolumeLocks:
    """One call per volume at a time: a second one gets ABORTED (the CO retries), as the spec asks."""

    def __init__(self):
        self._busy = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key):
        with self._lock:
            if key in self._busy:
                raise CsiError("ABORTED", f"an operation on {key} is in progress; the CO retries")
            self._busy.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._busy.discard(key)


class Driver:
    def __init__(self, config, runner, mounter=None, ceph=None):
        self.config = config
        self.runner = runner
        self.mounter = mounter or Mounter(runner)
        self.ceph = ceph or Ceph(runner, config.mon_host, config.work_dir, config.ceph_timeout)
        self.controllers = {
            "cephfs": CephFSController(self.ceph, config.volume_name_prefix, config.cephfs_mounter),
            "rbd": RBDController(self.ceph, config.volume_name_prefix),
        }
        self.nodes = {
            "cephfs": CephFSNode(self.ceph, runner, self.mounter, config.cephfs_mounter),
            "rbd": RBDNode(
                self.ceph, runner, self.mounter, config.state_dir, config.rbd_mapper, config.default_fs_type
            ),
        }
        self.locks = VolumeLocks()

    # --- identity ---------------------------------------------------------------------
    def probe(self):
        """Ready when the commands this instance's services run are installed."""
        needed = []
        if self.config.controller:
            needed += ["ceph", "rbd"]
        if self.config.node:
            needed += ["mount", "umount", "blkid", "ceph-fuse" if self.config.cephfs_mounter == "fuse" else "mount"]
            needed += {"fuse": ["rbd-fuse", "losetup"], "krbd": ["rbd"], "nbd": ["rbd-nbd"]}[self.config.rbd_mapper]
        missing = sorted({cmd for cmd in needed if shutil.which(cmd) is None})
        if missing:
            log.warning("probe: not ready, missing commands: %s", ", ".join(missing))
        return not missing

    # --- controller --------------------------------------------------------------------
    def controller_for(self, params):
        backend = (params or {}).get("backend")
        if backend not in BACKENDS:
            raise invalid(
                f"parameters: backend {backend!r}; fix: set backend: cephfs or backend: rbd in the StorageClass"
            )
        return self.controllers[backend]

    def create_volume(self, name, required, limit, capabilities, params, secrets, source=None):
        if not name:
            raise invalid("name: missing; fix: the CO names every volume (CreateVolumeRequest.name)")
        if not capabilities:
            raise invalid("volume_capabilities: missing; fix: give at least one")
        if source:
            raise invalid(f"volume_content_source: {source}; fix: snapshots and clones are not supported yet")
        controller = self.controller_for(params)
        problems = capability_problems(controller.backend, capabilities)
        if problems:
            raise invalid("; ".join(problems))
        vid = controller.volume_id(name, params)
        size = volume_size(required, limit, self.config.default_volume_size)
        with self.locks.hold(f"name {name}"):
            size, context = controller.create(vid, size, required, limit, params, secrets)
        log.info("CreateVolume %s: %s, %d bytes", name, vid, size)
        return {"volume_id": vid.encode(), "capacity_bytes": size, "volume_context": context}

    def delete_volume(self, volume_id, secrets):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        try:
            vid = decode_volume_id(volume_id)
        except CsiError:
            log.info("DeleteVolume %s: not a volume of this driver, nothing to delete", volume_id)
            return
        with self.locks.hold(volume_id):
            self.controllers[vid.backend].delete(vid, secrets)
        log.info("DeleteVolume %s: gone", volume_id)

    def expand_volume(self, volume_id, required, limit, secrets, capability=None):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not required and not limit:
            raise invalid("capacity_range: missing; fix: give required_bytes, the new size")
        vid = decode_volume_id(volume_id)
        size = volume_size(required, limit, self.config.default_volume_size)
        with self.locks.hold(volume_id):
            size = self.controllers[vid.backend].expand(vid, size, secrets)
        node_expansion = vid.backend == "rbd"
        log.info("ControllerExpandVolume %s: %d bytes", volume_id, size)
        return size, node_expansion

    def validate_capabilities(self, volume_id, capabilities, secrets):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not capabilities:
            raise invalid("volume_capabilities: missing; fix: give the capabilities to check")
        vid = decode_volume_id(volume_id)
        if not secrets and self.config.ceph_id:
            secrets = self.own_secrets()
        if not self.controllers[vid.backend].exists(vid, secrets):
            raise not_found(f"volume {volume_id} does not exist")
        return capability_problems(vid.backend, capabilities)

    def own_secrets(self):
        """The driver's own cephx user (flags --ceph-id, --ceph-keyring), for GetCapacity."""
        with open(self.config.ceph_keyring) as f:
            for line in f:
                if line.strip().startswith("key"):
                    return {"userID": self.config.ceph_id, "userKey": line.split("=", 1)[1].strip()}
        raise CsiError("INTERNAL", f"--ceph-keyring {self.config.ceph_keyring}: no `key = ` line")

    def capacity(self, params):
        params = params or {}
        user, key = credentials(self.own_secrets(), "GetCapacity")
        with self.ceph.session(user, key) as session:
            if not params.get("backend"):
                return self.controllers["rbd"].capacity(session, None)
            return self.controller_for(params).capacity(session, params)

    # --- node --------------------------------------------------------------------------
    def node_info(self):
        topology = {RACK_KEY: self.config.rack} if self.config.rack else {}
        return {"node_id": self.config.node_id or socket.gethostname(), "topology": topology}

    def _node_vid(self, volume_id):
        return decode_volume_id(volume_id)

    def stage(self, volume_id, staging, capability, context, secrets):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not staging:
            raise invalid("staging_target_path: missing; fix: the CO gives the staging directory")
        if not capability:
            raise invalid("volume_capability: missing; fix: give the capability the volume is staged with")
        vid = self._node_vid(volume_id)
        problems = capability_problems(vid.backend, [capability])
        if problems:
            raise invalid("; ".join(problems))
        with self.locks.hold(volume_id):
            self.nodes[vid.backend].stage(vid, staging, capability, context or {}, secrets)
        log.info("NodeStageVolume %s at %s", volume_id, staging)

    def unstage(self, volume_id, staging):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not staging:
            raise invalid("staging_target_path: missing; fix: pass the path NodeStageVolume had")
        try:
            vid = self._node_vid(volume_id)
        except CsiError:
            return  # never staged by this driver: nothing to undo
        with self.locks.hold(volume_id):
            self.nodes[vid.backend].unstage(vid, staging)
        log.info("NodeUnstageVolume %s from %s", volume_id, staging)

    def publish(self, volume_id, staging, target, capability, readonly):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not target:
            raise invalid("target_path: missing; fix: the CO gives the pod's volume path")
        if not capability:
            raise invalid("volume_capability: missing; fix: give the capability the volume is published with")
        if not staging:
            raise invalid("staging_target_path: missing; fix: this driver stages volumes first (STAGE_UNSTAGE_VOLUME)")
        vid = self._node_vid(volume_id)
        problems = capability_problems(vid.backend, [capability])
        if problems:
            raise invalid("; ".join(problems))
        with self.locks.hold(volume_id):
            if self.mounter.is_mounted(target):
                return
            if capability["access_type"] == "block":
                device = self.nodes[vid.backend].device(vid)
                if not device:
                    raise CsiError("FAILED_PRECONDITION", f"volume {volume_id} is not staged on this node")
                if not os.path.exists(target):
                    open(target, "a").close()
                self.mounter.bind(device, target, readonly=readonly)
            else:
                if not self.mounter.is_mounted(staging):
                    raise CsiError(
                        "FAILED_PRECONDITION",
                        f"volume {volume_id} is not staged at {staging}; fix: NodeStageVolume first",
                    )
                os.makedirs(target, exist_ok=True)
                self.mounter.bind(staging, target, readonly=readonly)
        log.info("NodePublishVolume %s at %s%s", volume_id, target, " (read-only)" if readonly else "")

    def unpublish(self, volume_id, target):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not target:
            raise invalid("target_path: missing; fix: pass the path NodePublishVolume had")
        with self.locks.hold(volume_id):
            self.mounter.unmount(target)
            if os.path.isdir(target) and not os.path.islink(target):
                os.rmdir(target)
            elif os.path.lexists(target):
                os.unlink(target)
        log.info("NodeUnpublishVolume %s from %s", volume_id, target)

    def stats(self, volume_id, path):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        if not path:
            raise invalid("volume_path: missing; fix: pass a path the volume is staged or published at")
        self._node_vid(volume_id)
        if not os.path.exists(path) or not self.mounter.is_mounted(path):
            raise not_found(f"volume {volume_id} is not mounted at {path}")
        if stat.S_ISBLK(os.stat(path).st_mode):
            return {"bytes": (0, block_size(self.runner, path), 0), "inodes": None, "block": True}
        return volume_stats(path)

    def node_expand(self, volume_id, path, required, capability=None):
        if not volume_id:
            raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
        vid = self._node_vid(volume_id)
        if not path:
            raise invalid("volume_path: missing; fix: pass the path the volume is published at")
        if not os.path.exists(path):
            raise not_found(f"volume {volume_id}: {path} does not exist on this node")
        with self.locks.hold(volume_id):
            size = self.nodes[vid.backend].expand(vid, path, required)
        log.info("NodeExpandVolume %s at %s: %s bytes", volume_id, path, size)
        return size


def safe(text):
    return redact(text)
