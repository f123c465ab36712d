"""
A periodic call that a wall-clock step cannot delay, and the reactor-lag
warning. Twisted's timers follow the wall clock, so a clock stepped back by
40 s holds a 10 s heartbeat for 50 s; a small thread that sleeps on the
monotonic clock asks the reactor for each tick instead, and measures how
late the reactor runs it. With a ``task.Clock`` (tests), ticks follow that
clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from time import monotonic
from typing import Any

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: A reactor later than this is worth a warning.
LAG_WARNING = 1.0
#: How often the thread looks in on the reactor (lag is seen to this much).
_TICK = 0.25


class Ticker:
    """
    Calls ``fn()`` in the reactor every ``interval`` seconds of monotonic
    time, first after one interval.
    """

    def __init__(self, clock: Any, interval: float, fn: Callable[[], Any]):
        self._clock = clock
        self._interval = interval
        self._fn = fn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: LoopingCall | None = None
        self._next = 0.0
        self._lagging = False
        #: Seconds the reactor ran the latest tick late (thread mode only).
        self.lag = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None or (self._loop is not None and self._loop.running)

    def start(self) -> None:
        if not hasattr(self._clock, "callFromThread"):
            self._loop = LoopingCall(self._fn)
            self._loop.clock = self._clock
            self._loop.start(self._interval, now=False)
            return
        self._next = monotonic() + self._interval
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pace-ticker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._stop.set()
        self._thread = None

    def _run(self) -> None:
        stop, reactor = self._stop, self._clock
        while not stop.wait(_TICK):
            reactor.callFromThread(self._tick, monotonic())

    def _tick(self, posted: float) -> None:
        if self._stop.is_set():
            return
        now = monotonic()
        self.lag = now - posted
        if self.lag > LAG_WARNING:
            if not self._lagging:
                log.warn(
                    "pace: the reactor ran {lag:.1f} s late: something blocks it (a handler "
                    "doing blocking work, a huge payload); heartbeats are late too",
                    lag=self.lag,
                )
            self._lagging = True
        else:
            self._lagging = False
        if now >= self._next:
            self._next = now + self._interval
            self._fn()
