"""
Throughput benchmark of the pace worker against a private redis-server.

Cases, each run in a fresh subprocess so that its peak RSS is its own:

- ``bare``: a bare txredisapi loop of ``LPOP key 100`` and ``json.loads`` of
  each payload until the queue is empty; the ceiling for one process.
- ``reliable``: ``pace.Worker(reliable=True, concurrency=100)``, no-op handler.
- ``at-most-once``: the same with ``reliable=False``.
- ``latency``: a handler that takes 5 ms (``task.deferLater``), reliable,
  concurrency 100, on a fifth of the jobs.

The parent starts one private redis-server (``pace.redisserver``, never the
Redis on 6379), flushes it and fills the queue with redis-py before each case,
runs the case as ``run.py --case NAME --jobs N --redis-port P`` (which prints
one JSON line) and prints a table: jobs/s (wall, from ``Worker.start()`` until
the last job finished), CPU seconds of the worker process per 1,000 jobs,
peak RSS, the ratio to the bare ceiling, the time the worker took to stop
after the last job, and the redis-server's CPU per 1,000 jobs.

    .venv/bin/python bench/run.py            # 50,000 jobs (make bench)
    .venv/bin/python bench/run.py --quick    # 5,000 jobs
    .venv/bin/python bench/run.py --jobs 200000 --cases bare,reliable

Nothing is written to bench/RESULTS.md; the last line printed is a row to
paste there by hand.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

QUEUE = "bench"
QUEUE_KEY = f"resque:queue:{QUEUE}"
CONCURRENCY = 100
LATENCY = 0.005
BARE_BATCH = 100
FILL_CHUNK = 1000
#: A case fails if it runs slower than this many jobs/s, after some slack:
#: the child gives up first (while its reactor still turns), then the parent
#: kills it.
MIN_RATE = 2000
CHILD_TIMEOUT = 20
PARENT_TIMEOUT = 30
DEFAULT_JOBS = 50_000
QUICK_JOBS = 5_000


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    #: The case drains this fraction of --jobs.
    share: float = 1.0
    pace: bool = True


CASES = [
    Case("bare", f"bare LPOP {BARE_BATCH}", pace=False),
    Case("reliable", "pace no-op (reliable)"),
    Case("at-most-once", "pace no-op (at most once)"),
    Case("latency", f"pace latency {LATENCY * 1000:g}ms", share=0.2),
]
BY_NAME = {case.name: case for case in CASES}


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- one case, in its own process ---------------------------------------------


class Drain:
    """
    Counts finished jobs and calls C{on_done} once all C{total} are done,
    noting the wall and CPU time since L{begin}.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.on_done: Callable[[], object] = lambda: None
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.finished_at: float | None = None
        self._t0 = self._cpu0 = 0.0

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._cpu0 = time.process_time()

    def count(self, _: object = None) -> None:
        self.done += 1
        if self.done == self.total:
            self._finish()

    def add(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if before < self.total <= self.done:
            self._finish()

    def _finish(self) -> None:
        self.finished_at = time.perf_counter()
        self.cpu_seconds = time.process_time() - self._cpu0
        self.seconds = self.finished_at - self._t0
        self.on_done()


def peak_rss_mb() -> float:
    """
    The peak RSS of this process. On Linux, VmHWM: ru_maxrss survives
    exec(), so in a subprocess it would report the parent's peak if larger.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run_case(name: str, jobs: int, port: int) -> dict[str, Any]:
    """
    Drain C{jobs} jobs from the queue with case C{name}, in this process's
    reactor, and return the figures.
    """
    import txredisapi
    from twisted.internet import defer, task
    from twisted.internet import reactor as _reactor
    from twisted.logger import LogLevel, formatEvent, globalLogBeginner
    from twisted.python.failure import Failure

    import pace

    reactor: Any = _reactor  # the module-level reactor, as its interfaces
    problems: list[str] = []

    def observe(event: dict) -> None:
        # Warnings and errors of pace or Twisted go to stderr as they come,
        # and into the result.
        if event.get("log_level") not in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        problems.append(text)
        note(f"    ! {text}")

    globalLogBeginner.beginLoggingTo([observe], redirectStandardIO=False)

    case = BY_NAME[name]
    result: dict[str, Any] = {"case": name, "jobs": jobs, "start_rss_mb": peak_rss_mb()}
    errors: list[str] = []
    drain = Drain(jobs)
    began = time.perf_counter()
    timeout = CHILD_TIMEOUT + jobs / MIN_RATE

    def progress() -> None:
        note(f"    {drain.done:,}/{jobs:,} jobs after {time.perf_counter() - began:.0f}s")

    def stop_reactor(outcome: object) -> None:
        if isinstance(outcome, Failure):
            errors.append(f"{outcome.type.__name__}: {outcome.getErrorMessage()}")
        if reactor.running:
            reactor.stop()

    @defer.inlineCallbacks
    def bare() -> Any:
        conn = yield txredisapi.Connection(
            "127.0.0.1", port, reconnect=False, convertNumbers=False, charset=None
        )
        loads = json.loads
        try:
            while True:
                items = yield conn.execute_command("LPOP", QUEUE_KEY, BARE_BATCH)
                if not items:
                    break
                for raw in items:
                    loads(raw)
                drain.add(len(items))
        finally:
            yield conn.disconnect()

    def start() -> None:
        if case.pace:
            worker = pace.Worker(
                QUEUE,
                concurrency=CONCURRENCY,
                redis_url=f"redis://127.0.0.1:{port}/0",
                reliable=name != "at-most-once",
            )
            drain.on_done = worker.shutdown
            handler: Callable[[dict], object]
            if name == "latency":

                def handler(job: dict) -> defer.Deferred:
                    return task.deferLater(reactor, LATENCY, drain.count)

            else:
                handler = drain.count
            drain.begin()
            done = worker.start(handler)
        else:
            drain.begin()
            done = bare()
        done.addBoth(stop_reactor)

    def timed_out() -> None:
        errors.append(f"timed out after {timeout:.0f}s with {drain.done:,}/{jobs:,} jobs")
        if case.pace:
            drain.on_done()
        else:
            reactor.stop()

    ticker = task.LoopingCall(progress)
    ticker.start(1.0, now=False)
    watchdog = reactor.callLater(timeout, timed_out)
    reactor.callWhenRunning(start)
    reactor.run()
    stopped = time.perf_counter()
    ticker.stop()
    if watchdog.active():
        watchdog.cancel()

    if drain.done != jobs and not errors:
        errors.append(f"the queue ran dry after {drain.done:,} of {jobs:,} jobs")
    result.update(
        done=drain.done,
        seconds=drain.seconds,
        cpu_seconds=drain.cpu_seconds,
        stop_seconds=None if drain.finished_at is None else stopped - drain.finished_at,
        peak_rss_mb=peak_rss_mb(),
        problems=problems[:20],
        problem_count=len(problems),
        errors=errors,
    )
    return result


# -- the parent: one redis-server, every case, the table ------------------------


def redis_cpu_seconds(pid: int) -> float | None:
    """
    CPU seconds used so far by process C{pid} (Linux only).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    # utime and stime are fields 14 and 15; the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(client: Any, jobs: int) -> None:
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for start in range(0, jobs, FILL_CHUNK):
        end = min(start + FILL_CHUNK, jobs)
        payloads = [f'{{"class":"Noop","args":[{i}]}}' for i in range(start, end)]
        pipe.rpush(QUEUE_KEY, *payloads)
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()
    queued = client.llen(QUEUE_KEY)
    if queued != jobs:
        raise RuntimeError(f"filled {queued} jobs instead of {jobs}")


def check_after(client: Any, case: Case, result: dict[str, Any]) -> list[str]:
    """
    What Redis should look like after a drain, as a list of surprises.
    """
    odd = []
    left = client.llen(QUEUE_KEY)
    if left:
        odd.append(f"{left:,} jobs left in the queue")
    if case.pace:
        processed = int(client.get("resque:stat:processed") or 0)
        if processed != result["jobs"]:
            odd.append(f"resque:stat:processed is {processed:,}, not {result['jobs']:,}")
        failed = int(client.get("resque:stat:failed") or 0)
        if failed:
            odd.append(f"{failed:,} jobs failed")
        leftover = list(client.scan_iter("resque:pace:processing:*"))
        if leftover:
            odd.append(f"processing lists left behind: {leftover}")
    return odd


def rss_mb(pid: int) -> float | None:
    """
    The current RSS of process C{pid} (Linux only).
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def run_child(case: Case, jobs: int, port: int, max_rss: float) -> dict[str, Any]:
    """
    Run one case in a subprocess and return its figures. The child is killed
    if it outlives its time or grows past C{max_rss} MB: a worker spinning
    without returning to the reactor never reaches its own watchdog.
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--case", case.name]
    cmd += ["--jobs", str(jobs), "--redis-port", str(port)]
    deadline = time.monotonic() + PARENT_TIMEOUT + jobs / MIN_RATE
    killed = None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while True:
        try:
            out, _ = proc.communicate(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            rss = rss_mb(proc.pid)
            if rss is not None and rss > max_rss:
                killed = f"was killed at {rss:,.0f} MB RSS (limit {max_rss:,.0f} MB)"
            elif time.monotonic() > deadline:
                killed = "was killed: it did not finish in time"
            if killed:
                note(f"    ! the subprocess {killed}")
                proc.kill()
                out, _ = proc.communicate()
                break
    lines = out.strip().splitlines()
    try:
        result = json.loads(lines[-1])
    except (IndexError, ValueError):
        reason = killed or f"exited with status {proc.returncode} and no result"
        return {"case": case.name, "jobs": jobs, "errors": [f"the subprocess {reason}"]}
    if proc.returncode:
        result.setdefault("errors", []).append(f"exit status {proc.returncode}")
    return result


def rate(result: dict[str, Any]) -> float | None:
    seconds = result.get("seconds")
    if not seconds or result.get("done") != result["jobs"]:
        return None
    return result["jobs"] / seconds


def per_thousand(seconds: float | None, jobs: int) -> str:
    return "-" if seconds is None else f"{seconds * 1000 / jobs:.4f}"


def table(results: list[tuple[Case, dict[str, Any]]]) -> str:
    bare = next((rate(r) for c, r in results if c.name == "bare"), None)
    header = (
        "case",
        "jobs",
        "jobs/s",
        "CPU s/1k",
        "peak RSS MB",
        "vs bare",
        "stop s",
        "redis CPU s/1k",
    )
    rows = [header]
    for case, r in results:
        jobs_s = rate(r)
        ratio = "-"
        if case.pace and jobs_s is not None and bare:
            ratio = f"{jobs_s / bare:.2f}x"
        stop = r.get("stop_seconds")
        rows.append(
            (
                case.label,
                f"{r['jobs']:,}",
                "failed" if jobs_s is None else f"{jobs_s:,.0f}",
                per_thousand(r.get("cpu_seconds"), r["jobs"]),
                f"{r['peak_rss_mb']:.1f}" if "peak_rss_mb" in r else "-",
                ratio,
                "-" if stop is None else f"{stop:.3f}",
                per_thousand(r.get("redis_cpu_seconds"), r["jobs"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def machine(client: Any) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("twisted", "txredisapi")
    )
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, {versions}, "
        f"redis-server {client.info('server')['redis_version']}"
    )


def git_revision() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pace"],
            cwd=os.path.dirname(here),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return rev + ("+changes" if dirty else "")


def orchestrate(jobs: int, cases: list[Case], max_rss: float) -> int:
    import redis

    from pace.redisserver import RedisServer

    server = RedisServer().start()
    client = redis.Redis(port=server.port)
    results: list[tuple[Case, dict[str, Any]]] = []
    surprises: list[str] = []
    try:
        about = machine(client)
        note(f"pace benchmark: {jobs:,} jobs, redis-server on port {server.port}")
        note(f"machine: {about}")
        for n, case in enumerate(cases, 1):
            count = max(1, int(jobs * case.share))
            fill(client, count)
            note(f"[{n}/{len(cases)}] {case.label}: {count:,} jobs")
            assert server.process is not None
            cpu0 = redis_cpu_seconds(server.process.pid)
            result = run_child(case, count, server.port, max_rss)
            cpu1 = redis_cpu_seconds(server.process.pid)
            if cpu0 is not None and cpu1 is not None:
                result["redis_cpu_seconds"] = cpu1 - cpu0
            odd = result.get("errors", []) + check_after(client, case, result)
            if result.get("problem_count"):
                first = result["problems"][0].splitlines()[0]
                odd.append(f"{result['problem_count']} warnings or errors logged, first: {first}")
            surprises += [f"{case.label}: {text}" for text in odd]
            jobs_s = rate(result)
            if jobs_s is None:
                note(f"    failed: {'; '.join(odd) or 'no result'}")
            else:
                note(
                    f"    {jobs_s:,.0f} jobs/s, "
                    f"{per_thousand(result.get('cpu_seconds'), count)} CPU s/1k jobs, "
                    f"peak RSS {result['peak_rss_mb']:.1f} MB "
                    f"(at start {result['start_rss_mb']:.1f} MB)"
                    + (f"; {'; '.join(odd)}" if odd else "")
                )
            results.append((case, result))
        client.flushall()
    finally:
        client.close()
        server.cleanup()

    print()
    print(f"pace benchmark, {jobs:,} jobs, concurrency {CONCURRENCY}")
    print(table(results))
    print(
        "jobs/s: wall time from Worker.start() to the last job done; CPU s/1k: of the "
        "worker process;\nstop s: from the last job done until the worker stopped; "
        "redis CPU s/1k: of redis-server."
    )
    latency = next((rate(r) for c, r in results if c.name == "latency"), None)
    if latency is not None:
        ceiling = CONCURRENCY / LATENCY
        print(
            f"latency case: {latency / ceiling:.2f} of its own ceiling of {ceiling:,.0f} "
            f"jobs/s (concurrency / latency)"
        )
    print(f"machine: {about}")
    if surprises:
        print("problems:")
        for text in surprises:
            print(f"  - {text}")
    rates = {case.name: rate(r) for case, r in results}
    figures = " | ".join(
        "-" if rates.get(c.name) is None else f"{rates[c.name]:,.0f}" for c in CASES
    )
    print("row for bench/RESULTS.md:")
    change = f"{git_revision()} <what changed>"
    print(f"| {datetime.date.today()} | {change} | {jobs:,} | {figures} | {about} |")
    # Problems are reported above; only a case without figures fails the run.
    return 0 if all(rate(r) is not None for _, r in results) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--jobs", type=int, default=None, help=f"default {DEFAULT_JOBS:,}")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_JOBS:,} jobs")
    parser.add_argument(
        "--cases",
        default=",".join(c.name for c in CASES),
        help="comma-separated, of: " + ", ".join(c.name for c in CASES),
    )
    parser.add_argument(
        "--max-rss-mb",
        type=float,
        default=1024,
        help="kill a case that grows past this (default 1024)",
    )
    parser.add_argument("--case", choices=list(BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--redis-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    if jobs < 1:
        parser.error("--jobs must be at least 1")

    if args.case:
        if args.redis_port is None:
            parser.error("--case needs --redis-port")
        print(json.dumps(run_case(args.case, jobs, args.redis_port)), flush=True)
        return 0
    try:
        cases = [BY_NAME[name.strip()] for name in args.cases.split(",") if name.strip()]
    except KeyError as e:
        parser.error(f"unknown case {e}")
    return orchestrate(jobs, cases, args.max_rss_mb)


if __name__ == "__main__":
    sys.exit(main())
