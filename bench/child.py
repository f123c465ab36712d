"""
One case of bench/run.py, in a process of its own (``run.py --case NAME
...``): it drains the queue (or makes the HTTP requests) in this process's
reactor and returns its figures, which run.py prints as one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from cases import (
    BARE_BATCH,
    BY_NAME,
    CHILD_TIMEOUT,
    CONCURRENCY,
    IN_FLIGHT,
    LATENCY,
    MAX_PERSISTENT,
    MIN_RATE,
    QUEUE,
    QUEUE_KEY,
    SOAK_SAMPLE_SECONDS,
    THROTTLE_RATE,
    Case,
    Drain,
    max_in_window,
    note,
    peak_rss_mb,
    rss_mb,
)


def run_case(name: str, jobs: int, port: int, url: str | None) -> dict[str, Any]:
    """
    Run case C{name} on C{jobs} jobs in this process's reactor and return
    the figures.
    """
    return _Child(BY_NAME[name], jobs, port, url).run()


class _Child:
    def __init__(self, case: Case, jobs: int, port: int, url: str | None):
        from twisted.internet import reactor

        self.reactor: Any = reactor  # the module-level reactor, as its interfaces
        self.case = case
        self.jobs = jobs
        self.port = port
        self.url = url
        self.problems: list[str] = []
        self.errors: list[str] = []
        self.extra: dict[str, Any] = {}
        self.drain = Drain(0 if case.processes else jobs)
        self.abort: Callable[[], object] = self._stop_reactor
        self.began = time.monotonic()

    def run(self) -> dict[str, Any]:
        from twisted.internet import task
        from twisted.logger import globalLogBeginner

        globalLogBeginner.beginLoggingTo([self._observe], redirectStandardIO=False)
        # Twisted's readBody warns on every small response (its transport
        # proxy has no abortConnection, twisted#8227); the warning is noise.
        warnings.filterwarnings("ignore", "Using readBody with a transport", DeprecationWarning)
        result: dict[str, Any] = {"case": self.case.name, "jobs": self.jobs}
        result["start_rss_mb"] = peak_rss_mb()
        start = getattr(self, "_start_" + self.case.kind)
        if self.case.processes:
            # Several processes start together: wait for the parent's word.
            print("ready", flush=True)
            sys.stdin.readline()
        timeout = CHILD_TIMEOUT + self.jobs / MIN_RATE
        ticker = task.LoopingCall(self._progress)
        ticker.start(1.0, now=False)
        watchdog = self.reactor.callLater(timeout, self._timed_out, timeout)
        self.reactor.callWhenRunning(lambda: start().addBoth(self._ended))
        self.reactor.run()
        stopped = time.monotonic()
        ticker.stop()
        if watchdog.active():
            watchdog.cancel()

        drain = self.drain
        if self.case.processes:
            drain.on_done = lambda: None
            drain.finish()
        elif drain.done != self.jobs and not self.errors:
            self.errors.append(f"the queue ran dry after {drain.done:,} of {self.jobs:,} jobs")
        result.update(
            done=drain.done,
            seconds=drain.seconds,
            cpu_seconds=drain.cpu_seconds,
            started_at=drain.started_at,
            finished_at=drain.finished_at,
            stop_seconds=None if not drain.finished_at else stopped - drain.finished_at,
            peak_rss_mb=peak_rss_mb(),
            problems=self.problems[:20],
            problem_count=len(self.problems),
            errors=self.errors,
            **self.extra,
        )
        return result

    # -- the harness ---------------------------------------------------------

    def _observe(self, event: dict) -> None:
        # Warnings and errors of pace or Twisted go to stderr as they come,
        # and into the result.
        from twisted.logger import LogLevel, formatEvent

        if event.get("log_level") not in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text += "\n" + failure.getTraceback()
        self.problems.append(text)
        note(f"    ! {text}")

    def _progress(self) -> None:
        total = f"/{self.jobs:,}" if not self.case.processes else ""
        elapsed = time.monotonic() - self.began
        note(f"    {self.drain.done:,}{total} jobs after {elapsed:.0f}s")

    def _ended(self, outcome: object) -> None:
        from twisted.python.failure import Failure

        if isinstance(outcome, Failure):
            self.errors.append(f"{outcome.type.__name__}: {outcome.getErrorMessage()}")
        self._stop_reactor()

    def _stop_reactor(self) -> None:
        if self.reactor.running:
            self.reactor.stop()

    def _timed_out(self, timeout: float) -> None:
        self.errors.append(
            f"timed out after {timeout:.0f}s with {self.drain.done:,}/{self.jobs:,} jobs"
        )
        self.abort()

    # -- bare Redis loops ------------------------------------------------------

    def _start_redis(self) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(self._redis_loop())

    async def _redis_loop(self) -> None:
        import txredisapi

        conn = await txredisapi.Connection(
            "127.0.0.1", self.port, reconnect=False, convertNumbers=False, charset=None
        )
        drain, loads = self.drain, json.loads
        drain.begin()
        try:
            if self.case.name == "blpop":
                # One job per round trip: what a worker without batching gets.
                while drain.done < self.jobs:
                    got = await conn.execute_command("BLPOP", QUEUE_KEY, 1)
                    if not got:
                        break
                    loads(got[1])
                    drain.count()
            else:
                while True:
                    items = await conn.execute_command("LPOP", QUEUE_KEY, BARE_BATCH)
                    if not items:
                        break
                    for raw in items:
                        loads(raw)
                    drain.add(len(items))
        finally:
            await conn.disconnect()

    # -- bare HTTP loops -------------------------------------------------------

    def _start_http(self) -> Any:
        """
        C{IN_FLIGHT} requests at a time until C{jobs} are done, on one
        persistent pool: treq's HTTPClient.get + treq.content (what
        ``treq.get(url)`` does, with one client instead of one per call),
        Agent.request + readBody, or examples/fast_http.py's handle() (on
        its own pool).
        """
        import treq
        from treq.client import HTTPClient
        from twisted.internet import defer
        from twisted.web.client import Agent, HTTPConnectionPool, readBody

        assert self.url is not None
        pool = HTTPConnectionPool(self.reactor, persistent=True)
        pool.maxPersistentPerHost = MAX_PERSISTENT
        agent = Agent(self.reactor, pool=pool)
        one: Callable[[], defer.Deferred]
        if self.case.name == "http-treq":
            client, url = HTTPClient(agent), self.url

            def one() -> defer.Deferred:
                return client.get(url).addCallback(treq.content)

        elif self.case.name == "http-fast":
            from examples.fast_http import handle

            job = {"class": "Fetch", "args": [self.url]}

            def one() -> defer.Deferred:
                return handle(job)

        else:
            raw = self.url.encode("ascii")

            def one() -> defer.Deferred:
                return agent.request(b"GET", raw).addCallback(readBody)

        done: defer.Deferred = defer.Deferred()
        drain = self.drain
        started = 0

        def end() -> None:
            if not done.called:
                done.callback(None)

        drain.on_done = self.abort = end

        def launch() -> None:
            nonlocal started
            started += 1
            one().addCallbacks(finished, failed)

        def finished(_: object) -> None:
            drain.count()
            if started < self.jobs and not done.called:
                launch()

        def failed(failure: Any) -> None:
            # The first failed request ends the run.
            if not done.called:
                done.errback(failure)

        drain.begin()
        for _ in range(min(IN_FLIGHT, self.jobs)):
            launch()

        def close(result: object) -> Any:
            return pool.closeCachedConnections().addBoth(lambda _: result)

        return done.addBoth(close)

    # -- Pace ----------------------------------------------------------------

    def _start_pace(self) -> Any:
        import pace

        case, drain = self.case, self.drain
        options: dict[str, Any] = {
            "concurrency": CONCURRENCY,
            "redis_url": f"redis://127.0.0.1:{self.port}/0",
            "reliable": case.name != "at-most-once",
        }
        handler: Callable[[dict], object] = drain.count
        if case.name == "latency":
            from twisted.internet import task

            def handler(job: dict) -> Any:
                return task.deferLater(self.reactor, LATENCY, drain.count)

        elif case.name in ("pace-treq", "pace-fast"):
            if case.name == "pace-treq":
                from examples.http import handle
            else:
                from examples.fast_http import handle

            def handler(job: dict) -> Any:
                return handle(job).addBoth(drain.passing)

        elif case.name == "throttle":
            options["jobs_per_second"] = THROTTLE_RATE
            starts: list[float] = []
            self._throttle_starts = starts
            monotonic = time.monotonic

            def handler(job: dict) -> None:
                starts.append(monotonic())
                drain.count()

        elif case.name == "soak":
            self._soak_samples: list[tuple[float, int, float]] = []
            self._sample_rss()
        elif case.processes:
            options["burst"] = True
            handler = drain.count_timed

        worker = pace.Worker(QUEUE, **options)
        drain.on_done = self.abort = worker.shutdown
        drain.begin()
        done = worker.start(handler)
        if case.name == "throttle":
            done.addCallback(self._throttle_figures)
        elif case.name == "soak":
            done.addCallback(self._soak_figures)
        return done

    def _throttle_figures(self, _: object) -> None:
        starts = self._throttle_starts
        if starts:
            self.extra.update(
                max_1s=max_in_window(starts, 1.0),
                max_10ms=max_in_window(starts, 0.01),
                first_1s=sum(1 for t in starts if t < starts[0] + 1.0),
                span=starts[-1] - starts[0],
            )

    def _sample_rss(self) -> None:
        from twisted.internet import task

        self._sampler = task.LoopingCall(self._sample)
        self._sampler.start(SOAK_SAMPLE_SECONDS, now=False)

    def _sample(self) -> None:
        rss = rss_mb()
        if rss is not None:
            elapsed = time.monotonic() - self.drain.started_at
            self._soak_samples.append((round(elapsed, 2), self.drain.done, rss))

    def _soak_figures(self, _: object) -> None:
        if self._sampler.running:
            self._sampler.stop()
        self._sample()  # and one once the worker has stopped
        self.extra["rss_samples"] = self._soak_samples
