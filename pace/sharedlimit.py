"""
A rate limit shared by every process that names it: the schedule lives in
Redis (one key per limit) and each reservation is one EVALSHA that books the
next free slots on the server's clock; the wait until a slot is a local
timer, so nothing polls Redis.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import keys
from pace.config import RedisURL, check_number, resolve_redis_url
from pace.connection import RedisConnection, is_transient
from pace.lua import RESERVE

log = Logger()

#: Slots are booked this much slower than the rate: a one-second window then
#: holds at most the rate even when starts come up to ~30 ms after their slots.
HEADROOM = 0.97
#: A start more than this after its slot (a busy reactor) takes a new slot
#: instead, up to MAX_REBOOKS times, so that late starts never bunch up.
MAX_LATE = 0.015
MAX_REBOOKS = 3
#: How fast the local clock may drift from the server's (NTP slews 500 ppm).
DRIFT = 5e-4
#: A reservation books at most this long a run of slots for one process.
BATCH_SECONDS = 0.05
MAX_BATCH = 50
#: Deadline for one reservation's reply; then it is made again (a booked
#: slot that nobody uses is lost, which can only slow the fleet down).
REPLY_TIMEOUT = 5.0
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
#: How long the schedule key outlives its last slot, in milliseconds.
KEY_MARGIN_MS = 60_000


class Slot(NamedTuple):
    """
    One booked slot in local time: ``at`` is when to start (never before
    the slot), ``earliest`` the earliest the slot can be, in local time.
    """

    at: float
    earliest: float


class SharedLimit:
    """
    At most ``per_second`` grants a second across every process that uses a
    limit called ``name`` on the same Redis. ``take()`` fires when the caller
    may go; `pace.Worker` takes one per job before starting it.
    """

    def __init__(
        self,
        name: str,
        per_second: float,
        redis_url: str | None = None,
        *,
        clock: Any = None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a shared limit needs a non-empty name, not {name!r}")
        check_number("per_second", per_second)
        self.name = name
        self.per_second = float(per_second)
        #: Seconds between two slots of the fleet's schedule.
        self._interval_us = max(1, int(round(1e6 / (self.per_second * HEADROOM))))
        self.interval = self._interval_us / 1e6
        #: How many jobs a worker books at once.
        self.batch = max(1, min(MAX_BATCH, int(self.per_second * BATCH_SECONDS)))
        self._redis_url = redis_url
        self._url: RedisURL | None = None
        self._clock = clock
        self._conn: RedisConnection | None = None
        self._takers: list[tuple[defer.Deferred, int]] = []
        self._flush_call: Any = None
        self._down_since: float | None = None
        # Bounds on (local clock - server clock): each reply says the server
        # read its clock between our send and our receive.
        self._offset_low: float | None = None
        self._offset_high = 0.0
        self._offset_at = 0.0

    def __repr__(self) -> str:
        return f"<pace.SharedLimit {self.name!r} {self.per_second:g}/s>"

    # -- wiring --------------------------------------------------------------

    def use_url(self, url: RedisURL) -> None:
        """
        Use ``url`` when no URL was given explicitly (a worker passes its own).
        """
        if self._redis_url is None and self._conn is None:
            self._url = url

    def _reactor(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor

            self._clock = reactor
        return self._clock

    def _connection(self) -> RedisConnection:
        if self._conn is None:
            url = self._url or resolve_redis_url(self._redis_url)
            self._url = url
            self._conn = RedisConnection(url, f"shared limit {self.name}")
        return self._conn

    def disconnect(self) -> defer.Deferred:
        conn, self._conn = self._conn, None
        return conn.disconnect() if conn is not None else defer.succeed(None)

    # -- taking --------------------------------------------------------------

    def take(self) -> defer.Deferred:
        """
        A Deferred that fires (with None) once this caller may go. Takes made
        in the same reactor turn share one reservation.
        """
        d: defer.Deferred = defer.Deferred(self._cancel_take)
        self._queue_take(d, 0)
        return d

    def _queue_take(self, d: defer.Deferred, rebooks: int) -> None:
        self._takers.append((d, rebooks))
        if self._flush_call is None:
            self._flush_call = self._reactor().callLater(0, self._flush)

    def _cancel_take(self, d: defer.Deferred) -> None:
        self._takers = [t for t in self._takers if t[0] is not d]

    def _flush(self) -> None:
        self._flush_call = None
        takers, self._takers = self._takers, []
        if not takers:
            return
        self.reserve(len(takers)).addCallbacks(self._grant, self._refuse, (takers,), {}, (takers,))

    def _grant(self, slots: list[Slot], takers: list) -> None:
        clock = self._reactor()
        now = clock.seconds()
        for (d, rebooks), slot in zip(takers, slots, strict=True):
            if not d.called:
                call = clock.callLater(max(0.0, slot.at - now), self._fire, d, slot, rebooks)
                d.addErrback(_cancel_call, call)

    def _fire(self, d: defer.Deferred, slot: Slot, rebooks: int) -> None:
        if d.called:
            return
        if rebooks < MAX_REBOOKS and self.late(slot):
            self._queue_take(d, rebooks + 1)
        else:
            d.callback(None)

    def late(self, slot: Slot) -> bool:
        """
        True if starting now could be more than `MAX_LATE` after ``slot``:
        the caller should book a new one rather than bunch up with the next.
        """
        return self._reactor().seconds() - slot.earliest > MAX_LATE

    def _refuse(self, failure: Failure, takers: list) -> None:
        for d, _ in takers:
            if not d.called:
                d.errback(failure)

    def reserve(self, n: int) -> defer.Deferred:
        """
        Book ``n`` consecutive slots; fires with a `Slot` for each (local
        times, on the clock's ``seconds()``), earliest first. While Redis cannot be reached
        it keeps trying, so the caller waits; a reservation made after an
        outage starts from the server's present, so no burst follows one.
        Fails only when Redis refuses for good (a permission, a wrong type).
        """
        if type(n) is not int or n < 1:
            raise ValueError(f"n must be a whole number >= 1, not {n!r}")
        pending: dict[str, Any] = {}

        def cancel(_: defer.Deferred) -> None:
            for what in pending.values():
                if what.active() if hasattr(what, "active") else not what.called:
                    what.cancel()

        result: defer.Deferred = defer.Deferred(cancel)
        self._attempt(n, result, pending, 0)
        return result

    def _attempt(self, n: int, result: defer.Deferred, pending: dict, tries: int) -> None:
        pending.pop("retry", None)
        if result.called:
            return
        conn = self._connection()
        sent = self._reactor().seconds()
        d = RESERVE(conn, [keys.shared_limit(self.name)], [self._interval_us, n, KEY_MARGIN_MS])
        d.addTimeout(REPLY_TIMEOUT, self._reactor())
        pending["reply"] = d
        d.addCallbacks(
            self._booked, self._failed, (n, result, sent), {}, (n, result, pending, tries)
        )

    def _observe(self, sent: float, received: float, server_now: float) -> None:
        low, high = sent - server_now, received - server_now
        if self._offset_low is None or high < self._offset_low or low > self._offset_high:
            # The first reply, or a clock stepped: start over.
            self._offset_low, self._offset_high = low, high
        else:
            drift = DRIFT * (received - self._offset_at)
            self._offset_low = max(self._offset_low - drift, low)
            self._offset_high = min(self._offset_high + drift, high)
        self._offset_at = received

    def _booked(self, reply: Any, n: int, result: defer.Deferred, sent: float) -> None:
        if self._down_since is not None:
            log.info(
                "pace: shared limit {name} reachable again after {s:.1f}s",
                name=self.name,
                s=self._reactor().seconds() - self._down_since,
            )
            self._down_since = None
        server_now, first = int(reply[0]) / 1e6, int(reply[1]) / 1e6
        self._observe(sent, self._reactor().seconds(), server_now)
        low, high = self._offset_low, self._offset_high
        assert low is not None
        if not result.called:
            result.callback(
                [
                    Slot(first + i * self.interval + high, first + i * self.interval + low)
                    for i in range(n)
                ]
            )

    def _failed(
        self, failure: Failure, n: int, result: defer.Deferred, pending: dict, tries: int
    ) -> None:
        if result.called:
            return
        if not is_transient(failure):
            log.error(
                "pace: shared limit {name}: Redis refused the reservation: {error}",
                name=self.name,
                error=failure.getErrorMessage(),
            )
            result.errback(failure)
            return
        clock = self._reactor()
        if self._down_since is None:
            self._down_since = clock.seconds()
            log.warn(
                "pace: shared limit {name}: cannot reach Redis at {url} ({error}); "
                "jobs wait until it answers",
                name=self.name,
                url=self._url.redacted() if self._url else "?",
                error=failure.getErrorMessage() or failure.type.__name__,
            )
        delay = RETRY_DELAYS[min(tries, len(RETRY_DELAYS) - 1)]
        pending["retry"] = clock.callLater(delay, self._attempt, n, result, pending, tries + 1)


def _cancel_call(failure: Failure, call: Any) -> Failure:
    if call.active():
        call.cancel()
    return failure
