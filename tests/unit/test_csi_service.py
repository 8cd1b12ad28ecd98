"""The CSI driver over real gRPC (stubs from scripts/csi-stubs): status codes on the wire, the
capabilities it advertises, the kubelet registration service and /healthz."""

import importlib
import sys
import urllib.error
import urllib.request
from concurrent import futures

import pytest

from csi_fakes import KEY, SECRETS, FakeRunner
from idcloud_csi.mounts import Mounter
from idcloud_csi.server import Config, Health, serve_health

grpc = pytest.importorskip("grpc", reason="grpcio is pinned in requirements.txt; run scripts/bootstrap")


@pytest.fixture(scope="module")
def stubs(csi_stubs):
    sys.path.insert(0, csi_stubs)
    return importlib.import_module("idcloud_csi.proto")


@pytest.fixture
def server(stubs, tmp_path):
    from idcloud_csi.driver import Driver
    from idcloud_csi.service import Controller, Identity, Node, Registration

    runner = FakeRunner(tmp_path)
    config = Config(mon_host="10.0.0.1", rbd_mapper="fuse", state_dir=str(tmp_path / "s"), work_dir=str(tmp_path / "w"))
    driver = Driver(config, runner, Mounter(runner, str(runner.mountinfo)))
    health = Health()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    stubs.csi_pb2_grpc.add_IdentityServicer_to_server(Identity(driver, "csi.idcloud.io"), srv)
    stubs.csi_pb2_grpc.add_ControllerServicer_to_server(Controller(driver), srv)
    stubs.csi_pb2_grpc.add_NodeServicer_to_server(Node(driver), srv)
    stubs.reg_pb2_grpc.add_RegistrationServicer_to_server(Registration("csi.idcloud.io", "/csi/csi.sock", health), srv)
    sock = f"unix://{tmp_path}/csi.sock"
    srv.add_insecure_port(sock)
    srv.start()
    channel = grpc.insecure_channel(sock)
    yield {"channel": channel, "driver": driver, "health": health, "runner": runner}
    channel.close()
    srv.stop(0)


def mount_cap(pb, mode="SINGLE_NODE_WRITER"):
    Cap = pb.VolumeCapability
    return Cap(mount=Cap.MountVolume(), access_mode=Cap.AccessMode(mode=Cap.AccessMode.Mode.Value(mode)))


def test_identity(stubs, server):
    pb = stubs.csi_pb2
    identity = stubs.csi_pb2_grpc.IdentityStub(server["channel"])
    assert identity.GetPluginInfo(pb.GetPluginInfoRequest()).name == "csi.idcloud.io"
    caps = identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest()).capabilities
    kinds = {c.WhichOneof("type") for c in caps}
    assert kinds == {"service", "volume_expansion"}
    expansion = next(c for c in caps if c.HasField("volume_expansion"))
    assert expansion.volume_expansion.type == pb.PluginCapability.VolumeExpansion.ONLINE
    assert identity.Probe(pb.ProbeRequest()).HasField("ready")


def test_controller_and_node_capabilities(stubs, server):
    pb = stubs.csi_pb2
    controller = stubs.csi_pb2_grpc.ControllerStub(server["channel"])
    types = {
        c.rpc.type for c in controller.ControllerGetCapabilities(pb.ControllerGetCapabilitiesRequest()).capabilities
    }
    Rpc = pb.ControllerServiceCapability.RPC
    # no GET_CAPACITY without the driver's own user, never LIST_VOLUMES
    assert types == {Rpc.CREATE_DELETE_VOLUME, Rpc.EXPAND_VOLUME}
    node = stubs.csi_pb2_grpc.NodeStub(server["channel"])
    types = {c.rpc.type for c in node.NodeGetCapabilities(pb.NodeGetCapabilitiesRequest()).capabilities}
    NRpc = pb.NodeServiceCapability.RPC
    assert types == {NRpc.STAGE_UNSTAGE_VOLUME, NRpc.EXPAND_VOLUME, NRpc.GET_VOLUME_STATS}


def test_codes_on_the_wire(stubs, server):
    pb = stubs.csi_pb2
    controller = stubs.csi_pb2_grpc.ControllerStub(server["channel"])
    params = {"backend": "rbd", "pool": "rbd"}
    with pytest.raises(grpc.RpcError) as err:
        controller.CreateVolume(pb.CreateVolumeRequest(volume_capabilities=[mount_cap(pb)], parameters=params))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "name" in err.value.details()
    request = pb.CreateVolumeRequest(
        name="pvc-1", volume_capabilities=[mount_cap(pb)], parameters=params, secrets=SECRETS
    )
    volume = controller.CreateVolume(request).volume
    assert volume.volume_id == "v1:rbd:rbd::csi-vol-pvc-1" and volume.capacity_bytes == 1 << 30
    request.capacity_range.required_bytes = 5 << 30
    with pytest.raises(grpc.RpcError) as err:
        controller.CreateVolume(request)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        controller.ValidateVolumeCapabilities(
            pb.ValidateVolumeCapabilitiesRequest(volume_id="fake", volume_capabilities=[mount_cap(pb)], secrets=SECRETS)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    confirmed = controller.ValidateVolumeCapabilities(
        pb.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id, volume_capabilities=[mount_cap(pb)], secrets=SECRETS
        )
    )
    assert confirmed.HasField("confirmed")
    refused = controller.ValidateVolumeCapabilities(
        pb.ValidateVolumeCapabilitiesRequest(
            volume_id=volume.volume_id, volume_capabilities=[mount_cap(pb, "MULTI_NODE_MULTI_WRITER")], secrets=SECRETS
        )
    )
    assert not refused.HasField("confirmed") and "ReadWriteOnce" in refused.message
    controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id="not-ours", secrets=SECRETS))
    with pytest.raises(grpc.RpcError) as err:
        controller.ListVolumes(pb.ListVolumesRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_error_on_the_wire_never_carries_the_key(stubs, server):
    pb = stubs.csi_pb2
    server["runner"].fail["rbd"] = (1, f"something echoed {KEY}")
    controller = stubs.csi_pb2_grpc.ControllerStub(server["channel"])
    request = pb.CreateVolumeRequest(
        name="pvc-9", volume_capabilities=[mount_cap(pb)], parameters={"backend": "rbd", "pool": "rbd"}, secrets=SECRETS
    )
    with pytest.raises(grpc.RpcError) as err:
        controller.CreateVolume(request)
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert KEY not in err.value.details() and "<redacted>" in err.value.details()


def test_node_stats_codes(stubs, server):
    pb = stubs.csi_pb2
    node = stubs.csi_pb2_grpc.NodeStub(server["channel"])
    with pytest.raises(grpc.RpcError) as err:
        node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id="fake-vol-id", volume_path="some/path"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    info = node.NodeGetInfo(pb.NodeGetInfoRequest())
    assert info.node_id


def test_kubelet_registration(stubs, server):
    reg = stubs.reg_pb2
    client = stubs.reg_pb2_grpc.RegistrationStub(server["channel"])
    info = client.GetInfo(reg.InfoRequest())
    assert (info.type, info.name, info.endpoint, list(info.supported_versions)) == (
        "CSIPlugin",
        "csi.idcloud.io",
        "/csi/csi.sock",
        ["1.0.0"],
    )
    client.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=False, error="name taken"))
    assert server["health"].registration_error == "name taken"
    client.NotifyRegistrationStatus(reg.RegistrationStatus(plugin_registered=True))
    assert server["health"].registration_error is None


def test_healthz(server, monkeypatch):
    driver, health = server["driver"], server["health"]
    monkeypatch.setattr(driver, "probe", lambda: True)
    httpd = serve_health(driver, health, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/healthz"
    try:
        assert urllib.request.urlopen(url, timeout=5).read() == b"ok\n"
        health.registration_error = "refused"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, timeout=5)
        assert err.value.code == 500
    finally:
        httpd.shutdown()
