"""
A loopback TCP proxy for fault tests: it forwards to a real redis-server and
can go half-open on command (the far host vanished without a reset: nothing
gets through in either direction, and every socket stays open), heal (new
connections get through again; the frozen ones stay frozen, as a vanished
peer's would), or drop a connection after forwarding its first command and
before the reply (a connection lost during AUTH).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint


class _Backend(protocol.Protocol):
    front: _Front

    def connectionMade(self) -> None:
        self.front.backend_ready(self)

    def dataReceived(self, data: bytes) -> None:
        self.front.from_backend(data)

    def connectionLost(self, reason: Any) -> None:
        self.front.backend_lost()


class _Front(protocol.Protocol):
    # One client connection: it forwards until frozen, then swallows
    # everything both ways and keeps both sockets open.
    proxy: Proxy

    def connectionMade(self) -> None:
        self.frozen = self.proxy.is_half_open
        self.drop_before_reply, self.replies_before_drop = self.proxy._take_drop()
        self.backend: _Backend | None = None
        self.pending: list[bytes] = []
        self.proxy.fronts.append(self)
        self.proxy.accepted += 1
        if self.frozen:
            return
        self._connect()

    def _connect(self) -> None:
        backend = _Backend()
        backend.front = self
        endpoint = TCP4ClientEndpoint(self.proxy.reactor, "127.0.0.1", self.proxy.backend_port)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: backend))
        d.addErrback(lambda f: self.transport.abortConnection())

    def backend_ready(self, backend: _Backend) -> None:
        self.backend = backend
        if self.frozen or self.transport is None:
            return
        pending, self.pending = self.pending, []
        for data in pending:
            backend.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if self.frozen:
            return
        self.proxy.forwarded.append(data)
        if self.backend is None:
            self.pending.append(data)
        else:
            self.backend.transport.write(data)

    def from_backend(self, data: bytes) -> None:
        if self.frozen:
            return
        if self.drop_before_reply and self.replies_before_drop:
            # The handshake's replies (PING) get through first.
            self.replies_before_drop -= 1
        elif self.drop_before_reply:
            # The command went through; its reply never comes back.
            self.proxy.dropped += 1
            self.transport.abortConnection()
            return
        self.transport.write(data)

    def backend_lost(self) -> None:
        if not self.frozen:
            self.transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        if self in self.proxy.fronts:
            self.proxy.fronts.remove(self)
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.abortConnection()


class Proxy:
    """
    ``Proxy(backend_port, reactor)``; `start` fires once it listens on
    ``self.port`` (``self.url`` for Pace).
    """

    def __init__(self, backend_port: int, reactor: Any):
        self.backend_port = backend_port
        self.reactor = reactor
        self.is_half_open = False
        self.fronts: list[_Front] = []
        self.accepted = 0
        self.dropped = 0
        self.forwarded: list[bytes] = []
        self._drops = 0
        self._after = 0
        self._listening: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_with(self, userinfo: str) -> str:
        return f"redis://{userinfo}@127.0.0.1:{self.port}/0"

    @defer.inlineCallbacks
    def start(self) -> Any:
        factory = protocol.Factory()

        def build(addr: Any) -> _Front:
            front = _Front()
            front.proxy = self
            return front

        factory.buildProtocol = build  # type: ignore[method-assign]
        endpoint = TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        self._listening = yield endpoint.listen(factory)
        self.port = self._listening.getHost().port
        return self

    def half_open(self) -> None:
        """
        Nothing gets through any more, on open connections or new ones.
        """
        self.is_half_open = True
        for front in self.fronts:
            front.frozen = True

    def heal(self) -> None:
        """
        New connections get through again; the frozen ones never will.
        """
        self.is_half_open = False

    def drop_next(self, n: int = 1, after: int = 0) -> None:
        """
        The next ``n`` connections pass ``after`` replies, then forward a
        command and are dropped before its reply reaches the client.
        """
        self._drops += n
        self._after = after

    def _take_drop(self) -> tuple[bool, int]:
        if self._drops:
            self._drops -= 1
            return True, self._after
        return False, 0

    def stop(self) -> defer.Deferred:
        """
        Close everything, and fire once the sockets are gone.
        """
        for front in list(self.fronts):
            front.transport.abortConnection()
        d = defer.maybeDeferred(self._listening.stopListening)
        return d.addCallback(lambda _: self._gone())

    def _gone(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()

        def check() -> None:
            if not self.fronts:
                d.callback(None)
            else:
                self.reactor.callLater(0.01, check)

        check()
        return d
