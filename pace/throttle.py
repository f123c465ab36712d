"""
The jobs_per_second throttle: a token bucket refilled by a LoopingCall in
small steps, so jobs spread across each second instead of leaving in one
burst, plus a sliding one-second window so that no second ever sees more
than the rate, whatever the timing of refills and takes.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall

#: Refills per second at most: 10 ms steps keep bursts tiny while costing the
#: reactor only 100 timer calls a second.
MAX_STEPS_PER_SECOND = 100
_EPSILON = 1e-6


class Throttle:
    """
    At most ``rate`` tokens a second. `take` gives up to the number asked
    for as soon as at least one is available.
    """

    def __init__(self, rate: float, clock: Any = None):
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
            raise ValueError(f"jobs_per_second must be a number > 0, not {rate!r}")
        if clock is None:
            from twisted.internet import reactor as clock
        self.rate = float(rate)
        self._clock = clock
        steps = min(MAX_STEPS_PER_SECOND, max(1, math.ceil(rate)))
        self.interval = 1.0 / steps
        self._per_step = self.rate / steps
        self._capacity = max(1.0, self._per_step)
        self._tokens = self._capacity
        self._window_cap = max(1, int(rate + _EPSILON))
        # (time, count) of recent takes, for the one-second window.
        self._taken: deque[tuple[float, int]] = deque()
        self._in_window = 0
        self._waiter: tuple[Deferred, int] | None = None
        self._loop = LoopingCall(self._refill)
        self._loop.clock = clock

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(self.interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        self.cancel()

    @property
    def waiting(self) -> bool:
        return self._waiter is not None

    def take(self, wanted: int) -> Deferred:
        """
        A Deferred that fires with a number of tokens between 1 and
        ``wanted``, or with 0 if `cancel` is called first.
        """
        n = self._grant(wanted)
        if n:
            return succeed(n)
        d: Deferred = Deferred()
        self._waiter = (d, wanted)
        return d

    def refund(self, n: int) -> None:
        """
        Give back tokens that were taken but not used.
        """
        if n <= 0:
            return
        self._tokens = min(self._capacity, self._tokens + n)
        # The refunded jobs never started: they do not count in the window.
        while n and self._taken:
            at, count = self._taken.pop()
            back = min(n, count)
            n -= back
            self._in_window -= back
            if count > back:
                self._taken.append((at, count - back))

    def started(self) -> None:
        """
        The jobs of the last take have just started. The window counts them
        from now rather than from the take: a fetch round trip lies between
        the two, and a quicker one a second later could otherwise let more
        than the rate start within one second.
        """
        if self._taken:
            _, count = self._taken.pop()
            self._taken.append((self._clock.seconds(), count))

    def cancel(self) -> None:
        """
        Fire a pending `take` with 0, so its caller can look around.
        """
        if self._waiter is not None:
            d, _ = self._waiter
            self._waiter = None
            d.callback(0)

    def _grant(self, wanted: int) -> int:
        now = self._clock.seconds()
        taken = self._taken
        while taken and taken[0][0] <= now - 1.0 + _EPSILON:
            self._in_window -= taken.popleft()[1]
        n = min(wanted, int(self._tokens + _EPSILON), self._window_cap - self._in_window)
        if n <= 0:
            return 0
        self._tokens -= n
        self._in_window += n
        taken.append((now, n))
        return n

    def _refill(self) -> None:
        self._tokens = min(self._capacity, self._tokens + self._per_step)
        if self._waiter is not None:
            d, wanted = self._waiter
            n = self._grant(wanted)
            if n:
                self._waiter = None
                d.callback(n)
