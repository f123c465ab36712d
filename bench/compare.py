"""
Pace next to its peers (arq, rq, Celery, dramatiq) on the same workloads,
against one private redis-server (``pace.redisserver``: a free loopback port,
nothing persisted; never the Redis on 6379). ``make bench-compare``.

Each peer runs in a virtual environment of its own, bench/.venvs/<peer>,
made here with ``python -m venv`` and ``pip install <peer>`` from PyPI the
first time (never one of Pace's dependencies); matplotlib, for the chart,
goes into bench/.venvs/plot. Pace runs with Pace's own .venv.

Every run is one subprocess, ``bench/peers/peer_<system>.py`` with that
system's Python: it fills the queue with the system's own client (Pace:
redis-py RPUSH of Resque payloads), starts the system's worker in that
process and counts completions inside the job function (peers/peerlib.py).
The clock starts when the first job begins and stops when the job that
brings the count to --jobs ends; a run still going --cap seconds after its
first job began is stopped there, and its rate is the jobs done by then over
those seconds. Workloads:

- ``noop``: a job that does nothing but count.
- ``latency``: a job that waits 5 ms, without blocking where the system
  allows it (Pace: task.deferLater; arq: asyncio.sleep) and with
  time.sleep elsewhere (threads, gevent, or one job at a time for rq).

Output: progress on stderr; on stdout a table (system, version, workload,
jobs, jobs/s, relative to Pace reliable); bench/COMPARE.md (the same as
markdown, with the machine, versions and settings); and a bar chart,
docs/_static/bench-compare.png.

    .venv/bin/python bench/compare.py                  # make bench-compare
    .venv/bin/python bench/compare.py --jobs 5000 --cap 20
    .venv/bin/python bench/compare.py --systems pace-reliable,arq --workloads noop
    .venv/bin/python bench/compare.py --upgrade        # pip install -U in every venv
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

from compare_report import (
    Result,
    compare_table,
    machine,
    plot,
    table_rows,
    write_markdown,
)
from compare_systems import (
    BY_KEY,
    HERE,
    PEERS,
    ROOT,
    SYSTEMS,
    VENVS,
    WORKLOADS,
    System,
    Venvs,
    note,
    versions_in,
)

DEFAULT_PNG = os.path.join(ROOT, "docs", "_static", "bench-compare.png")
DEFAULT_MD = os.path.join(HERE, "COMPARE.md")
DEFAULT_JOBS = 20_000
DEFAULT_CAP = 60.0
#: Beyond --cap, what a run may take to fill its queue, start its first job
#: and stop, before it is killed.
RUN_SLACK = 240.0

#: Lines a run prints to stderr that are noted in the report's details.
WARNED = re.compile(r"warn|error|exception|traceback", re.IGNORECASE)


# -- one run -----------------------------------------------------------------


def run_one(python: str, system: System, workload: str, jobs: int, cap: float, port: int) -> Result:
    """
    Run one system on one workload in a subprocess of its own (a process
    group of its own too, so that whatever it forks goes with it).
    """
    result = Result(system, workload, jobs)
    cmd = [python, os.path.join(PEERS, system.script)]
    cmd += ["--redis-port", str(port), "--workload", workload, "--jobs", str(jobs)]
    cmd += ["--cap", str(cap), "--variant", system.variant]
    proc = subprocess.Popen(
        cmd,
        cwd=PEERS,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    tail: list[str] = []
    warned: list[str] = []
    out: list[str] = []

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip()
            if not line.strip():
                continue
            tail.append(line)
            del tail[:-40]
            if not line.startswith("    ") and WARNED.search(line) and len(warned) < 3:
                warned.append(line.strip()[:200])
            note(line if line.startswith("    ") else "    | " + line)

    def pump_stdout() -> None:
        assert proc.stdout is not None
        out.extend(proc.stdout)

    pumps = [threading.Thread(target=f, daemon=True) for f in (pump_stderr, pump_stdout)]
    for pump in pumps:
        pump.start()
    try:
        proc.wait(timeout=cap + RUN_SLACK)
    except subprocess.TimeoutExpired:
        result.failure = f"killed: still running {cap + RUN_SLACK:.0f}s after it started"
    finally:
        end_group(proc)
    for pump in pumps:
        pump.join(5)
    try:
        result.data = json.loads(out[-1])
    except (IndexError, ValueError):
        if result.failure is None:
            why = next((x for x in reversed(tail) if not x.startswith("    ")), None)
            result.failure = f"exit status {proc.returncode}, no result: {why or 'no output'}"
        return result
    errors = result.data.get("errors") or []
    if errors and result.failure is None:
        result.failure = "; ".join(errors)
    # What the system itself warned about goes into the report's details.
    if warned:
        result.data.setdefault("notes", []).extend(f"logged: {x}" for x in warned)
    return result


def end_group(proc: subprocess.Popen) -> None:
    """
    Kill what is left of a run: the process if it still runs, and anything it
    started in its process group (rq's work horse, say).
    """
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the whole run ---------------------------------------------------------------


def compare(args: argparse.Namespace, systems: list[System], workloads: list[str]) -> int:
    from pace.redisserver import RedisServer

    began = time.monotonic()
    os.makedirs(VENVS, exist_ok=True)
    venvs = Venvs(args.upgrade)
    note("setting up the virtual environments in bench/.venvs (the first time takes a while)")
    pythons: dict[str, tuple[str | None, str | None]] = {}
    for system in systems:
        pythons[system.key] = venvs.for_system(system)
    if not args.no_plot:
        venvs.ensure("plot", ("matplotlib",))

    server = RedisServer().start()
    results: list[Result] = []
    runs = len(systems) * len(workloads)
    try:
        import redis

        client = redis.Redis(port=server.port)
        about, redis_version = machine(server.port)
        note(f"redis-server {redis_version} on port {server.port}; {about}")
        n = 0
        for system in systems:
            python, why = pythons[system.key]
            for workload in workloads:
                n += 1
                note(
                    f"[{n}/{runs}] {system.label}, {WORKLOADS[workload]}: "
                    f"{args.jobs:,} jobs (cap {args.cap:g}s)"
                )
                if python is None:
                    result = Result(system, workload, args.jobs, failure=why)
                else:
                    client.flushall()
                    result = run_one(python, system, workload, args.jobs, args.cap, server.port)
                results.append(result)
                if result.rate is None:
                    note(f"    failed: {result.failure}")
                else:
                    extra = f", capped at {args.cap:g}s" if result.capped else ""
                    note(
                        f"    => {result.rate:,.0f} jobs/s "
                        f"({result.done:,} jobs in {result.data['seconds']:.2f}s{extra})"
                    )
        client.flushall()
        client.close()
    finally:
        server.cleanup()

    settings = []
    for system in systems:
        python, _ = pythons[system.key]
        got = next((r.data for r in results if r.system is system and r.data), {})
        version = got.get("version") or "-"
        if python is not None and version == "-":
            names = ["txpace"] if system.venv is None else [system.venv]
            version = ", ".join(f"{k} {v}" for k, v in versions_in(python, names).items()) or "-"
        settings.append((system.label, version, got.get("settings", "-"), system.latency))

    seconds = time.monotonic() - began
    from_make = os.environ.get("MAKELEVEL") and not sys.argv[1:]
    command = "make bench-compare" if from_make else shlex.join(["bench/compare.py", *sys.argv[1:]])
    rows = table_rows(results, args.cap)
    print()
    print(
        f"pace and its peers: {args.jobs:,} jobs a run, cap {args.cap:g}s, "
        f"{seconds / 60:.1f} minutes in all"
    )
    print(compare_table(rows))
    print(
        "jobs/s: from the first job begun to the last done, counted inside the job function; "
        "vs pace (reliable): the same workload's jobs/s over Pace's reliable worker's."
    )
    print(f"machine: {about}; redis-server {redis_version}")
    print("settings:")
    for label, version, how, latency in settings:
        print(f"  {label}: {version}; {how}; latency job: {latency}")

    today = datetime.date.today().isoformat()
    if not args.no_plot:
        capped = any(r.capped for r in results)
        foot = (
            f"{args.jobs:,} jobs a run, jobs/s from the first job begun to the last done; "
            f"one process each, concurrency 100 where the system has it; {about}; "
            f"redis-server {redis_version}." + (f" * capped at {args.cap:g} s." if capped else "")
        )
        title = f"Pace and its peers, jobs/s on one Redis ({today})"
        why = plot(venvs, results, workloads, args.png, title, foot)
        print(f"chart: {why}" if why else f"chart: {os.path.relpath(args.png, ROOT)}")
    if args.markdown:
        write_markdown(
            args.markdown,
            results,
            settings,
            jobs=args.jobs,
            cap=args.cap,
            about=about,
            redis_version=redis_version,
            command=command,
            seconds=seconds,
            png=args.png,
        )
        print(f"markdown: {os.path.relpath(args.markdown, ROOT)}")
    pace_ok = all(r.rate is not None for r in results if r.system.venv is None)
    return 0 if pace_ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help=f"default {DEFAULT_JOBS:,}")
    parser.add_argument(
        "--cap",
        type=float,
        default=DEFAULT_CAP,
        help=f"stop a run this many seconds after its first job (default {DEFAULT_CAP:g})",
    )
    parser.add_argument(
        "--systems",
        default=",".join(s.key for s in SYSTEMS),
        help="comma-separated, of: " + ", ".join(s.key for s in SYSTEMS),
    )
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated, of: noop, latency"
    )
    parser.add_argument("--upgrade", action="store_true", help="pip install -U in every venv")
    parser.add_argument("--no-plot", action="store_true", help="no chart, no plot venv")
    parser.add_argument("--png", default=DEFAULT_PNG, help="the chart (default %(default)s)")
    parser.add_argument(
        "--markdown",
        default=DEFAULT_MD,
        help="the markdown report (default %(default)s; '' for none)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.cap <= 0:
        parser.error("--jobs and --cap must be positive")
    systems, workloads = [], []
    for key in filter(None, (k.strip() for k in args.systems.split(","))):
        if key not in BY_KEY:
            parser.error(f"unknown system {key!r}")
        systems.append(BY_KEY[key])
    for key in filter(None, (k.strip() for k in args.workloads.split(","))):
        if key not in WORKLOADS:
            parser.error(f"unknown workload {key!r}")
        workloads.append(key)
    if not systems or not workloads:
        parser.error("nothing to run")
    return compare(args, systems, workloads)


if __name__ == "__main__":
    sys.exit(main())
