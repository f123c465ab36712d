"""
What bench/compare.py reports: one run's result, the table, bench/COMPARE.md
and the figure.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any

from compare_systems import BASELINE, PEERS, ROOT, WORKLOADS, System, Venvs, last_line
from tables import cpu_model, text_table


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

    cpu = cpu_model()
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
