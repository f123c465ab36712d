"""
The periodic throughput line: jobs/s, jobs in flight, failures and the
paused state, as one structured log event every interval (the line users of
the Ruby original watched).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()


class ThroughputLog:
    def __init__(self, worker: Any, books: Any, interval: float, clock: Any):
        self._worker = worker
        self._books = books
        self._interval = interval
        self._clock = clock
        self._last = (0, 0, 0.0)
        self._loop = LoopingCall(self.report)
        self._loop.clock = clock

    def start(self) -> None:
        self._last = (0, 0, self._clock.seconds())
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def report(self) -> None:
        processed, failed = self._books.processed_total, self._books.failed_total
        now = self._clock.seconds()
        last_processed, last_failed, then = self._last
        self._last = (processed, failed, now)
        elapsed = max(now - then, 1e-9)
        log.info(
            "pace: {id}: {jobs_per_second:.1f} jobs/s, {in_flight} in flight, "
            "{failed} failed in the last {seconds:.0f}s{paused}",
            id=self._worker.id,
            jobs_per_second=(processed - last_processed) / elapsed,
            in_flight=self._worker.in_flight,
            failed=failed - last_failed,
            seconds=elapsed,
            paused=", paused" if self._worker.paused else "",
            processed_total=processed,
            failed_total=failed,
            paused_state=self._worker.paused,
        )
