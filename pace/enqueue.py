"""
Enqueuing jobs exactly as ``Resque.enqueue`` does: the payload RPUSHed onto
the queue, the queue's name added to ``resque:queues``; every call fires or
fails within a bounded time, whatever Redis or the network does.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from pace import keys
from pace.config import expand_queue_name, resolve_redis_url, short_queue_name
from pace.connection import RedisConnection, with_advice
from pace.payload import encode

_connections: dict[Any, RedisConnection] = {}

#: Seconds an enqueue may take, whatever Redis or the network does, before
#: its Deferred fails with `EnqueueError`.
TIMEOUT = 10.0


class EnqueueError(Exception):
    """
    A job could not be enqueued: Redis did not answer in time, refused it,
    or the connection was closed. The message never holds a password.
    """


def _connection(redis_url: str | None) -> RedisConnection:
    url = resolve_redis_url(redis_url)
    conn = _connections.get(url)
    if conn is not None and conn.fatal:
        # Refused for good (a wrong password, say): the next call tries anew,
        # so that a fixed server is used without restarting the process.
        conn.disconnect()
        conn = None
    if conn is None:
        conn = _connections[url] = RedisConnection(url, "enqueue")
    return conn


def _bounded(conn: RedisConnection, calls: list[defer.Deferred], timeout: float | None) -> Any:
    seconds = TIMEOUT if timeout is None else timeout
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    d = defer.gatherResults(calls, consumeErrors=True)
    # Not addTimeout: cancelling the gathered calls fails it with a
    # FirstError(CancelledError), which addTimeout does not see as its own.
    timed_out: list[bool] = []

    def time_out() -> None:
        timed_out.append(True)
        d.cancel()

    call = reactor.callLater(seconds, time_out)

    def failed(failure: Any) -> None:
        if failure.check(defer.FirstError):
            failure = failure.value.subFailure
        where = conn.url.redacted()
        if timed_out:
            raise EnqueueError(f"Redis at {where} did not take the job within {seconds:g} s")
        if conn.closed:
            raise EnqueueError(f"the connection to Redis at {where} was closed (pace.disconnect())")
        raise EnqueueError(f"Redis at {where}: {with_advice(failure.getErrorMessage(), failure)}")

    def done(result: Any) -> Any:
        if call.active():
            call.cancel()
        return result

    return d.addBoth(done).addCallbacks(lambda results: results[-1], failed)


def enqueue(
    queue: str,
    klass: str,
    *args: Any,
    redis_url: str | None = None,
    timeout: float | None = None,
) -> defer.Deferred:
    """
    Push a job for Resque class ``klass`` with ``args`` onto ``queue``. Fires
    with the queue's new length, or fails with `EnqueueError` within
    ``timeout`` seconds (default `TIMEOUT`). The connection is kept for
    later calls; `disconnect` closes it.
    """
    payload = encode(klass, args)
    key = expand_queue_name(queue)
    conn = _connection(redis_url)
    calls = [
        conn.execute("SADD", keys.queues_set(), short_queue_name(key)),
        conn.execute("RPUSH", key, payload),
    ]
    return _bounded(conn, calls, timeout)


def enqueue_many(
    queue: str,
    klass: str,
    args_list: list,
    *,
    redis_url: str | None = None,
    timeout: float | None = None,
) -> defer.Deferred:
    """
    Push one job per item of ``args_list`` (each a list of arguments) in one
    command. Fires with the queue's new length; fails as `enqueue` does.
    """
    payloads = [encode(klass, args) for args in args_list]
    key = expand_queue_name(queue)
    conn = _connection(redis_url)
    calls = [conn.execute("SADD", keys.queues_set(), short_queue_name(key))]
    calls.append(conn.execute("RPUSH", key, *payloads) if payloads else conn.execute("LLEN", key))
    return _bounded(conn, calls, timeout)


def disconnect() -> defer.Deferred:
    """
    Close the connections that `enqueue` opened; calls still waiting on them
    fail with `EnqueueError`.
    """
    conns = list(_connections.values())
    _connections.clear()
    return defer.gatherResults([c.disconnect() for c in conns], consumeErrors=True)
