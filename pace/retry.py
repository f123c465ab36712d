"""
Retries: a failed attempt goes back through resque-scheduler's delayed
schedule after an exponential, jittered delay. The attempt number travels in
the payload as ``"pace_attempt"`` (absent on the first run), a key Resque and
its tools ignore.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import keys, schedule
from pace.failures import ShutdownDeadline
from pace.payload import MalformedJob

log = Logger()

#: The payload key that carries the attempt number (1 when absent).
ATTEMPT_KEY = "pace_attempt"
#: How often a retry's write into the schedule is tried again when Redis
#: fails; after that the attempt stays in the processing list and runs again
#: when it is reclaimed (never lost).
WRITE_TRIES = 5


class NoRetry(Exception):
    """
    Raise this (or a subclass) from a job to fail it for good now, whatever
    its retry policy says.
    """


class Retry:
    """
    A retry policy. ``attempts`` counts every run, the first included; the
    delay before attempt ``n + 1`` is ``base * factor ** (n - 1)`` seconds,
    at most ``max_delay``, and with ``jitter`` a random point in its upper
    half, so a burst of failures does not come back in lockstep. Only
    failures that are instances of ``retry_on`` are retried.
    """

    def __init__(
        self,
        attempts: int = 5,
        base: float = 1.0,
        factor: float = 2.0,
        max_delay: float = 3600,
        jitter: bool = True,
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
        *,
        random: Any = None,
    ):
        if type(attempts) is not int or attempts < 1:
            raise ValueError(f"attempts must be a whole number >= 1, not {attempts!r}")
        for name, value in (("base", base), ("max_delay", max_delay)):
            if not _number(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if not _number(factor) or factor < 1:
            raise ValueError(f"factor must be a finite number >= 1, not {factor!r}")
        if not isinstance(retry_on, tuple):
            retry_on = (retry_on,)
        if not retry_on or not all(
            isinstance(t, type) and issubclass(t, BaseException) for t in retry_on
        ):
            raise TypeError(f"retry_on must be exception classes, not {retry_on!r}")
        self.attempts = attempts
        self.base = float(base)
        self.factor = float(factor)
        self.max_delay = float(max_delay)
        self.jitter = jitter
        self.retry_on = retry_on
        self._random = random if random is not None else _random

    def __repr__(self) -> str:
        return (
            f"pace.Retry(attempts={self.attempts}, base={self.base}, factor={self.factor}, "
            f"max_delay={self.max_delay}, jitter={self.jitter})"
        )

    def delay(self, attempt: int) -> float:
        """
        Seconds to wait after failed attempt ``attempt`` (1 for the first).
        """
        try:
            delay = self.base * self.factor ** (attempt - 1)
        except OverflowError:
            delay = math.inf
        delay = min(delay, self.max_delay)
        if self.jitter:
            delay = self._random.uniform(delay / 2, delay)
        return delay

    def retries(self, failure: Failure, attempt: int) -> bool:
        """
        Whether failed attempt ``attempt`` runs again.
        """
        if attempt >= self.attempts:
            return False
        if failure.check(NoRetry, MalformedJob, ShutdownDeadline):
            return False
        return failure.check(*self.retry_on) is not None


_random = random.Random()


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def attempt_of(job: dict | None) -> int:
    """
    The attempt a job is on: 1 for a first run.
    """
    if job is None:
        return 1
    n = job.get(ATTEMPT_KEY, 1)
    return n if type(n) is int and n >= 1 else 1


def retry_payload(job: dict, queue: str, attempt: int) -> str:
    """
    The schedule entry for attempt ``attempt`` of ``job``: its keys kept,
    the attempt number set, "queue" last.
    """
    extra = {k: v for k, v in job.items() if k not in ("class", "args", "queue", ATTEMPT_KEY)}
    extra[ATTEMPT_KEY] = attempt
    return schedule.delayed_payload(job["class"], job["args"], queue, extra)


def schedule_retry(
    conn: Any,
    clock: Any,
    job: dict,
    queue: str,
    delay: float,
    ack: tuple[str, str, bytes] | None = None,
) -> defer.Deferred:
    """
    Put the next attempt of ``job`` into the schedule ``delay`` seconds from
    now. With ``ack`` (processing list, worker id, raw payload) the failed
    attempt leaves the processing list and counts as processed in the same
    step. Transient errors are retried a few times. Fires with the timestamp
    (0 when there was nothing to acknowledge: the job was already requeued).
    """
    timestamp = schedule.timestamp_of(clock.seconds() + delay)
    payload = retry_payload(job, queue, attempt_of(job) + 1)
    full_ack = None
    if ack is not None:
        processing, worker, raw = ack
        full_ack = (processing, keys.stat("processed"), keys.stat(f"processed:{worker}"), raw)

    def attempt(tries: int) -> defer.Deferred:
        d = schedule.push(conn, timestamp, payload, full_ack)
        d.addErrback(again, tries)
        return d

    def again(failure: Failure, tries: int) -> Any:
        if tries >= WRITE_TRIES:
            log.error(
                "pace: could not schedule the retry of a {job_class} job ({error}); "
                "it stays in the processing list and runs again once reclaimed",
                job_class=job["class"],
                error=failure.getErrorMessage(),
            )
            return failure
        return _later(clock, tries, attempt)

    return attempt(1)


def _later(clock: Any, tries: int, attempt: Any) -> defer.Deferred:
    from twisted.internet.task import deferLater

    return deferLater(clock, float(tries), attempt, tries + 1)


def with_attempts(record: str, attempts: int) -> str:
    """
    A Resque failure record with the number of attempts made added.
    """
    data = json.loads(record)
    data["attempts"] = attempts
    return json.dumps(data)


def policy_for(handler: Any, job: dict | None, default: Retry | None) -> Retry | None:
    """
    The policy for ``job``: its class's, where the handler (a JobRouter)
    has one, else the worker's.
    """
    if job is not None:
        per_class = getattr(handler, "retry_for", None)
        if per_class is not None:
            policy = per_class(job["class"])
            if policy is not None:
                return policy
    return default


def judge(policy: Retry | None, failure: Failure, job: dict | None) -> float | None:
    """
    Mark ``failure`` for error hooks (``pace_attempt``, ``pace_last_attempt``,
    and ``pace_retry_in`` seconds when it runs again) and return the delay
    before the next attempt, or None when this attempt was the last.
    Malformed payloads (no ``job``) are never retried.
    """
    attempt = attempt_of(job)
    failure.pace_attempt = attempt  # type: ignore[attr-defined]
    failure.pace_last_attempt = True  # type: ignore[attr-defined]
    if policy is None or job is None or not policy.retries(failure, attempt):
        return None
    delay = policy.delay(attempt)
    failure.pace_last_attempt = False  # type: ignore[attr-defined]
    failure.pace_retry_in = delay  # type: ignore[attr-defined]
    return delay


class Retrier:
    """
    The worker side of retries, for `pace.processor`: on a failed attempt,
    schedule the next one (and acknowledge this one) or let the failure be
    recorded, with the attempt count.
    """

    def __init__(
        self,
        policy: Retry | None,
        conn: Any,
        processing: list[str] | None,
        worker_id: str,
        short_queues: list[str | None],
        books: Any,
        clock: Any,
        handler: Any = None,
    ):
        self.policy = policy
        self.handler = handler
        # Retries go through resque-scheduler's schedule, which only knows
        # Resque queues (resque:queue:<name>); jobs of other queues fail.
        self._resque = [q is not None for q in short_queues]
        short_queues = [q or "" for q in short_queues]
        self._conn = conn
        self._processing = processing
        self._worker = worker_id
        self._short = short_queues
        self._books = books
        self._clock = clock

    def retry(self, qi: int, raw: bytes, job: dict | None, failure: Failure) -> Any:
        """
        A Deferred (the retry being written) when the attempt runs again,
        else None. Marks ``failure`` for the error hooks either way.
        """
        policy = policy_for(self.handler, job, self.policy)
        if not self._resque[qi]:
            policy = None
        delay = judge(policy, failure, job)
        if delay is None:
            return None
        assert job is not None
        queue = self._short[qi]
        assert queue is not None  # Worker(retry=) refuses whole-key queues
        ack = (self._processing[qi], self._worker, raw) if self._processing is not None else None
        d = schedule_retry(self._conn, self._clock, job, queue, delay, ack)
        if ack is None:
            d.addCallbacks(
                lambda _: self._books.settled(qi, raw), self._lost, errbackArgs=(qi, raw, job)
            )
        else:
            # Logged by schedule_retry; the attempt stays in the processing
            # list and runs again once reclaimed.
            d.addErrback(lambda f: None)
        return d

    def _lost(self, failure: Failure, qi: int, raw: bytes, job: dict) -> None:
        # At most once (reliable=False): a retry that cannot be scheduled
        # fails the job for good rather than dropping it silently.
        from pace.failures import failure_record

        record = failure_record(raw, failure, self._worker, self._short[qi] or "", job)
        self._books.settled(qi, raw, failed=True, record=record)

    def annotate(self, record: str, job: dict | None, failure: Failure) -> str:
        """
        The failure record of a last attempt, with ``"attempts"`` when a
        policy applied.
        """
        if policy_for(self.handler, job, self.policy) is None:
            return record
        if not hasattr(failure, "pace_attempt"):
            return record
        return with_attempts(record, getattr(failure, "pace_attempt", attempt_of(job)))
