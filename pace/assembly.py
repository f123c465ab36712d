"""
Assembling a worker's parts at start: its two connections, the fetcher, the
bookkeeper, the job processor with its retries, the throttle and the fleet's
gate, the fetch loop, the registry, the mover and the throughput log, wired
to one another and to the worker's lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from pace import keys
from pace.bookkeeping import Bookkeeper
from pace.connection import RedisConnection
from pace.fetch import BLOCK_MARGIN, BLOCK_SECONDS, Fetcher
from pace.fetchloop import FetchLoop
from pace.fleet import FleetGate, FleetSlots
from pace.mover import Mover
from pace.processor import Processor
from pace.registry import Registry
from pace.retry import Retrier
from pace.schedule import resque_short_name
from pace.throttle import Throttle
from pace.throughput import ThroughputLog


def build_parts(
    worker: Any,
    handler: Callable[[dict], Any],
    *,
    clock: Any,
    reactor: Any,
    life: Any,
    fleet: Any,
    observer: Callable[[], Any],
    fleet_changed: Callable[[], None],
    burst_empty: Callable[[], None],
) -> Any:
    """
    The parts of ``worker`` (a `pace.Worker`, read for its settings), as
    one object whose attributes the lifecycle uses.
    """
    commands = RedisConnection(worker.url, "commands", reactor=reactor)
    # Payloads stay bytes: they are decoded once, by the JSON decoder. A
    # blocking pop that outlives its own timeout gives its connection up.
    fetch_conn = RedisConnection(
        worker.url,
        "fetch",
        charset=None,
        reply_timeout=BLOCK_SECONDS + BLOCK_MARGIN,
        reactor=reactor,
    )
    processing = (
        [keys.processing_list(worker.token, q) for q in worker.queues] if worker.reliable else None
    )
    fetcher = Fetcher(fetch_conn, commands, worker.queues, processing, reactor=reactor)
    books = Bookkeeper(commands, processing, worker.id, reactor=reactor, clock=clock)
    processor = Processor(
        worker.id,
        worker.queues,
        books,
        worker.hooks,
        concurrency=worker.concurrency,
        job_timeout=worker.job_timeout,
        record_failures=worker.record_failures,
        clock=clock,
        reactor=reactor,
        max_payload_bytes=worker.max_payload_bytes,
    )
    processor.handler = handler
    processor.observer = observer()
    # Retries and delayed jobs (pace.retry, pace.mover).
    processor.retrier = Retrier(
        worker.retry,
        commands,
        processing,
        worker.id,
        [resque_short_name(q) for q in worker.queues],
        books,
        clock,
        handler,
    )
    throttle: Any = None
    if worker.jobs_per_second is not None:
        throttle = Throttle(worker.jobs_per_second, clock)
    fleet.bind(
        processor.run,
        fleet_changed,
        lambda failure: processor.report_error(None, failure),
        life.accepting,
    )
    if fleet.circuit is not None:
        processor.on_settled = fleet.settled
    if fleet.gated:
        # Fetched jobs wait in the fleet for their slot or the circuit.
        throttle = FleetGate(fleet, throttle)
    loop = FetchLoop(
        fetcher,
        fetch_conn,
        FleetSlots(processor, fleet) if fleet.gated else processor,
        books,
        throttle,
        clock,
        accepting=lambda: life.accepting() and not fleet.blocked,
        dispatch=fleet.submit_batches if fleet.gated else life.dispatch,
        burst=worker.burst,
        on_empty=burst_empty,
        report_error=processor.report_error,
        observer=observer,
        held=life.held_payloads,
    )
    loop.crashed = life.loop_crashed
    registry = Registry(
        commands,
        worker.token,
        worker.id,
        worker.queues,
        processing,
        worker.heartbeat_ttl,
        clock,
    )
    processor.watcher = registry
    fetcher.registered = registry.confirmed
    parts = SimpleNamespace(
        commands=commands,
        fetch_conn=fetch_conn,
        processing=processing,
        fetcher=fetcher,
        books=books,
        processor=processor,
        throttle=throttle,
        loop=loop,
        registry=registry,
        throughput=None,
        mover=Mover(commands, clock, worker.id),
        fleet=fleet,
    )
    if worker.log_interval is not None:
        parts.throughput = ThroughputLog(worker, books, worker.log_interval, clock)
    return parts
