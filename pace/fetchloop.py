"""
The fetch loop: while the worker accepts jobs, wait for a free slot, a
throttle token and writable results, fetch as many jobs as may start, hand
them over, and go round again. Redis errors slow it down (with backoff and
jitter) and are reported once, never in a tight loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace.connection import advice, connection_errors, is_transient
from pace.failures import error_text

log = Logger()

#: Jobs asked for in one fetch at most, whatever the free slots.
MAX_BATCH = 1000
#: Backoff after a Redis error reply: from BACKOFF_FIRST doubling up to
#: BACKOFF_TRANSIENT (errors that pass: LOADING, OOM...) or BACKOFF_PERMANENT.
BACKOFF_FIRST = 0.1
BACKOFF_TRANSIENT = 2.0
BACKOFF_PERMANENT = 30.0


def backoff(attempt: int, cap: float, rand: Callable[[], float] = random.random) -> float:
    """
    Seconds to wait before try ``attempt`` (1, 2, ...): exponential, capped,
    with jitter so that a fleet does not retry in step.
    """
    delay = min(cap, BACKOFF_FIRST * 2 ** min(attempt - 1, 30))
    return delay * (0.5 + rand())


class FetchLoop:
    def __init__(
        self,
        fetcher: Any,
        fetch_conn: Any,
        processor: Any,
        books: Any,
        throttle: Any,
        clock: Any,
        *,
        accepting: Callable[[], bool],
        dispatch: Callable[[list[list[bytes]]], None],
        burst: bool,
        on_empty: Callable[[], Any],
        report_error: Callable[[str | None, Failure], Any],
        observer: Callable[[], Any],
        held: Callable[[], list[tuple[int, bytes]]] = list,
    ):
        self._fetcher = fetcher
        self._conn = fetch_conn
        self._processor = processor
        self._books = books
        self._throttle = throttle
        self._clock = clock
        self._accepting = accepting
        self._dispatch = dispatch
        self._burst = burst
        self._on_empty = on_empty
        self._report_error = report_error
        self._observer = observer
        self._held = held
        #: The loop's Deferred while it runs.
        self.current: defer.Deferred | None = None
        self._waiting: defer.Deferred | None = None
        self._reclaim = False
        self._errors = 0
        self._reported: str | None = None
        self._end_waiters: list[defer.Deferred] = []
        self.crashed: Callable[[Failure], None] = lambda f: None

    @property
    def running(self) -> bool:
        return self.current is not None

    def start(self) -> None:
        if self.current is None and self._accepting():
            self.current = self._run()
            self.current.addErrback(self.crashed)
            self.current.addBoth(self._ended)

    def _ended(self, _: Any) -> None:
        self.current = None
        self._waiting = None
        waiters, self._end_waiters = self._end_waiters, []
        for d in waiters:
            d.callback(None)

    def ended(self) -> defer.Deferred:
        """
        Fires once the loop is not running (a fetch already sent included).
        """
        if self.current is None:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._end_waiters.append(d)
        return d

    def interrupt(self) -> None:
        """
        Stop waiting (for a slot, a token, Redis, a blocking pop): the loop
        looks at the worker's state again at once.
        """
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()
        if self._throttle is not None:
            self._throttle.cancel()
        self._fetcher.unblock()

    def _await(self, d: defer.Deferred) -> defer.Deferred:
        self._waiting = d
        return d.addErrback(_cancelled_is_none)

    @defer.inlineCallbacks
    def _run(self) -> Any:
        fetcher, throttle, processor, books = (
            self._fetcher,
            self._throttle,
            self._processor,
            self._books,
        )
        while self._accepting():
            free = processor.free
            if free <= 0:
                yield self._await(processor.wait_for_slot())
                continue
            if books.blocked:
                # Results that Redis refused are still waiting to be written:
                # fetching more would only run jobs whose end is not kept.
                yield self._await(books.writable())
                continue
            wanted = min(free, MAX_BATCH)
            if throttle is not None:
                wanted = yield self._await(throttle.take(wanted))
                if not wanted:
                    continue
                if not self._accepting():
                    throttle.refund(wanted)
                    break
            if self._conn.protocol is None:
                connected = yield self._await(self._conn.connected())
                if connected is None:
                    if throttle is not None:
                        throttle.refund(wanted)
                    continue
            self._waiting = None
            if self._reclaim:
                self._reclaim = False
                # Interruptible like any wait: on a network that went dead
                # it would otherwise hold a shutdown until the reply
                # deadline. Not finished, it is tried again next time.
                yield self._await(self._reclaim_orphans())
            try:
                batches = yield fetcher.fetch(wanted, not self._burst)
            except Exception:
                if throttle is not None:
                    throttle.refund(wanted)
                yield self._failed(Failure())
                continue
            if self._errors:
                log.info("pace: fetching from {queues} again", queues=fetcher.queues)
                self._errors = 0
                self._reported = None
            got = sum(map(len, batches))
            observer = self._observer()
            if observer is not None:
                observer.fetched(got)
            if throttle is not None:
                throttle.refund(wanted - got)
            if not got and self._burst:
                # Burst mode: the queues are empty; finish what runs and stop.
                self._on_empty()
                break
            self._dispatch(batches)
            if throttle is not None and got:
                throttle.started()

    @defer.inlineCallbacks
    def _reclaim_orphans(self) -> Any:
        known: dict[tuple[int, bytes], int] = {}
        known_jobs = self._processor.running_payloads() + self._books.unacknowledged()
        # Jobs fetched and held while paused are ours too, not orphans.
        for pair in known_jobs + self._held():
            known[pair] = known.get(pair, 0) + 1
        try:
            yield self._fetcher.reclaim(known)
        except defer.CancelledError:
            self._reclaim = True  # interrupted (pause, shutdown): next time
        except Exception:
            self._reclaim = True
            log.warn("pace: could not check for jobs lost in transit; will retry")

    def _failed(self, failure: Failure) -> defer.Deferred | None:
        self._errors += 1
        queues = self._fetcher.queues
        if failure.check(*connection_errors()) or self._conn.drop_if_not_master(failure):
            # A fetch whose reply was lost may have moved jobs into our
            # processing lists that we never saw: look once reconnected.
            self._reclaim = self._fetcher.processing is not None
            if self._errors == 1:
                log.warn(
                    "pace: fetch from {queues} interrupted ({error}); waiting for Redis",
                    queues=queues,
                    error=failure.getErrorMessage(),
                )
            return None
        transient = is_transient(failure)
        text = error_text(failure)
        if text != self._reported:
            # Once per distinct error, not once a second.
            self._reported = text
            hint = advice(failure)
            if transient:
                log.warn(
                    "pace: Redis cannot serve fetches from {queues} now ({error}); "
                    "waiting and trying again",
                    queues=queues,
                    error=text,
                )
            else:
                log.error(
                    "pace: fetch from {queues} failed: {error}{hint}; trying again with backoff",
                    queues=queues,
                    error=text,
                    hint=f" ({hint})" if hint else "",
                )
                self._report_error(None, failure)
        cap = BACKOFF_TRANSIENT if transient else BACKOFF_PERMANENT
        d: defer.Deferred = defer.Deferred()
        call = self._clock.callLater(backoff(self._errors, cap), d.callback, None)
        d.addErrback(lambda f: call.cancel() if call.active() else None)
        return self._await(d)


def _cancelled_is_none(failure: Failure) -> None:
    failure.trap(defer.CancelledError)
