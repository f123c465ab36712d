"""
The public face of a worker: its configuration, checked when it is made, and
the calls users make (start, run, pause, resume, shutdown, hooks). The work
is done by its parts, put together by pace.assembly: pace.lifecycle
(states, pause, the shutdown deadline in pace.deadline),
pace.fetchloop and pace.fetch (getting jobs), pace.processor (running them),
pace.bookkeeping (their results) and pace.registry (being seen).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

import pace
from pace.assembly import build_parts
from pace.catchall import catch_all
from pace.config import check_number, expand_queue_name, resolve_redis_url
from pace.fleet import Fleet
from pace.hooks import Hooks, scoped
from pace.lifecycle import RUNNING, STARTING, Lifecycle
from pace.payload import MAX_PAYLOAD_BYTES
from pace.processor import Handler
from pace.registry import worker_ids
from pace.retry import Retry
from pace.schedule import resque_short_name
from pace.throttle import Throttle

log = Logger()

__all__ = ["Handler", "Worker", "pause", "resume", "running_workers"]


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
        max_payload_bytes: int | None = MAX_PAYLOAD_BYTES,
        shared_limit: Any = None,
        circuit: Any = None,
    ):
        names = _queue_names(queue)
        if type(concurrency) is not int or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
        _check_seconds("grace", grace, allow_zero=True)
        if job_timeout is not None:
            _check_seconds("job_timeout", job_timeout)
        _check_seconds("heartbeat_ttl", heartbeat_ttl)
        if max_payload_bytes is not None and (
            type(max_payload_bytes) is not int or max_payload_bytes < 1
        ):
            raise ValueError(
                "max_payload_bytes must be a whole number >= 1 (or None), "
                f"not {max_payload_bytes!r}"
            )
        if log_interval is not None:
            _check_seconds("log_interval", log_interval)
        from twisted.internet import reactor

        self._reactor = reactor
        self._clock = reactor if clock is None else clock
        #: The key namespace, as it was when the worker was made.
        self.namespace = pace.namespace
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
        self.jobs_per_second = jobs_per_second
        #: Payloads longer than this fail without being decoded (None: no limit).
        self.max_payload_bytes = max_payload_bytes
        if jobs_per_second is not None:
            Throttle(jobs_per_second, self._clock)  # checks the rate now
        #: Resque's worker name, host:pid:queues, and a token unique even for
        #: several workers on the same queues in one process. Made again at
        #: start, when the pid may have changed (twistd forks).
        self.id, self.token = worker_ids(self.queues)
        #: This worker's own hooks (the class's run first).
        self.hooks = Hooks(parent=type(self)._class_hooks)
        self._hooks = self.hooks
        self._observer: Any = None
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a pace.Retry, not {retry!r}")
        if retry is not None:
            for name in names:
                if resque_short_name(expand_queue_name(name)) is None:
                    raise ValueError(
                        f"retry= needs Resque queues (resque:queue:<name>), and {name!r} "
                        "is a whole key: retries go through resque-scheduler's schedule"
                    )
        #: The retry policy for every job (a JobRouter's per-class ones win).
        self.retry = retry
        self._life = Lifecycle(self, self._clock, reactor)
        self._fleet = self._make_fleet(shared_limit, circuit)
        self.hooks.run("initialize", self.queue)

    def __repr__(self) -> str:
        return f"<pace.Worker {self.id} {self._life.state} on {self.url.redacted()}>"

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

    @classmethod
    def class_hooks(cls) -> Hooks:
        """
        The hooks every worker of this class runs first.
        """
        return cls._class_hooks

    # -- state -----------------------------------------------------------

    @property
    def state(self) -> str:
        """
        ``new``, ``starting``, ``running``, ``stopping`` or ``stopped``.
        """
        return self._life.state

    @property
    def paused(self) -> bool:
        return self._life.paused

    @property
    def running(self) -> bool:
        """
        True from `start` until a shutdown begins.
        """
        return self._life.state in (STARTING, RUNNING)

    @property
    def in_flight(self) -> int:
        """
        Jobs holding a slot: handlers not yet settled, and hooks of jobs
        that settled but whose hooks have not.
        """
        parts = self._life.parts
        return 0 if parts is None else parts.processor.in_flight

    @property
    def fetching(self) -> bool:
        """
        True while the fetch loop runs.
        """
        parts = self._life.parts
        return parts is not None and parts.loop.running

    @property
    def parts(self) -> Any:
        """
        The parts of a started worker (connections, fetcher, processor,
        bookkeeper, registry, loop): for tests and tools, not a stable API.
        """
        return self._life.parts

    def observe(self, observer: Any) -> None:
        """
        Tell ``observer`` of every job settled (``settled(queue_index,
        job_class, ok, seconds)``) and every fetch (``fetched(n)``), as
        pace.metrics does. Only an observed worker pays for it.
        """
        self._observer = observer
        if self._life.parts is not None:
            self._life.parts.processor.observer = observer

    def queue_lengths(self) -> defer.Deferred:
        """
        The number of jobs waiting in each of the worker's queues, in order;
        fires with None when not connected.
        """
        parts = self._life.parts
        if parts is None or parts.commands.protocol is None:
            return defer.succeed(None)
        return defer.gatherResults([parts.commands.execute("LLEN", q) for q in self.queues])

    # -- start, pause, resume, shutdown ----------------------------------

    def start(self, handler: Handler) -> defer.Deferred:
        """
        Start fetching and processing jobs in the running reactor. Returns a
        Deferred that fires once the worker has completely stopped.
        """
        if not callable(handler):
            raise TypeError(f"the handler must be callable, not {handler!r}")
        done = self._life.start(lambda: self._build_in_namespace(handler))
        catch_all.register(self)
        return done

    def _build_in_namespace(self, handler: Handler) -> Any:
        # The parts compute their keys as they are made: under the namespace
        # the worker was made with, whatever pace.namespace says by now.
        current, pace.namespace = pace.namespace, self.namespace
        try:
            if f":{os.getpid()}:" not in self.token:
                # Made again after twistd forked, so that the pid is this one.
                self.id, self.token = worker_ids(self.queues)
                self._fleet.token = self.token
            return build_parts(
                self,
                handler,
                clock=self._clock,
                reactor=self._reactor,
                life=self._life,
                fleet=self._fleet,
                observer=lambda: self._observer,
                fleet_changed=self._fleet_changed,
                burst_empty=self._burst_empty,
            )
        finally:
            pace.namespace = current

    def pause(self, seconds: float | None = None) -> bool:
        """
        Stop starting jobs; jobs in flight go on, jobs fetched but not yet
        started wait for `resume`. With ``seconds``, resume by itself after
        that long. False if already paused, or not running.
        """
        if seconds is not None:
            _check_seconds("seconds", seconds)
        return self._life.pause(seconds)

    def resume(self) -> bool:
        """
        Start jobs again. False if not paused; never starts a second fetch
        loop.
        """
        return self._life.resume()

    def shutdown(self, immediately: bool = False) -> defer.Deferred:
        """
        Stop: no more fetching, jobs in flight get ``grace`` seconds, jobs
        not started or still running then go back to the head of their
        queues in order (at most once: running ones are cancelled and
        failed), shutdown hooks run, connections close; all within grace +
        5 s whatever Redis does. Idempotent; the Deferred fires once the
        worker has stopped. ``immediately`` (a second signal) cuts the grace
        period short and leaves a second for the rest.
        """
        return self._life.shutdown(immediately)

    def stopped_running(self) -> None:
        # Called by the lifecycle as the worker leaves the running process.
        catch_all.unregister(self)

    def report_unhandled(self, failure: Any) -> None:
        """
        The catch-all: an error Twisted logged as unhandled, for this
        worker's own error hooks (``json`` None).
        """
        self.hooks.run_own("error", None, failure)

    # -- fleet control (pace.fleet) ------------------------------------------

    def _make_fleet(self, shared_limit: Any, circuit: Any) -> Fleet:
        from pace.circuit import Circuit
        from pace.sharedlimit import SharedLimit

        if shared_limit is not None and not isinstance(shared_limit, SharedLimit):
            raise TypeError(f"shared_limit must be a pace.SharedLimit, not {shared_limit!r}")
        if circuit is not None and not isinstance(circuit, Circuit):
            raise TypeError(f"circuit must be a pace.Circuit, not {circuit!r}")
        if shared_limit is not None:
            shared_limit.use_url(self.url)
        return Fleet(self.token, self.queues, self._clock, shared_limit, circuit)

    def _fleet_changed(self) -> None:
        # A fleet pause began or ended, or the circuit changed.
        parts = self._life.parts
        if parts is None or self._life.state != RUNNING:
            return
        if self._fleet.blocked:
            parts.loop.interrupt()
        elif self._life.accepting():
            parts.loop.start()

    def _burst_empty(self) -> None:
        # The queues are empty: stop once the jobs waiting for a slot started
        # (the shutdown then waits for them to settle).
        self._fleet.when_idle().addCallback(lambda _: self.shutdown())

    # -- running as a program ----------------------------------------------

    def run(self, handler: Handler) -> None:
        """
        Run the reactor until the worker stops: SIGTERM, SIGINT and SIGQUIT
        shut it down gracefully (a second one stops at once), SIGUSR2 pauses
        it and SIGCONT resumes it.
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
    check_number(name, value, " of seconds", allow_zero=allow_zero)
