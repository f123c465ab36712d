"""
The worker: takes jobs from the fetcher into at most ``concurrency`` slots,
hands each to the handler, and owns the lifecycle around them (start, pause,
resume, graceful shutdown with a deadline, hooks).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from inspect import iscoroutine
from time import monotonic
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import keys
from pace.bookkeeping import Bookkeeper
from pace.catchall import catch_all
from pace.config import expand_queue_name, resolve_redis_url, short_queue_name
from pace.connection import CONNECTION_ERRORS, RedisConnection
from pace.failures import error_text, failure_record
from pace.fetch import Fetcher
from pace.hooks import Hooks, scoped
from pace.mover import Mover
from pace.payload import MalformedJob, as_text, decode
from pace.registry import Registry
from pace.retry import Retry, judge, policy_for, schedule_retry, with_attempts
from pace.throttle import Throttle
from pace.throughput import ThroughputLog

log = Logger()

Handler = Callable[[dict], Any]

#: Jobs asked for in one fetch at most, whatever the free slots.
MAX_BATCH = 1000
#: How long shutdown waits for Redis to take its last writes.
REDIS_SHUTDOWN_SECONDS = 5.0

_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


class Worker:
    """
    Processes Resque jobs from ``queue`` (a name or a list of names in
    priority order; default ``$PACE_QUEUE``) inside the Twisted reactor.
    """

    _class_hooks = Hooks()

    def __init__(
        self,
        queue: str | list[str] | None = None,
        *,
        jobs_per_second: float | None = None,
        concurrency: int = 100,
        redis_url: str | None = None,
        grace: float = 25,
        reliable: bool = True,
        job_timeout: float | None = None,
        record_failures: bool = True,
        heartbeat_ttl: float = 30,
        burst: bool = False,
        log_interval: float | None = 60,
        clock: Any = None,
        retry: Retry | None = None,
    ):
        names = _queue_names(queue)
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
        _check_seconds("grace", grace, allow_zero=True)
        if job_timeout is not None:
            _check_seconds("job_timeout", job_timeout)
        _check_seconds("heartbeat_ttl", heartbeat_ttl)
        if log_interval is not None:
            _check_seconds("log_interval", log_interval)
        from twisted.internet import reactor

        self._reactor = reactor
        if clock is None:
            clock = reactor
        self.queues = [expand_queue_name(n) for n in names]
        self.queue = self.queues[0]
        self.url = resolve_redis_url(redis_url)
        self.concurrency = concurrency
        self.grace = grace
        self.reliable = reliable
        self.job_timeout = job_timeout
        self.record_failures = record_failures
        self.heartbeat_ttl = heartbeat_ttl
        #: Process what the queues hold now, then stop (for tests, scripts).
        self.burst = burst
        #: Seconds between throughput log lines (None: none).
        self.log_interval = log_interval
        self._throughput: ThroughputLog | None = None
        self._registry: Registry | None = None
        #: Set by pace.metrics: told of every job settled and every fetch.
        self._probe: Any = None
        self._clock = clock
        self._throttle = Throttle(jobs_per_second, clock) if jobs_per_second is not None else None
        short = ",".join(short_queue_name(q) for q in self.queues)
        #: Resque's worker name: host:pid:queues.
        self.id = f"{socket.gethostname()}:{os.getpid()}:{short}"
        # Unique even for several workers on the same queues in one process.
        self._token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._hooks = Hooks(parent=type(self)._class_hooks)
        self._state = _NEW
        self._paused = False
        self._resume_call: Any = None
        self._handler: Handler | None = None
        self._running: dict[int, tuple[int, bytes, defer.Deferred]] = {}
        self._settling: set[defer.Deferred] = set()
        self._unstarted: list[tuple[int, list[bytes]]] = []
        self._seq = 0
        self._loop: defer.Deferred | None = None
        self._waiting: defer.Deferred | None = None
        self._drained: defer.Deferred | None = None
        self._wake_scheduled = False
        self._reclaim = False
        self._stop_waiters: list[defer.Deferred] = []
        self._outcome: Any = None
        self._start_done: defer.Deferred | None = None
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a pace.Retry, not {retry!r}")
        #: The retry policy for every job (a JobRouter's per-class ones win).
        self.retry = retry
        self._mover: Mover | None = None
        self._hooks.run("initialize", self.queue)

    def __repr__(self) -> str:
        return f"<pace.Worker {self.id} {self._state} on {self.url.redacted()}>"

    # -- hooks -----------------------------------------------------------

    @scoped
    def add_hook(hooks: Hooks, event: str, fn: Callable[..., Any]) -> None:  # noqa: N805
        """
        Add a hook for ``event``: on the class, for every worker; on a
        worker, for that worker only.
        """
        hooks.add(event, fn)

    @scoped
    def clear_hooks(hooks: Hooks) -> None:  # noqa: N805
        """
        Remove the hooks added at this level (class or worker).
        """
        hooks.clear()

    # -- state -----------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def in_flight(self) -> int:
        """
        Jobs holding a slot: handlers not yet settled, and hooks of jobs
        that settled but whose hooks have not.
        """
        return len(self._running) + len(self._settling)

    @property
    def running(self) -> bool:
        return self._state == _RUNNING

    # -- start -----------------------------------------------------------

    def start(self, handler: Handler) -> defer.Deferred:
        """
        Start fetching and processing jobs in the running reactor. Returns a
        Deferred that fires once the worker has completely stopped.
        """
        if not callable(handler):
            raise TypeError(f"the handler must be callable, not {handler!r}")
        if self._state != _NEW:
            raise RuntimeError(f"{self!r} has already been started")
        self._state = _RUNNING
        self._handler = handler
        self._commands = RedisConnection(self.url, "commands")
        # Payloads stay bytes: they are decoded once, by the JSON decoder.
        self._fetch_conn = RedisConnection(self.url, "fetch", charset=None)
        processing = (
            [keys.processing_list(self._token, q) for q in self.queues] if self.reliable else None
        )
        self._processing = processing
        self._fetcher = Fetcher(self._fetch_conn, self._commands, self.queues, processing)
        self._books = Bookkeeper(self._commands, processing, self.id)
        catch_all.register(self)
        done = self._start_done = self._when_stopped()
        self._startup().addErrback(self._start_failed)
        return done

    @defer.inlineCallbacks
    def _startup(self) -> Any:
        yield self._await(self._commands.connected())
        yield self._await(self._fetch_conn.connected())
        if self._state != _RUNNING:
            return
        self._registry = Registry(
            self._commands,
            self._token,
            self.id,
            self.queues,
            self._processing,
            self.heartbeat_ttl,
            self._clock,
            busy=lambda: self.in_flight,
        )
        yield self._registry.start()
        # Every worker helps move due delayed jobs (pace.mover).
        self._mover = Mover(self._commands, self._clock, self.id)
        self._mover.start()
        log.info(
            "pace: worker {id} started on {queues} at {url} (concurrency {c}, {mode})",
            id=self.id,
            queues=self.queues,
            url=self.url.redacted(),
            c=self.concurrency,
            mode="reliable" if self.reliable else "at most once",
        )
        yield self._hooks.run("start")
        if self.log_interval is not None:
            self._throughput = ThroughputLog(self, self._books, self.log_interval, self._clock)
            self._throughput.start()
        if self._throttle is not None:
            self._throttle.start()
        self._start_loop()

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError) and self._state != _RUNNING:
            return
        log.error(
            "pace: worker {id} could not start: {error}", id=self.id, error=error_text(failure)
        )
        self._outcome = failure
        self.shutdown()

    def _await(self, d: defer.Deferred) -> defer.Deferred:
        # What the worker waits on between fetches (a free slot, a token,
        # Redis coming back); pause and shutdown cancel it, and the waiter
        # then simply looks at the state again.
        self._waiting = d
        return d.addErrback(_cancelled_is_none)

    # -- the fetch loop ------------------------------------------------------

    def _should_fetch(self) -> bool:
        return self._state == _RUNNING and not self._paused

    def _start_loop(self) -> None:
        if self._loop is None and self._should_fetch():
            self._loop = self._fetch_loop()
            self._loop.addErrback(self._loop_crashed)
            self._loop.addBoth(self._loop_ended)

    @defer.inlineCallbacks
    def _fetch_loop(self) -> Any:
        fetcher, throttle = self._fetcher, self._throttle
        while self._should_fetch():
            free = self.concurrency - len(self._running) - len(self._settling)
            if free <= 0:
                self._drained = defer.Deferred()
                yield self._await(self._drained)
                continue
            wanted = min(free, MAX_BATCH)
            if throttle is not None:
                wanted = yield self._await(throttle.take(wanted))
                if not wanted:
                    continue
                if not self._should_fetch():
                    throttle.refund(wanted)
                    break
            if self._fetch_conn.protocol is None:
                connected = yield self._await(self._fetch_conn.connected())
                if connected is None:
                    if throttle is not None:
                        throttle.refund(wanted)
                    continue
            self._waiting = None
            if self._reclaim:
                self._reclaim = False
                yield self._reclaim_orphans()
            try:
                batches = yield fetcher.fetch(wanted, not self.burst)
            except Exception:
                if throttle is not None:
                    throttle.refund(wanted)
                yield self._fetch_failed(Failure())
                continue
            got = sum(map(len, batches))
            if self._probe is not None:
                self._probe.fetched(got)
            if throttle is not None:
                throttle.refund(wanted - got)
            if not got and self.burst:
                # Burst mode: the queues are empty, so finish what runs and stop.
                self.shutdown()
                break
            self._dispatch(batches)
            if throttle is not None and got:
                throttle.started()

    def _fetch_failed(self, failure: Failure) -> defer.Deferred | None:
        if failure.check(*CONNECTION_ERRORS) or self._fetch_conn.drop_if_not_master(failure):
            # A fetch whose reply was lost may have moved jobs into our
            # processing lists that we never saw: look once reconnected.
            self._reclaim = self._processing is not None
            log.warn(
                "pace: fetch from {url} interrupted ({error}); waiting for Redis",
                url=self.url.redacted(),
                error=failure.getErrorMessage(),
            )
            return None
        # Redis answered with an error (a queue key of the wrong type, a
        # script error): report it and back off instead of spinning.
        log.error(
            "pace: fetch from {queues} failed: {error}; retrying in 1s",
            queues=self.queues,
            error=error_text(failure),
        )
        self._report_error(None, failure)
        d = defer.Deferred()
        call = self._clock.callLater(1.0, d.callback, None)
        d.addErrback(lambda f: call.cancel() if call.active() else None)
        return self._await(d)

    @defer.inlineCallbacks
    def _reclaim_orphans(self) -> Any:
        # Orphans: entries of our processing lists that no job of ours
        # accounts for (running, or settled and not yet acknowledged). The
        # fetch loop is the only writer of new entries and it is here, so
        # nothing new can appear while we look.
        known: dict[tuple[int, bytes], int] = {}
        for qi, raw, _ in self._running.values():
            known[qi, raw] = known.get((qi, raw), 0) + 1
        for pair in self._books.unacknowledged():
            known[pair] = known.get(pair, 0) + 1
        try:
            for qi, key in enumerate(self._processing or []):
                listed = yield self._commands.execute("LRANGE", key, 0, -1)
                orphans = []
                for raw in listed or []:
                    raw = raw.encode() if isinstance(raw, str) else raw
                    if known.get((qi, raw), 0) > 0:
                        known[qi, raw] -= 1
                    else:
                        orphans.append(raw)
                if orphans:
                    log.warn(
                        "pace: {n} jobs fetched from {queue} were lost in transit; "
                        "putting them back",
                        n=len(orphans),
                        queue=self.queues[qi],
                    )
                    yield self._fetcher.requeue(qi, orphans)
        except Exception:
            self._reclaim = True
            log.warn("pace: could not check for jobs lost in transit; will retry")

    def _loop_crashed(self, failure: Failure) -> None:
        # Without a fetch loop the worker would idle forever (say Redis now
        # refuses our password): stop, so that a supervisor restarts us.
        log.critical(
            "pace: the fetch loop of {id} stopped: {error}; shutting the worker down",
            id=self.id,
            error=error_text(failure),
        )
        self._report_error(None, failure)
        if self._outcome is None:
            self._outcome = failure
        self.shutdown()

    def _loop_ended(self, _: Any) -> None:
        self._loop = None
        self._waiting = None

    # -- running jobs ----------------------------------------------------

    def _dispatch(self, batches: list[list[bytes]]) -> None:
        for qi, payloads in enumerate(batches):
            for i, raw in enumerate(payloads):
                if self._state != _RUNNING:
                    # Shutdown began while these were on their way, or inside
                    # a handler of this batch: they go back, in order.
                    self._unstarted.append((qi, payloads[i:]))
                    break
                self._run_job(qi, raw)

    def _run_job(self, qi: int, raw: bytes) -> None:
        t0 = monotonic() if self._probe is not None else 0.0
        try:
            job = decode(raw)
        except MalformedJob:
            self._job_failed(Failure(), qi, raw, None, t0)
            return
        try:
            result = self._handler(job)  # type: ignore[misc]
        except Exception:
            self._job_failed(Failure(), qi, raw, job, t0)
            return
        if iscoroutine(result):
            result = defer.Deferred.fromCoroutine(result)
        elif not isinstance(result, defer.Deferred):
            self._job_succeeded(qi, raw, job, t0)
            return
        if self.job_timeout is not None:
            result.addTimeout(self.job_timeout, self._clock)
        self._seq += 1
        seq = self._seq
        self._running[seq] = (qi, raw, result)
        result.addCallbacks(
            self._settled_ok, self._settled_failed, (seq, job, t0), None, (seq, job, t0), None
        )

    def _settled_ok(self, _: Any, seq: int, job: dict, t0: float) -> None:
        entry = self._running.pop(seq, None)
        if entry is not None:
            self._job_succeeded(entry[0], entry[1], job, t0)
            self._slot_freed()

    def _settled_failed(self, failure: Failure, seq: int, job: dict, t0: float) -> None:
        entry = self._running.pop(seq, None)
        if entry is not None:
            self._job_failed(failure, entry[0], entry[1], job, t0)
            self._slot_freed()
        # else: the job was put back in its queue at the shutdown deadline
        # and cancelled; that is not a failure of the job.

    def _job_succeeded(self, qi: int, raw: bytes, job: dict, t0: float) -> None:
        if self._probe is not None:
            self._probe.settled(qi, job["class"], True, monotonic() - t0)
        self._books.settled(qi, raw)
        hooks = self._hooks.run("processed", job)
        if hooks is not None:
            self._hold_slot(hooks)

    def _job_failed(
        self, failure: Failure, qi: int, raw: bytes, job: dict | None, t0: float = 0.0
    ) -> None:
        if self._probe is not None:
            self._probe.settled(qi, job["class"] if job else None, False, monotonic() - t0)
        queue = self.queues[qi]
        log.warn(
            "pace: job {job_class} from {queue} failed: {error}",
            job_class=job["class"] if job else None,
            queue=queue,
            error=error_text(failure),
        )
        # For error hooks that report where a job came from (pace.sentry).
        failure.pace_queue = short_queue_name(queue)  # type: ignore[attr-defined]
        policy = policy_for(self._handler, job, self.retry)
        delay = judge(policy, failure, job)
        if delay is not None:
            self._retry_later(qi, raw, job, delay)  # type: ignore[arg-type]
            self._hold_slot(self._hooks.run("error", as_text(raw), failure))
            return
        record = None
        if self.record_failures:
            record = failure_record(raw, failure, self.id, short_queue_name(queue), job)
            if policy is not None:
                record = with_attempts(record, failure.pace_attempt)  # type: ignore[attr-defined]
        self._books.settled(qi, raw, failed=True, record=record)
        self._hold_slot(self._hooks.run("error", as_text(raw), failure))

    def _retry_later(self, qi: int, raw: bytes, job: dict, delay: float) -> None:
        # Retries (pace.retry): the next attempt goes into the schedule; in
        # reliable mode this attempt is acknowledged in the same step, and
        # if that cannot be written it stays in the processing list.
        queue = short_queue_name(self.queues[qi])
        ack = (self._processing[qi], self.id, raw) if self._processing is not None else None
        d = schedule_retry(self._commands, self._clock, job, queue, delay, ack)
        if ack is None:
            d.addCallbacks(
                lambda _: self._books.settled(qi, raw), self._retry_lost, (), None, (qi, raw, job)
            )
        else:
            d.addErrback(lambda f: None)  # logged by schedule_retry
        self._hold_slot(d)

    def _retry_lost(self, failure: Failure, qi: int, raw: bytes, job: dict) -> None:
        # At most once (reliable=False): a retry that cannot be scheduled
        # fails the job for good rather than dropping it silently.
        record = None
        if self.record_failures:
            record = failure_record(raw, failure, self.id, short_queue_name(self.queues[qi]), job)
        self._books.settled(qi, raw, failed=True, record=record)

    def _report_error(self, json: str | None, failure: Failure) -> None:
        self._hooks.run("error", json, failure)

    def _hold_slot(self, hooks: defer.Deferred | None) -> None:
        # Hooks that return Deferreds keep the job's slot until they settle.
        if hooks is not None and not hooks.called:
            self._settling.add(hooks)
            hooks.addBoth(self._hooks_settled, hooks)

    def _hooks_settled(self, _: Any, d: defer.Deferred) -> None:
        self._settling.discard(d)
        self._slot_freed()

    def _slot_freed(self) -> None:
        # Wake a loop that waits for a slot at the end of this reactor turn,
        # not at once: the jobs that finish in the same turn then share one
        # fetch instead of each asking Redis for a single job.
        if self._drained is not None and not self._wake_scheduled:
            self._wake_scheduled = True
            self._reactor.callLater(0, self._wake_loop)

    def _wake_loop(self) -> None:
        self._wake_scheduled = False
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.callback(None)

    # -- pause and resume ------------------------------------------------

    def pause(self, seconds: float | None = None) -> bool:
        """
        Stop fetching; jobs in flight go on. With ``seconds``, resume by
        itself after that long. False if already paused.
        """
        if self._paused:
            return False
        if seconds is not None:
            _check_seconds("seconds", seconds)
        self._paused = True
        log.info("pace: worker {id} paused", id=self.id)
        self._interrupt_fetch()
        if seconds is not None:
            self._resume_call = self._clock.callLater(seconds, self.resume)
        return True

    def resume(self) -> bool:
        """
        Start fetching again. False if not paused; never starts a second
        fetch loop.
        """
        if not self._paused:
            return False
        self._paused = False
        if self._resume_call is not None and self._resume_call.active():
            self._resume_call.cancel()
        self._resume_call = None
        log.info("pace: worker {id} resumed", id=self.id)
        self._start_loop()
        return True

    def _interrupt_fetch(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.cancel()
        if self._throttle is not None:
            self._throttle.cancel()
        if self._state != _NEW:
            self._fetcher.unblock()

    # -- shutdown --------------------------------------------------------

    def shutdown(self) -> defer.Deferred:
        """
        Stop: no more fetching, jobs in flight get ``grace`` seconds, jobs
        not started or still running then go back to the head of their
        queues in order, shutdown hooks run, connections close. Idempotent;
        the Deferred fires once the worker has stopped.
        """
        if self._state == _NEW:
            self._state = _STOPPED
            return defer.succeed(None)
        done = self._when_stopped()
        if self._state == _RUNNING:
            self._state = _STOPPING
            self._stop().addErrback(
                lambda f: log.failure("pace: error while stopping {id}", f, id=self.id)
            ).addBoth(self._stopped)
        return done

    def _when_stopped(self) -> defer.Deferred:
        if self._state == _STOPPED:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._stop_waiters.append(d)
        return d

    @defer.inlineCallbacks
    def _stop(self) -> Any:
        log.info(
            "pace: worker {id} shutting down ({n} jobs in flight, grace {grace}s)",
            id=self.id,
            n=self.in_flight,
            grace=self.grace,
        )
        if self._resume_call is not None and self._resume_call.active():
            self._resume_call.cancel()
        if self._throttle is not None:
            self._throttle.stop()
        if self._throughput is not None:
            self._throughput.stop()
        if self._mover is not None:
            yield self._bounded(self._mover.stop(), "stopping the delayed-job mover")
        self._interrupt_fetch()
        if self._loop is not None:
            # A fetch already sent is waited for (it was unblocked): its jobs
            # must not be dropped on the floor.
            yield self._loop
        yield self._bounded(self._requeue(self._unstarted), "putting back unstarted jobs")
        self._unstarted = []
        yield self._settle_within(self.grace)
        if self._running:
            late = list(self._running.values())
            self._running.clear()
            log.warn(
                "pace: {n} jobs still running after the {grace}s grace period; "
                "putting them back in their queues",
                n=len(late),
                grace=self.grace,
            )
            yield self._bounded(
                self._requeue([(qi, [raw]) for qi, raw, _ in late]), "putting back late jobs"
            )
            for _, _, d in late:
                d.cancel()
        yield self._bounded(self._books.idle(), "writing job results")
        if self._registry is not None:
            yield self._bounded(self._registry.stop(), "deregistering")
        yield self._hooks.run("shutdown")

    def _bounded(self, d: defer.Deferred, what: str) -> defer.Deferred:
        # Shutdown must end even when Redis is gone: what cannot be written
        # in time is logged (and, in reliable mode, stays in the processing
        # list for another worker to recover).
        def gave_up(failure: Failure) -> None:
            # Whatever went wrong (timeout, lost or refused connection), the
            # rest of the shutdown, hooks included, still runs.
            log.error(
                "pace: gave up {what}: {error} (Redis at {url})",
                what=what,
                error=error_text(failure),
                url=self.url.redacted(),
            )

        return d.addTimeout(REDIS_SHUTDOWN_SECONDS, self._reactor).addErrback(gave_up)

    def _settle_within(self, seconds: float) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()

        def check(_: Any = None) -> None:
            if d.called:
                return
            if not self._running and not self._settling:
                if deadline.active():
                    deadline.cancel()
                d.callback(None)
                return
            pending = list(self._running.values())
            waits = [entry[2] for entry in pending] + list(self._settling)
            defer.DeferredList(waits, consumeErrors=False).addBoth(check)

        deadline = self._clock.callLater(seconds, lambda: d.called or d.callback(None))
        check()
        return d

    def _requeue(self, groups: list[tuple[int, list[bytes]]]) -> defer.Deferred:
        by_queue: dict[int, list[bytes]] = {}
        for qi, payloads in groups:
            by_queue.setdefault(qi, []).extend(payloads)
        calls = []
        for qi, payloads in by_queue.items():
            for raw in payloads:
                self._books.forget(qi, raw)
            calls.append(self._fetcher.requeue(qi, payloads))
            log.info(
                "pace: put {n} jobs back at the head of {queue}",
                n=len(payloads),
                queue=self.queues[qi],
            )
        return defer.gatherResults(calls, consumeErrors=True).addErrback(
            self._requeue_failed, by_queue
        )

    def _requeue_failed(self, failure: Failure, by_queue: dict[int, list[bytes]]) -> None:
        # Not lost in reliable mode (they stay in the processing list, and a
        # later worker recovers them); in plain mode, the log is all there is.
        for qi, payloads in by_queue.items():
            log.critical(
                "pace: could not put {n} jobs back in {queue}: {error}; payloads: {payloads}",
                n=len(payloads),
                queue=self.queues[qi],
                error=failure.getErrorMessage(),
                payloads=[as_text(p) for p in payloads],
            )

    def _stopped(self, _: Any) -> defer.Deferred:
        catch_all.unregister(self)
        d = defer.gatherResults(
            [self._commands.disconnect(), self._fetch_conn.disconnect()], consumeErrors=True
        )
        d.addBoth(self._finish)
        return d

    def _finish(self, _: Any) -> None:
        self._state = _STOPPED
        log.info("pace: worker {id} stopped", id=self.id)
        waiters, self._stop_waiters = self._stop_waiters, []
        outcome = self._outcome
        for d in waiters:
            # Only start()'s Deferred reports a failure to start; shutdown()
            # did its job either way.
            if d is self._start_done and isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(None)

    # -- running as a program ----------------------------------------------

    def run(self, handler: Handler) -> None:
        """
        Run the reactor until the worker stops: SIGTERM, SIGINT and SIGQUIT
        shut it down gracefully, SIGUSR2 pauses it and SIGCONT resumes it.
        """
        from pace.runner import run_worker

        run_worker(self, handler)


def running_workers() -> list[Worker]:
    """
    The workers running in this process.
    """
    return list(catch_all.workers)


def pause(seconds: float | None = None) -> bool:
    """
    Pause every running worker of this process (the Ruby original's
    ``Pace.pause``); with ``seconds``, they resume by themselves. True if any
    worker was paused by this call.
    """
    return any([w.pause(seconds) for w in running_workers()])


def resume() -> bool:
    """
    Resume every paused worker of this process.
    """
    return any([w.resume() for w in running_workers()])


def _cancelled_is_none(failure: Failure) -> None:
    failure.trap(defer.CancelledError)


def _queue_names(queue: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if queue is None:
        queue = os.environ.get("PACE_QUEUE") or None
        if queue is None:
            raise ValueError(
                "no queue to work on: pass Worker(queue=...) or set $PACE_QUEUE "
                "(names separated by commas, highest priority first)"
            )
    names = [n.strip() for n in queue.split(",")] if isinstance(queue, str) else list(queue)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"queue names must be non-empty strings, not {queue!r}")
    return names


def _check_seconds(name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number of seconds {bound}, not {value!r}")
