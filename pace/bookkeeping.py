"""
What Redis must hear after jobs settle, batched: acknowledgements (reliable
mode), Resque's processed/failed counters and failure records go out in one
script call per reactor turn, not one round trip per job. A batch Redis
cannot take now (a lost connection, OOM, LOADING...) is kept and tried again
with backoff, never dropped; meanwhile the bookkeeper says it is blocked, so
that the worker fetches nothing more.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from pace import keys
from pace.connection import RedisConnection, advice, connection_errors, is_transient
from pace.failures import error_text
from pace.fetchloop import BACKOFF_PERMANENT, BACKOFF_TRANSIENT, backoff
from pace.lua import SETTLE

log = Logger()


#: Acknowledgements per script call at most (Lua's unpack has limits).
_MAX_BATCH = 2000


class Bookkeeper:
    def __init__(
        self,
        commands: RedisConnection,
        processing: list[str] | None,
        worker_id: str,
        reactor: Any = None,
        clock: Any = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._conn = commands
        self._reactor = reactor
        self._clock = clock if clock is not None else reactor
        #: True while a batch Redis refused waits to be written again.
        self.blocked = False
        self._failures = 0
        self._retry: Any = None
        self._reported: str | None = None
        self._writable_waiters: list[defer.Deferred] = []
        self._closed = False
        self._keys = [
            keys.stat("processed"),
            keys.stat("failed"),
            keys.failed_list(),
            keys.stat(f"processed:{worker_id}"),
            keys.stat(f"failed:{worker_id}"),
        ]
        if processing:
            self._keys += processing
        self._reliable = processing is not None
        queues = len(processing) if processing else 0
        self._processed = 0
        self._failed = 0
        #: Jobs settled since the start (written or not), for the throughput log.
        self.processed_total = 0
        self.failed_total = 0
        self._records: list[str] = []
        # Payloads to acknowledge, one list per queue (one argument per job).
        self._acks: list[list[bytes]] = [[] for _ in range(queues)]
        self._scheduled = False
        self._in_flight: defer.Deferred | None = None
        self._sent_acks: list[list[bytes]] = [[] for _ in range(queues)]
        self._idle_waiters: list[defer.Deferred] = []

    def settled(
        self, queue_index: int, raw: bytes, failed: bool = False, record: str | None = None
    ) -> None:
        """
        A job settled: count it, record its failure if it failed, and
        acknowledge it in reliable mode. Written out at the end of this
        reactor turn.
        """
        self._processed += 1
        if failed:
            self._failed += 1
            if record is not None:
                self._records.append(record)
        if self._reliable:
            self._acks[queue_index].append(raw)
        if not self._scheduled:
            self._scheduled = True
            self._reactor.callLater(0, self._flush)

    def forget(self, queue_index: int, raw: bytes) -> None:
        """
        Drop a pending acknowledgement: the job went back to its queue.
        """
        if not self._reliable:
            return
        acks = self._acks[queue_index]
        for i in range(len(acks) - 1, -1, -1):
            if acks[i] == raw:
                del acks[i]
                return

    def unacknowledged(self) -> list[tuple[int, bytes]]:
        """
        (queue index, payload) of jobs settled here whose acknowledgement
        has not been confirmed by Redis yet.
        """
        sent = self._sent_acks if self._in_flight is not None else [[] for _ in self._acks]
        return [
            (qi, raw)
            for qi, (a, b) in enumerate(zip(sent, self._acks, strict=True))
            for raw in a + b
        ]

    def idle(self) -> defer.Deferred:
        """
        Fires once everything so far is written.
        """
        if not self._scheduled and self._in_flight is None and not self._pending():
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._idle_waiters.append(d)
        if self._retry is not None and self._retry.active():
            # Someone waits (shutdown): try now rather than after the backoff.
            self._retry.cancel()
        if not self._scheduled and self._in_flight is None:
            self._flush()
        return d

    def _pending(self) -> bool:
        return bool(self._processed or self._records or any(self._acks))

    def _flush(self) -> None:
        self._scheduled = False
        if self._retry is not None and self._retry.active():
            # Redis refused the last batch: the retry timer writes it all.
            return
        if self._in_flight is not None:
            # _written() flushes the rest and wakes the idle waiters.
            return
        if not self._pending():
            self._wake_idle()
            return
        acks: list[list[bytes]] = []
        ack_args: list[Any] = []
        room = _MAX_BATCH
        for qi, pending in enumerate(self._acks):
            taken = pending[:room]
            del pending[: len(taken)]
            room -= len(taken)
            acks.append(taken)
            if taken:
                ack_args += (qi + 1, len(taken), *taken)
        # Lua's unpack() takes some thousands of values at most: failure
        # records beyond that go in the next call.
        records = self._records[:_MAX_BATCH]
        del self._records[: len(records)]
        batch = (self._processed, self._failed, records, acks)
        self.processed_total += self._processed
        self.failed_total += self._failed
        self._processed = self._failed = 0
        args = [batch[0], batch[1], len(batch[2]), *batch[2], *ack_args]
        self._sent_acks = acks
        d = self._in_flight = SETTLE(self._conn, self._keys, args)
        d.addCallbacks(self._written, self._not_written, errbackArgs=(batch,))

    def _written(self, _: Any) -> None:
        self._in_flight = None
        if self._failures:
            log.info("pace: job results written to Redis again")
            self._failures = 0
            self._reported = None
        self._set_blocked(False)
        if self._pending():
            self._flush()
        else:
            self._wake_idle()

    def _not_written(self, failure: Any, batch: tuple) -> None:
        # Keep the batch and try again: a lost ack runs the job twice after
        # a restart, a lost record hides a failure, a lost count lies.
        self._in_flight = None
        processed, failed, records, acks = batch
        self.processed_total -= processed
        self.failed_total -= failed
        self._processed += processed
        self._failed += failed
        self._records[:0] = records
        for pending, sent in zip(self._acks, acks, strict=True):
            pending[:0] = sent
        if self._closed:
            self._wake_idle()
            return
        self._failures += 1
        self._set_blocked(True)
        self._conn.drop_if_not_master(failure)
        transient = is_transient(failure)
        text = error_text(failure)
        if text != self._reported:
            self._reported = text
            hint = advice(failure)
            (log.warn if transient else log.error)(
                "pace: Redis did not take the results of {n} jobs ({error}){hint}; "
                "kept, and written when it does (no fetching meanwhile)",
                n=sum(map(len, acks)) or processed,
                error=text,
                hint=f": {hint}" if hint else "",
            )
        if failure.check(*connection_errors()):
            # Lost connection: write as soon as there is a new one.
            d = self._conn.connected()
            d.addCallbacks(
                lambda _: None if self._closed else self._flush(),
                lambda f: self._later(BACKOFF_TRANSIENT),
            )
            return
        self._later(BACKOFF_TRANSIENT if transient else BACKOFF_PERMANENT)

    def _later(self, cap: float) -> None:
        if self._closed:
            # The wait for a new connection ended because the worker stopped
            # (it closed the connection): no retry after that.
            return
        if self._retry is None or not self._retry.active():
            self._retry = self._clock.callLater(backoff(self._failures, cap), self._flush)

    def close(self) -> None:
        """
        Stop retrying: what is still unwritten stays with ``unacknowledged``
        (in reliable mode its jobs stay in the processing list, for recovery).
        """
        self._closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._set_blocked(False)
        self._wake_idle()

    def _set_blocked(self, blocked: bool) -> None:
        self.blocked = blocked
        if not blocked:
            waiters, self._writable_waiters = self._writable_waiters, []
            for d in waiters:
                d.callback(None)

    def writable(self) -> defer.Deferred:
        """
        Fires once results can be written again (cancellable).
        """
        if not self.blocked:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred(lambda d: self._writable_waiters.remove(d))
        self._writable_waiters.append(d)
        return d

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)
