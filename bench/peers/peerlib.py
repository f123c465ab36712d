"""
What every bench/peers/peer_*.py script shares. Each script runs inside its
system's own virtual environment (bench/.venvs/<peer>, or Pace's .venv), so
this module uses the standard library only.

A peer script fills the queue with its system's own client, starts its
system's worker in this process, and counts completions inside the job
function: the clock starts when the first job begins and stops when the job
that brings the count to --jobs ends (or at --cap seconds after the first
job began, when the jobs done so far count). It prints progress to stderr
and one JSON line to stdout.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

QUEUE = "bench"
LATENCY = 0.005
CONCURRENCY = 100
#: A run in which no job has started this long after the worker was started
#: fails.
START_TIMEOUT = 60.0
#: Once stop() has been asked, the worker has this long to return before the
#: script gives up on it and exits anyway.
STOP_TIMEOUT = 15.0


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: The result line goes to the stdout this process was given; everything else
#: printed to stdout (Celery's banner, say) goes to stderr with the progress.
_result_file: Any = None


def parse_args(variants: list[str]) -> argparse.Namespace:
    global _result_file
    if _result_file is None:
        sys.stdout.flush()
        _result_file = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--workload", choices=["noop", "latency"], required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--cap", type=float, required=True)
    parser.add_argument("--variant", choices=variants, default=variants[0])
    return parser.parse_args()


def version(*names: str) -> str:
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


class Tally:
    """
    Completions counted in this process. C{begin} at the start of each job
    notes when the first one began; C{hit} at its end counts it and, for the
    C{total}-th, notes the time and sets C{finished}. Both are safe to call
    from many threads: C{next()} on an itertools.count is atomic under the
    GIL, and a stale C{done} is only ever read for progress or at the cap.
    """

    def __init__(self, total: int) -> None:
        import itertools

        self.total = total
        self.done = 0
        self.first: float | None = None
        self.last: float | None = None
        self.finished = threading.Event()
        self._next = itertools.count(1).__next__

    def begin(self) -> None:
        if self.first is None:
            self.first = time.monotonic()

    def hit(self, _: object = None) -> None:
        n = self._next()
        if n > self.done:
            self.done = n
        if n == self.total:
            self.last = time.monotonic()
            self.finished.set()

    def read(self) -> tuple[int, float | None, float | None]:
        # A thread that took a lower number may write C{done} after the last.
        done = self.total if self.finished.is_set() else self.done
        return done, self.first, self.last


class RedisTally:
    """
    Completions counted in Redis, for jobs that run in other processes (rq's
    fork-per-job work horses): each job does one pipeline, C{SET first NX}
    with its start time, C{INCR done}; the C{total}-th also sets C{last}.
    All times are time.monotonic(), one clock for every process on Linux.
    """

    FIRST = "bench:first"
    DONE = "bench:done"
    LAST = "bench:last"

    def __init__(self, client: Any, total: int) -> None:
        self.client = client
        self.total = total
        self.finished = threading.Event()

    @classmethod
    def record(cls, client: Any, started: float, total: int) -> None:
        pipe = client.pipeline(transaction=False)
        pipe.set(cls.FIRST, repr(started), nx=True)
        pipe.incr(cls.DONE)
        _, n = pipe.execute()
        if n == total:
            client.set(cls.LAST, repr(time.monotonic()))

    def read(self) -> tuple[int, float | None, float | None]:
        first, done, last = self.client.mget(self.FIRST, self.DONE, self.LAST)
        done = int(done or 0)
        if done >= self.total:
            self.finished.set()
        return done, first and float(first), last and float(last)


class Run:
    """
    One measured run: C{watch} (in a thread of its own) prints progress every
    second and calls C{stop} once every job is done, C{cap} seconds after the
    first job began, or if none began within START_TIMEOUT; C{result} gives
    the figures.
    """

    def __init__(
        self,
        args: argparse.Namespace,
        system: str,
        version: str,
        settings: str,
        tally: Tally | RedisTally,
    ) -> None:
        self.args = args
        self.tally = tally
        self.out: dict[str, Any] = {
            "system": system,
            "version": version,
            "settings": settings,
            "workload": args.workload,
            "jobs": args.jobs,
            "errors": [],
            "notes": [],
        }
        self.started_at: float | None = None
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def filled(self, seconds: float) -> None:
        self.out["fill_seconds"] = round(seconds, 6)
        rate = self.args.jobs / seconds if seconds else 0
        note(f"    filled {self.args.jobs:,} jobs in {seconds:.1f}s ({rate:,.0f}/s)")

    def error(self, text: str) -> None:
        self.out["errors"].append(text)

    def trouble(self, what: str, e: BaseException) -> None:
        """
        An exception from the worker: an error while the run is being
        measured, a note once the watcher has stopped it.
        """
        text = f"{what}: {type(e).__name__}: {e}".rstrip(": ")
        (self.out["notes"] if self.stopped.is_set() else self.out["errors"]).append(text)

    def watch(self, stop: Callable[[], object]) -> None:
        """
        Start watching (call just before the worker is started).
        """
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._watch, args=(stop,), daemon=True)
        self._thread.start()

    def _watch(self, stop: Callable[[], object]) -> None:
        tally, total, cap = self.tally, self.args.jobs, self.args.cap
        assert self.started_at is not None
        shown = self.started_at
        try:
            while True:
                tally.finished.wait(0.02)
                done, first, last = tally.read()
                now = time.monotonic()
                if tally.finished.is_set():
                    break
                if first is None and now - self.started_at > START_TIMEOUT:
                    self.error(f"no job started within {START_TIMEOUT:.0f}s")
                    break
                if first is not None and now - first >= cap:
                    self.out["capped"] = True
                    self.out["cap_done"], self.out["cap_at"] = done, now
                    break
                if now - shown >= 1.0:
                    shown = now
                    since = f"{now - first:.0f}s since the first job" if first else "no job yet"
                    note(f"    {done:,}/{total:,} jobs, {since}")
        except Exception as e:  # noqa: BLE001 - reported, and the worker stopped
            self.error(f"watcher: {type(e).__name__}: {e}")
        self.stopped.set()
        stop()

    def result(self) -> dict[str, Any]:
        out = self.out
        done, first, last = self.tally.read()
        if out.get("capped"):
            done, last = out.pop("cap_done"), out.pop("cap_at")
        out["done"] = done
        if first is not None and last is not None and done:
            out["seconds"] = round(last - first, 4)
            out["jobs_per_second"] = done / (last - first) if last > first else None
        if first is not None and self.started_at is not None:
            out["startup_seconds"] = round(first - self.started_at, 3)
        if not out.get("capped") and done < self.args.jobs and not out["errors"]:
            out["errors"].append(f"stopped after {done:,} of {self.args.jobs:,} jobs")
        return out


def finish(run: Run) -> None:
    """
    Print the result line and leave at once: a worker's stray threads or
    children must not keep this process alive (the parent also ends the
    whole process group).
    """
    print(json.dumps(run.result()), file=_result_file or sys.stdout, flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def signal_self(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """
    A stop() that asks this process's own signal handler for a warm shutdown
    (rq, Celery); the main thread gets it.
    """
    return lambda: os.kill(os.getpid(), signum)


def give_up_later(run: Run) -> None:
    """
    After stop(), if the worker has not returned within STOP_TIMEOUT, report
    what was measured anyway and exit.
    """

    def later() -> None:
        run.stopped.wait()
        time.sleep(STOP_TIMEOUT)
        run.out["notes"].append(f"the worker did not stop within {STOP_TIMEOUT:.0f}s (killed)")
        finish(run)

    threading.Thread(target=later, daemon=True).start()
