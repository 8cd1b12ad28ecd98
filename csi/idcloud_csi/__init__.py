"""idcloud's CSI driver: one driver, a backend per storage engine (CephFS and RBD for now).

The logic (volume ids, sizes, capability rules, the backends' plans and the mount helpers) is
plain Python that never imports gRPC, so the unit tests run it with fakes; service.py is the
only place that speaks CSI's protobuf messages. See csi/README.md.
"""

VERSION = "0.1.0"
DEFAULT_DRIVER_NAME = "csi.idcloud.io"
