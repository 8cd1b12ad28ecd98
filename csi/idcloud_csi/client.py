"""`python3 -m idcloud_csi.client [--endpoint unix:///...] <Method> ['<request as JSON>']`: one CSI
call against a running driver, the response printed as JSON (a gRPC error: its code and message
on stderr, exit 1). For operators and the integration test; secrets go in the JSON as the
CO would send them."""

import argparse
import json
import sys

SERVICES = {
    "Identity": ("GetPluginInfo", "GetPluginCapabilities", "Probe"),
    "Controller": (
        "CreateVolume",
        "DeleteVolume",
        "ControllerExpandVolume",
        "ValidateVolumeCapabilities",
        "GetCapacity",
        "ControllerGetCapabilities",
    ),
    "Node": (
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
        "NodeGetCapabilities",
        "NodeGetInfo",
    ),
}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m idcloud_csi.client", description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="unix:///run/idcloud-csi/csi.sock")
    parser.add_argument("--stubs", default="")
    parser.add_argument("method", choices=[m for methods in SERVICES.values() for m in methods])
    parser.add_argument("request", nargs="?", default="{}")
    args = parser.parse_args(argv)
    if args.stubs:
        import os

        os.environ["IDCLOUD_CSI_STUBS"] = args.stubs
    import grpc
    from google.protobuf import json_format

    from idcloud_csi.proto import csi_pb2, csi_pb2_grpc

    service = next(name for name, methods in SERVICES.items() if args.method in methods)
    stub = getattr(csi_pb2_grpc, f"{service}Stub")(grpc.insecure_channel(args.endpoint))
    request = json_format.ParseDict(json.loads(args.request), getattr(csi_pb2, f"{args.method}Request")())
    try:
        response = getattr(stub, args.method)(request, timeout=300)
    except grpc.RpcError as exc:
        print(json.dumps({"code": exc.code().name, "message": exc.details()}), file=sys.stderr)
        sys.exit(1)
    print(json_format.MessageToJson(response, preserving_proto_field_name=True))


if __name__ == "__main__":
    main()
