"""
The local HTTP server of the benchmark's HTTP cases, on a free loopback port:
nginx if it is on the PATH (a temporary config, ``daemon off``, no access
log, a 2-byte 200), else a twisted.web server in another process (a leaf
Resource answering ``ok``, no logging), so that the server never shares the
client's process.

    .venv/bin/python bench/servers.py PORT    # the twisted.web server alone
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from pace.redisserver import free_port, stop_process

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


class HTTPServer:
    """
    One local HTTP server process; `start` blocks until it answers a GET.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.nginx = shutil.which("nginx")
        self.kind = "nginx" if self.nginx else "twisted.web"
        self.dir = tempfile.mkdtemp(prefix="pace-bench-http-")
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if self.nginx:
            conf = os.path.join(self.dir, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(dir=self.dir, port=self.port))
            # -e: nginx would otherwise open its compiled-in error log first.
            errors = os.path.join(self.dir, "error.log")
            return [self.nginx, "-p", self.dir, "-c", conf, "-e", errors]
        return [sys.executable, os.path.abspath(__file__), str(self.port)]

    def start(self, timeout: float = 10.0) -> HTTPServer:
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.kind} server exited at start")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the {self.kind} server did not answer within {timeout}s")
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(request.encode())
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)


def serve(port: int) -> None:
    """
    The twisted.web server: as little work per request as twisted.web allows.
    """
    from twisted.internet import reactor as _reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    class Ok(Resource):
        isLeaf = True

        def render_GET(self, request: object) -> bytes:
            return b"ok"

    site = Site(Ok())
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]  # no access log
    reactor: Any = _reactor  # the module-level reactor, as its interfaces
    reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
