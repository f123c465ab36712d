"""
Fetching jobs from Redis: batched pops sized to what the worker can start
when the queues have a backlog, a blocking pop of at most ~2 s when they are
empty, and, in reliable mode, an atomic move of each job into this worker's
processing list. Also puts jobs back at the head of their queues, and
reclaims jobs a lost fetch reply left in the processing lists.

A fetch returns one list of raw payloads per queue, in priority order.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from pace import lua
from pace.connection import RedisConnection, connection_errors
from pace.failures import error_text

log = Logger()

#: How long one blocking pop waits; short enough that pause and shutdown
#: (which unblock it anyway) never wait on it for long.
BLOCK_SECONDS = 2.0
#: A blocking pop whose reply has not come this long after its own timeout
#: is given up: the fetch connection is aborted and made anew.
BLOCK_MARGIN = 1.5
#: Reliable mode on several queues has no blocking move (BLMOVE takes one
#: source), so an idle worker polls them this often.
IDLE_POLL_SECONDS = 0.1
#: unblock() asks Redis this often, this many times at most, while the
#: blocking pop it ends (sent on the other connection) has not arrived yet.
UNBLOCK_RETRY_SECONDS = 0.005
UNBLOCK_TRIES = 20
#: Payloads per Lua call when putting jobs back: well under Lua's unpack limit.
_CHUNK = 1000


class Fetcher:
    def __init__(
        self,
        conn: RedisConnection,
        commands: RedisConnection,
        queues: list[str],
        processing: list[str] | None = None,
        *,
        block_seconds: float = BLOCK_SECONDS,
        reactor: Any = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._conn = conn
        self._commands = commands
        self.queues = queues
        self.processing = processing
        self._block_seconds = block_seconds
        self._reactor = reactor
        self._index = {q.encode(): i for i, q in enumerate(queues)}
        self._empty: list[list[bytes]] = [[] for _ in queues]
        if processing is None:
            self._pop_keys = queues
            self._pop = None if len(queues) == 1 else lua.POP
        else:
            self._pop_keys = queues + processing
            self._pop = lua.POP_RELIABLE
        self._client_id: tuple[Any, int] | None = None
        self._blocked = False
        # unblock() was called for the fetch now under way: do not wait.
        self._unblocked = False
        self._retry: Any = None
        self._sleep: defer.Deferred | None = None
        #: Set by the worker (the registry's ``confirmed``): while false, no
        #: job is taken, since no sweeper may be watching our lists.
        self.registered: Any = None

    def fetch(self, count: int, wait: bool = True) -> defer.Deferred:
        """
        Up to ``count`` jobs: whatever is there at once, or else (unless
        ``wait`` is false) the first to arrive within ~2 s, possibly none;
        as one list per queue.
        """
        self._unblocked = False
        if self.processing is not None and self.registered is not None and not self.registered():
            return self._nap()
        if not wait:
            return self._fetch_now(count)
        if self._pop is None:
            d = self._conn.execute("LPOP", self.queues[0], count)
            d.addCallback(self._single_popped)
        else:
            d = self._pop(self._conn, self._pop_keys, [count])
            d.addCallback(self._batch_popped)
        return d

    def _fetch_now(self, count: int) -> defer.Deferred:
        if self._pop is None:
            d = self._conn.execute("LPOP", self.queues[0], count)
            return d.addCallback(lambda got: [got or []])
        return self._pop(self._conn, self._pop_keys, [count])

    def _single_popped(self, got: list[bytes] | None) -> Any:
        return [got] if got else self._wait()

    def _batch_popped(self, got: list[list[bytes]]) -> Any:
        for jobs in got:
            if jobs:
                return got
        return self._wait()

    def _wait(self) -> Any:
        if self._unblocked:
            # Paused or stopping while the pop was on its way: no waiting.
            return self._empty
        if self.processing is not None and len(self.queues) > 1:
            return self._nap()
        return self._blocking()

    def _nap(self) -> defer.Deferred:
        self._sleep = task.deferLater(self._reactor, IDLE_POLL_SECONDS, lambda: self._empty)
        self._sleep.addErrback(lambda f: f.trap(defer.CancelledError) and self._empty)
        return self._sleep

    @defer.inlineCallbacks
    def _blocking(self) -> Any:
        proto = yield self._conn.connected()
        if self._client_id is None or self._client_id[0] is not proto:
            # Remembered so that unblock() can end the wait from the command
            # connection: atomic on the server, so no job is ever lost.
            self._client_id = (proto, (yield proto.execute_command("CLIENT", "ID")))
        if self._unblocked:
            return self._empty
        self._blocked = True
        try:
            if self.processing is None:
                got = yield proto.execute_command(
                    "BLPOP", *self.queues, self._block_seconds, apply_timeout=False
                )
                if got:
                    result: list[list[bytes]] = [[] for _ in self.queues]
                    result[self._index[got[0]]].append(got[1])
                    return result
            else:
                got = yield proto.execute_command(
                    "BLMOVE",
                    self.queues[0],
                    self.processing[0],
                    "LEFT",
                    "RIGHT",
                    self._block_seconds,
                    apply_timeout=False,
                )
                if got is not None:
                    return [[got]]
        finally:
            self._blocked = False
            if self._retry is not None and self._retry.active():
                self._retry.cancel()
            self._retry = None
        return self._empty

    def unblock(self) -> defer.Deferred:
        """
        End a blocking pop now, if one is waiting or about to; it returns no
        job.
        """
        self._unblocked = True
        if self._sleep is not None and not self._sleep.called:
            self._sleep.cancel()
        if not self._blocked or self._client_id is None:
            return defer.succeed(None)
        return self._send_unblock(self._client_id, UNBLOCK_TRIES)

    def _send_unblock(self, client_id: tuple[Any, int], tries: int) -> defer.Deferred:
        self._retry = None
        d = self._commands.execute("CLIENT", "UNBLOCK", client_id[1])

        def check(unblocked: int) -> None:
            # 0: the blocking pop, sent on the other connection, has not
            # reached Redis yet; ask again shortly, until it has returned.
            if not unblocked and tries > 1 and self._blocked and self._client_id is client_id:
                self._retry = self._reactor.callLater(
                    UNBLOCK_RETRY_SECONDS, self._send_unblock, client_id, tries - 1
                )

        d.addCallback(check)
        d.addErrback(_unblock_failed)
        return d

    def requeue(self, queue_index: int, payloads: list[bytes | str]) -> defer.Deferred:
        """
        Put ``payloads`` back at the head of their queue, first one first,
        and out of the processing list in reliable mode.
        """
        keys = [self.queues[queue_index]]
        if self.processing is not None:
            keys.append(self.processing[queue_index])
        calls = []
        # The last chunk goes in first, so the first ends up at the head.
        for end in range(len(payloads), 0, -_CHUNK):
            chunk = payloads[max(0, end - _CHUNK) : end]
            calls.append((keys, chunk[::-1]))
        return _sequence(self._commands, calls)

    @defer.inlineCallbacks
    def reclaim(self, known: dict[tuple[int, bytes], int]) -> Any:
        """
        Put back the orphans of the processing lists: entries that no job of
        this worker accounts for (``known`` counts, per (queue index,
        payload), the jobs running or settled but not yet acknowledged). A
        fetch whose reply was lost leaves such entries. The fetch loop is
        the only writer of new entries and calls this between fetches, so
        nothing new can appear while it looks.
        """
        known = dict(known)
        for qi, key in enumerate(self.processing or []):
            listed = yield self._commands.execute("LRANGE", key, 0, -1)
            orphans = []
            for raw in listed or []:
                raw = raw.encode() if isinstance(raw, str) else raw
                if known.get((qi, raw), 0) > 0:
                    known[qi, raw] -= 1
                else:
                    orphans.append(raw)
            if orphans:
                log.warn(
                    "pace: {n} jobs fetched from {queue} were lost in transit; putting them back",
                    n=len(orphans),
                    queue=self.queues[qi],
                )
                yield self.requeue(qi, orphans)


def _unblock_failed(failure: Any) -> None:
    # The command connection went away (a shutdown closing it, a lost
    # network): the blocking pop ends by its own deadline anyway.
    if failure.check(*connection_errors()):
        return
    log.warn("pace: could not unblock the fetch: {error}", error=error_text(failure))


@defer.inlineCallbacks
def _sequence(conn: RedisConnection, calls: list) -> Any:
    for keys, args in calls:
        yield lua.REQUEUE(conn, keys, args)
