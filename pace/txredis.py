"""
The one module that knows txredisapi's internals (its protocol's command
builder and reply queue, its factories' pool, its Sentinel endpoint), against
the pinned txredisapi range in setup.cfg. Imported lazily, on the first
connection: txredisapi imports the global reactor at import time, and
``import pace`` must not install one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.logger import Logger

from pace.connection import RECONNECT_MAX_DELAY

log = Logger()

ConnectionError = txredisapi.ConnectionError
ResponseError = txredisapi.ResponseError


class Refused(txredisapi.RedisError):
    """
    Redis refused the connection for good (a wrong password or database, a
    password it wants and was not given): its message is Redis's error.
    Not a lost connection: trying again cannot help.
    """


#: TCP keepalive: probe an idle connection after this many seconds, then
#: every KEEPALIVE_INTERVAL, and give up after KEEPALIVE_COUNT probes, so a
#: peer that vanished is noticed even when nothing is waiting on it.
KEEPALIVE_IDLE = 15
KEEPALIVE_INTERVAL = 5
KEEPALIVE_COUNT = 3


def set_keepalive(transport: Any) -> None:
    # Under TLS the transport is a protocol wrapper whose handle is the
    # OpenSSL connection: the socket belongs to the transport below it.
    while getattr(transport, "wrappedProtocol", None) is not None and hasattr(
        transport, "transport"
    ):
        transport = transport.transport
    try:
        transport.setTcpKeepAlive(1)
    except (AttributeError, OSError):  # a UNIX socket
        return
    handle = getattr(transport, "getHandle", lambda: None)()
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)
        if option is not None and handle is not None:
            try:
                handle.setsockopt(socket.IPPROTO_TCP, option, value)
            except OSError:
                pass


class _PaceProtocol:
    # Mixed into txredisapi's protocols: a faster command builder, a count of
    # reads for the connection's reply deadline, keepalive, and a handshake
    # that tells a refused password from a connection lost during AUTH.
    charset: str | None
    errors: str
    password: str | None
    username: str | None
    dbid: int | None
    factory: Any
    transport: Any
    #: Incremented on every read: the reply deadline sees progress by it.
    reads = 0

    def dataReceived(self, data: bytes) -> None:
        self.reads += 1
        super().dataReceived(data)  # type: ignore[misc]

    def tryConvertData(self, data: Any) -> Any:
        # The fetch connection keeps replies as bytes and numbers as they
        # come (charset None, convertNumbers False): hiredis's reply is then
        # already what txredisapi would make of it, and converting walks
        # every payload of every batch for nothing.
        if self.charset is None and not self.convertNumbers:  # type: ignore[attr-defined]
            return data
        return super().tryConvertData(data)  # type: ignore[misc]

    def connectionLost(self, why: Any) -> None:
        self.factory.events.on_closed(why)
        super().connectionLost(why)  # type: ignore[misc]

    def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
        # txredisapi builds each command with two Python calls and a
        # bytearray extend per argument; acknowledging thousands of jobs a
        # second makes that the largest cost of the hot path.
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

    @defer.inlineCallbacks
    def connectionMade(self) -> Any:
        set_keepalive(self.transport)
        try:
            if self.password is not None:
                reply = yield self.auth(self.password, self.username)  # type: ignore[attr-defined]
                if isinstance(reply, ResponseError):
                    raise reply
            if self.dbid is not None:
                reply = yield self.select(self.dbid)  # type: ignore[attr-defined]
                if isinstance(reply, ResponseError):
                    raise reply
            if getattr(self.factory, "is_master", False):
                # Through Sentinel: only the master will do.
                role = yield self.role()  # type: ignore[attr-defined]
                if not role or role[0] != "master":
                    self.transport.loseConnection()
                    return
            else:
                # A round trip before the connection counts as made: under
                # TLS the handshake (and a certificate refused) comes first,
                # and a server that accepts but never answers is caught by
                # the reply deadline here rather than in a job's write.
                yield self.execute_command("PING")  # type: ignore[attr-defined]
        except ResponseError as e:
            # Redis answered, and said no: a wrong password or database.
            # Trying again cannot help.
            self.factory.stopTrying()
            self.transport.loseConnection()
            self.factory.connectionError(f"{e}")
            return
        except Exception:
            # The connection went away (or stopped answering) mid-handshake:
            # a restart, a proxy whose backend is down. Not the password's
            # fault: reconnect as after any lost connection.
            self.transport.abortConnection()
            return
        self.connected = 1
        self._ready = True
        waiting: list[defer.Deferred] = self._waiting_for_connect  # type: ignore[has-type]
        self._waiting_for_connect: list[defer.Deferred] = []
        for d in waiting:
            d.callback(self)


class Protocol(_PaceProtocol, txredisapi.RedisProtocol):
    pass


class SentinelProtocol(_PaceProtocol, txredisapi.SentinelRedisProtocol):
    def role(self) -> defer.Deferred:
        # txredisapi compares the role with "master"; on a connection that
        # keeps replies as bytes (the fetch connection) it would never match.
        def decoded(reply: Any) -> Any:
            if reply and isinstance(reply[0], bytes):
                return [reply[0].decode(), *reply[1:]]
            return reply

        return super().role().addCallback(decoded)


class _Events:
    # What the connection layer hears from a factory, for its logs.
    def __init__(
        self,
        on_delay: Callable[[int, float], None],
        on_connected: Callable[[bool], None],
        on_lost: Callable[[], None],
        on_refused: Callable[[str], None],
        on_closed: Callable[[Any], None],
    ):
        self.on_delay = on_delay
        self.on_connected = on_connected
        self.on_lost = on_lost
        self.on_refused = on_refused
        self.on_closed = on_closed


class _Hooks:
    # Mixed into txredisapi's factories, which already reconnect through
    # ClientService with a jittered exponential backoff.
    events: _Events
    fatal: str | None = None
    _ever_connected = False

    def _setup(self, events: _Events) -> None:
        self.events = events
        # Nobody waits on the "pool complete" Deferred of a lazy factory; an
        # authentication error would otherwise surface as an unhandled error.
        self.deferred.addErrback(lambda f: None)  # type: ignore[attr-defined]

    def retryDelay(self, attempt: int) -> float:
        # txredisapi's jitter is a normal distribution around the delay: at
        # the cap, a wait could run a third past it. The cap is a promise
        # (pace.registry's grace after an outage counts on it).
        delay = min(super().retryDelay(attempt), RECONNECT_MAX_DELAY)  # type: ignore[misc]
        self.events.on_delay(attempt, delay)
        return delay

    def addConnection(self, conn: Any) -> None:
        if conn.connected and not self.disconnectCalled:  # type: ignore[attr-defined]
            self.events.on_connected(self._ever_connected)
            self._ever_connected = True
        super().addConnection(conn)  # type: ignore[misc]

    def delConnection(self, conn: Any) -> None:
        if not self.disconnectCalled:  # type: ignore[attr-defined]
            self.events.on_lost()
        super().delConnection(conn)  # type: ignore[misc]

    def connectionError(self, why: str) -> None:
        self.fatal = why
        self.events.on_refused(why)
        super().connectionError(why)  # type: ignore[misc]
        # txredisapi stops trying after a refused AUTH or SELECT; whoever waits
        # for a connection must hear it now rather than wait forever.
        queue = self.connectionQueue  # type: ignore[attr-defined]
        peekers, queue.peekers = queue.peekers, []
        for d in peekers:
            d.errback(Refused(why))


class _Factory(_Hooks, txredisapi.RedisFactory):
    protocol = Protocol
    initialDelay = 0.5
    maxDelay = RECONNECT_MAX_DELAY


class _SentinelFactory(_Hooks, txredisapi.SentinelConnectionFactory):
    # Asks the sentinels for the master before every connection attempt and
    # drops connections to a server that is no longer the master.
    protocol = SentinelProtocol
    maxDelay = RECONNECT_MAX_DELAY


def _factory_args(url: Any, charset: str | None) -> dict[str, Any]:
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


class Link:
    """
    One reconnecting txredisapi connection (a pool of one), as the
    connection layer sees it.
    """

    def __init__(self, url: Any, charset: str | None, endpoint: Any, events: _Events):
        self.sentinels: Any = None
        if url.scheme == "redis+sentinel":
            self.sentinels = txredisapi.Sentinel(list(url.sentinels))
            self.factory: Any = _SentinelFactory(
                self.sentinels, url.master, True, **_factory_args(url, charset)
            )
            self.factory._setup(events)
            self.factory.startConnecting(txredisapi._SentinelEndpoint(self.factory))
        else:
            self.factory = _Factory(**_factory_args(url, charset))
            self.factory._setup(events)
            self.factory.startConnecting(endpoint)
        self._current: Any = None

    @property
    def fatal(self) -> str | None:
        return self.factory.fatal

    def live(self) -> Any:
        """
        The connected protocol, or None.
        """
        current = self._current
        if current is not None and current.connected:
            return current
        pool = self.factory.pool
        if pool and pool[0].connected:
            self._current = pool[0]
            return pool[0]
        return None

    def wait(self) -> defer.Deferred:
        """
        Fires with the protocol once connected; cancellable.
        """
        return self.factory.getConnection(peek=True).addCallback(self._got)

    def _got(self, proto: Any) -> Any:
        # txredisapi hands the connection to waiters before it joins the
        # pool: remember it, or a waiter asking again at once would wait anew.
        self._current = proto
        return proto

    def disconnect(self) -> defer.Deferred:
        closing = [self.factory.disconnect()]
        if self.sentinels is not None:
            closing.append(self.sentinels.disconnect())
        return defer.gatherResults(closing, consumeErrors=True)


def awaiting_reply(proto: Any) -> bool:
    """
    True while ``proto`` has sent commands whose replies have not come.
    """
    return bool(proto.replyQueue.waiting)


def abort(proto: Any) -> None:
    transport = getattr(proto, "transport", None)
    if transport is not None:
        transport.abortConnection()
        # connectionLost comes a reactor turn later; a command sent on it
        # meanwhile would be lost with it. Marked dead now, the connection
        # is no longer handed out: callers wait for the next one.
        proto.connected = 0


def make_events(**callbacks: Callable[..., None]) -> _Events:
    return _Events(**callbacks)
