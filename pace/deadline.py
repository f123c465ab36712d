"""
The one deadline of a shutdown: every step after the grace period waits at
most what is left of it, and a second signal brings it closer for all of
them at once.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace.failures import error_text

log = Logger()


class Deadline:
    """
    One end time shared by every step of a shutdown: each step waits at most
    what is left, and `tighten` brings the end closer for all at once.
    """

    def __init__(self, clock: Any, seconds: float):
        self._clock = clock
        self.end = clock.seconds() + seconds
        self._calls: set[Any] = set()

    def remaining(self) -> float:
        return max(0.0, self.end - self._clock.seconds())

    def tighten(self, seconds: float) -> None:
        self.end = min(self.end, self._clock.seconds() + seconds)
        for call in list(self._calls):
            if call.active():
                call.reset(self.remaining())

    def bound(self, d: defer.Deferred, what: str, url: str) -> defer.Deferred:
        """
        ``d``, cancelled if it has not fired by the deadline; never fails.
        """
        call = self._clock.callLater(self.remaining(), d.cancel)
        self._calls.add(call)

        def done(result: Any) -> None:
            self._calls.discard(call)
            if call.active():
                call.cancel()
            if isinstance(result, Failure):
                error = "out of time" if result.check(defer.CancelledError) else error_text(result)
                log.error(
                    "pace: gave up {what}: {error} (Redis at {url})",
                    what=what,
                    error=error,
                    url=url,
                )

        return d.addBoth(done)
