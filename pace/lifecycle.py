"""
A worker's lifecycle, as one state machine: new -> starting -> running ->
stopping -> stopped, with paused as a flag of running. It starts the parts
step by step (a stop during any step cancels it and leaves nothing behind),
holds fetched jobs while paused, and shuts down under one deadline: jobs in
flight get ``grace`` seconds, then put-back, results, deregistration and
shutdown hooks share a few more, whatever Redis does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import proctitle
from pace.connection import is_transient, with_advice
from pace.deadline import Deadline
from pace.failures import error_text
from pace.fetchloop import BACKOFF_TRANSIENT, backoff
from pace.payload import as_text

log = Logger()

NEW, STARTING, RUNNING, STOPPING, STOPPED = "new", "starting", "running", "stopping", "stopped"

#: Seconds after the grace period for putting jobs back, writing results,
#: deregistering and shutdown hooks, together; with closing the connections
#: the whole shutdown ends within grace + 5 s.
AFTER_GRACE = 4.0
#: What a second SIGTERM/SIGINT leaves for the same steps.
HURRIED = 1.0
#: Closing the connections, at most; then they are aborted.
CLOSE_SECONDS = 0.5


class Lifecycle:
    """
    Owns the state and the steps between states of one worker; the parts
    (connections, fetcher, processor, registry...) are made by ``build`` at
    start and handed back as an object with those attributes.
    """

    def __init__(self, worker: Any, clock: Any, reactor: Any):
        self._w = worker
        self._clock = clock
        self._reactor = reactor
        self.state = NEW
        self.paused = False
        self.parts: Any = None
        self._resume_call: Any = None
        self._step: defer.Deferred | None = None
        self._held: list[tuple[int, list[bytes]]] = []
        self._stop_waiters: list[defer.Deferred] = []
        self._start_done: defer.Deferred | None = None
        self._outcome: Failure | None = None
        self._deadline: Deadline | None = None
        self._registering = False
        self._hurried = False

    # -- start -----------------------------------------------------------

    def start(self, build: Callable[[], Any]) -> defer.Deferred:
        if self.state != NEW:
            raise RuntimeError(f"{self._w!r} has already been started")
        self.state = STARTING
        self.parts = build()
        done = self._start_done = self._when_stopped()
        self._starting().addErrback(self._start_failed)
        return done

    def _wait(self, d: defer.Deferred) -> defer.Deferred:
        # A start step: a shutdown cancels the wait (never the step's own
        # Deferred, which may be a user's hook), and the start ends there.
        step: defer.Deferred = defer.Deferred()
        self._step = step

        def fire(result: Any) -> None:
            if not step.called:
                step.callback(result)

        d.addBoth(fire)
        return step

    @defer.inlineCallbacks
    def _starting(self) -> Any:
        p, w = self.parts, self._w
        yield self._wait(p.commands.connected())
        yield self._wait(p.fetch_conn.connected())
        self._registering = True
        yield self._register()
        if getattr(p, "fleet", None) is not None:
            # Fleet pauses are known before the first fetch (pace.fleet).
            yield self._wait(p.fleet.start(p.commands))
        log.info(
            "pace: worker {id} started on {queues} at {url} (concurrency {c}, {mode})",
            id=w.id,
            queues=", ".join(w.queues),
            url=w.url.redacted(),
            c=w.concurrency,
            mode="reliable" if w.reliable else "at most once",
        )
        yield self._wait(_settled(w.hooks.run("start")))
        self._step = None
        if self.state != STARTING:
            return
        self.state = RUNNING
        for part in (p.throughput, p.throttle, getattr(p, "mover", None)):
            if part is not None:
                part.start()
        self._resume_fetching()

    @defer.inlineCallbacks
    def _register(self) -> Any:
        # A lost connection or a reply like LOADING (Redis restarting with
        # persistence) while registering is no reason to give up the start:
        # try again, with backoff, until it works or the worker is stopped.
        attempt = 0
        while True:
            try:
                yield self._wait(self.parts.registry.start())
                return
            except Exception:
                failure = Failure()
                if self.state != STARTING or not is_transient(failure):
                    raise
            attempt += 1
            delay = backoff(attempt, BACKOFF_TRANSIENT)
            if attempt == 1:
                log.warn(
                    "pace: worker {id} could not register yet ({error}); trying again",
                    id=self._w.id,
                    error=error_text(failure),
                )
            sleep = task.deferLater(self._clock, delay, lambda: None)
            try:
                yield self._wait(sleep)
            finally:
                if not sleep.called:
                    sleep.cancel()

    def _start_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError) and self.state != STARTING:
            return
        log.error(
            "pace: worker {id} could not start: {error}",
            id=self._w.id,
            error=with_advice(error_text(failure), failure),
        )
        self._outcome = failure
        self.shutdown()

    # -- accepting jobs --------------------------------------------------

    def held_payloads(self) -> list[tuple[int, bytes]]:
        """
        (queue index, payload) of the jobs fetched and held while paused.
        """
        return [(qi, raw) for qi, payloads in self._held for raw in payloads]

    def accepting(self) -> bool:
        return self.state == RUNNING and not self.paused

    def dispatch(self, batches: list[list[bytes]]) -> None:
        run = self.parts.processor.run
        for qi, payloads in enumerate(batches):
            for i, raw in enumerate(payloads):
                if self.state != RUNNING or self.paused:
                    # Paused or stopping while these were on their way, or
                    # by a handler of this batch: they wait, in order (in
                    # reliable mode, in the processing list).
                    self._held.append((qi, payloads[i:]))
                    break
                run(qi, raw)

    def _resume_fetching(self) -> None:
        if getattr(self.parts, "fleet", None) is not None:
            self.parts.fleet.release()
        held, self._held = self._held, []
        for qi, payloads in held:
            if not self.accepting():
                self._held.append((qi, payloads))
                continue
            self.dispatch([[] for _ in range(qi)] + [payloads])
        self.parts.loop.start()

    def loop_crashed(self, failure: Failure) -> None:
        # Without a fetch loop the worker would idle forever (say Redis now
        # refuses our password): stop, so that a supervisor restarts us.
        log.critical(
            "pace: the fetch loop of {id} stopped: {error}; shutting the worker down",
            id=self._w.id,
            error=error_text(failure),
        )
        self.parts.processor.report_error(None, failure)
        if self._outcome is None:
            self._outcome = failure
        self.shutdown()

    # -- pause and resume ------------------------------------------------

    def pause(self, seconds: float | None) -> bool:
        if self.paused or self.state in (STOPPING, STOPPED):
            return False
        self.paused = True
        log.info("pace: worker {id} paused", id=self._w.id)
        if self.parts is not None:
            self.parts.loop.interrupt()
        if seconds is not None:
            self._resume_call = self._clock.callLater(seconds, self.resume)
        return True

    def resume(self) -> bool:
        if not self.paused:
            return False
        self.paused = False
        self._cancel_resume()
        log.info("pace: worker {id} resumed", id=self._w.id)
        if self.state == RUNNING:
            self._resume_fetching()
        return True

    def _cancel_resume(self) -> None:
        if self._resume_call is not None and self._resume_call.active():
            self._resume_call.cancel()
        self._resume_call = None

    # -- shutdown --------------------------------------------------------

    def shutdown(self, immediately: bool = False) -> defer.Deferred:
        if self.state == NEW:
            # Paused for a while before it was started: that timer goes too.
            self._cancel_resume()
            self.state = STOPPED
            return defer.succeed(None)
        done = self._when_stopped()
        again = self.state == STOPPING
        if self.state in (STARTING, RUNNING):
            was = self.state
            self.state = STOPPING
            self._deadline = Deadline(self._clock, self._w.grace + AFTER_GRACE)
            self._stop(was).addErrback(
                lambda f: log.failure("pace: error while stopping {id}", f, id=self._w.id)
            ).addBoth(self._stopped)
        if immediately and self.state == STOPPING:
            self.hurry(again)
        return done

    def hurry(self, again: bool = True) -> None:
        """
        Stop now (a second signal): what can be put back within a second is.
        """
        if self.state != STOPPING or self._deadline is None:
            return
        log.warn(
            "pace: worker {id} {told}: stopping now, {n} jobs in flight",
            id=self._w.id,
            told="told again to stop" if again else "told to stop at once",
            n=self.parts.processor.in_flight,
        )
        self._hurried = True
        self._deadline.tighten(HURRIED)
        self.parts.processor.hurry()
        self.parts.fetch_conn.abort()

    def _when_stopped(self) -> defer.Deferred:
        if self.state == STOPPED:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._stop_waiters.append(d)
        return d

    @defer.inlineCallbacks
    def _stop(self, was: str) -> Any:
        p, w = self.parts, self._w
        deadline = self._deadline
        assert deadline is not None  # set by shutdown() before _stop runs
        url = w.url.redacted()
        log.info(
            "pace: worker {id} shutting down ({n} jobs in flight, grace {grace:g} s)",
            id=w.id,
            n=p.processor.in_flight,
            grace=w.grace,
        )
        self._cancel_resume()
        for part in (p.throttle, p.throughput, getattr(p, "mover", None)):
            if part is not None:
                part.stop()
        if was == STARTING and self._step is not None and not self._step.called:
            self._step.cancel()
        p.loop.interrupt()
        # Jobs settle while the loop ends: a fetch already sent is waited for
        # (its jobs must not be dropped), but not past the grace period; then
        # the fetch connection is given up, and in reliable mode what it
        # fetched stays in the processing list for recovery.
        settled = p.processor.settled_within(w.grace)
        loop_end = p.loop.ended()
        if not loop_end.called:
            abort = self._clock.callLater(w.grace, p.fetch_conn.abort)
            yield loop_end
            if abort.active():
                abort.cancel()
        yield settled
        self._deadline = deadline = Deadline(self._clock, min(deadline.remaining(), AFTER_GRACE))
        held, self._held = self._held, []
        if getattr(p, "fleet", None) is not None:
            # Jobs waiting for a shared-limit slot or the circuit (pace.fleet).
            held += [(qi, [raw]) for qi, raw in p.fleet.stop()]
        if w.reliable:
            late = p.processor.take_late()
            if late:
                log.warn(
                    "pace: {n} jobs still running {when}; putting them back in their queues",
                    n=len(late),
                    when=self._when_cut(),
                )
            held += [(qi, [raw]) for qi, raw in late]
        else:
            cut = p.processor.cut_late()
            if cut:
                log.warn(
                    "pace: {n} jobs still running {when}; "
                    "cancelled and failed (at most once: never run twice)",
                    n=cut,
                    when=self._when_cut(),
                )
        yield deadline.bound(self._requeue(held), "putting jobs back in their queues", url)
        yield deadline.bound(p.books.idle(), "writing job results", url)
        p.books.close()
        if self._registering:
            yield deadline.bound(p.registry.stop(), "deregistering", url)
        yield deadline.bound(_settled(w.hooks.run("shutdown")), "running shutdown hooks", url)

    def _when_cut(self) -> str:
        if self._hurried:
            return "when told to stop now"
        return f"after the {self._w.grace:g} s grace period"

    def _requeue(self, groups: list[tuple[int, list[bytes]]]) -> defer.Deferred:
        p = self.parts
        by_queue: dict[int, list[bytes]] = {}
        for qi, payloads in groups:
            by_queue.setdefault(qi, []).extend(payloads)
        calls = []
        for qi, payloads in by_queue.items():
            for raw in payloads:
                p.books.forget(qi, raw)
            calls.append(p.fetcher.requeue(qi, payloads))
            log.info(
                "pace: put {n} jobs back at the head of {queue}",
                n=len(payloads),
                queue=self._w.queues[qi],
            )
        d = defer.gatherResults(calls, consumeErrors=True)
        d.addErrback(_first_error)
        return d.addErrback(self._requeue_failed, by_queue)

    def _requeue_failed(self, failure: Failure, by_queue: dict[int, list[bytes]]) -> Failure:
        # Not lost in reliable mode (they stay in the processing list, and a
        # later worker recovers them); in plain mode, the log is all there is.
        for qi, payloads in by_queue.items():
            log.critical(
                "pace: could not put {n} jobs back in {queue}: {error}; payloads: {payloads}",
                n=len(payloads),
                queue=self._w.queues[qi],
                error="out of time" if failure.check(defer.CancelledError) else error_text(failure),
                payloads=[as_text(raw) for raw in payloads],
            )
        return failure

    def _stopped(self, _: Any) -> defer.Deferred:
        p = self.parts
        self._w.stopped_running()
        # Whatever happened on the way, the process no longer says a worker
        # runs once it has stopped.
        proctitle.worker_stopped(p.registry)
        conns = [p.commands, p.fetch_conn]
        d = defer.gatherResults([c.disconnect() for c in conns], consumeErrors=True)
        # A frozen or half-open server may never see the close through.
        call = self._clock.callLater(CLOSE_SECONDS, d.cancel)

        def closed(_: Any) -> None:
            if call.active():
                call.cancel()
            for c in conns:
                c.abort()

        d.addBoth(closed)
        d.addBoth(self._finish)
        return d

    def _finish(self, _: Any) -> None:
        self.state = STOPPED
        log.info("pace: worker {id} stopped", id=self._w.id)
        waiters, self._stop_waiters = self._stop_waiters, []
        outcome = self._outcome
        for d in waiters:
            # Only start()'s Deferred reports a failure to start; shutdown()
            # did its job either way.
            if d is self._start_done and outcome is not None:
                d.errback(outcome)
            else:
                d.callback(None)


def _first_error(failure: Failure) -> Failure:
    # gatherResults wraps the failure that ended it: say what it was.
    if failure.check(defer.FirstError):
        return failure.value.subFailure
    return failure


def _settled(d: defer.Deferred | None) -> defer.Deferred:
    return defer.succeed(None) if d is None else d
