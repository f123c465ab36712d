"""
Throughput, CPU and memory benchmark of the pace worker, against a private
redis-server and a local HTTP server; what each case means and the targets
are in bench/README.md.

Cases, each run in a fresh subprocess (bench/cases.py) so that its peak RSS
is its own; N is --jobs (default 50,000):

- ``bare``: a bare txredisapi loop of ``LPOP key 100`` and ``json.loads`` of
  each payload until the queue is empty (N jobs); the ceiling for one
  process.
- ``blpop``: the same with ``BLPOP``, one job per round trip (N/5).
- ``reliable`` / ``at-most-once``: ``pace.Worker(concurrency=100)``, no-op
  handler, ``reliable=True`` / ``False`` (N).
- ``latency``: a handler that takes 5 ms (``task.deferLater``), reliable,
  concurrency 100 (N/5).
- ``http-treq`` / ``http-agent`` / ``http-fast``: no Pace, no Redis: 100 GETs
  in flight to the local HTTP server on a persistent pool, N in all, with
  treq (``get`` + ``treq.content``), Agent (``request`` + ``readBody``), or
  ``examples.fast_http.handle``.
- ``pace-treq`` / ``pace-fast``: ``pace.Worker(concurrency=100)`` whose
  handler is ``examples.http.handle`` (treq) or ``examples.fast_http.handle``
  (N jobs, each with the server's URL).
- ``throttle``: ``jobs_per_second=2000`` for 3 s of no-op jobs; the handler
  notes when each job starts, to find the most jobs in any 1 s and any 10 ms.
- ``soak``: ``--soak`` no-op jobs (default 1,000,000) through Pace, reliable,
  concurrency 100, the queue fed in chunks as it drains; RSS sampled every
  second.
- ``scale-1`` / ``scale-2``: the reliable no-op case in 1, then 2 worker
  processes at once on one queue (4N jobs, burst mode: each stops once the
  queue is empty); jobs/s of all together.

The parent starts one private redis-server (``pace.redisserver``, never the
Redis on 6379) and, for the HTTP cases, nginx (if on the PATH) or a
twisted.web server in another process, on a free loopback port
(bench/servers.py); flushes Redis and fills the queue with redis-py before
each case; runs each as ``run.py --case NAME --jobs N --redis-port P [--url
U]`` (which prints one JSON line); and prints one table, details, the targets
met or missed, and rows for bench/RESULTS.md.

    .venv/bin/python bench/run.py                 # make bench: about a minute
    .venv/bin/python bench/run.py --quick         # 5,000 jobs, 50,000 in the soak
    .venv/bin/python bench/run.py --cases soak --soak 10000000
    .venv/bin/python bench/run.py --soak 0        # everything but the soak
    .venv/bin/python bench/run.py --jobs 200000 --cases bare,reliable

Nothing is written to bench/RESULTS.md; the last lines printed are rows to
paste there by hand.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from cases import (
    BY_NAME,
    CASES,
    CONCURRENCY,
    MIN_RATE,
    QUEUE_KEY,
    SOAK_SAMPLE_SECONDS,
    THROTTLE_RATE,
    Case,
    note,
    rss_mb,
    run_case,
)
from servers import HTTPServer
from tables import text_table

FILL_CHUNK = 1000
#: The soak keeps between FEED_LOW and FEED_LOW + FEED_CHUNK jobs queued.
FEED_LOW = 20_000
FEED_CHUNK = 20_000
PARENT_TIMEOUT = 30
DEFAULT_JOBS = 50_000
QUICK_JOBS = 5_000
DEFAULT_SOAK = 1_000_000
QUICK_SOAK = 50_000
#: The soak's memory counts as flat if its last RSS sample is within this
#: of its first (the first is taken after a second of running).
FLAT_MB = 2.0

Payload = Callable[[int], str]


def noop_payload(i: int) -> str:
    return f'{{"class":"Noop","args":[{i}]}}'


def url_payload(url: str) -> Payload:
    return lambda i: json.dumps({"class": "Fetch", "args": [url, i]})


# -- Redis: filling, feeding, checking ------------------------------------------


def push(client: Any, start: int, end: int, payload: Payload) -> None:
    pipe = client.pipeline(transaction=False)
    for first in range(start, end, FILL_CHUNK):
        last = min(first + FILL_CHUNK, end)
        pipe.rpush(QUEUE_KEY, *[payload(i) for i in range(first, last)])
        if len(pipe) >= 10:
            pipe.execute()
    pipe.execute()


def fill(client: Any, jobs: int, payload: Payload) -> None:
    client.flushall()
    push(client, 0, jobs, payload)
    queued = client.llen(QUEUE_KEY)
    if queued != jobs:
        raise RuntimeError(f"filled {queued} jobs instead of {jobs}")


class Feeder(threading.Thread):
    """
    Pushes C{total} jobs in chunks as the queue drains, so that Redis never
    holds more than C{FEED_LOW + FEED_CHUNK} of them; notes the most queued
    and Redis's largest C{used_memory}.
    """

    def __init__(self, port: int, total: int, first: int) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis(port=port)
        self.total = total
        self.pushed = first
        self.max_queued = 0
        self.max_redis_mb = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while not self.done.is_set():
                queued = self.client.llen(QUEUE_KEY)
                self.max_queued = max(self.max_queued, queued)
                used = self.client.info("memory")["used_memory"] / (1024 * 1024)
                self.max_redis_mb = max(self.max_redis_mb, used)
                if queued < FEED_LOW and self.pushed < self.total:
                    end = min(self.pushed + FEED_CHUNK, self.total)
                    push(self.client, self.pushed, end, noop_payload)
                    self.pushed = end
                else:
                    self.done.wait(0.005)
        finally:
            self.client.close()


def check_after(client: Any, case: Case, result: dict[str, Any]) -> list[str]:
    """
    What Redis should look like after a drain, as a list of surprises.
    """
    odd = []
    left = client.llen(QUEUE_KEY)
    if left:
        odd.append(f"{left:,} jobs left in the queue")
    if case.kind == "pace":
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


def cpu_seconds_of(pid: int) -> float | None:
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


# -- the subprocesses --------------------------------------------------------


class Child:
    """
    One case's subprocess; its stdout (a JSON line last) is read by a
    thread, so that a chatty child never blocks on a full pipe.
    """

    def __init__(self, case: Case, jobs: int, port: int, url: str | None) -> None:
        cmd = [sys.executable, os.path.abspath(__file__), "--case", case.name]
        cmd += ["--jobs", str(jobs), "--redis-port", str(port)]
        if url:
            cmd += ["--url", url]
        stdin = subprocess.PIPE if case.processes else subprocess.DEVNULL
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.killed: str | None = None
        self._reader: threading.Thread | None = None

    def ready(self, deadline: float) -> bool:
        """
        Wait for the child's "ready" line (cases with several processes).
        """
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if readable:
                return self.proc.stdout.readline().strip() == "ready"
        return False

    def go(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.write("go\n")
            self.proc.stdin.close()

    def read(self) -> None:
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()

    def kill(self, why: str) -> None:
        if self.proc.poll() is None:
            self.killed = why
            note(f"    ! the subprocess {why}")
            self.proc.kill()

    def result(self, case: Case, jobs: int) -> dict[str, Any]:
        self.proc.wait()
        if self._reader is not None:
            self._reader.join(5)
        try:
            result = json.loads(self.lines[-1])
        except (IndexError, ValueError):
            reason = self.killed or f"exited with status {self.proc.returncode} and no result"
            return {"case": case.name, "jobs": jobs, "errors": [f"the subprocess {reason}"]}
        if self.proc.returncode:
            result.setdefault("errors", []).append(f"exit status {self.proc.returncode}")
        return result


def run_children(
    case: Case, jobs: int, port: int, url: str | None, max_rss: float
) -> dict[str, Any]:
    """
    Run a case in its subprocess (or, for the scaling cases, in several at
    once, started together) and return its figures. A child is killed if it
    outlives its time or grows past C{max_rss} MB: a worker spinning without
    returning to the reactor never reaches its own watchdog.
    """
    children = [Child(case, jobs, port, url) for _ in range(max(1, case.processes))]
    deadline = time.monotonic() + PARENT_TIMEOUT + jobs / MIN_RATE
    if case.processes:
        for child in children:
            if not child.ready(time.monotonic() + PARENT_TIMEOUT):
                child.kill("was killed: it never said it was ready")
        for child in children:
            child.go()
    for child in children:
        child.read()
    while any(child.proc.poll() is None for child in children):
        for child in children:
            rss = rss_mb(child.proc.pid)
            if rss is not None and rss > max_rss:
                child.kill(f"was killed at {rss:,.0f} MB RSS (limit {max_rss:,.0f} MB)")
            elif time.monotonic() > deadline:
                child.kill("was killed: it did not finish in time")
        time.sleep(0.1)
    results = [child.result(case, jobs) for child in children]
    return results[0] if len(results) == 1 else combined(case, jobs, results)


def combined(case: Case, jobs: int, results: list[dict[str, Any]]) -> dict[str, Any]:
    """
    The figures of several processes that drained one queue together: jobs/s
    from the first start to the last job done, CPU of all, the largest RSS.
    """
    out: dict[str, Any] = {"case": case.name, "jobs": jobs, "processes": len(results)}
    out["errors"] = [e for r in results for e in r.get("errors", [])]
    out["problems"] = [p for r in results for p in r.get("problems", [])]
    out["problem_count"] = sum(r.get("problem_count", 0) for r in results)
    if out["errors"]:
        return out
    out["done"] = sum(r["done"] for r in results)
    out["per_process"] = [r["done"] for r in results]
    finished_at = max(r["finished_at"] for r in results)
    out["seconds"] = finished_at - min(r["started_at"] for r in results)
    out["cpu_seconds"] = sum(r["cpu_seconds"] for r in results)
    out["stop_seconds"] = max(r["stop_seconds"] for r in results)
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    out["start_rss_mb"] = max(r["start_rss_mb"] for r in results)
    return out


# -- the table and what follows ------------------------------------------------


def rate(result: dict[str, Any] | None) -> float | None:
    seconds = result and result.get("seconds")
    if not seconds or result is None or result.get("done") != result["jobs"]:
        return None
    return result["jobs"] / seconds


def per_thousand(seconds: float | None, jobs: int) -> str:
    return "-" if seconds is None else f"{seconds * 1000 / jobs:.4f}"


def micros(result: dict[str, Any] | None) -> float | None:
    if not result or result.get("cpu_seconds") is None:
        return None
    return result["cpu_seconds"] * 1e6 / result["jobs"]


class Results:
    def __init__(self) -> None:
        self.items: list[tuple[Case, dict[str, Any]]] = []

    def add(self, case: Case, result: dict[str, Any]) -> None:
        self.items.append((case, result))

    def get(self, name: str) -> dict[str, Any] | None:
        return next((r for c, r in self.items if c.name == name), None)

    def rate(self, name: str) -> float | None:
        return rate(self.get(name))

    def baseline(self, case: Case) -> tuple[float | None, str]:
        """
        What the ratio column compares C{case} to: a rate and its name.
        """
        if case.ceiling is not None:
            what = "limit" if case.name == "throttle" else "ceiling"
            return case.ceiling, f"{what} {case.ceiling:,.0f}/s"
        if case.base is not None:
            return self.rate(case.base), BY_NAME[case.base].label
        return None, ""

    def table(self) -> str:
        header = (
            "case",
            "jobs",
            "jobs/s",
            "CPU s/1k",
            "peak RSS MB",
            "ratio",
            "of",
            "stop s",
            "redis CPU s/1k",
        )
        rows = [header]
        for case, r in self.items:
            jobs_s = rate(r)
            base, base_label = self.baseline(case)
            ratio = "-"
            if jobs_s is not None and base:
                ratio = f"{jobs_s / base:.2f}x"
            stop = r.get("stop_seconds")
            redis_cpu = r.get("redis_cpu_seconds") if case.kind != "http" else None
            rows.append(
                (
                    case.label,
                    f"{r['jobs']:,}",
                    "failed" if jobs_s is None else f"{jobs_s:,.0f}",
                    per_thousand(r.get("cpu_seconds"), r["jobs"]),
                    f"{r['peak_rss_mb']:.1f}" if "peak_rss_mb" in r else "-",
                    ratio,
                    base_label if ratio != "-" else "",
                    "-" if stop is None else f"{stop:.3f}",
                    per_thousand(redis_cpu, r["jobs"]),
                )
            )
        return text_table(rows, left={0, 6})

    # -- details ------------------------------------------------------------

    def http_details(self, server: str) -> list[str]:
        names = ("http-treq", "http-agent", "http-fast", "pace-treq", "pace-fast")
        us = {name: micros(self.get(name)) for name in names}
        if not any(us.values()):
            return []
        lines = [
            f"HTTP: {server}, {CONCURRENCY} requests in flight, persistent pool; "
            "client CPU per request:",
            "  " + ", ".join(f"{BY_NAME[n].label} {us[n]:.0f} us" for n in names if us[n]),
        ]
        for case, base in (
            ("pace-treq", "http-treq"),
            ("pace-fast", "http-agent"),
            ("http-treq", "http-agent"),
            ("http-fast", "http-agent"),
        ):
            a, b = self.rate(case), self.rate(base)
            ua, ub = us[case], us[base]
            if a and b and ua and ub:
                lines.append(
                    f"  {BY_NAME[case].label} / {BY_NAME[base].label}: "
                    f"{a / b:.2f} of the jobs/s, {ua / ub:.2f}x the CPU per request"
                )
        return lines

    def latency_details(self) -> list[str]:
        latency = self.rate("latency")
        if latency is None:
            return []
        ceiling = BY_NAME["latency"].ceiling or 1
        return [
            f"latency case: {latency / ceiling:.2f} of its own ceiling of {ceiling:,.0f} "
            f"jobs/s (concurrency / latency)"
        ]

    def throttle_details(self) -> list[str]:
        r = self.get("throttle")
        if not r or "max_1s" not in r:
            return []
        return [
            f"throttle: jobs_per_second={THROTTLE_RATE:,}, {r['jobs']:,} jobs started over "
            f"{r['span']:.2f}s, {r['first_1s']:,} in the first second;",
            f"  most jobs started in any 1 s window: {r['max_1s']:,} (limit {THROTTLE_RATE:,}); "
            f"in any 10 ms window: {r['max_10ms']:,} (evenly spread: {THROTTLE_RATE / 100:g})",
        ]

    def soak(self) -> dict[str, Any] | None:
        r = self.get("soak")
        samples = (r or {}).get("rss_samples") or []
        if r is None or not samples:
            return None
        first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
        return {
            "jobs": r["jobs"],
            "samples": len(samples),
            "first": first,
            "middle": middle,
            "last": last,
            "max": max(sample[2] for sample in samples),
            "growth": last[2] - first[2],
            "start": r.get("start_rss_mb"),
            "max_queued": r.get("max_queued"),
            "max_redis_mb": r.get("max_redis_mb"),
        }

    def soak_details(self) -> list[str]:
        s = self.soak()
        if s is None:
            return []

        def at(sample: list) -> str:
            return f"{sample[2]:.1f} MB after {sample[0]:.0f}s ({sample[1]:,} jobs)"

        return [
            f"soak: {s['jobs']:,} no-op jobs, RSS sampled every {SOAK_SAMPLE_SECONDS:g}s "
            f"and at the end ({s['samples']} samples; {s['start']:.1f} MB before the start):",
            f"  first {at(s['first'])}, middle {at(s['middle'])},",
            f"  last {at(s['last'])}; max {s['max']:.1f} MB; last - first {s['growth']:+.1f} MB",
            f"  Redis held at most {s['max_queued']:,} queued jobs, "
            f"{s['max_redis_mb']:.1f} MB used_memory",
        ]

    def scaling_details(self) -> list[str]:
        one, two = self.get("scale-1"), self.get("scale-2")
        one_s, two_s = rate(one), rate(two)
        if one is None or two is None or one_s is None or two_s is None:
            return []

        def busy(r: dict[str, Any]) -> str:
            workers = r["cpu_seconds"] / r["seconds"]
            redis = r.get("redis_cpu_seconds", 0) / r["seconds"]
            return f"workers {workers:.2f} + redis-server {redis:.2f}"

        return [
            f"scaling: 1 process {one_s:,.0f} jobs/s, 2 processes {two_s:,.0f} jobs/s "
            f"together ({two_s / one_s:.2f}x; jobs each {two.get('per_process')}).",
            f"  Cores busy: {busy(one)} with 1 process, {busy(two)} with 2, of the "
            f"{os.cpu_count()} this machine has:",
            "  redis-server shares the cores with the workers, so two workers cannot double "
            "one's rate here.",
        ]

    def targets(self) -> list[tuple[str, bool]]:
        def ratio(a: str, b: str) -> float | None:
            x, y = self.rate(a), self.rate(b)
            return x / y if x is not None and y else None

        out: list[tuple[str, bool]] = []

        def check(text: str, value: float | None, goal: float) -> None:
            if value is not None:  # else a case was not run, or failed
                out.append((f"{text} >= {goal:.2f}: {value:.2f}", value >= goal))

        check("at-most-once no-op / bare LPOP 100", ratio("at-most-once", "bare"), 0.60)
        check("reliable no-op / bare LPOP 100", ratio("reliable", "bare"), 0.40)
        check("pace + treq / bare treq", ratio("pace-treq", "http-treq"), 0.90)
        check("pace + fast_http / bare Agent", ratio("pace-fast", "http-agent"), 0.90)
        s = self.soak()
        if s is not None:
            flat = s["growth"] <= FLAT_MB
            out.append(
                (f"soak memory flat (last - first <= {FLAT_MB:g} MB): {s['growth']:+.1f} MB", flat)
            )
        r = self.get("throttle")
        if r and "max_1s" in r:
            out.append(
                (
                    f"throttle never above {THROTTLE_RATE:,} in any 1 s: {r['max_1s']:,}",
                    r["max_1s"] <= THROTTLE_RATE,
                )
            )
        return out

    def rows(self, jobs: int, change: str, about: str, server: str) -> list[str]:
        def fig(name: str) -> str:
            value = self.rate(name)
            return "-" if value is None else f"{value:,.0f}"

        today = datetime.date.today()
        first = " | ".join(fig(n) for n in ("bare", "reliable", "at-most-once", "latency"))
        http = " | ".join(
            fig(n)
            for n in ("blpop", "http-treq", "http-agent", "http-fast", "pace-treq", "pace-fast")
        )
        throttle = self.get("throttle") or {}
        limit = f"{throttle['max_1s']:,} / {throttle['max_10ms']}" if "max_1s" in throttle else "-"
        s = self.soak()
        soak = "-"
        if s is not None:
            soak = f"{s['jobs']:,}: {s['first'][2]:.1f} → {s['last'][2]:.1f} (max {s['max']:.1f})"
        return [
            "rows for bench/RESULTS.md (first table, then second):",
            f"| {today} | {change} | {jobs:,} | {first} | {about} |",
            f"| {today} | {change} | {jobs:,} | {http} | {server} | {limit} | {soak} | "
            f"{fig('scale-1')} | {fig('scale-2')} | {about} |",
        ]


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
        f"{name} {importlib.metadata.version(name)}" for name in ("twisted", "txredisapi", "treq")
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


# -- the parent ------------------------------------------------------------------


def run_one(
    client: Any, server: Any, case: Case, count: int, url: str | None, max_rss: float
) -> tuple[dict[str, Any], list[str]]:
    """
    Fill (or, for the soak, start feeding) the queue, run the case, and
    return its figures and the surprises found.
    """
    feeder = None
    if case.kind == "http":
        client.flushall()
    elif case.http:
        assert url is not None
        fill(client, count, url_payload(url))
    elif case.name == "soak":
        first = min(count, FEED_LOW + FEED_CHUNK)
        fill(client, first, noop_payload)
        feeder = Feeder(server.port, count, first)
        feeder.start()
    else:
        fill(client, count, noop_payload)
    cpu0 = cpu_seconds_of(server.process.pid)
    try:
        result = run_children(case, count, server.port, url, max_rss)
    finally:
        if feeder is not None:
            feeder.done.set()
            feeder.join()
    cpu1 = cpu_seconds_of(server.process.pid)
    if cpu0 is not None and cpu1 is not None:
        result["redis_cpu_seconds"] = cpu1 - cpu0
    if feeder is not None:
        result.update(max_queued=feeder.max_queued, max_redis_mb=feeder.max_redis_mb)
    odd = result.get("errors", []) + check_after(client, case, result)
    if result.get("problem_count"):
        first_problem = result["problems"][0].splitlines()[0]
        odd.append(f"{result['problem_count']} warnings or errors logged, first: {first_problem}")
    return result, odd


def orchestrate(jobs: int, cases: list[Case], max_rss: float) -> int:
    import redis

    from pace.redisserver import RedisServer

    server = RedisServer().start()
    http = HTTPServer().start() if any(case.http for case in cases) else None
    client = redis.Redis(port=server.port)
    results = Results()
    surprises: list[str] = []
    began = time.monotonic()
    try:
        about = machine(client)
        note(f"pace benchmark: {jobs:,} jobs, redis-server on port {server.port}")
        if http is not None:
            note(f"HTTP server: {http.kind} at {http.url}")
        note(f"machine: {about}")
        for n, case in enumerate(cases, 1):
            count = case.count(jobs)
            note(f"[{n}/{len(cases)}] {case.label}: {count:,} jobs")
            url = http.url if http is not None and case.http else None
            result, odd = run_one(client, server, case, count, url, max_rss)
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
            results.add(case, result)
        client.flushall()
    finally:
        client.close()
        server.cleanup()
        if http is not None:
            http.stop()

    server_name = "-" if http is None else http.kind
    print()
    print(
        f"pace benchmark, {jobs:,} jobs, concurrency {CONCURRENCY}, "
        f"{time.monotonic() - began:.0f}s in all"
    )
    print(results.table())
    print(
        "jobs/s: wall time from Worker.start() (or the first request) to the last job done; "
        "CPU s/1k: of the\nworker process(es); ratio: jobs/s over those of the case or "
        "rate named next; stop s: from the last\njob done until the worker stopped; "
        "redis CPU s/1k: of redis-server."
    )
    details = (
        results.latency_details()
        + results.http_details(f"{server_name} at {http.url}" if http else "-")
        + results.throttle_details()
        + results.soak_details()
        + results.scaling_details()
    )
    for line in details:
        print(line)
    targets = results.targets()
    if targets:
        print("targets:")
        for text, met in targets:
            print(f"  [{'met' if met else 'MISSED'}] {text}")
    print(f"machine: {about}")
    if surprises:
        print("problems:")
        for text in surprises:
            print(f"  - {text}")
    for line in results.rows(jobs, f"{git_revision()} <what changed>", about, server_name):
        print(line)
    # Problems are reported above; only a case without figures fails the run.
    return 0 if all(rate(r) is not None for _, r in results.items) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--jobs", type=int, default=None, help=f"default {DEFAULT_JOBS:,}")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_JOBS:,} jobs, {QUICK_SOAK:,} in the soak",
    )
    parser.add_argument(
        "--soak",
        type=int,
        default=None,
        metavar="N",
        help=f"jobs in the soak case (default {DEFAULT_SOAK:,}; 0 skips it)",
    )
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
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jobs = args.jobs or (QUICK_JOBS if args.quick else DEFAULT_JOBS)
    if jobs < 1:
        parser.error("--jobs must be at least 1")

    if args.case:
        if args.redis_port is None:
            parser.error("--case needs --redis-port")
        print(json.dumps(run_case(args.case, jobs, args.redis_port, args.url)), flush=True)
        return 0
    soak = args.soak if args.soak is not None else (QUICK_SOAK if args.quick else DEFAULT_SOAK)
    cases = []
    for name in filter(None, (n.strip() for n in args.cases.split(","))):
        if name not in BY_NAME:
            parser.error(f"unknown case {name!r}")
        case = BY_NAME[name]
        if name == "soak":
            if soak < 1:
                continue
            case = replace(case, jobs=soak)
        cases.append(case)
    return orchestrate(jobs, cases, args.max_rss_mb)


if __name__ == "__main__":
    sys.exit(main())
