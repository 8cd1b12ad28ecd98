"""Flags, logging and the servers: CSI on --endpoint, the kubelet registration socket, /healthz."""

import argparse
import http.server
import logging
import os
import signal
import socket
import sys
import threading
from concurrent import futures
from dataclasses import dataclass

from idcloud_csi import DEFAULT_DRIVER_NAME, VERSION
from idcloud_csi.ceph import mon_hosts_from_conf
from idcloud_csi.runner import RedactingFilter, Runner

log = logging.getLogger("idcloud_csi")


@dataclass
class Config:
    driver_name: str = DEFAULT_DRIVER_NAME
    endpoint: str = "unix:///run/idcloud-csi/csi.sock"
    controller: bool = True
    node: bool = True
    node_id: str = ""
    rack: str = ""
    mon_host: str = ""
    ceph_id: str = ""
    ceph_keyring: str = ""
    ceph_timeout: int = 30
    rbd_mapper: str = "krbd"
    cephfs_mounter: str = "kernel"
    default_fs_type: str = "ext4"
    state_dir: str = "/var/lib/idcloud-csi"
    work_dir: str = "/run/idcloud-csi/sessions"
    volume_name_prefix: str = "csi-vol-"
    default_volume_size: int = 1 << 30
    registration_dir: str = "/var/lib/kubelet/plugins_registry"
    kubelet_endpoint: str = ""
    health_address: str = "0.0.0.0"
    health_port: int = 9808


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m idcloud_csi", description="idcloud's CSI driver (CephFS and RBD)")
    p.add_argument("--version", action="version", version=VERSION)
    p.add_argument("--driver-name", default=DEFAULT_DRIVER_NAME, help="the CSI driver name (CSIDriver object)")
    p.add_argument("--endpoint", default=Config.endpoint, help="unix:///path of the CSI socket")
    p.add_argument("--services", default="controller,node", help="controller, node, or both (comma-separated)")
    p.add_argument("--node-id", default=os.environ.get("NODE_ID", ""), help="node id (default: the host name)")
    p.add_argument("--rack", default=os.environ.get("IDCLOUD_RACK", ""), help="the node's rack, as topology")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--mon-host", default="", help="the Ceph mons, as ceph.conf's mon_host takes them")
    cluster.add_argument("--ceph-conf", default="/etc/ceph/ceph.conf", help="read mon_host from this ceph.conf")
    p.add_argument("--ceph-id", default="", help="the driver's own cephx id, for GetCapacity (optional)")
    p.add_argument("--ceph-keyring", default="", help="the keyring file of --ceph-id")
    p.add_argument("--ceph-timeout", type=int, default=30, help="seconds to wait for the mons")
    p.add_argument("--rbd-mapper", choices=["krbd", "nbd", "fuse"], default="krbd")
    p.add_argument("--cephfs-mounter", choices=["kernel", "fuse"], default="kernel")
    p.add_argument("--default-fs-type", choices=["ext4", "xfs"], default="ext4", help="RBD fs when none is asked")
    p.add_argument("--state-dir", default=Config.state_dir, help="node state (rbd-fuse mounts, staged volumes)")
    p.add_argument("--work-dir", default=Config.work_dir, help="short-lived keyrings, one directory per call")
    p.add_argument("--volume-name-prefix", default=Config.volume_name_prefix)
    p.add_argument("--default-volume-size", type=int, default=Config.default_volume_size, help="bytes")
    p.add_argument("--registration-dir", default=Config.registration_dir, help="kubelet plugin registration; '' off")
    p.add_argument("--kubelet-endpoint", default="", help="the CSI socket's path as the kubelet sees it")
    p.add_argument("--health-address", default=Config.health_address)
    p.add_argument("--health-port", type=int, default=Config.health_port, help="HTTP /healthz; 0 off")
    p.add_argument("--stubs", default="", help="directory of the generated gRPC stubs (scripts/csi-stubs)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = p.parse_args(argv)
    services = {s.strip() for s in args.services.split(",") if s.strip()}
    if not services or services - {"controller", "node"}:
        p.error(f"--services {args.services!r}: give controller, node, or controller,node")
    mon_host = args.mon_host or mon_hosts_from_conf(args.ceph_conf) or ""
    if not mon_host:
        p.error(f"no mons: --mon-host not given and {args.ceph_conf} has no mon_host; fix: give one of them")
    if bool(args.ceph_id) != bool(args.ceph_keyring):
        p.error("--ceph-id and --ceph-keyring go together")
    if not args.endpoint.startswith("unix://"):
        p.error(f"--endpoint {args.endpoint!r}: want unix:///path")
    config = Config(
        driver_name=args.driver_name,
        endpoint=args.endpoint,
        controller="controller" in services,
        node="node" in services,
        node_id=args.node_id or socket.gethostname(),
        rack=args.rack,
        mon_host=mon_host,
        ceph_id=args.ceph_id,
        ceph_keyring=args.ceph_keyring,
        ceph_timeout=args.ceph_timeout,
        rbd_mapper=args.rbd_mapper,
        cephfs_mounter=args.cephfs_mounter,
        default_fs_type=args.default_fs_type,
        state_dir=args.state_dir,
        work_dir=args.work_dir,
        volume_name_prefix=args.volume_name_prefix,
        default_volume_size=args.default_volume_size,
        registration_dir=args.registration_dir,
        kubelet_endpoint=args.kubelet_endpoint or args.endpoint[len("unix://") :],
        health_address=args.health_address,
        health_port=args.health_port,
    )
    return config, args


class Health:
    registration_error = None


def serve_health(driver, health, address, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0] != "/healthz":
                self.send_error(404)
                return
            problem = None
            if health.registration_error:
                problem = f"kubelet registration failed: {health.registration_error}"
            elif not driver.probe():
                problem = "probe: not ready (a needed command is missing; see the driver's log)"
            body = (problem or "ok").encode() + b"\n"
            self.send_response(500 if problem else 200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="healthz").start()
    return httpd


def unix_listen(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # a socket left by a previous run
    return f"unix://{path}"


def main(argv=None):
    config, args = parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(args.log_level)
    if args.stubs:
        os.environ["IDCLOUD_CSI_STUBS"] = args.stubs

    import grpc

    from idcloud_csi.driver import Driver
    from idcloud_csi.proto import csi_pb2_grpc, reg_pb2_grpc
    from idcloud_csi.service import Controller, Identity, Node, Registration

    driver = Driver(config, Runner())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    csi_pb2_grpc.add_IdentityServicer_to_server(Identity(driver, config.driver_name), server)
    if config.controller:
        csi_pb2_grpc.add_ControllerServicer_to_server(Controller(driver), server)
    if config.node:
        csi_pb2_grpc.add_NodeServicer_to_server(Node(driver), server)
    server.add_insecure_port(unix_listen(config.endpoint[len("unix://") :]))
    server.start()
    log.info(
        "%s %s serving %s on %s (mons %s, rbd mapper %s, cephfs mounter %s)",
        config.driver_name,
        VERSION,
        "+".join(s for s in ("controller", "node") if getattr(config, s)),
        config.endpoint,
        config.mon_host,
        config.rbd_mapper,
        config.cephfs_mounter,
    )
    health = Health()
    registration = None
    if config.node and config.registration_dir:
        registration = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        reg_pb2_grpc.add_RegistrationServicer_to_server(
            Registration(config.driver_name, config.kubelet_endpoint, health), registration
        )
        path = os.path.join(config.registration_dir, f"{config.driver_name}-reg.sock")
        registration.add_insecure_port(unix_listen(path))
        registration.start()
        log.info("kubelet plugin registration on %s (endpoint %s)", path, config.kubelet_endpoint)
    httpd = serve_health(driver, health, config.health_address, config.health_port) if config.health_port else None

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    log.info("stopping")
    if httpd:
        httpd.shutdown()
    if registration:
        registration.stop(5)
    server.stop(10).wait()
