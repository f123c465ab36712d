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
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tables import text_table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
VENVS = os.path.join(HERE, ".venvs")
DEFAULT_PNG = os.path.join(ROOT, "docs", "_static", "bench-compare.png")
DEFAULT_MD = os.path.join(HERE, "COMPARE.md")
DEFAULT_JOBS = 20_000
DEFAULT_CAP = 60.0
#: Beyond --cap, what a run may take to fill its queue, start its first job
#: and stop, before it is killed.
RUN_SLACK = 240.0
PIP_TIMEOUT = 900

WORKLOADS = {"noop": "no-op", "latency": "latency 5 ms"}
#: Lines a run prints to stderr that are noted in the report's details.
WARNED = re.compile(r"warn|error|exception|traceback", re.IGNORECASE)


@dataclass(frozen=True)
class System:
    key: str
    label: str
    script: str
    variant: str
    #: bench/.venvs/<venv>, or None for Pace's own interpreter.
    venv: str | None = None
    #: Requirement groups, each one ``pip install`` into the venv.
    needs: tuple[tuple[str, ...], ...] = ()
    #: One line about how it runs the latency job.
    latency: str = ""


SYSTEMS = [
    System(
        "pace-reliable",
        "pace (reliable)",
        "peer_pace.py",
        "reliable",
        latency="task.deferLater, 100 at a time",
    ),
    System(
        "pace-at-most-once",
        "pace (at-most-once)",
        "peer_pace.py",
        "at-most-once",
        latency="task.deferLater, 100 at a time",
    ),
    System(
        "arq",
        "arq",
        "peer_arq.py",
        "default",
        "arq",
        (("arq",),),
        latency="await asyncio.sleep, 100 at a time",
    ),
    System(
        "rq",
        "rq (fork)",
        "peer_rq.py",
        "fork",
        "rq",
        (("rq",),),
        latency="time.sleep, one job at a time: cannot overlap",
    ),
    System(
        "rq-simple",
        "rq (SimpleWorker)",
        "peer_rq.py",
        "simple",
        "rq",
        (("rq",),),
        latency="time.sleep, one job at a time: cannot overlap",
    ),
    System(
        "celery-threads",
        "celery (threads)",
        "peer_celery.py",
        "threads",
        "celery",
        (("celery[redis]",),),
        latency="time.sleep in 100 threads",
    ),
    System(
        "celery-gevent",
        "celery (gevent)",
        "peer_celery.py",
        "gevent",
        "celery",
        (("celery[redis]",), ("gevent",)),
        latency="time.sleep, monkey-patched, 100 greenlets",
    ),
    System(
        "dramatiq",
        "dramatiq (threads)",
        "peer_dramatiq.py",
        "threads",
        "dramatiq",
        (("dramatiq[redis]",),),
        latency="time.sleep in 100 threads",
    ),
]
BY_KEY = {s.key: s for s in SYSTEMS}
BASELINE = "pace-reliable"


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- virtual environments ----------------------------------------------------


class Venvs:
    """
    Makes bench/.venvs/<name> and pip-installs requirement groups into it,
    once: a stamp file per group remembers what was installed. What failed
    is kept, with the reason, so that the systems needing it are reported
    as failed without being run.
    """

    def __init__(self, upgrade: bool) -> None:
        self.upgrade = upgrade
        self.failed: dict[tuple[str, tuple[str, ...]], str] = {}
        self.done: set[tuple[str, tuple[str, ...]]] = set()

    def python(self, name: str) -> str:
        return os.path.join(VENVS, name, "bin", "python")

    def ensure(self, name: str, group: tuple[str, ...]) -> str | None:
        """
        Make sure the venv has C{group}; return why not, or None.
        """
        key = (name, group)
        if key in self.failed or key in self.done:
            return self.failed.get(key)
        why = self._ensure(name, group)
        if why:
            self.failed[key] = why
            note(f"    ! {why}")
        else:
            self.done.add(key)
        return why

    def _ensure(self, name: str, group: tuple[str, ...]) -> str | None:
        path = os.path.join(VENVS, name)
        python = self.python(name)
        if not os.access(python, os.X_OK):
            note(f"  creating {os.path.relpath(path, ROOT)} (python -m venv)")
            began = time.monotonic()
            made = subprocess.run(
                [sys.executable, "-m", "venv", "--clear", path],
                capture_output=True,
                text=True,
            )
            if made.returncode:
                return f"python -m venv {name} failed: {last_line(made.stderr)}"
            note(f"    done in {time.monotonic() - began:.0f}s")
        stamp = os.path.join(path, ".installed-" + "+".join(group).replace("/", "_"))
        if os.path.exists(stamp) and not self.upgrade:
            return None
        what = " ".join(group)
        note(f"  pip install {'-U ' if self.upgrade else ''}{what} into {name} ...")
        began = time.monotonic()
        cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        cmd += (["-U"] if self.upgrade else []) + list(group)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"pip install {what} took over {PIP_TIMEOUT}s"
        if done.returncode:
            return f"pip install {what} failed: {last_line(done.stderr or done.stdout)}"
        note(f"    done in {time.monotonic() - began:.0f}s")
        with open(stamp, "w") as f:
            f.write(what + "\n")
        return None

    def for_system(self, system: System) -> tuple[str | None, str | None]:
        """
        (the Python to run C{system} with, or None, and why not).
        """
        if system.venv is None:
            return sys.executable, None
        for group in system.needs:
            why = self.ensure(system.venv, group)
            if why:
                return None, why
        return self.python(system.venv), None


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def versions_in(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        got = subprocess.run([python, "-c", code, *names], capture_output=True, text=True)
        return json.loads(got.stdout)
    except (OSError, ValueError):
        return {}


# -- one run -----------------------------------------------------------------


@dataclass
class Result:
    system: System
    workload: str
    jobs: int
    data: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    @property
    def rate(self) -> float | None:
        if self.failure:
            return None
        return self.data.get("jobs_per_second")

    @property
    def capped(self) -> bool:
        return bool(self.data.get("capped"))

    @property
    def done(self) -> int:
        return int(self.data.get("done") or 0)


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


# -- reporting -----------------------------------------------------------------


def fmt_rate(rate: float | None) -> str:
    return "failed" if rate is None else f"{rate:,.0f}"


def fmt_ratio(rate: float | None, base: float | None) -> str:
    if rate is None or not base:
        return "-"
    ratio = rate / base
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x (1/{1 / ratio:,.0f})"


def fmt_jobs(r: Result, cap: float) -> str:
    if r.failure and not r.done:
        return "-"
    return f"{r.done:,}" + (f" (capped at {cap:g}s)" if r.capped else "")


def own_version(r: Result) -> str:
    version = r.data.get("version", "")
    return version.split(",")[0] if version else "-"


def table_rows(results: list[Result], cap: float) -> list[tuple[str, ...]]:
    base = {r.workload: r.rate for r in results if r.system.key == BASELINE and r.rate is not None}
    rows = []
    for r in results:
        rows.append(
            (
                r.system.label,
                own_version(r),
                WORKLOADS[r.workload],
                fmt_jobs(r, cap),
                fmt_rate(r.rate),
                fmt_ratio(r.rate, base.get(r.workload)),
                r.failure or "",
            )
        )
    return rows


HEADER = ("system", "version", "workload", "jobs", "jobs/s", "vs pace (reliable)", "note")


def compare_table(rows: list[tuple[str, ...]]) -> str:
    # jobs, jobs/s and the ratio right-aligned; the rest left.
    return text_table([HEADER, *rows], left={0, 1, 2, 6})


def md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return out


def machine(port: int) -> tuple[str, str]:
    import redis

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    client = redis.Redis(port=port)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    about = (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    return about, redis_version


HOW = """\
How it is measured: every run is a fresh process with the system's own
Python (bench/.venvs/<peer>, or Pace's .venv). It fills the queue with the
system's own client (Pace: redis-py RPUSH of Resque payloads), then starts
the worker in that process; the job function itself counts completions (in
memory where the jobs run in that process: Pace, arq, Celery's threads or
greenlets, dramatiq's threads; with a Redis pipeline of SET NX + INCR for rq,
whose jobs run in forked work horses: rq's figures carry one extra Redis
round trip per job). The clock starts when the first job begins and stops
when the job that brings the count to the total ends, so worker start-up
(imports, connecting, Celery's boot) is not counted; a run still going
--cap seconds after its first job began is stopped there, and its rate is
the jobs done by then over those seconds. One redis-server for all runs,
flushed before each."""


CAVEATS = [
    "One process per system, concurrency 100 where the system has it: the figures are "
    "per process. Peers can add processes (Celery prefork, `dramatiq --processes N`, "
    "several rq workers), and so can Pace (`make bench`'s scale-2 case).",
    "What a job costs in Redis differs: Pace pops up to 100 jobs a call (reliable: a Lua "
    "script that also pushes them onto a processing list) and settles finished jobs and "
    "Resque's stats in batches; arq takes a WATCH/MULTI lock per job and keeps job "
    "records; rq keeps a job hash, registries and (by default) the result; Celery's Redis "
    "transport keeps unacked messages in a hash; dramatiq acks per message with Lua scripts. "
    "Results are not stored by arq (keep_result=0), Celery (no backend) or dramatiq "
    "(no Results middleware); rq keeps its default result_ttl.",
    "arq's poll_delay is 0.01 s here; at its default, 0.5 s, it does about half as many jobs.",
    "rq's jobs count with a Redis pipeline (one round trip more per job, against the few "
    "dozen rq makes itself); every other system counts in memory.",
    "Pace's no-op runs take well under a second at 20,000 jobs, so they move by 10% or "
    "so from run to run; `make bench` (50,000 jobs) is the finer measure of Pace alone.",
    "The fill times are each client's own enqueue path, not comparable (Pace's is "
    "batched RPUSH of raw payloads).",
    "redis-server, the worker and (during fills) the client share the 2 cores.",
]


def write_markdown(
    path: str,
    results: list[Result],
    settings: list[tuple[str, ...]],
    *,
    jobs: int,
    cap: float,
    about: str,
    redis_version: str,
    command: str,
    seconds: float,
    png: str,
) -> None:
    today = datetime.date.today().isoformat()
    lines = [
        "# Pace next to its peers",
        "",
        f"Written by `{command}` on {today}, {seconds / 60:.1f} minutes in all; "
        "see bench/compare.py and bench/README.md.",
        "",
        f"- machine: {about}",
        f"- redis-server {redis_version}, private (pace.redisserver: loopback, no persistence)",
        f"- {jobs:,} jobs a run, each run capped at {cap:g} s after its first job began",
        f"- chart: `{os.path.relpath(png, ROOT)}`",
        "",
        "## Results",
        "",
        *md_table(HEADER, table_rows(results, cap)),
        "",
        "## Settings and versions",
        "",
        *md_table(("system", "versions", "settings", "latency job"), settings),
        "",
        "## Details",
        "",
        *md_table(
            ("system", "workload", "fill s (enqueue/s)", "seconds measured", "start-up s", "notes"),
            [detail_row(r) for r in results],
        ),
        "",
        "fill: the time the system's own client took to enqueue the jobs, not measured "
        "in jobs/s; start-up: from starting the worker to its first job beginning.",
        "",
        "## How",
        "",
        HOW.replace("\n", " "),
        "",
        "## What is not comparable",
        "",
        *[f"- {text}" for text in CAVEATS],
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def detail_row(r: Result) -> tuple[str, ...]:
    d = r.data
    fill = d.get("fill_seconds")
    fill_text = "-" if not fill else f"{fill:.3f} ({r.jobs / fill:,.0f})"
    seconds = d.get("seconds")
    startup = d.get("startup_seconds")
    return (
        r.system.label,
        WORKLOADS[r.workload],
        fill_text,
        "-" if seconds is None else f"{seconds:.3f}",
        "-" if startup is None else f"{startup:.3f}",
        "; ".join(d.get("notes") or []) or "",
    )


def plot(
    venvs: Venvs, results: list[Result], workloads: list[str], png: str, title: str, foot: str
) -> str | None:
    """
    Draw the chart with bench/.venvs/plot; return why not, or None.
    """
    why = venvs.ensure("plot", ("matplotlib",))
    if why:
        return why
    systems = list(dict.fromkeys(r.system.label for r in results))
    data = {
        "title": title,
        "footnote": foot,
        "workloads": [[w, WORKLOADS[w]] for w in workloads],
        "systems": systems,
        "versions": {},
        "rates": {s: {} for s in systems},
        "capped": {s: {} for s in systems},
    }
    for r in results:
        data["rates"][r.system.label][r.workload] = r.rate
        data["capped"][r.system.label][r.workload] = r.capped
        if r.data.get("version"):
            data["versions"][r.system.label] = own_version(r).rpartition(" ")[2]
    os.makedirs(os.path.dirname(png), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(data, f)
    try:
        drawn = subprocess.run(
            [venvs.python("plot"), os.path.join(PEERS, "plot_compare.py"), f.name, png],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(f.name)
    if drawn.returncode:
        return f"plotting failed: {last_line(drawn.stderr)}"
    return None


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
