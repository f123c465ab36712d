"""
Pausing a queue for the whole fleet: a key per paused queue (with a TTL when
the pause is timed), and Resque's own ``pause-all-workers`` switch. Each
worker reads both with one MGET twice a second, so every Pace (and Resque)
worker of the queue stops starting jobs within about a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pace import keys
from pace.config import check_number, expand_queue_name

log = Logger()

#: Seconds between two reads of the pause keys by a worker.
CHECK_SECONDS = 0.5
#: What a pause key holds when an operator (not a circuit) set it.
BY_OPERATOR = "operator"


def _key(queue: str) -> str:
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"a queue name must be a non-empty string, not {queue!r}")
    return keys.queue_paused(expand_queue_name(queue))


def pause_queue(
    queue: str,
    seconds: float | None = None,
    *,
    redis_url: str | None = None,
    by: str = BY_OPERATOR,
) -> defer.Deferred:
    """
    Pause ``queue`` for every Pace worker of it (with ``seconds``, until that
    long has passed). Fires once the pause is stored; workers stop starting
    jobs within about a second of that.
    """
    from pace.enqueue import _connection

    key = _key(queue)
    if seconds is None:
        return _connection(redis_url).execute("SET", key, by)
    check_number("seconds", seconds)
    return _connection(redis_url).execute("SET", key, by, "PX", max(1, int(seconds * 1000)))


def resume_queue(queue: str, *, redis_url: str | None = None) -> defer.Deferred:
    """
    End a fleet pause of ``queue``; its workers start again within a second.
    """
    from pace.enqueue import _connection

    return _connection(redis_url).execute("DEL", _key(queue))


def is_pause_all(value: Any) -> bool:
    # Resque::Worker#paused?: the value, stripped and downcased, is "true".
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return isinstance(value, str) and value.strip().lower() == "true"


class PauseWatch:
    """
    A worker's view of the fleet pauses of its queues. ``on_change(paused)``
    is called when that changes; a pause set by ``own`` (this worker's
    circuit) does not count for this worker, which runs the trial job.
    """

    def __init__(
        self,
        conn: Any,
        queues: list[str],
        clock: Any,
        on_change: Callable[[bool], Any],
        own: str | None = None,
        interval: float = CHECK_SECONDS,
    ):
        self._conn = conn
        self._keys = [keys.queue_paused(q) for q in queues]
        self._all = keys.pause_all_workers()
        self._names = queues
        self._clock = clock
        self._on_change = on_change
        self._own = own
        self._interval = interval
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._unreachable = False
        #: Whether this worker must not start jobs.
        self.paused = False
        #: Expanded names of this worker's queues paused now (for metrics).
        self.paused_queues: set[str] = set()
        #: True while Resque's pause-all-workers switch is on.
        self.pause_all = False

    def start(self) -> defer.Deferred:
        """
        Read once now (fires after that first read), then keep reading.
        """
        d = self.check()
        self._loop.start(self._interval, now=False)
        return d

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def check(self) -> defer.Deferred:
        d = self._conn.execute("MGET", *self._keys, self._all)
        # Never longer than one period: a frozen Redis keeps the last state.
        d.addTimeout(self._interval * 4, self._clock)
        return d.addCallbacks(self._read, self._not_read)

    def _read(self, values: list) -> None:
        self._unreachable = False
        *mine, everyone = values
        own = self._own
        paused = {
            q
            for q, v in zip(self._names, mine, strict=True)
            if v is not None and (own is None or _text(v) != own)
        }
        self.paused_queues = {q for q, v in zip(self._names, mine, strict=True) if v is not None}
        self.pause_all = is_pause_all(everyone)
        now = bool(paused) or self.pause_all
        if now != self.paused:
            self.paused = now
            if now:
                why = "Resque's pause-all-workers" if self.pause_all else sorted(paused)
                log.info("pace: paused for the fleet ({why})", why=why, fleet_paused=True)
            else:
                log.info("pace: fleet pause over; starting jobs again", fleet_paused=False)
            self._on_change(now)

    def _not_read(self, failure: Any) -> None:
        if not self._unreachable:
            self._unreachable = True
            log.warn(
                "pace: could not read the fleet pause keys ({error}); keeping the last state",
                error=failure.getErrorMessage() or failure.type.__name__,
            )


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
