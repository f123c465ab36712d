"""
Recovering the jobs of dead workers. In reliable mode each worker registers
its processing lists and keeps a heartbeat key with a TTL; a worker whose
heartbeat expired (kill -9, a lost machine) had its jobs in flight in those
lists, and any live worker puts them back at the head of their queues, in
order, exactly once even when several sweep at the same time.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pace import keys
from pace.connection import RedisConnection
from pace.scripts import Script

log = Logger()

# KEYS: the registry hash, the dead worker's heartbeat key, then pairs of
# (queue, processing list). ARGV: the dead worker's id.
# Moves each processing list back to the head of its queue, oldest job
# first in line; returns how many jobs moved (0 if the worker is alive or
# another sweeper got there first).
_RECOVER = Script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local moved = 0
for i = 3, #KEYS, 2 do
  while true do
    local job = redis.call('RPOP', KEYS[i + 1])
    if not job then break end
    redis.call('LPUSH', KEYS[i], job)
    moved = moved + 1
  end
end
return moved
""")


# KEYS: the registry hash, this worker's heartbeat key, its processing lists.
# ARGV: this worker's id. Deregisters only when every processing list is
# empty; otherwise the registration stays and the jobs get recovered.
_DEREGISTER = Script("""
for i = 3, #KEYS do
  if redis.call('LLEN', KEYS[i]) > 0 then return 0 end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
""")

#: Beats per sweep: three beats per TTL, so a sweep once per TTL.
_SWEEP_EVERY = 3


class Recovery:
    """
    This worker's registration and heartbeat, and the sweep for dead ones.
    """

    def __init__(
        self,
        commands: RedisConnection,
        token: str,
        queues: list[str],
        processing: list[str],
        ttl: float,
        clock: Any,
    ):
        self._conn = commands
        self._token = token
        self._pairs = [[q, p] for q, p in zip(queues, processing, strict=True)]
        self._ttl_ms = max(1, int(ttl * 1000))
        self._ttl = ttl
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = clock
        self._beats = 0

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self._heartbeat_now()
        yield self.sweep()
        # Beat three times per TTL so one late beat never looks like death.
        self._beat.start(self._ttl / 3, now=False)

    def _heartbeat_now(self) -> defer.Deferred:
        # Registering again on every beat: if this worker was taken for dead
        # (a reactor blocked for longer than the TTL), its lists count again.
        self._conn.execute("HSET", keys.pace_workers(), self._token, json.dumps(self._pairs))
        return self._conn.execute("SET", keys.heartbeat(self._token), "1", "PX", self._ttl_ms)

    def _heartbeat(self) -> defer.Deferred:
        self._beats += 1
        d = self._heartbeat_now()
        if self._beats % _SWEEP_EVERY == 0:
            d.addCallback(lambda _: self.sweep())
        d.addErrback(
            lambda f: log.warn("pace: heartbeat not written: {error}", error=f.getErrorMessage())
        )
        return d

    @defer.inlineCallbacks
    def sweep(self) -> Any:
        """
        Put back the jobs of every registered worker whose heartbeat expired.
        Fires with the number of jobs put back.
        """
        registry = yield self._conn.execute("HGETALL", keys.pace_workers())
        if isinstance(registry, list):
            registry = dict(zip(registry[::2], registry[1::2], strict=True))
        total = 0
        for token, pairs in (registry or {}).items():
            if token == self._token:
                continue
            try:
                flat = [k for pair in json.loads(pairs) for k in pair]
            except (ValueError, TypeError):
                log.warn("pace: unreadable worker registration {token}", token=token)
                continue
            moved = yield _RECOVER(
                self._conn, [keys.pace_workers(), keys.heartbeat(token), *flat], [token]
            )
            if moved:
                log.warn(
                    "pace: worker {token} stopped beating; put {n} of its jobs back in their "
                    "queues",
                    token=token,
                    n=moved,
                )
            total += moved or 0
        return total

    def stop(self) -> defer.Deferred:
        """
        Deregister, if this worker's processing lists are empty.
        """
        if self._beat.running:
            self._beat.stop()
        processing = [p for _, p in self._pairs]
        d = _DEREGISTER(
            self._conn,
            [keys.pace_workers(), keys.heartbeat(self._token), *processing],
            [self._token],
        )
        d.addCallback(self._deregistered)
        return d

    def _deregistered(self, done: int) -> None:
        if not done:
            log.warn(
                "pace: jobs left in the processing lists of {token}; another worker will "
                "put them back once its heartbeat expires",
                token=self._token,
            )
