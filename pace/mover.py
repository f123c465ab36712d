"""
The mover: every running worker helps push due delayed jobs onto their
queues. One atomic script moves a bounded batch, so any number of movers
share the work with no leader and no job is moved twice or lost.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace import keys, lua
from pace.failures import failure_record
from pace.payload import MalformedJob, as_text

log = Logger()

#: Schedule entries one script call looks at, at most (keeps Redis responsive).
BATCH = 200
#: Seconds a script call may take before it is abandoned and tried again.
CALL_TIMEOUT = 10.0
#: Seconds to wait after an error before trying again.
ERROR_DELAY = 1.0


class Mover:
    """
    Moves due delayed jobs with ``conn`` (a `pace.connection.RedisConnection`)
    on ``clock``. Timestamps are whole seconds, so a job can only become due
    when the clock passes a second: the mover runs just after each one (one
    command a second when idle), at once again while a batch was full.
    """

    def __init__(
        self,
        conn: Any,
        clock: Any,
        worker: str = "pace-mover",
        *,
        batch: int = BATCH,
        offset: float | None = None,
    ):
        self._conn = conn
        self._clock = clock
        self._worker = worker
        self._batch = batch
        # Just after the second, spread a little so that a fleet's movers
        # do not all arrive at once (the first one moves everything).
        self._offset = random.uniform(0.002, 0.05) if offset is None else offset
        self._call: Any = None
        self._running: defer.Deferred | None = None
        self._stopped = True
        #: Jobs moved and malformed entries recorded by this mover.
        self.moved = 0
        self.recorded = 0
        # Keys once, under the namespace of the mover's making.
        self._move_keys = [keys.delayed_schedule(), keys.schedule_malformed(), keys.queues_set()]
        self._prefix = keys.resque_prefix()
        self._record_keys = [keys.schedule_malformed(), keys.failed_list(), keys.stat("failed")]

    def start(self) -> None:
        if not self._stopped:
            return
        self._stopped = False
        self._later(0)

    def stop(self) -> defer.Deferred:
        """
        Stop moving; fires once a script call in flight has returned (or
        been abandoned), so nothing is left half done on this side.
        """
        self._stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        running = self._running
        if running is None:
            return defer.succeed(None)
        done: defer.Deferred = defer.Deferred()

        def settled(result: Any) -> Any:
            done.callback(None)
            return result

        running.addBoth(settled)
        return done

    def _later(self, delay: float) -> None:
        if not self._stopped:
            self._call = self._clock.callLater(max(delay, 0), self._tick)

    def _tick(self) -> None:
        self._call = None
        d = self.move_once()
        self._running = d
        d.addCallbacks(self._next, self._failed)
        d.addBoth(self._settled)

    def _settled(self, _: Any) -> None:
        self._running = None

    def _next(self, full: bool) -> None:
        if full:
            self._later(0)
        else:
            now = self._clock.seconds()
            self._later(math.floor(now) + 1 + self._offset - now)

    def _failed(self, failure: Failure) -> None:
        if self._stopped:
            return  # the connection closing at shutdown
        log.warn(
            "pace: moving due delayed jobs failed ({error}); trying again in {delay}s",
            error=failure.getErrorMessage(),
            delay=ERROR_DELAY,
        )
        self._later(ERROR_DELAY)

    def move_once(self) -> defer.Deferred:
        """
        Move one batch of what is due now; fires with True when the batch
        was full (more may be due).
        """
        d = lua.MOVE_DUE(
            self._conn,
            self._move_keys,
            [repr(float(self._clock.seconds())), self._batch, self._prefix],
        )
        d.addTimeout(CALL_TIMEOUT, self._clock)
        return d.addCallback(self._moved)

    def _moved(self, reply: list) -> Any:
        moved, seen, malformed = int(reply[0]), int(reply[1]), reply[2]
        self.moved += moved
        if moved:
            log.debug("pace: moved {n} due delayed jobs", n=moved)
        full = seen >= self._batch
        if not malformed:
            return full
        return self._record(malformed).addCallback(lambda _: full)

    def _record(self, entries: list) -> defer.Deferred:
        args: list = []
        for raw in entries:
            reason, queue = problem(raw)
            failure = Failure(MalformedJob(f"malformed entry in the delayed schedule: {reason}"))
            args += [raw, failure_record(raw, failure, self._worker, queue)]
        d = lua.RECORD_MALFORMED(self._conn, self._record_keys, args)

        def recorded(n: Any) -> None:
            self.recorded += int(n)
            if int(n):
                log.warn(
                    "pace: {n} malformed entries of the delayed schedule recorded as failed jobs",
                    n=int(n),
                )

        return d.addCallback(recorded)


def problem(raw: Any) -> tuple[str, str]:
    """
    What is wrong with a schedule entry, and the queue to name in its
    failure record.
    """
    text = as_text(raw)
    try:
        job = json.loads(text)
    except ValueError as e:
        return f"not JSON ({e})", "delayed"
    if not isinstance(job, dict):
        return "not a JSON object", "delayed"
    queue = job.get("queue")
    if not isinstance(queue, str) or not queue:
        return 'no "queue" (Pace cannot know a Ruby class\'s @queue)', "delayed"
    if not isinstance(job.get("class"), str) or not job["class"]:
        return 'no "class"', queue
    if "args" in job and not isinstance(job["args"], list):
        return '"args" is not a list', queue
    return "Redis could not decode it (nested too deeply?)", queue
