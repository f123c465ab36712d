"""
Throughput, CPU and memory benchmark of the pace worker, against a private
redis-server and a local HTTP server; what each case means and the targets
are in bench/README.md.

Cases (bench/cases.py), each run in a fresh subprocess (bench/child.py) so that its peak RSS
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
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import replace
from typing import Any

from cases import (
    BY_NAME,
    CASES,
    CONCURRENCY,
    Case,
    note,
)
from child import run_case
from feeding import (
    FEED_CHUNK,
    FEED_LOW,
    Feeder,
    check_after,
    cpu_seconds_of,
    fill,
    noop_payload,
    run_children,
    url_payload,
)
from results import Results, per_thousand, rate
from servers import HTTPServer
from tables import cpu_model

DEFAULT_JOBS = 50_000
QUICK_JOBS = 5_000
DEFAULT_SOAK = 1_000_000
QUICK_SOAK = 50_000


def machine(client: Any) -> str:
    cpu = cpu_model()
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
