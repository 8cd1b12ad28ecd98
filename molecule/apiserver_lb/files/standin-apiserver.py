#!/usr/bin/env python3
"""The apiserver_lb scenario's STAND-IN backend: not kube-apiserver, just enough of one.

HTTPS on :6443 with a certificate from the scenario's test CA (made in prepare.yml):
  GET /readyz   200 "ok", or 500 while /etc/standin-apiserver/unready exists
  GET anything  200 with this host's name, so verify can tell which backend answered
"""

import http.server
import os
import socket
import ssl

CONF = "/etc/standin-apiserver"
NAME = socket.gethostname().encode()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.split("?")[0] == "/readyz":
            ready = not os.path.exists(os.path.join(CONF, "unready"))
            status, body = (200, b"ok") if ready else (500, b"[-]standin not ready\nreadyz check failed")
        else:
            status, body = 200, NAME
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # HAProxy checks every 2 s; keep the journal quiet


def main():
    server = http.server.ThreadingHTTPServer(("0.0.0.0", 6443), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(CONF, "tls.crt"), os.path.join(CONF, "tls.key"))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
