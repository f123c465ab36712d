"""
`make demo`: Pace doing its main job on this machine. Starts a private
redis-server (or uses $REDIS_URL, touching only keys under ``pace-demo:``), a local
HTTP service, enqueues jobs with pace.enqueue, runs `twistd -n pace` with
examples/http.py, shows progress live and a summary, and stops everything
it started.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from pace.redisserver import stop_process

QUEUE = "pace-demo"
#: Every key the demo writes (queue, counters, worker registry) lives under
#: this prefix, so a shared Redis given as $REDIS_URL keeps its own data.
NAMESPACE = "pace-demo"


def _serve_http(port: int) -> subprocess.Popen:
    # The remote service, in a process of its own as it would be in life.
    code = (
        "import sys\n"
        "from twisted.internet import reactor\n"
        "from twisted.web import resource, server\n"
        "class Ok(resource.Resource):\n"
        "    isLeaf = True\n"
        "    def render_GET(self, request):\n"
        "        return b'ok'\n"
        "site = server.Site(Ok())\n"
        "site.noisy = False\n"
        "reactor.listenTCP(int(sys.argv[1]), site, interface='127.0.0.1')\n"
        "reactor.run()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(port)])


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs to enqueue (20,000)")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--quiet", action="store_true", help="no live progress line")
    args = parser.parse_args(argv)

    import redis

    from pace.redisserver import RedisServer, free_port

    started: list[Any] = []
    redis_url = os.environ.get("REDIS_URL")
    try:
        if redis_url:
            print(
                f"Using the Redis at $REDIS_URL (only keys under {NAMESPACE + ':'!r} are touched)"
            )
        else:
            server = RedisServer().start()
            started.append(server.cleanup)
            redis_url = server.url
            print(f"Started a private redis-server ({server.binary}) on port {server.port}")
        from pace.config import resolve_redis_url

        url = resolve_redis_url(redis_url)
        client = (
            redis.Redis.from_url(redis_url)
            if url.scheme != "unix"
            else redis.Redis(unix_socket_path=url.path, db=url.db, password=url.password)
        )
        queue_key = f"{NAMESPACE}:resque:queue:{QUEUE}"
        client.delete(queue_key)
        http_port = free_port()
        http = _serve_http(http_port)
        started.append(lambda: (http.terminate(), http.wait()))
        target = f"http://127.0.0.1:{http_port}/"

        t0 = time.monotonic()
        _enqueue(redis_url, args.jobs)
        print(
            f"Enqueued {args.jobs:,} jobs on {QUEUE!r} with pace.enqueue in "
            f"{time.monotonic() - t0:.1f}s; HTTP target {target}"
        )

        processed_key = f"{NAMESPACE}:resque:stat:processed"
        failed_key = f"{NAMESPACE}:resque:stat:failed"
        processed0 = int(client.get(processed_key) or 0)
        failed0 = int(client.get(failed_key) or 0)
        env = dict(os.environ, PACE_TARGET_URL=target, REDIS_URL=redis_url)
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        cmd = [
            twistd,
            "-n",
            "--pidfile=",
            "-l",
            os.devnull,
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
        print("Running: twistd " + " ".join(cmd[1:]))
        worker = subprocess.Popen(cmd, env=env, cwd=_project_root())
        started.append(lambda: _stop(worker))
        t0 = time.monotonic()
        peak = 0.0
        done = failed = 0
        while True:
            time.sleep(0.5)
            done = int(client.get(processed_key) or 0) - processed0
            failed = int(client.get(failed_key) or 0) - failed0
            left = client.llen(queue_key)
            peak = max(peak, _peak_rss_mb(worker.pid) or 0)
            elapsed = time.monotonic() - t0
            in_flight = max(0, args.jobs - left - done)
            if not args.quiet:
                sys.stdout.write(
                    f"\r  {done:>7,} / {args.jobs:,} done   {done / elapsed:>8,.0f} jobs/s"
                    f"   {in_flight:>4} in flight   {failed:,} failed   "
                )
                sys.stdout.flush()
            if done >= args.jobs:
                break
            if worker.poll() is not None:
                print(f"\ntwistd exited early with code {worker.returncode}")
                return 1
            if elapsed > 600:
                print("\nGave up after 10 minutes")
                return 1
        elapsed = time.monotonic() - t0
        print()
        _stop(worker)
        print(
            f"Done: {done:,} jobs in {elapsed:.1f}s = {done / elapsed:,.0f} jobs/s "
            f"(including start-up), {failed:,} failed, worker peak memory {peak:.0f} MB"
        )
        return 0 if failed == 0 else 1
    finally:
        for stop in reversed(started):
            try:
                stop()
            except Exception as e:  # keep stopping the rest
                print(f"while cleaning up: {e}", file=sys.stderr)


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
        d.addCallbacks(lambda _: code.append(0), lambda f: (f.printTraceback(), code.append(1)))
        d.addBoth(lambda _: reactor.stop())
        reactor.run()
        os._exit(code[0] if code else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("enqueueing failed")


def _stop(proc: subprocess.Popen) -> None:
    # twistd gets its grace period (25 s) and some.
    stop_process(proc, timeout=40)


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    sys.exit(main())
