"""
The cases of bench/run.py, their settings, and what a case's process uses to
count and measure (bench/child.py runs one).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

QUEUE = "bench"
QUEUE_KEY = f"resque:queue:{QUEUE}"
CONCURRENCY = 100
LATENCY = 0.005
BARE_BATCH = 100
#: HTTP requests in flight in the bare HTTP loops (and Pace's concurrency).
IN_FLIGHT = 100
#: Connections kept per host by every HTTP pool (examples/http.py's too).
MAX_PERSISTENT = 200
THROTTLE_RATE = 2000
THROTTLE_SECONDS = 3
SOAK_SAMPLE_SECONDS = 1.0
#: A case fails if it runs slower than this many jobs/s, after some slack:
#: the child gives up first (while its reactor still turns), then the parent
#: kills it.
MIN_RATE = 1000
CHILD_TIMEOUT = 20


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    #: The case drains this fraction of --jobs, unless it has its own count.
    share: float = 1.0
    jobs: int | None = None
    #: "pace": a pace.Worker; "redis": a bare txredisapi loop; "http": a bare
    #: HTTP loop (no Redis at all).
    kind: str = "pace"
    #: Needs the local HTTP server; its pace jobs carry its URL.
    http: bool = False
    #: The ratio column compares jobs/s to this case, or to a fixed ceiling.
    base: str | None = None
    ceiling: float | None = None
    #: Worker processes at once on the same queue (each drains until empty).
    processes: int = 0

    def count(self, jobs: int) -> int:
        return self.jobs if self.jobs is not None else max(1, int(jobs * self.share))


CASES = [
    Case("bare", f"bare LPOP {BARE_BATCH}", kind="redis"),
    Case("blpop", "bare BLPOP 1", share=0.2, kind="redis", base="bare"),
    Case("reliable", "pace no-op (reliable)", base="bare"),
    Case("at-most-once", "pace no-op (at most once)", base="bare"),
    Case(
        "latency",
        f"pace latency {LATENCY * 1000:g}ms",
        share=0.2,
        ceiling=CONCURRENCY / LATENCY,
    ),
    Case("http-treq", "bare treq", kind="http", http=True, base="http-agent"),
    Case("http-agent", "bare Agent", kind="http", http=True),
    Case("http-fast", "bare fast_http", kind="http", http=True, base="http-agent"),
    Case("pace-treq", "pace + treq (examples/http)", http=True, base="http-treq"),
    Case("pace-fast", "pace + fast_http", http=True, base="http-agent"),
    Case(
        "throttle",
        f"pace throttle {THROTTLE_RATE:,}/s",
        jobs=THROTTLE_RATE * THROTTLE_SECONDS,
        ceiling=THROTTLE_RATE,
    ),
    Case("soak", "pace soak (reliable)", base="reliable"),
    Case("scale-1", "pace reliable, 1 process", share=4, processes=1),
    Case("scale-2", "pace reliable, 2 processes", share=4, processes=2, base="scale-1"),
]
BY_NAME = {case.name: case for case in CASES}


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float | None:
    """
    The current RSS (or, with C{field="VmHWM"}, the peak) of a process, in
    MB; Linux only.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """
    The peak RSS of this process. On Linux, VmHWM: ru_maxrss survives
    exec(), so in a subprocess it would report the parent's peak if larger.
    """
    peak = rss_mb(field="VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Kilobytes on Linux, bytes on macOS.
    return maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def max_in_window(times: list[float], width: float) -> int:
    """
    The most of the sorted C{times} that fall in any window (t - width, t].
    """
    most = first = 0
    for i, t in enumerate(times):
        while times[first] <= t - width:
            first += 1
        most = max(most, i - first + 1)
    return most


class Drain:
    """
    Counts finished jobs and calls C{on_done} once all C{total} are done,
    noting the wall and CPU time since L{begin}. With C{total} 0, counts
    until told to stop, noting the time of the last job.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.on_done: Callable[[], object] = lambda: None
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.started_at = self.finished_at = 0.0
        self._cpu0 = 0.0

    def begin(self) -> None:
        self.started_at = time.monotonic()
        self._cpu0 = time.process_time()

    def count(self, _: object = None) -> None:
        self.done += 1
        if self.done == self.total:
            self.finish()

    def count_timed(self, _: object = None) -> None:
        self.done += 1
        self.finished_at = time.monotonic()

    def passing(self, result: object) -> object:
        self.count()
        return result

    def add(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if before < self.total <= self.done:
            self.finish()

    def finish(self) -> None:
        if self.total:
            self.finished_at = time.monotonic()
        self.cpu_seconds = time.process_time() - self._cpu0
        if self.done:
            self.seconds = self.finished_at - self.started_at
        self.on_done()
