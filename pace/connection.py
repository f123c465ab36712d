"""
Connections to Redis: one reconnecting connection per role (the blocking
fetch gets one of its own, commands share another), each with a reply
deadline, TCP keepalive, jittered backoff, and logs that name the role and
never the password. Also tells transient Redis errors from permanent ones.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from pace.config import RedisURL

log = Logger()

#: Seconds a command connection waits for a reply that has not begun to
#: arrive before it gives the connection up and makes a new one.
REPLY_TIMEOUT = 5.0
#: The longest wait between two connection attempts (the backoff's cap,
#: jitter included).
RECONNECT_MAX_DELAY = 10.0

#: Error codes that mean "not now": the command is kept and tried again.
TRANSIENT = (
    "LOADING",
    "OOM",
    "BUSY",
    "MASTERDOWN",
    "TRYAGAIN",
    "NOREPLICAS",
    "READONLY",
    "UNBLOCKED",
    "MISCONF",
    "CLUSTERDOWN",
)
#: Error codes that trying again cannot mend, with what to do about them.
PERMANENT = {
    "WRONGPASS": "the user or password in the Redis URL is wrong",
    "NOAUTH": "the server wants a password: put it in the Redis URL "
    "(redis://:PASSWORD@host, or $REDIS_URL)",
    "NOPERM": "the Redis user may not run a command Pace needs: grant it "
    "+@read +@write +@list +@scripting +client",
    "WRONGTYPE": "a key Pace uses holds another type of value: look at the queue "
    "and resque:* keys named in the log",
}
_NOT_MASTER = ("READONLY", "UNBLOCKED")


def _txredis() -> Any:
    from pace import txredis

    return txredis


def connection_errors() -> tuple[type[BaseException], ...]:
    """
    Exceptions that mean "the connection went away" (as opposed to Redis
    refusing a command).
    """
    return (_txredis().ConnectionError, defer.CancelledError, defer.TimeoutError)


def error_code(failure: Failure) -> str | None:
    """
    The code of a Redis error reply (``OOM``, ``NOAUTH``...), else None.
    """
    txredis = _txredis()
    if not failure.check(txredis.ResponseError, txredis.Refused):
        return None
    text = str(failure.value)
    return text.split(None, 1)[0] if text else None


def is_transient(failure: Failure) -> bool:
    """
    True for a lost connection or an error reply that may pass by itself.
    """
    if failure.check(*connection_errors()):
        return True
    return error_code(failure) in TRANSIENT


def advice(failure: Failure) -> str | None:
    """
    What to do about a permanent error, or None.
    """
    return PERMANENT.get(error_code(failure) or "")


def with_advice(text: str, failure: Failure) -> str:
    """
    ``text`` (the error), followed by what to do about it if it is permanent.
    """
    hint = advice(failure)
    return f"{text.rstrip('.')}: {hint}" if hint else text


class RedisConnection:
    """
    One Redis connection that reconnects by itself. ``execute`` waits for the
    connection when it is down; ``protocol`` is the live txredisapi protocol
    or ``None``, for callers on the hot path that only want the fast case.

    A reply that has not begun to arrive within ``reply_timeout`` seconds
    gives the connection up (a frozen server, a half-open network): it is
    aborted, what waited on it fails with a connection error, and a new one
    is made. The check runs a few times per timeout, not per command.
    """

    def __init__(
        self,
        url: RedisURL,
        role: str = "commands",
        *,
        charset: str | None = "utf-8",
        reply_timeout: float = REPLY_TIMEOUT,
        reactor: Any = None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        txredis = _txredis()
        from pace.endpoints import endpoint_for

        self.url = url
        self.role = role
        self._reactor = reactor
        self._timeout = reply_timeout
        self._interval = reply_timeout / 4
        self._waiters: set[defer.Deferred] = set()
        self._closed = False
        self._stalled_since: float | None = None
        self._reads = -1
        endpoint = None if url.scheme == "redis+sentinel" else endpoint_for(url, reactor)
        events = txredis.make_events(
            on_delay=self._retrying,
            on_connected=self._connected,
            on_lost=self._lost,
            on_refused=self._refused,
            on_closed=self._closed_by,
        )
        self._said: str | None = None
        self._link = txredis.Link(url, charset, endpoint, events)
        self._expected = reactor.seconds() + self._interval
        self._watch = reactor.callLater(self._interval, self._check)

    def __repr__(self) -> str:
        return f"<RedisConnection {self.role} {self.url.redacted()}>"

    # -- the reply deadline ----------------------------------------------

    def _check(self) -> None:
        now = self._reactor.seconds()
        late = now - self._expected
        self._expected = now + self._interval
        self._watch = self._reactor.callLater(self._interval, self._check)
        proto = self._link.live()
        if proto is None or not _txredis().awaiting_reply(proto):
            self._stalled_since = None
            return
        if late > self._interval or proto.reads != self._reads or self._stalled_since is None:
            # Progress, a fresh wait, or a reactor that was itself stalled
            # (the reply may sit unread in the socket): start counting anew.
            self._reads = proto.reads
            self._stalled_since = now
            return
        if now - self._stalled_since >= self._timeout:
            log.warn(
                "pace: Redis at {url} sent no reply for {seconds:.1f}s on the {role} "
                "connection; dropping it and connecting again",
                url=self.url.redacted(),
                role=self.role,
                seconds=now - self._stalled_since,
            )
            self._stalled_since = None
            _txredis().abort(proto)

    # -- what the factory tells us -----------------------------------------

    def _retrying(self, attempt: int, delay: float) -> None:
        log.warn(
            "pace: Redis at {url} unreachable for the {role} connection "
            "(attempt {attempt}); retrying in {delay:.1f}s",
            url=self.url.redacted(),
            role=self.role,
            attempt=attempt,
            delay=delay,
        )

    def _connected(self, again: bool) -> None:
        log.info(
            "pace: {what} to Redis at {url} ({role})",
            what="reconnected" if again else "connected",
            url=self.url.redacted(),
            role=self.role,
        )

    def _lost(self) -> None:
        log.warn(
            "pace: lost the {role} connection to Redis at {url}; reconnecting",
            url=self.url.redacted(),
            role=self.role,
        )

    def _closed_by(self, reason: Any) -> None:
        from pace.endpoints import describe_connection_failure

        said = describe_connection_failure(reason)
        if said is not None and said != self._said:
            # A certificate problem repeats on every attempt: say it once.
            self._said = said
            log.error(
                "pace: cannot connect to Redis at {url} ({role}): {why}",
                url=self.url.redacted(),
                role=self.role,
                why=said,
            )

    def _refused(self, why: str) -> None:
        log.error(
            "pace: Redis at {url} refused the {role} connection: {why}. "
            "Check the user, password and database in the Redis URL.",
            url=self.url.redacted(),
            role=self.role,
            why=why,
        )

    # -- using it ------------------------------------------------------------

    @property
    def protocol(self) -> Any:
        return self._link.live()

    @property
    def closed(self) -> bool:
        """
        True once `disconnect` was called.
        """
        return self._closed

    @property
    def fatal(self) -> str | None:
        """
        Why Redis refused this connection for good (password, database).
        """
        return self._link.fatal

    def connected(self) -> defer.Deferred:
        """
        A Deferred that fires with the live protocol, once there is one; it
        fails at once if Redis refused the connection for good, and when
        `disconnect` is called.
        """
        proto = self._link.live()
        if proto is not None:
            return defer.succeed(proto)
        txredis = _txredis()
        if self._closed:
            return defer.fail(txredis.ConnectionError("the connection was closed"))
        if self._link.fatal:
            return defer.fail(txredis.Refused(self._link.fatal))
        d = self._link.wait()
        self._waiters.add(d)
        d.addBoth(self._waited, d)
        return d

    def _waited(self, result: Any, d: defer.Deferred) -> Any:
        self._waiters.discard(d)
        return result

    def execute(self, *args: Any) -> defer.Deferred:
        proto = self._link.live()
        if proto is not None:
            return proto.execute_command(*args)
        return self.connected().addCallback(lambda p: p.execute_command(*args))

    def abort(self) -> None:
        """
        Drop the live connection now (it reconnects); what waits on it fails.
        """
        proto = self._link.live()
        if proto is not None:
            _txredis().abort(proto)

    def drop_if_not_master(self, failure: Failure) -> bool:
        """
        After a failover the old master answers writes with READONLY (and
        blocked pops with UNBLOCKED): drop the connection so that it is made
        again to the new master. True if that was the case.
        """
        if error_code(failure) not in _NOT_MASTER:
            return False
        proto = self._link.live()
        if proto is not None:
            log.warn(
                "pace: {url} is no longer the master ({error}); reconnecting",
                url=self.url.redacted(),
                error=failure.getErrorMessage(),
            )
            proto.transport.loseConnection()
        return True

    def disconnect(self) -> defer.Deferred:
        """
        Close for good: callers waiting for the connection fail now.
        """
        self._closed = True
        if self._watch.active():
            self._watch.cancel()
        waiters, self._waiters = self._waiters, set()
        for d in waiters:
            if not d.called:
                d.cancel()
        return self._link.disconnect()
