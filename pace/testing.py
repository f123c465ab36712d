"""
Helpers for users' own trial tests: run a handler over everything in a queue
and fire when drained (the Ruby original's Pace::Mock), look at what code
under test enqueued, and leave the reactor clean at the end of each test.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from pace.config import expand_queue_name, resolve_redis_url
from pace.connection import RedisConnection
from pace.payload import decode
from pace.worker import Handler, Worker


@defer.inlineCallbacks
def drain(queue: str | list[str], handler: Handler, **worker_options: Any) -> Any:
    """
    Run ``handler`` over every job now in ``queue`` through a real
    `pace.Worker` (hooks, failures and all) and fire, once the queue is empty
    and every job settled, with ``(processed, failed)``: the jobs that
    succeeded as dicts, and ``(json, failure)`` for each that failed.
    """
    worker_options.setdefault("reliable", False)
    worker = Worker(queue, burst=True, **worker_options)
    processed: list[dict] = []
    failed: list[tuple[str | None, Any]] = []
    worker.add_hook("processed", processed.append)
    worker.add_hook("error", lambda json, failure: failed.append((json, failure)))
    yield worker.start(handler)
    return processed, failed


def cleanup(testcase: Any) -> None:
    """
    Call in ``setUp``: when the test ends, every worker still running in
    this process is shut down and the connections `pace.enqueue` keeps are
    closed, so trial never finds a dirty reactor. Safe whether or not the
    test started anything.
    """
    testcase.addCleanup(_clean)


@defer.inlineCallbacks
def _clean() -> Any:
    from pace.enqueue import disconnect
    from pace.worker import running_workers

    yield defer.gatherResults(
        [w.shutdown() for w in running_workers()], consumeErrors=True
    ).addErrback(lambda f: f.value.subFailure)
    yield disconnect()


@defer.inlineCallbacks
def enqueued(queue: str, redis_url: str | None = None) -> Any:
    """
    The jobs waiting in ``queue``, oldest first, as dicts.
    """
    conn = RedisConnection(resolve_redis_url(redis_url), "testing")
    try:
        raws = yield conn.execute("LRANGE", expand_queue_name(queue), 0, -1)
    finally:
        yield conn.disconnect()
    return [decode(raw) for raw in raws or []]
