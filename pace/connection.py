"""
Connections to Redis: one reconnecting txredisapi protocol per role (the
blocking fetch gets a connection of its own, commands share another), with
jittered backoff, structured logs and passwords kept out of both.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from pace.config import RedisURL

log = Logger()

#: Exceptions that mean "the connection went away", as opposed to Redis
#: refusing a command.
CONNECTION_ERRORS = (txredisapi.ConnectionError, defer.CancelledError)
_NOT_MASTER = ("READONLY", "UNBLOCKED")


class _Logging:
    # Logging that names the role and the redacted URL, and a remembered
    # fatal error (bad password, bad db), for txredisapi's factories, which
    # already reconnect through ClientService with a jittered backoff.
    url: RedisURL
    role: str

    def _setup(self, url: RedisURL, role: str) -> None:
        self.url = url
        self.role = role
        self.fatal: str | None = None
        self._everConnected = False
        # Nobody waits on the "pool complete" Deferred of a lazy factory; an
        # authentication error would otherwise surface as an unhandled error.
        self.deferred.addErrback(lambda f: None)

    def retryDelay(self, attempt: int) -> float:
        delay = super().retryDelay(attempt)
        log.warn(
            "pace: Redis at {url} unreachable for the {role} connection "
            "(attempt {attempt}); retrying in {delay:.1f}s",
            url=self.url.redacted(),
            role=self.role,
            attempt=attempt,
            delay=delay,
        )
        return delay

    def addConnection(self, conn: Any) -> None:
        if conn.connected and not self.disconnectCalled:
            log.info(
                "pace: {what} to Redis at {url} ({role})",
                what="reconnected" if self._everConnected else "connected",
                url=self.url.redacted(),
                role=self.role,
            )
            self._everConnected = True
        super().addConnection(conn)

    def delConnection(self, conn: Any) -> None:
        if not self.disconnectCalled:
            log.warn(
                "pace: lost the {role} connection to Redis at {url}; reconnecting",
                url=self.url.redacted(),
                role=self.role,
            )
        super().delConnection(conn)

    def connectionError(self, why: str) -> None:
        self.fatal = why
        log.error(
            "pace: Redis at {url} refused the {role} connection: {why}. "
            "Check the user, password and database in the Redis URL.",
            url=self.url.redacted(),
            role=self.role,
            why=why,
        )
        super().connectionError(why)
        # txredisapi stops trying after a refused AUTH or SELECT; whoever waits
        # for a connection must hear it now rather than wait forever.
        peekers, self.connectionQueue.peekers = self.connectionQueue.peekers, []
        for d in peekers:
            d.errback(txredisapi.ConnectionError(why))


class _FastCommands:
    # txredisapi builds each command with two Python calls and a bytearray
    # extend per argument; acknowledging thousands of jobs a second makes
    # that the largest cost of the hot path. One join does the same work.
    charset: str | None
    errors: str

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        parts = [b"*%d\r\n" % len(args)]
        append = parts.append
        for arg in args:
            kind = type(arg)
            if kind is bytes:
                data = arg
            elif kind is str:
                data = arg.encode(self.charset or "utf-8", self.errors)
            elif kind is int:
                data = b"%d" % arg
            else:
                data = self._encode_value(arg)  # type: ignore[attr-defined]
            append(b"$%d\r\n" % len(data))
            append(data)
            append(b"\r\n")
        return b"".join(parts)


class _Protocol(_FastCommands, txredisapi.RedisProtocol):
    pass


def _factory_args(url: RedisURL, charset: str | None) -> dict[str, Any]:
    return dict(
        uuid=url.redacted(),
        dbid=url.db or None,
        poolsize=1,
        isLazy=True,
        charset=charset,
        password=url.password,
        convertNumbers=False,
        username=url.username,
    )


class _Factory(_Logging, txredisapi.RedisFactory):
    protocol = _Protocol
    initialDelay = 0.5
    maxDelay = 10

    def __init__(self, url: RedisURL, role: str, charset: str | None):
        txredisapi.RedisFactory.__init__(self, **_factory_args(url, charset))
        self._setup(url, role)


class _SentinelProtocol(_FastCommands, txredisapi.SentinelRedisProtocol):
    def role(self) -> defer.Deferred:
        # txredisapi compares the role with "master"; on a connection that
        # keeps replies as bytes (the fetch connection) it would never match.
        def decoded(reply: Any) -> Any:
            if reply and isinstance(reply[0], bytes):
                return [reply[0].decode(), *reply[1:]]
            return reply

        return super().role().addCallback(decoded)


class _SentinelFactory(_Logging, txredisapi.SentinelConnectionFactory):
    # Asks the sentinels for the master before every connection attempt and
    # drops connections to a server that is no longer the master.
    maxDelay = 10
    protocol = _SentinelProtocol

    def __init__(self, url: RedisURL, role: str, charset: str | None, sentinels: Any):
        txredisapi.SentinelConnectionFactory.__init__(
            self, sentinels, url.master, True, **_factory_args(url, charset)
        )
        self._setup(url, role)


def endpoint_for(url: RedisURL, reactor: Any = None) -> IStreamClientEndpoint:
    """
    A client endpoint for ``url``; TLS certificates are verified against the
    host name unless the URL turned verification off.
    """
    if reactor is None:
        from twisted.internet import reactor
    if url.scheme == "unix":
        return UNIXClientEndpoint(reactor, url.path, timeout=10)
    if url.scheme == "redis+sentinel":
        raise NotImplementedError("redis+sentinel:// URLs are handled by pace.sentinel")
    endpoint = HostnameEndpoint(reactor, url.host, url.port, timeout=10)
    if url.tls:
        from twisted.internet import ssl

        if url.verify:
            creator = ssl.optionsForClientTLS(url.host)
        else:
            creator = ssl.CertificateOptions(verify=False)
        endpoint = wrapClientTLS(creator, endpoint)
    return endpoint


class RedisConnection:
    """
    One Redis connection that reconnects by itself. ``execute`` waits for the
    connection when it is down; ``protocol`` is the live txredisapi protocol
    or ``None``, for callers on the hot path that only want the fast case.
    """

    def __init__(
        self,
        url: RedisURL,
        role: str = "commands",
        *,
        charset: str | None = "utf-8",
        reactor: Any = None,
    ):
        self.url = url
        self._current: Any = None
        self._sentinels: Any = None
        self._factory: Any
        if url.scheme == "redis+sentinel":
            # The sentinels are asked for the master before each connection
            # attempt, so a failover is followed by reconnecting.
            self._sentinels = txredisapi.Sentinel(list(url.sentinels))
            self._factory = _SentinelFactory(url, role, charset, self._sentinels)
            self._factory.startConnecting(txredisapi._SentinelEndpoint(self._factory))
        else:
            self._factory = _Factory(url, role, charset)
            self._factory.startConnecting(endpoint_for(url, reactor))

    def __repr__(self) -> str:
        return f"<RedisConnection {self._factory.role} {self.url.redacted()}>"

    @property
    def protocol(self) -> Any:
        current = self._current
        if current is not None and current.connected:
            return current
        pool = self._factory.pool
        if pool and pool[0].connected:
            self._current = pool[0]
            return pool[0]
        return None

    def connected(self) -> defer.Deferred:
        """
        A Deferred that fires with the live protocol, once there is one.
        """
        proto = self.protocol
        if proto is not None:
            return defer.succeed(proto)
        if self._factory.fatal:
            return defer.fail(txredisapi.ConnectionError(self._factory.fatal))
        return self._factory.getConnection(peek=True).addCallback(self._got)

    def _got(self, proto: Any) -> Any:
        # txredisapi hands the connection to waiters before it joins the
        # pool: remember it, or a waiter asking again at once would wait anew.
        self._current = proto
        return proto

    def execute(self, *args: Any) -> defer.Deferred:
        proto = self.protocol
        if proto is not None:
            return proto.execute_command(*args)
        return self.connected().addCallback(lambda p: p.execute_command(*args))

    def drop_if_not_master(self, failure: Any) -> bool:
        """
        After a failover the old master answers writes with READONLY (and
        blocked pops with UNBLOCKED): drop the connection so that it is made
        again to the new master. True if that was the case.
        """
        if not failure.check(txredisapi.ResponseError):
            return False
        if not str(failure.value).startswith(_NOT_MASTER):
            return False
        proto = self.protocol
        if proto is not None:
            log.warn(
                "pace: {url} is no longer the master ({error}); reconnecting",
                url=self.url.redacted(),
                error=failure.getErrorMessage(),
            )
            proto.transport.loseConnection()
        return True

    def disconnect(self) -> defer.Deferred:
        closing = [self._factory.disconnect()]
        if self._sentinels is not None:
            closing.append(self._sentinels.disconnect())
        return defer.gatherResults(closing, consumeErrors=True)
