"""
A worker's fleet controls in one place: the fleet pause of its queues (and
Resque's pause-all-workers), its circuit breaker and its shared rate limit.
The fetch loop sees `blocked` through the worker's ``accepting``, takes
`FleetGate` for its throttle and `FleetSlots` for its processor, and hands
fetched jobs to `submit` when a limit or a circuit is set; jobs that may not
start yet wait here (in reliable mode they stay in the processing list) and
start in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import keys
from pace.circuit import CLOSED, OPEN, PROBE, Circuit, CircuitOpen
from pace.queuepause import PauseWatch

log = Logger()

#: A worker fetches its next batch once its booked slots run out within this.
LOOKAHEAD = 0.02


class Fleet:
    def __init__(
        self,
        token: str,
        queues: list[str],
        clock: Any,
        limit: Any = None,
        circuit: Circuit | None = None,
    ):
        self.token = token
        self._queues = queues
        self._clock = clock
        self._pause_keys = [keys.queue_paused(q) for q in queues]
        self._run: Callable[[int, bytes], Any] = lambda qi, raw: None
        self._changed: Callable[[], Any] = lambda: None
        self._report: Callable[[Failure], Any] = lambda failure: None
        self._idle: list[defer.Deferred] = []
        self.limit = limit
        self.circuit = circuit
        #: True when fetched jobs go through `submit` (a limit or a circuit).
        self.gated = limit is not None or circuit is not None
        self.watch: PauseWatch | None = None
        self._conn: Any = None
        self._held: deque[tuple[int, bytes]] = deque()
        # Jobs booked into a slot, by a sequence number: (job, its timer).
        self._timers: dict[int, tuple[tuple[int, bytes], Any]] = {}
        self._seq = 0
        self._booking: dict[defer.Deferred, list[tuple[int, bytes]]] = {}
        self._last_slot = 0.0
        self._probe: bytes | None = None
        self._releasing = False
        self._ready: defer.Deferred | None = None
        self._local_paused: Callable[[], bool] = lambda: True
        if circuit is not None:
            if circuit.clock is None:
                circuit.clock = clock
            circuit.listen(self._circuit_changed)

    # -- lifecycle -----------------------------------------------------------

    def bind(
        self,
        run: Callable[[int, bytes], Any],
        changed: Callable[[], Any],
        report: Callable[[Failure], Any],
        accepting: Callable[[], bool],
    ) -> None:
        """
        The worker's parts, once made: how to run a job, whom to tell of a
        change, where errors go, and whether the worker takes jobs at all.
        """
        self._run, self._changed, self._report = run, changed, report
        self._local_paused = lambda: not accepting()

    def start(self, conn: Any) -> defer.Deferred:
        self._conn = conn
        self.watch = PauseWatch(
            conn, self._queues, self._clock, self._pause_changed, own=self.token
        )
        return self.watch.start()

    def stop(self) -> list[tuple[int, bytes]]:
        """
        Stop watching and timing; returns the jobs that never started, in
        the order they were fetched, for the worker to put back.
        """
        if self.watch is not None:
            self.watch.stop()
        if self.circuit is not None:
            self.circuit.stop()
        left = []
        for d, jobs in list(self._booking.items()):
            left.extend(jobs)
            d.cancel()
        self._booking.clear()
        for job, call in sorted(self._timers.values(), key=lambda item: item[1].getTime()):
            call.cancel()
            left.append(job)
        self._timers.clear()
        left.extend(self._held)
        self._held.clear()
        if self._ready is not None and not self._ready.called:
            self._ready.cancel()
        return left

    # -- what the worker asks ------------------------------------------------

    @property
    def blocked(self) -> bool:
        """
        True while no job may start: a fleet pause, or an open circuit.
        """
        if self.watch is not None and self.watch.paused:
            return True
        return self.circuit is not None and self.circuit.room() == 0

    @property
    def pending(self) -> int:
        """
        Jobs fetched and not started: they hold slots too.
        """
        return len(self._held) + len(self._timers) + sum(map(len, self._booking.values()))

    def room(self, wanted: int) -> int:
        if self.circuit is not None:
            room = self.circuit.room()
            if room is not None:
                wanted = min(wanted, max(0, room - self.pending))
        if self.limit is not None:
            wanted = min(wanted, self.limit.batch)
        return wanted

    def ready(self) -> defer.Deferred | None:
        """
        None when the worker may fetch now; else a Deferred that fires once
        it may (its booked slots are about to run out, or held jobs went).
        """
        if self._held or self._booking:
            ready: defer.Deferred = defer.Deferred()
            self._ready = ready
            return ready
        if self.limit is None or not self._timers:
            return None
        wait = self._last_slot - LOOKAHEAD - self._clock.seconds()
        if wait <= 0:
            return None
        d: defer.Deferred = defer.Deferred()
        call = self._clock.callLater(wait, d.callback, None)
        d.addErrback(_cancel_call, call)
        return d

    def _wake(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None and not ready.called:
            ready.callback(None)
        if self._idle and not self.pending:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def wait_change(self) -> defer.Deferred:
        """
        Fires at the next change of what may start (cancellable).
        """
        d = self._ready = defer.Deferred()
        return d

    def when_idle(self) -> defer.Deferred:
        """
        Fires once no fetched job waits to start.
        """
        if not self.pending:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idle.append(d)
        return d

    def pending_payloads(self) -> list[tuple[int, bytes]]:
        jobs = list(self._held) + [job for job, _ in self._timers.values()]
        for booked in self._booking.values():
            jobs.extend(booked)
        return jobs

    def submit_batches(self, batches: list[list[bytes]]) -> None:
        self.submit([(qi, raw) for qi, payloads in enumerate(batches) for raw in payloads])

    # -- jobs ----------------------------------------------------------------

    def submit(self, jobs: list[tuple[int, bytes]], rebooks: int = 0) -> None:
        """
        Start ``jobs`` in order, each when its slot comes (with a limit) and
        while nothing blocks.
        """
        if not jobs:
            return
        if self.limit is None:
            self._held.extend(jobs)
            self.release()
            return
        d = self.limit.reserve(len(jobs))
        self._booking[d] = jobs
        d.addCallbacks(self._booked, self._not_booked, (d, rebooks), None, (d,))

    def _booked(self, slots: list[Any], d: defer.Deferred, rebooks: int) -> None:
        jobs = self._booking.pop(d, None)
        if jobs is None:
            return
        now = self._clock.seconds()
        for job, slot in zip(jobs, slots, strict=True):
            self._seq += 1
            call = self._clock.callLater(
                max(0.0, slot.at - now), self._slot, self._seq, slot, rebooks
            )
            self._timers[self._seq] = (job, call)
        self._last_slot = max(self._last_slot, slots[-1].at)
        self._wake()

    def _not_booked(self, failure: Failure, d: defer.Deferred) -> None:
        jobs = self._booking.pop(d, None)
        if jobs is None:
            return
        # Redis refused for good: report it, keep the jobs, try again later.
        self._report(failure)
        self._held.extend(jobs)
        self._clock.callLater(1.0, self.release)

    def _slot(self, seq: int, slot: Any, rebooks: int) -> None:
        from pace.sharedlimit import MAX_REBOOKS

        job, _ = self._timers.pop(seq)
        if rebooks < MAX_REBOOKS and self.limit.late(slot):
            # The reactor was too busy to start it on time: starting now
            # could bunch it with the next slots of other processes.
            self.submit([job], rebooks + 1)
            return
        if self._held or not self._start(job):
            # A pause or an open circuit came first: the job waits, and needs
            # a new slot when it may go.
            self._held.append(job)
        self._wake()

    def _start(self, job: tuple[int, bytes]) -> bool:
        if self.blocked or self._local_paused():
            return False
        if self.circuit is not None:
            ticket = self.circuit.admit()
            if ticket is None:
                return False
            if ticket == PROBE:
                self._probe = job[1]
        self._run(*job)
        return True

    def release(self) -> None:
        """
        Start (or book slots for) the jobs that wait, now that they may.
        """
        if not self._held or self.blocked or self._local_paused():
            self._wake()
            return
        if self.limit is not None:
            jobs = list(self._held)
            if self.circuit is not None and self.circuit.room() is not None:
                jobs = jobs[: self.circuit.room()]
            for _ in jobs:
                self._held.popleft()
            self.submit(jobs)
            return
        if self._releasing:
            # A job started below settled at once and changed the circuit:
            # the loop below goes on with the new state.
            return
        self._releasing = True
        try:
            while self._held:
                job = self._held.popleft()
                if not self._start(job):
                    self._held.appendleft(job)
                    break
        finally:
            self._releasing = False
        self._wake()

    def settled(self, raw: bytes, ok: bool) -> None:
        """
        Tell the circuit how a job ended.
        """
        if self.circuit is None:
            return
        if self._probe is not None and raw is self._probe:
            self._probe = None
            self.circuit.settled(PROBE, ok)
        else:
            self.circuit.settled("normal", ok)

    # -- changes -------------------------------------------------------------

    def _pause_changed(self, paused: bool) -> None:
        if not paused:
            self.release()
        self._changed()

    def _circuit_changed(self, circuit: Circuit, old: str, new: str) -> None:
        if new == OPEN:
            self._report(Failure(CircuitOpen(f"circuit open: {circuit.reason}; worker paused")))
            if circuit.shared and self._conn is not None:
                # The whole queue pauses; the pause outlives the cool-off so
                # that this worker's trial job decides, and ends by itself if
                # this worker dies.
                ms = int((circuit.cool_off * 2 + 10) * 1000)
                for q, key in zip(self._queues, self._pause_keys, strict=True):
                    d = self._conn.execute("SET", key, self.token, "PX", ms)
                    d.addErrback(_not_written, "pause", q)
        elif new == CLOSED and circuit.shared and self._conn is not None:
            for q, key in zip(self._queues, self._pause_keys, strict=True):
                d = self._conn.execute("DEL", key)
                d.addErrback(_not_written, "resume", q)
        if new != OPEN:
            self.release()
        self._changed()


class FleetGate:
    """
    What the fetch loop takes for its throttle when a limit or a circuit is
    set: it waits until the fleet wants more jobs (booked slots about to run
    out, a half-open circuit's one job), caps the batch, then asks the
    worker's own throttle, if any.
    """

    def __init__(self, fleet: Fleet, throttle: Any = None):
        self._fleet = fleet
        self._throttle = throttle
        self._wait: defer.Deferred | None = None

    def start(self) -> None:
        if self._throttle is not None:
            self._throttle.start()

    def stop(self) -> None:
        self.cancel()
        if self._throttle is not None:
            self._throttle.stop()

    def cancel(self) -> None:
        wait, self._wait = self._wait, None
        if wait is not None and not wait.called:
            wait.cancel()
        if self._throttle is not None:
            self._throttle.cancel()

    @defer.inlineCallbacks
    def take(self, wanted: int) -> Any:
        fleet = self._fleet
        try:
            while True:
                ready = fleet.ready()
                if ready is None:
                    n = fleet.room(wanted)
                    if n:
                        break
                    ready = fleet.wait_change()
                self._wait = ready
                yield ready
        except defer.CancelledError:
            return 0
        finally:
            self._wait = None
        if self._throttle is None:
            return n
        granted = yield self._throttle.take(n)
        return granted

    def refund(self, n: int) -> None:
        if self._throttle is not None:
            self._throttle.refund(n)

    def started(self) -> None:
        if self._throttle is not None:
            self._throttle.started()


class FleetSlots:
    """
    The processor as the fetch loop sees it when jobs can wait in the fleet:
    those hold slots too, and are known (not orphans) in processing lists.
    """

    def __init__(self, processor: Any, fleet: Fleet):
        self._processor = processor
        self._fleet = fleet

    @property
    def free(self) -> int:
        return self._processor.free - self._fleet.pending

    def wait_for_slot(self) -> defer.Deferred:
        return self._processor.wait_for_slot()

    def running_payloads(self) -> list[tuple[int, bytes]]:
        return self._processor.running_payloads() + self._fleet.pending_payloads()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)


def _cancel_call(failure: Failure, call: Any) -> Failure:
    if call.active():
        call.cancel()
    return failure


def _not_written(failure: Failure, what: str, queue: str) -> None:
    # A shared pause that could not be written leaves this worker paused
    # on its own (its circuit holds), and one that could not be deleted
    # ends with its TTL.
    log.warn(
        "pace: circuit could not {what} {queue} for the fleet: {error}",
        what=what,
        queue=queue,
        error=failure.getErrorMessage(),
    )
