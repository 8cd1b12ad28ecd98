"""CSI's gRPC services (Identity, Controller, Node) and the kubelet's plugin registration,
translating protobuf messages to Driver calls and CsiError to the call's status."""

import functools
import logging
import time

import grpc

from idcloud_csi import VERSION
from idcloud_csi.errors import CsiError
from idcloud_csi.proto import csi_pb2, csi_pb2_grpc, reg_pb2, reg_pb2_grpc
from idcloud_csi.runner import CommandFailed, redact

log = logging.getLogger("idcloud_csi")


def rpc(method):
    """Every call: its status from CsiError, any other failure INTERNAL, and one log line
    (without secrets) per failure."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        started = time.monotonic()
        try:
            return method(self, request, context)
        except CsiError as exc:
            message = redact(exc.message)
            log.warning("%s: %s %s (%.1f s)", method.__name__, exc.code, message, time.monotonic() - started)
            context.abort(getattr(grpc.StatusCode, exc.code), message)
        except CommandFailed as exc:
            log.error("%s: %s", method.__name__, redact(str(exc)))
            context.abort(grpc.StatusCode.INTERNAL, redact(str(exc)))
        except OSError as exc:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, redact(f"{exc.__class__.__name__}: {exc}"))

    return wrapper


def capability(cap):
    """A csi.VolumeCapability as the dict the driver's rules take."""
    if cap is None:
        return None
    kind = cap.WhichOneof("access_type")
    mode = csi_pb2.VolumeCapability.AccessMode.Mode.Name(cap.access_mode.mode)
    out = {"access_type": kind, "access_mode": mode, "fs_type": None, "mount_flags": []}
    if kind == "mount":
        out["fs_type"] = cap.mount.fs_type or None
        out["mount_flags"] = list(cap.mount.mount_flags)
    return out


def capabilities(caps):
    return [capability(cap) for cap in caps]


def capacity_range(request):
    if not request.HasField("capacity_range"):
        return 0, 0
    return request.capacity_range.required_bytes, request.capacity_range.limit_bytes


class Identity(csi_pb2_grpc.IdentityServicer):
    def __init__(self, driver, name):
        self.driver = driver
        self.name = name

    @rpc
    def GetPluginInfo(self, request, context):
        return csi_pb2.GetPluginInfoResponse(name=self.name, vendor_version=VERSION)

    @rpc
    def GetPluginCapabilities(self, request, context):
        Cap = csi_pb2.PluginCapability
        caps = [Cap(volume_expansion=Cap.VolumeExpansion(type=Cap.VolumeExpansion.ONLINE))]
        if self.driver.config.controller:
            caps.append(Cap(service=Cap.Service(type=Cap.Service.CONTROLLER_SERVICE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=caps)

    @rpc
    def Probe(self, request, context):
        from google.protobuf import wrappers_pb2

        return csi_pb2.ProbeResponse(ready=wrappers_pb2.BoolValue(value=self.driver.probe()))


class Controller(csi_pb2_grpc.ControllerServicer):
    def __init__(self, driver):
        self.driver = driver

    @rpc
    def CreateVolume(self, request, context):
        required, limit = capacity_range(request)
        source = str(request.volume_content_source).strip() if request.HasField("volume_content_source") else None
        out = self.driver.create_volume(
            request.name,
            required,
            limit,
            capabilities(request.volume_capabilities),
            dict(request.parameters),
            dict(request.secrets),
            source,
        )
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(
                volume_id=out["volume_id"], capacity_bytes=out["capacity_bytes"], volume_context=out["volume_context"]
            )
        )

    @rpc
    def DeleteVolume(self, request, context):
        self.driver.delete_volume(request.volume_id, dict(request.secrets))
        return csi_pb2.DeleteVolumeResponse()

    @rpc
    def ControllerExpandVolume(self, request, context):
        required, limit = capacity_range(request)
        cap = capability(request.volume_capability) if request.HasField("volume_capability") else None
        size, node = self.driver.expand_volume(request.volume_id, required, limit, dict(request.secrets), cap)
        return csi_pb2.ControllerExpandVolumeResponse(capacity_bytes=size, node_expansion_required=node)

    @rpc
    def ValidateVolumeCapabilities(self, request, context):
        caps = capabilities(request.volume_capabilities)
        problems = self.driver.validate_capabilities(request.volume_id, caps, dict(request.secrets))
        if problems:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(problems))
        Confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed
        return csi_pb2.ValidateVolumeCapabilitiesResponse(
            confirmed=Confirmed(
                volume_context=request.volume_context,
                volume_capabilities=request.volume_capabilities,
                parameters=request.parameters,
            )
        )

    @rpc
    def GetCapacity(self, request, context):
        if not self.driver.config.ceph_id:
            raise CsiError("UNIMPLEMENTED", "GetCapacity needs the driver's own cephx user (--ceph-id, --ceph-keyring)")
        return csi_pb2.GetCapacityResponse(available_capacity=self.driver.capacity(dict(request.parameters)))

    @rpc
    def ControllerGetCapabilities(self, request, context):
        Rpc = csi_pb2.ControllerServiceCapability.RPC
        types = [Rpc.CREATE_DELETE_VOLUME, Rpc.EXPAND_VOLUME]
        if self.driver.config.ceph_id:
            types.append(Rpc.GET_CAPACITY)
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=Rpc(type=t)) for t in types]
        )


class Node(csi_pb2_grpc.NodeServicer):
    def __init__(self, driver):
        self.driver = driver

    @rpc
    def NodeStageVolume(self, request, context):
        cap = capability(request.volume_capability) if request.HasField("volume_capability") else None
        self.driver.stage(
            request.volume_id, request.staging_target_path, cap, dict(request.volume_context), dict(request.secrets)
        )
        return csi_pb2.NodeStageVolumeResponse()

    @rpc
    def NodeUnstageVolume(self, request, context):
        self.driver.unstage(request.volume_id, request.staging_target_path)
        return csi_pb2.NodeUnstageVolumeResponse()

    @rpc
    def NodePublishVolume(self, request, context):
        cap = capability(request.volume_capability) if request.HasField("volume_capability") else None
        self.driver.publish(request.volume_id, request.staging_target_path, request.target_path, cap, request.readonly)
        return csi_pb2.NodePublishVolumeResponse()

    @rpc
    def NodeUnpublishVolume(self, request, context):
        self.driver.unpublish(request.volume_id, request.target_path)
        return csi_pb2.NodeUnpublishVolumeResponse()

    @rpc
    def NodeGetVolumeStats(self, request, context):
        stats = self.driver.stats(request.volume_id, request.volume_path)
        Usage = csi_pb2.VolumeUsage
        available, total, used = stats["bytes"]
        usage = [Usage(unit=Usage.BYTES, available=available, total=total, used=used)]
        if stats.get("inodes"):
            free, total, used = stats["inodes"]
            usage.append(Usage(unit=Usage.INODES, available=free, total=total, used=used))
        return csi_pb2.NodeGetVolumeStatsResponse(usage=usage)

    @rpc
    def NodeExpandVolume(self, request, context):
        required, _ = capacity_range(request)
        size = self.driver.node_expand(request.volume_id, request.volume_path, required)
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=size or 0)

    @rpc
    def NodeGetCapabilities(self, request, context):
        Rpc = csi_pb2.NodeServiceCapability.RPC
        types = [Rpc.STAGE_UNSTAGE_VOLUME, Rpc.EXPAND_VOLUME, Rpc.GET_VOLUME_STATS]
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=Rpc(type=t)) for t in types]
        )

    @rpc
    def NodeGetInfo(self, request, context):
        info = self.driver.node_info()
        response = csi_pb2.NodeGetInfoResponse(node_id=info["node_id"])
        if info["topology"]:
            response.accessible_topology.segments.update(info["topology"])
        return response


class Registration(reg_pb2_grpc.RegistrationServicer):
    """The kubelet's plugin watcher asks GetInfo on the socket in plugins_registry/, then tells
    the outcome; a refused registration marks the driver unhealthy (/healthz fails), so the
    liveness probe restarts it, as node-driver-registrar would by exiting."""

    def __init__(self, name, endpoint, health):
        self.name = name
        self.endpoint = endpoint
        self.health = health

    def GetInfo(self, request, context):
        log.info("kubelet asked for the plugin info: %s at %s", self.name, self.endpoint)
        return reg_pb2.PluginInfo(
            type="CSIPlugin", name=self.name, endpoint=self.endpoint, supported_versions=["1.0.0"]
        )

    def NotifyRegistrationStatus(self, request, context):
        if request.plugin_registered:
            log.info("registered with the kubelet as %s", self.name)
            self.health.registration_error = None
        else:
            log.error("the kubelet refused the registration of %s: %s", self.name, request.error)
            self.health.registration_error = request.error or "refused"
        return reg_pb2.RegistrationStatusResponse()
