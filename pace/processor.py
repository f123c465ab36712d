"""
Running jobs: decode a payload, call the handler, hold one of
``concurrency`` slots until what it returned settles (with ``job_timeout``),
then hand the result to the bookkeeper and the hooks. Whatever a payload or
a handler does, it ends as a succeeded or a failed job, never as an error of
the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutine
from time import monotonic
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace.config import short_queue_name
from pace.failures import (
    RECORD_PAYLOAD_PREFIX,
    JobTimeout,
    ShutdownDeadline,
    error_text,
    failure_record,
)
from pace.hooks import Hooks
from pace.payload import MAX_PAYLOAD_BYTES, as_text, decode

log = Logger()

Handler = Callable[[dict], Any]

#: No keyword arguments for the settle callbacks (one shared, never changed).
_NO_KW: dict[str, Any] = {}


class Processor:
    """
    The jobs in flight of one worker.
    """

    def __init__(
        self,
        worker_id: str,
        queues: list[str],
        books: Any,
        hooks: Hooks,
        *,
        concurrency: int,
        job_timeout: float | None,
        record_failures: bool,
        clock: Any,
        reactor: Any,
        max_payload_bytes: int | None = MAX_PAYLOAD_BYTES,
    ):
        self.worker_id = worker_id
        self.max_payload_bytes = max_payload_bytes
        self.queues = queues
        self._short = [short_queue_name(q) for q in queues]
        self.concurrency = concurrency
        self.job_timeout = job_timeout
        self.record_failures = record_failures
        self._books = books
        self._hooks = hooks
        self._clock = clock
        self._reactor = reactor
        self.handler: Handler | None = None
        #: Told of every job settled (pace.metrics); None costs nothing.
        self.observer: Any = None
        #: ``fn(raw, ok)`` for every job settled (the circuit breaker).
        self.on_settled: Callable[[bytes, bool], Any] | None = None
        #: Retries failed attempts (pace.retry.Retrier); None: never.
        self.retrier: Any = None
        #: Told of every job that starts and settles (the registry's
        #: "working" record): job_started(seq, qi, raw), job_settled(seq).
        self.watcher: Any = None
        self._running: dict[int, tuple[int, bytes, defer.Deferred]] = {}
        self._settling: set[defer.Deferred] = set()
        self._cut: set[int] = set()
        self._seq = 0
        self._slot: defer.Deferred | None = None
        self._wake_scheduled = False

    @property
    def in_flight(self) -> int:
        """
        Jobs holding a slot: handlers not yet settled, and hooks of jobs that
        settled but whose hooks have not.
        """
        return len(self._running) + len(self._settling)

    @property
    def free(self) -> int:
        return self.concurrency - len(self._running) - len(self._settling)

    def running_payloads(self) -> list[tuple[int, bytes]]:
        return [(qi, raw) for qi, raw, _ in self._running.values()]

    # -- running one job ---------------------------------------------------

    def run(self, qi: int, raw: bytes) -> None:
        t0 = monotonic() if self.observer is not None else 0.0
        try:
            job = decode(raw, self.max_payload_bytes)
        except Exception:
            # Whatever decoding raises (malformed JSON, nesting deep enough
            # for a RecursionError, memory) fails this job only.
            self._failed(Failure(), qi, raw, None, t0)
            return
        try:
            result = self.handler(job)  # type: ignore[misc]
        except Exception:
            self._failed(Failure(), qi, raw, job, t0)
            return
        # The common cases first, by type: a Deferred's isinstance goes
        # through ABC machinery (it is an Awaitable), three calls a job.
        if type(result) is not defer.Deferred:
            if result is None:
                self._succeeded(qi, raw, job, t0)
                return
            if iscoroutine(result):
                result = defer.Deferred.fromCoroutine(result)
            elif not isinstance(result, defer.Deferred):
                self._succeeded(qi, raw, job, t0)
                return
        if self.job_timeout is not None:
            result.addTimeout(self.job_timeout, self._clock)
        self._seq += 1
        seq = self._seq
        self._running[seq] = (qi, raw, result)
        if self.watcher is not None:
            self.watcher.job_started(seq, qi, raw)
        result.addCallbacks(
            self._settled_ok, self._settled_failed, (seq, job, t0), _NO_KW, (seq, job, t0), _NO_KW
        )

    def _settled_ok(self, _: Any, seq: int, job: dict, t0: float) -> None:
        entry = self._running.pop(seq, None)
        if self.watcher is not None:
            self.watcher.job_settled(seq)
        if entry is not None:
            self._succeeded(entry[0], entry[1], job, t0)
            self._slot_freed()

    def _settled_failed(self, failure: Failure, seq: int, job: dict, t0: float) -> None:
        entry = self._running.pop(seq, None)
        if self.watcher is not None:
            self.watcher.job_settled(seq)
        if entry is None:
            # Put back in its queue at the shutdown deadline, then cancelled:
            # not a failure of the job.
            return
        if seq in self._cut:
            self._cut.discard(seq)
            failure = Failure(
                ShutdownDeadline(
                    "job still running at the shutdown deadline: cancelled and failed, "
                    "not put back (at most once)"
                )
            )
        elif failure.check(defer.TimeoutError) and self.job_timeout is not None:
            failure = Failure(JobTimeout(self.job_timeout))
        self._failed(failure, entry[0], entry[1], job, t0)
        self._slot_freed()

    def _succeeded(self, qi: int, raw: bytes, job: dict, t0: float) -> None:
        if self.observer is not None:
            self.observer.settled(qi, job["class"], True, monotonic() - t0)
        self._books.settled(qi, raw)
        if self.on_settled is not None:
            self.on_settled(raw, True)
        hooks = self._hooks.run("processed", job)
        if hooks is not None:
            self._hold_slot(hooks)

    def _failed(
        self, failure: Failure, qi: int, raw: bytes, job: dict | None, t0: float = 0.0
    ) -> None:
        klass = job["class"] if job else None
        if self.observer is not None:
            self.observer.settled(qi, klass, False, monotonic() - t0)
        queue = self._short[qi]
        log.warn(
            "pace: job {job_class} from {queue} failed: {error}",
            job_class=klass,
            queue=queue,
            error=error_text(failure),
        )
        # For error hooks that report where a job came from (pace.sentry).
        failure.pace_queue = queue  # type: ignore[attr-defined]
        if self.on_settled is not None:
            # Retried or not, a failed attempt counts for the circuit.
            self.on_settled(raw, False)
        if self.retrier is not None:
            # Retries: the attempt may go back through the schedule instead.
            retrying = self.retrier.retry(qi, raw, job, failure)
            if retrying is not None:
                self._hold_slot(retrying)
                self._hold_slot(self._hooks.run("error", _hook_text(raw, job), failure))
                return
        record = None
        if self.record_failures:
            try:
                record = failure_record(raw, failure, self.worker_id, queue, job)
                if self.retrier is not None:
                    record = self.retrier.annotate(record, job, failure)
            except Exception:
                log.failure("pace: could not build the failure record of a job from {q}", q=queue)
        self._books.settled(qi, raw, failed=True, record=record)
        self._hold_slot(self._hooks.run("error", _hook_text(raw, job), failure))

    def report_error(self, json: str | None, failure: Failure) -> defer.Deferred | None:
        return self._hooks.run("error", json, failure)

    # -- slots -------------------------------------------------------------

    def _hold_slot(self, hooks: defer.Deferred | None) -> None:
        # Hooks that return Deferreds keep the job's slot until they settle.
        if hooks is not None and not hooks.called:
            self._settling.add(hooks)
            hooks.addBoth(self._hooks_settled, hooks)

    def _hooks_settled(self, _: Any, d: defer.Deferred) -> None:
        self._settling.discard(d)
        self._slot_freed()

    def wait_for_slot(self) -> defer.Deferred:
        """
        Fires once a slot is free again (cancellable).
        """
        d = self._slot = defer.Deferred()
        return d

    def _slot_freed(self) -> None:
        # Wake a loop that waits for a slot at the end of this reactor turn,
        # not at once: the jobs that finish in the same turn then share one
        # fetch instead of each asking Redis for a single job.
        if self._slot is not None and not self._wake_scheduled:
            self._wake_scheduled = True
            self._reactor.callLater(0, self._wake)

    def _wake(self) -> None:
        self._wake_scheduled = False
        slot, self._slot = self._slot, None
        if slot is not None and not slot.called:
            slot.callback(None)

    # -- at shutdown -------------------------------------------------------

    def settled_within(self, seconds: float) -> defer.Deferred:
        """
        Fires once every job and its hooks settled, or after ``seconds``.
        `hurry` fires it now.
        """
        d: defer.Deferred = defer.Deferred()
        self._grace = d

        def check(_: Any = None) -> None:
            if d.called:
                return
            if not self._running and not self._settling:
                d.callback(None)
                return
            waits = [entry[2] for entry in self._running.values()] + list(self._settling)
            defer.DeferredList(waits, consumeErrors=False).addBoth(check)

        deadline = self._clock.callLater(seconds, lambda: d.called or d.callback(None))
        d.addBoth(lambda r: deadline.cancel() if deadline.active() else None)
        check()
        return d

    def hurry(self) -> None:
        grace = getattr(self, "_grace", None)
        if grace is not None and not grace.called:
            grace.callback(None)

    def take_late(self) -> list[tuple[int, bytes]]:
        """
        Reliable mode at the deadline: the jobs still running, to be put
        back; they are cancelled, and their end is no longer a result.
        """
        late = list(self._running.values())
        self._running.clear()
        for _, _, d in late:
            d.cancel()
        return [(qi, raw) for qi, raw, _ in late]

    def cut_late(self) -> int:
        """
        At most once at the deadline: cancel the jobs still running; each
        fails with a record, and none goes back.
        """
        late = list(self._running.items())
        for seq, _ in late:
            self._cut.add(seq)
        for _, (_, _, d) in late:
            d.cancel()
        return len(late)


def _hook_text(raw: bytes, job: dict | None) -> str:
    # Error hooks get the payload as text. A malformed one can be anything
    # up to what Redis holds (hundreds of MB, not UTF-8): its hooks get what
    # its failure record keeps, so that reporting it costs the reactor
    # milliseconds.
    if job is None and len(raw) > RECORD_PAYLOAD_PREFIX:
        return as_text(raw, RECORD_PAYLOAD_PREFIX)
    return as_text(raw)
