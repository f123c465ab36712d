"""
`make demo`: Pace doing its main job on this machine. Starts a private
redis-server (or uses $REDIS_URL, touching only keys under ``pace-demo:``), a
local HTTP service, enqueues jobs with pace.enqueue, runs `twistd -n pace`
with examples/http.py, shows progress and a summary, and stops everything
it started. The worker's log is kept, and its path printed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from pace.redisserver import stop_process

QUEUE = "pace-demo"
#: Every key the demo writes (queue, counters, worker registry) lives under
#: this prefix, so a shared Redis given as $REDIS_URL keeps its own data.
NAMESPACE = "pace-demo"


class DemoError(Exception):
    """
    Something the user can fix, said in one line.
    """


def say(text: str) -> None:
    print(text, flush=True)


def _serve_http(port: int) -> subprocess.Popen:
    # The remote service, in a process of its own as it would be in life.
    # Ctrl-C is for the demo, which stops this process itself (SIGTERM).
    code = (
        "import signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "from twisted.internet import reactor\n"
        "from twisted.web import resource, server\n"
        "class Ok(resource.Resource):\n"
        "    isLeaf = True\n"
        "    def render_GET(self, request):\n"
        "        return b'ok'\n"
        "site = server.Site(Ok())\n"
        "site.noisy = False\n"
        "reactor.listenTCP(int(sys.argv[1]), site, interface='127.0.0.1', backlog=1024)\n"
        "reactor.run(installSignalHandlers=False)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(port)], stdin=subprocess.DEVNULL)


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _client(redis_url: str) -> Any:
    try:
        import redis
    except ImportError:
        raise DemoError("the demo needs redis-py: pip install 'txpace[cli]'") from None
    from pace.config import InvalidRedisURL, resolve_redis_url

    try:
        url = resolve_redis_url(redis_url)
    except InvalidRedisURL as e:
        raise DemoError(f"$REDIS_URL: {e}") from None
    if url.scheme == "unix":
        client = redis.Redis(unix_socket_path=url.path, db=url.db, password=url.password)
    elif url.scheme == "redis+sentinel":
        raise DemoError("the demo takes a redis:// or unix:// $REDIS_URL, not a sentinel one")
    else:
        client = redis.Redis(
            host=url.host or "127.0.0.1",
            port=url.port or 6379,
            db=url.db,
            username=url.username,
            password=url.password,
            ssl=url.tls,
            ssl_cert_reqs="required" if url.verify else "none",
            socket_connect_timeout=5,
            socket_timeout=10,
        )
    try:
        client.ping()
    except redis.RedisError as e:
        raise DemoError(
            f"cannot use the Redis at $REDIS_URL ({url.redacted()}): {str(e).rstrip('.')}. "
            "Fix $REDIS_URL, or unset it and the demo starts a redis-server of its own."
        ) from None
    return client


class Progress:
    """
    The live line: redrawn in place on a terminal, a plain line every few
    seconds otherwise (a CI log gets lines, not one giant line of \\r).
    """

    def __init__(self, total: int, concurrency: int, quiet: bool):
        self.total = total
        self.concurrency = concurrency
        self.quiet = quiet
        self.tty = sys.stdout.isatty()
        self._last_line = 0.0

    def show(self, done: int, failed: int, left: int, elapsed: float) -> None:
        if self.quiet:
            return
        # Counters and the queue length are read together, but counters are
        # written in batches: whatever the arithmetic says, a worker never
        # has more than its concurrency in flight.
        in_flight = min(self.concurrency, max(0, self.total - left - done))
        rate = done / elapsed if elapsed > 0 else 0.0
        text = (
            f"  {done:>7,} / {self.total:,} done   {rate:>8,.0f} jobs/s"
            f"   {in_flight:>4} in flight   {failed:,} failed"
        )
        if self.tty:
            sys.stdout.write(f"\r{text}   ")
            sys.stdout.flush()
        elif elapsed - self._last_line >= 2.0 or done >= self.total:
            self._last_line = elapsed
            say(text)

    def end(self) -> None:
        if self.tty and not self.quiet:
            say("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs to enqueue (20,000)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    args = parser.parse_args(argv)
    started: list[Any] = []
    try:
        return _run(args, started)
    except DemoError as e:
        say(f"demo: {e}")
        return 1
    except KeyboardInterrupt:
        say("\nInterrupted: stopping what the demo started")
        return 130
    finally:
        # A second Ctrl-C must not leave processes behind half-stopped.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        for stop in reversed(started):
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                say(f"while cleaning up: {e}")
        signal.signal(signal.SIGINT, previous)


def _run(args: argparse.Namespace, started: list[Any]) -> int:
    from pace.redisserver import RedisServer, RedisServerNotFound, free_port

    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        say(f"Using the Redis at $REDIS_URL (only keys under {NAMESPACE + ':'!r} are touched)")
    else:
        say("Starting a private redis-server...")
        try:
            server = RedisServer().start()
        except RedisServerNotFound as e:
            raise DemoError(str(e)) from None
        started.append(server.cleanup)
        redis_url = server.url
        say(f"Started a private redis-server ({server.binary}) on port {server.port}")
    client = _client(redis_url)
    queue_key = f"{NAMESPACE}:resque:queue:{QUEUE}"
    client.delete(queue_key)
    say("Starting a local HTTP service for the jobs to call...")
    http_port = free_port()
    http = _serve_http(http_port)
    started.append(lambda: (http.terminate(), http.wait()))
    target = f"http://127.0.0.1:{http_port}/"
    _wait_listening(http, http_port)

    say(f"Enqueueing {args.jobs:,} jobs with pace.enqueue...")
    t0 = time.monotonic()
    _enqueue(redis_url, args.jobs)
    say(
        f"Enqueued {args.jobs:,} jobs on {QUEUE!r} in {time.monotonic() - t0:.1f}s; "
        f"HTTP target {target}"
    )

    processed_key = f"{NAMESPACE}:resque:stat:processed"
    failed_key = f"{NAMESPACE}:resque:stat:failed"
    processed0 = int(client.get(processed_key) or 0)
    failed0 = int(client.get(failed_key) or 0)
    env = dict(os.environ, PACE_TARGET_URL=target, REDIS_URL=redis_url)
    log = os.path.join(tempfile.mkdtemp(prefix="pace-demo-"), "twistd.log")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    cmd = [
        twistd,
        "-n",
        "--pidfile=",
        "-l",
        log,
        "pace",
        "--queue",
        QUEUE,
        "--namespace",
        NAMESPACE,
        "--handler",
        "examples.http.handle",
        "--concurrency",
        str(args.concurrency),
    ]
    say("Starting the worker: twistd " + " ".join(cmd[1:]))
    say(f"The worker's log: {log}")
    worker = subprocess.Popen(cmd, env=env, cwd=_project_root(), stdin=subprocess.DEVNULL)
    started.append(lambda: _stop(worker))
    progress = Progress(args.jobs, args.concurrency, args.quiet)
    t0 = time.monotonic()
    peak = 0.0
    done = failed = 0
    while True:
        time.sleep(0.5)
        pipe = client.pipeline(transaction=True)  # one consistent reading
        pipe.get(processed_key)
        pipe.get(failed_key)
        pipe.llen(queue_key)
        processed, failures, left = pipe.execute()
        done = int(processed or 0) - processed0
        failed = int(failures or 0) - failed0
        peak = max(peak, _peak_rss_mb(worker.pid) or 0)
        elapsed = time.monotonic() - t0
        progress.show(done, failed, left, elapsed)
        if done >= args.jobs:
            break
        if worker.poll() is not None:
            progress.end()
            raise DemoError(f"the worker exited early with status {worker.returncode}: see {log}")
        if elapsed > 600:
            progress.end()
            raise DemoError(f"gave up after 10 minutes: see {log}")
    elapsed = time.monotonic() - t0
    progress.end()
    say("Stopping the worker...")
    _stop(worker)
    say(
        f"Done: {done:,} jobs in {elapsed:.1f}s = {done / elapsed:,.0f} jobs/s "
        f"(including start-up), {failed:,} failed, worker peak memory {peak:.0f} MB"
    )
    say(f"The worker's log: {log}")
    return 0 if failed == 0 else 1


def _enqueue(redis_url: str, n: int) -> None:
    from twisted.internet import defer

    import pace

    @defer.inlineCallbacks
    def run(reactor: Any) -> Any:
        pace.namespace = NAMESPACE
        for start in range(0, n, 5000):
            yield pace.enqueue_many(
                QUEUE, "HttpGet", [[] for _ in range(min(5000, n - start))], redis_url=redis_url
            )
        yield pace.disconnect()

    _react(run)


def _react(fn: Any) -> None:
    # task.react() exits the process; run the reactor in a child instead so
    # the demo can go on (a reactor cannot be restarted).
    pid = os.fork()
    if pid == 0:
        from twisted.internet import reactor

        d = fn(reactor)
        code = []
        d.addCallbacks(
            lambda _: code.append(0),
            lambda f: (say(f"demo: enqueueing failed: {f.getErrorMessage()}"), code.append(1)),
        )
        d.addBoth(lambda _: reactor.stop())
        reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
        os._exit(code[0] if code else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise DemoError("enqueueing failed")


def _wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    # The worker must not start before its target listens: every job would
    # fail with "connection refused".
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            pass
        if proc.poll() is not None:
            raise DemoError(f"the local HTTP service exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise DemoError(f"the local HTTP service did not listen within {timeout:g}s")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> None:
    # twistd gets its grace period (25 s) and some.
    stop_process(proc, timeout=40)


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    sys.exit(main())
