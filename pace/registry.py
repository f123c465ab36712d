"""
Where workers are known: each worker registers as Resque's workers do
(``resque:workers``, ``:started``, the heartbeat hash, per-worker stats), so
Resque's tools list it, and keeps a Pace heartbeat key with a TTL. A worker
whose heartbeat expired (kill -9, a lost machine) is pruned from Resque's
registry and, in reliable mode, the jobs it had in flight (in its processing
lists) go back to the head of their queues, in order, exactly once even when
several workers sweep at the same time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pace import keys
from pace.config import short_queue_name
from pace.connection import RedisConnection
from pace.lua import UNREGISTER

log = Logger()


#: Beats per sweep: three beats per TTL, so a sweep once per TTL.
_SWEEP_EVERY = 3


def _unregister_keys(token: str, resque_id: str, pairs: list) -> list[str]:
    return [
        keys.pace_workers(),
        keys.heartbeat(token),
        keys.resque_workers(),
        keys.resque_heartbeats(),
        keys.worker_started(resque_id),
        keys.worker_busy(resque_id),
        keys.stat(f"processed:{resque_id}"),
        keys.stat(f"failed:{resque_id}"),
        *(k for pair in pairs for k in pair),
    ]


def _resque_time(seconds: float) -> str:
    # Ruby's Time#to_s, as Resque writes :started.
    return time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(seconds))


def _iso8601(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


class Registry:
    """
    This worker's registration and heartbeats, and the sweep for dead ones.
    """

    def __init__(
        self,
        commands: RedisConnection,
        token: str,
        resque_id: str,
        queues: list[str],
        processing: list[str] | None,
        ttl: float,
        clock: Any,
        busy: Callable[[], int] = lambda: 0,
    ):
        self._conn = commands
        self._token = token
        self._resque_id = resque_id
        self._queues = queues
        self._pairs = [[q, p] for q, p in zip(queues, processing or [], strict=False)]
        self._record = json.dumps({"resque_id": resque_id, "lists": self._pairs})
        self._ttl_ms = max(1, int(ttl * 1000))
        self._ttl = ttl
        self._busy = busy
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = clock
        self._beats = 0
        self._stopped = False

    @defer.inlineCallbacks
    def start(self) -> Any:
        # A stop may come during any step: after it, nothing more is written.
        now = yield self._server_time()
        if self._stopped:
            return
        yield self._conn.execute("SET", keys.worker_started(self._resque_id), _resque_time(now))
        if self._stopped:
            return
        yield self._heartbeat_now(now)
        if self._stopped:
            return
        yield self.sweep()
        if self._stopped:
            return
        # Beat three times per TTL so one late beat never looks like death.
        self._beat.start(self._ttl / 3, now=False)

    @defer.inlineCallbacks
    def _server_time(self) -> Any:
        # Resque stamps heartbeats with the Redis server's clock.
        seconds, micros = yield self._conn.execute("TIME")
        return int(seconds) + int(micros) / 1e6

    def _heartbeat_now(self, now: float) -> defer.Deferred:
        # Registering again on every beat: if this worker was taken for dead
        # (a reactor blocked for longer than the TTL), it is listed again.
        conn = self._conn
        writes = [
            conn.execute("HSET", keys.pace_workers(), self._token, self._record),
            conn.execute("SADD", keys.resque_workers(), self._resque_id),
            conn.execute("HSET", keys.resque_heartbeats(), self._resque_id, _iso8601(now)),
            conn.execute("SET", keys.heartbeat(self._token), "1", "PX", self._ttl_ms),
        ]
        busy = self._busy()
        if busy:
            # Not per job (thousands a second): a summary, kept fresh here.
            busy_write = conn.execute(
                "SET",
                keys.worker_busy(self._resque_id),
                json.dumps(
                    {
                        "queue": short_queue_name(self._queues[0]),
                        "run_at": _iso8601(now),
                        "payload": {"class": "Pace", "args": [f"{busy} jobs in flight"]},
                    }
                ),
            )
        else:
            busy_write = conn.execute("DEL", keys.worker_busy(self._resque_id))
        writes.append(busy_write)
        return defer.gatherResults(writes, consumeErrors=True)

    @defer.inlineCallbacks
    def _heartbeat(self) -> Any:
        self._beats += 1
        try:
            now = yield self._server_time()
            yield self._heartbeat_now(now)
            if self._beats % _SWEEP_EVERY == 0:
                yield self.sweep()
        except Exception as e:
            log.warn("pace: heartbeat not written: {error}", error=e)

    @defer.inlineCallbacks
    def sweep(self) -> Any:
        """
        Prune every registered worker whose heartbeat expired and put its
        jobs back. Fires with the number of jobs put back.
        """
        registry = yield self._conn.execute("HGETALL", keys.pace_workers())
        if isinstance(registry, list):
            registry = dict(zip(registry[::2], registry[1::2], strict=True))
        total = 0
        for token, record in (registry or {}).items():
            if token == self._token:
                continue
            try:
                data = json.loads(record)
                resque_id, pairs = data["resque_id"], data["lists"]
            except (ValueError, TypeError, KeyError):
                log.warn("pace: unreadable worker registration {token}", token=token)
                continue
            moved = yield UNREGISTER(
                self._conn, _unregister_keys(token, resque_id, pairs), [token, resque_id, 1]
            )
            if moved is not None and moved >= 0:
                log.warn(
                    "pace: worker {id} stopped beating: pruned, and {n} of its jobs put back "
                    "in their queues",
                    id=resque_id,
                    n=moved,
                )
                total += moved
        return total

    def stop(self) -> defer.Deferred:
        """
        Deregister, if this worker's processing lists are empty; otherwise
        the registration stays and another worker recovers the jobs.
        """
        self._stopped = True
        if self._beat.running:
            self._beat.stop()
        d = UNREGISTER(
            self._conn,
            _unregister_keys(self._token, self._resque_id, self._pairs),
            [self._token, self._resque_id, 0],
        )
        d.addCallback(self._deregistered)
        return d

    def _deregistered(self, result: int) -> None:
        if result is not None and result < 0:
            log.warn(
                "pace: jobs left in the processing lists of {id}; another worker will "
                "put them back once its heartbeat expires",
                id=self._resque_id,
            )
