"""
The jobs_per_second throttle: a token bucket whose tokens are computed from
the time elapsed (as in twisted.protocols.htb), so a late or uneven reactor
loses none, plus a sliding one-second window so that no second ever sees
more than the rate. A timer runs only while someone waits, due when the
tokens they need will be there: an idle or busy worker costs nothing.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.defer import Deferred, succeed

from pace.config import check_number

#: Tokens are handed out in batches of up to this many seconds' worth (and
#: at most `BATCH_JOBS`): every grant costs a fetch round trip, so 100 jobs/s
#: in batches of 5 every 50 ms cost a fifth of one job per grant, while no
#: 100 ms sees more than its share.
BATCH_SECONDS = 0.05
BATCH_JOBS = 10
#: How late the reactor may run without losing tokens: the bucket holds one
#: batch plus this many seconds' worth.
CATCH_UP_SECONDS = 0.25
_EPSILON = 1e-6


class Throttle:
    """
    At most ``rate`` tokens a second. `take` gives up to the number asked
    for, once a batch (`batch` tokens, or fewer if fewer are asked for) is
    available.
    """

    def __init__(self, rate: float, clock: Any = None):
        check_number("jobs_per_second", rate)
        if clock is None:
            from twisted.internet import reactor as clock
        self.rate = float(rate)
        self._clock = clock
        self.batch = max(1, min(BATCH_JOBS, int(self.rate * BATCH_SECONDS + _EPSILON)))
        self._capacity = self.batch + max(1.0, self.rate * CATCH_UP_SECONDS)
        # A batch interval's worth to begin with (more than one batch at high
        # rates): a start that fills its first second, as the window is the
        # limit after that.
        self._tokens = min(self._capacity, max(self.batch, self.rate * BATCH_SECONDS))
        # Time up to which tokens have been added; None while stopped.
        self._stamp: float | None = None
        self._window_cap = max(1, int(self.rate + _EPSILON))
        # (time, count) of recent takes, for the one-second window.
        self._taken: deque[list] = deque()
        self._in_window = 0
        self._waiter: tuple[Deferred, int] | None = None
        self._call: Any = None

    def start(self) -> None:
        if self._stamp is None:
            self._stamp = self._clock.seconds()

    def stop(self) -> None:
        self.cancel()
        self._stamp = None

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
        self._schedule()
        return d

    def refund(self, n: int) -> None:
        """
        Give back tokens that were taken but not used.
        """
        if n <= 0:
            return
        self._tokens = min(self._capacity, self._tokens + n)
        # The refunded jobs never started: they do not count in the window.
        taken = self._taken
        while n and taken:
            entry = taken[-1]
            back = min(n, entry[1])
            n -= back
            self._in_window -= back
            entry[1] -= back
            if not entry[1]:
                taken.pop()
        if self._waiter is not None:
            self._schedule()

    def started(self) -> None:
        """
        The jobs of the last take have just started. The window counts them
        from now rather than from the take: a fetch round trip lies between
        the two, and a quicker one a second later could otherwise let more
        than the rate start within one second.
        """
        if self._taken:
            self._taken[-1][0] = self._clock.seconds()

    def cancel(self) -> None:
        """
        Fire a pending `take` with 0, so its caller can look around.
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        if self._waiter is not None:
            d, _ = self._waiter
            self._waiter = None
            d.callback(0)

    # -- the bucket -----------------------------------------------------------

    def _refill(self, now: float) -> None:
        stamp = self._stamp
        if stamp is not None:
            if now > stamp:
                tokens = self._tokens + (now - stamp) * self.rate
                self._tokens = tokens if tokens < self._capacity else self._capacity
            # A clock that stepped back adds nothing and starts again from now.
            self._stamp = now

    def _expire(self, now: float) -> None:
        taken = self._taken
        limit = now - 1.0 + _EPSILON
        while taken and taken[0][0] <= limit:
            self._in_window -= taken.popleft()[1]

    def _grant(self, wanted: int) -> int:
        if wanted <= 0:
            return 0
        now = self._clock.seconds()
        self._refill(now)
        self._expire(now)
        n = min(wanted, int(self._tokens + _EPSILON), self._window_cap - self._in_window)
        if n < (wanted if wanted < self.batch else self.batch):
            return 0
        self._tokens -= n
        self._in_window += n
        self._taken.append([now, n])
        return n

    def _schedule(self) -> None:
        # One timer, due when the waiter's batch will be there: both enough
        # tokens and room in the one-second window.
        if self._waiter is None or self._stamp is None:
            return
        _, wanted = self._waiter
        need = min(wanted, self.batch)
        now = self._clock.seconds()
        self._refill(now)
        self._expire(now)
        due = now + max(0.0, (need - self._tokens) / self.rate)
        room = self._window_cap - self._in_window
        if room < need:
            for at, count in self._taken:
                room += count
                if room >= need:
                    due = max(due, at + 1.0)
                    break
        delay = max(0.0, due - now)
        if self._call is not None and self._call.active():
            self._call.reset(delay)
        else:
            self._call = self._clock.callLater(delay, self._due)

    def _due(self) -> None:
        self._call = None
        if self._waiter is None:
            return
        d, wanted = self._waiter
        n = self._grant(wanted)
        if n:
            self._waiter = None
            d.callback(n)
        else:
            self._schedule()
