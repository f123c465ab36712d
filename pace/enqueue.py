"""
Enqueuing jobs exactly as ``Resque.enqueue`` does: the payload RPUSHed onto
the queue, the queue's name added to ``resque:queues``.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from pace import keys
from pace.config import expand_queue_name, resolve_redis_url, short_queue_name
from pace.connection import RedisConnection
from pace.payload import encode

_connections: dict[Any, RedisConnection] = {}


def _connection(redis_url: str | None) -> RedisConnection:
    url = resolve_redis_url(redis_url)
    conn = _connections.get(url)
    if conn is None:
        conn = _connections[url] = RedisConnection(url, "enqueue")
    return conn


def enqueue(queue: str, klass: str, *args: Any, redis_url: str | None = None) -> defer.Deferred:
    """
    Push a job for Resque class ``klass`` with ``args`` onto ``queue``. Fires
    with the queue's new length. The connection is kept for later calls;
    `disconnect` closes it.
    """
    payload = encode(klass, args)
    key = expand_queue_name(queue)
    conn = _connection(redis_url)
    conn.execute("SADD", keys.queues_set(), short_queue_name(key))
    return conn.execute("RPUSH", key, payload)


def enqueue_many(
    queue: str, klass: str, args_list: list, *, redis_url: str | None = None
) -> defer.Deferred:
    """
    Push one job per item of ``args_list`` (each a list of arguments) in one
    command. Fires with the queue's new length.
    """
    payloads = [encode(klass, args) for args in args_list]
    key = expand_queue_name(queue)
    conn = _connection(redis_url)
    conn.execute("SADD", keys.queues_set(), short_queue_name(key))
    if not payloads:
        return conn.execute("LLEN", key)
    return conn.execute("RPUSH", key, *payloads)


def disconnect() -> defer.Deferred:
    """
    Close the connections that `enqueue` opened.
    """
    conns = list(_connections.values())
    _connections.clear()
    return defer.gatherResults([c.disconnect() for c in conns], consumeErrors=True)
