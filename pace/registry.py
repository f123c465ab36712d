"""
Where workers are known. Each worker registers as Resque's workers do
(``resque:workers``, ``:started``, the heartbeat hash, per-worker stats, and
``resque:worker:<id>`` holding a real job it is running), so Resque's tools
list it truthfully, and Ruby's prune leaves it alone while it lives (its
process title, `pace.proctitle`). Liveness is judged by the Redis server's
clock against a sorted set of deadlines: a sweep is one script call that
looks only at the workers past theirs; their processing lists go back to the
head of their queues, in order, exactly once however many workers sweep.
After an outage nobody is judged dead until the fleet had time to come back.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from time import monotonic
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from pace import keys, proctitle
from pace.config import short_queue_name
from pace.connection import RECONNECT_MAX_DELAY, REPLY_TIMEOUT, RedisConnection
from pace.endpoints import CONNECT_TIMEOUT
from pace.lua import ADOPT_LEGACY, BEAT, DEREGISTER, SWEEP
from pace.ticker import Ticker

log = Logger()

#: Beats per sweep: three beats per TTL, so a sweep once per TTL.
_SWEEP_EVERY = 3
#: The longest a worker may take to be back once Redis is: its next
#: connection attempt (the backoff's cap), the attempt itself, and the
#: handshake's round trip; the least grace after an outage.
_RECONNECT_MAX = RECONNECT_MAX_DELAY + CONNECT_TIMEOUT + REPLY_TIMEOUT
#: Due workers one sweep looks at, at most; the rest wait for the next.
_SWEEP_LIMIT = 1000
#: "Working" follows jobs starting and ending at most this often...
WORKING_EVERY = 1.0
#: ...and is kept this long without news: it is gone soon after a kill -9,
#: before a Ruby worker's prune could turn it into a DirtyExit record.
WORKING_TTL = 5.0
#: A job shown as working is at most this big; a bigger one is skipped for
#: the next-oldest (the record is rewritten at WORKING_EVERY).
WORKING_MAX_PAYLOAD = 65536


def queue_label(key: str) -> str:
    """
    How a worker's id names one of its queue keys: the Resque queue name
    for ``resque:queue:<name>`` (colons and all), else ``redis-key=<key>``,
    so that no Ruby tool takes an absolute key for a Resque queue.
    """
    ns = getattr(sys.modules["pace"], "namespace", None)
    bare = key[len(ns) + 1 :] if ns and key.startswith(ns + ":") else key
    prefix = "resque:queue:"
    return bare[len(prefix) :] if bare.startswith(prefix) else f"redis-key={bare}"


def worker_ids(queue_keys: list[str]) -> tuple[str, str]:
    """
    This process's Resque worker id (``host:pid:queue1,queue2``) and a token
    unique among several workers of one process. Made when the worker
    starts, so that the pid is the running process's after twistd forks.
    """
    host, pid = socket.gethostname(), os.getpid()
    labels = ",".join(queue_label(q) for q in queue_keys)
    return f"{host}:{pid}:{labels}", f"{host}:{pid}:{uuid.uuid4().hex[:12]}"


def _resque_time(seconds: float) -> str:
    # Ruby's Time#to_s, as Resque writes :started.
    return time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(seconds))


def _iso8601(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


class Registry:
    """
    This worker's registration, heartbeats and "working" record, and the
    sweep for dead workers.
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
        busy: Callable[[], int] | None = None,
    ):
        self._conn = commands
        self._token = token
        self._resque_id = resque_id
        self._queues = queues
        self._short = [short_queue_name(q) for q in queues]
        self._pairs = [[q, p] for q, p in zip(queues, processing or [], strict=False)]
        self._record = json.dumps(
            {"resque_id": resque_id, "lists": self._pairs, "pid": os.getpid()}
        )
        self._ttl = ttl
        self._ttl_ms = max(1, int(ttl * 1000))
        self._grace_ms = int((2 * ttl + _RECONNECT_MAX) * 1000)
        self._clock = clock
        self._ticker = Ticker(clock, ttl / 3, self._heartbeat)
        self._threaded = hasattr(clock, "callFromThread")
        self._beats = 0
        self._beating: defer.Deferred | None = None
        self._started_text = ""
        #: monotonic() of the latest beat that Redis confirmed.
        self.confirmed_at: float | None = None
        self._jobs: OrderedDict[Any, tuple[int, bytes, float]] = OrderedDict()
        self._working: Any = None
        self._shown: tuple | None = None
        self._last_shown = -WORKING_EVERY
        self._written = 0.0
        self._stopped = False
        rid = resque_id
        # Every key once, now: under the namespace of the worker's making.
        self._adopt_keys = [keys.pace_workers(), keys.deadlines(), keys.fleet()]
        self._beat_keys = [
            keys.pace_workers(),
            keys.deadlines(),
            keys.fleet(),
            keys.heartbeat(token),
            keys.resque_workers(),
            keys.resque_heartbeats(),
            keys.worker_started(rid),
        ]
        self._sweep_keys = [
            keys.deadlines(),
            keys.pace_workers(),
            keys.fleet(),
            keys.resque_workers(),
            keys.resque_heartbeats(),
        ]
        self._prefix = keys.resque_prefix()
        self._busy_key = keys.worker_busy(rid)
        self._deregister_keys = [
            keys.pace_workers(),
            keys.deadlines(),
            keys.heartbeat(token),
            keys.resque_workers(),
            keys.resque_heartbeats(),
            keys.worker_started(rid),
            keys.worker_busy(rid),
            keys.stat(f"processed:{rid}"),
            keys.stat(f"failed:{rid}"),
            *(p for _, p in self._pairs),
        ]

    # -- registration and heartbeats ---------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        # A stop may come during any step: after it, nothing more is written.
        self._started_text = _resque_time(self._clock.seconds())
        yield ADOPT_LEGACY(self._conn, self._adopt_keys, [])
        if self._stopped:
            return
        yield self._beat_now()
        if self._stopped:
            return
        proctitle.worker_started(self, self._resque_id)
        yield self.sweep()
        if self._stopped:
            return
        # Three beats per TTL, so one late beat never looks like death.
        self._ticker.start()

    def _beat_now(self) -> defer.Deferred:
        conn = self._conn
        d = BEAT(
            conn,
            self._beat_keys,
            [
                self._token,
                self._record,
                self._resque_id,
                self._ttl_ms,
                self._grace_ms,
                self._started_text,
            ],
        )
        sent = self._now()
        d.addCallback(self._beaten, sent)
        return d

    def _beaten(self, result: list, sent: float) -> bool:
        # Whether this beat found the fleet just back from an outage, or
        # this worker back from one of its own: no judging others now.
        _, state, outage = (int(x) for x in result)
        previous, self.confirmed_at = self.confirmed_at, sent
        if state == 2 or (state == 0 and previous is not None):
            log.warn(
                "pace: worker {id} had been taken for dead (no heartbeat within {ttl} s: "
                "Redis unreachable, or the reactor blocked); registered again",
                id=self._resque_id,
                ttl=self._ttl,
            )
        if outage:
            log.info(
                "pace: no Pace worker could beat for a while (Redis outage?): no worker is "
                "judged dead for the next {s} s",
                s=self._grace_ms / 1000,
            )
        return bool(outage) or previous is None or sent - previous > self._ttl

    def _heartbeat(self) -> None:
        if self._beating is not None or self._stopped:
            return  # the previous beat is still on its way
        self._beats += 1
        sweep = self._beats % _SWEEP_EVERY == 0
        d = self._beating = self._beat_now()

        def beaten(back: bool) -> Any:
            if sweep and not back:
                return self.sweep()

        d.addCallback(beaten)
        d.addErrback(lambda f: log.warn("pace: heartbeat not written: {error}", error=f.value))
        d.addBoth(self._beat_done)

    def _beat_done(self, _: Any) -> None:
        self._beating = None

    def _now(self) -> float:
        # Monotonic under a real reactor; a test's Clock otherwise.
        return monotonic() if self._threaded else self._clock.seconds()

    def confirmed(self) -> bool:
        """
        Whether Redis confirmed this worker's registration within the last
        TTL: only then may jobs go into its processing lists, since only then
        is a sweeper sure to look at them.
        """
        at = self.confirmed_at
        return at is not None and self._now() - at < self._ttl

    # -- the sweep ----------------------------------------------------------

    @defer.inlineCallbacks
    def sweep(self) -> Any:
        """
        Prune every worker past its deadline and put its jobs back. Fires
        with the number of jobs put back.
        """
        out = yield SWEEP(
            self._conn,
            self._sweep_keys,
            [self._prefix, _SWEEP_LIMIT, self._ttl_ms, self._grace_ms * 10],
        )
        moved = int(out[0])
        for i in range(3, len(out), 3):
            log.warn(
                "pace: worker {id} stopped beating: pruned, and {n} of its jobs put back "
                "in their queues",
                id=out[i + 1],
                n=int(out[i + 2]),
            )
        return moved

    # -- what this worker is working on ---------------------------------------

    def job_started(self, key: Any, queue_index: int, raw: bytes) -> None:
        """
        A job started (``key`` names it until `job_settled`). Costs a dict
        insert; Redis hears of it within WORKING_EVERY.
        """
        self._jobs[key] = (queue_index, raw, self._clock.seconds())
        if self._working is None:
            self._schedule_working()

    def job_settled(self, key: Any) -> None:
        if self._jobs.pop(key, None) is not None and self._working is None:
            self._schedule_working()

    def _schedule_working(self) -> None:
        if self._stopped:
            return
        wait = max(0.0, self._last_shown + WORKING_EVERY - self._clock.seconds())
        self._working = self._clock.callLater(wait, self._write_working)

    def _oldest(self) -> tuple | None:
        for qi, raw, at in self._jobs.values():
            if len(raw) <= WORKING_MAX_PAYLOAD:
                return (qi, raw, at)
        return None

    def _write_working(self) -> None:
        self._working = None
        now = self._last_shown = self._clock.seconds()
        shown = self._oldest()
        key = self._busy_key
        if shown != self._shown:
            self._shown, self._written = shown, now
            if shown is None:
                d = self._conn.execute("DEL", key)
            else:
                d = self._conn.execute(
                    "SET", key, self._working_record(shown), "PX", int(WORKING_TTL * 1000)
                )
            d.addErrback(self._working_failed)
        elif shown is not None and now - self._written >= WORKING_TTL / 2:
            self._written = now
            d = self._conn.execute("PEXPIRE", key, int(WORKING_TTL * 1000))
            d.addErrback(self._working_failed)
        if self._jobs:
            # Kept fresh while busy; rewritten when the oldest job changes.
            self._schedule_working()

    def _working_failed(self, failure: Any) -> None:
        self._shown = ()  # unknown now: written again next time
        log.warn(
            "pace: could not write what worker {id} works on: {error}",
            id=self._resque_id,
            error=failure.value,
        )

    def _working_record(self, shown: tuple) -> str:
        qi, raw, at = shown
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        # The payload is spliced in as it came (it decoded as a JSON object),
        # so Resque's tools see the job itself.
        head = json.dumps({"queue": self._short[qi], "run_at": _iso8601(at)})
        return f'{head[:-1]}, "in_flight": {len(self._jobs)}, "payload": {text}}}'

    # -- stopping -------------------------------------------------------------

    def stop(self) -> defer.Deferred:
        """
        Leave Resque's registry; leave Pace's too if this worker's processing
        lists are empty (otherwise a sweeper puts the jobs back once this
        worker's deadline has passed).
        """
        self._stopped = True
        self._ticker.stop()
        if self._working is not None and self._working.active():
            self._working.cancel()
        self._working = None
        proctitle.worker_stopped(self)
        rid = self._resque_id
        d = DEREGISTER(self._conn, self._deregister_keys, [self._token, rid])
        d.addCallback(self._deregistered)
        return d

    def _deregistered(self, left: int) -> None:
        if left:
            log.warn(
                "pace: {n} jobs left in the processing lists of {id}; another worker will "
                "put them back once its heartbeat expires",
                n=left,
                id=self._resque_id,
            )


def fleet(r: Any) -> list[dict]:
    """
    Every Pace worker Redis knows of, for ``pace stats``, read with a
    redis-py client ``r`` (``decode_responses=True``): dicts with ``token``,
    ``resque_id``, ``state`` ("alive"; "late": past its deadline, not yet
    swept; "pruned": taken for dead, its lists still watched) and ``held``,
    a list of ``(queue, processing list, jobs)``: the jobs it holds, which
    are in no queue until they settle or a sweep puts them back.
    """
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    records = r.hgetall(keys.pace_workers())
    rows = []
    for token, raw in sorted(records.items()):
        try:
            rec = json.loads(raw)
            lists = [(q, p) for q, p in (rec.get("lists") or [])]
        except (ValueError, TypeError, AttributeError):
            continue
        rows.append((token, rec, lists))
    pipe = r.pipeline(transaction=False)
    for token, _, lists in rows:
        pipe.zscore(keys.deadlines(), token)
        for _, plist in lists:
            pipe.llen(plist)
    replies = iter(pipe.execute())
    out = []
    for token, rec, lists in rows:
        deadline = next(replies)
        held = [(short_queue_name(q), p, int(next(replies))) for q, p in lists]
        if rec.get("pruned"):
            state = "pruned"
        elif deadline is not None and deadline < now_ms:
            state = "late"
        else:
            state = "alive"
        out.append(
            {"token": token, "resque_id": rec.get("resque_id"), "state": state, "held": held}
        )
    return out
