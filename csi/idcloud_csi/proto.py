"""The generated gRPC stubs (scripts/csi-stubs), found on --stubs / IDCLOUD_CSI_STUBS or sys.path."""

import importlib
import os
import sys

STUBS_ENV = "IDCLOUD_CSI_STUBS"
DEFAULT_STUBS = "/usr/lib/idcloud-csi/stubs"


def _load():
    directory = os.environ.get(STUBS_ENV) or (DEFAULT_STUBS if os.path.isdir(DEFAULT_STUBS) else None)
    if directory and directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        return [
            importlib.import_module(name)
            for name in ("csi_pb2", "csi_pb2_grpc", "pluginregistration_pb2", "pluginregistration_pb2_grpc")
        ]
    except ImportError as exc:
        raise SystemExit(
            f"idcloud_csi: the gRPC stubs are missing ({exc}); fix: make them with scripts/csi-stubs generate and "
            f"pass their directory as --stubs or {STUBS_ENV}"
        ) from None


csi_pb2, csi_pb2_grpc, reg_pb2, reg_pb2_grpc = _load()
