"""
The benchmark parent's side of a case (bench/run.py): filling and feeding
the queue with redis-py, running a case's child processes and reading their
JSON line, their CPU time, and checking what Redis holds afterwards.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from cases import (
    MIN_RATE,
    QUEUE_KEY,
    Case,
    note,
    rss_mb,
)

FILL_CHUNK = 1000
#: The soak keeps between FEED_LOW and FEED_LOW + FEED_CHUNK jobs queued.
FEED_LOW = 20_000
FEED_CHUNK = 20_000
PARENT_TIMEOUT = 30
#: Each case's child process is bench/run.py with --case.
RUN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py")

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
        cmd = [sys.executable, RUN_PY, "--case", case.name]
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
