"""
The fast path for HTTP-heavy handlers: the job of examples/http.py (one GET
per job on a persistent pool shared by every job; an error status fails the
job), for half of treq's CPU per request.

    PACE_TARGET_URL=http://127.0.0.1:8080/ \\
    twistd -n pace --queue http --handler examples.fast_http.handle

A job's first argument, if any, is the URL; else $PACE_TARGET_URL.
$PACE_HTTP_TIMEOUT (default 30 s) bounds a request, body included.

Why not treq: it costs about twice Agent's CPU per request, and none of its
options closes the gap. CPU of the client per request, 100 requests in
flight on one persistent pool, a 2-byte 200 from a local twisted.web server
(2-core Xeon, Python 3.11, Twisted 26.10, treq 26.7):

    bare treq (HTTPClient.get + treq.content)     ~205 us
    bare Agent (Agent.request + readBody)          ~120 us
    this module's handle()                         ~100 us
    ... inside pace.Worker(concurrency=100)        ~110 us  (pace + treq: ~220 us)

Where treq's ~85 us more than Agent go, adding its layers to Agent one at a
time:

- ~45 us: the URL. Every request parses it with hyperlink
  (``EncodedURL.from_text``) and turns it back into bytes with ``to_uri()``,
  which runs the host through the pure-Python ``idna`` package, even for
  ``127.0.0.1``.
- ~20 us: cookies. Every request goes through ``CookieAgent`` (a fake
  urllib request, the URL parsed again, the jar locked and searched, the
  response's headers scanned for Set-Cookie), and treq builds and merges a
  new cookie jar per call.
- ~10 us: ``ContentDecoderAgent`` (a header added, the response wrapped),
  ``_BufferedResponse`` and ``_Response`` (proxies), more Deferreds;
  ``RedirectAgent`` costs nothing measurable.
- ~10 us: the rest of treq's ``request()`` (headers, body and cookie
  arguments).

``allow_redirects=False, unbuffered=True`` saves only ~8 us; the URL and
cookie costs cannot be turned off. Agent itself has one avoidable cost: it
builds a new HostnameEndpoint for every request, even when the pool then
reuses a connection, and that runs ``idna`` on the host too (~25 us).

So this module uses Agent directly, with:

- one persistent pool shared by every job (``maxPersistentPerHost`` 200);
- one endpoint per (scheme, host, port), kept (`CachedEndpoints`);
- each distinct URL encoded once, exactly as treq would (hyperlink, IDNA),
  and the bytes kept (an LRU cache of 4,096 URLs);
- the body read by a small protocol that also checks the status: an error
  status (>= 400) fails the job with `RemoteError` once the body is read, so
  that the connection goes back to the pool (Twisted's readBody would also
  warn on every small response, twisted#8227);
- a timeout that cancels the request: the job fails with
  ``ResponseNeverReceived`` or ``TimeoutError``, as with treq's timeout.

Measured by::

    .venv/bin/python bench/http_layers.py     # the layers, one at a time
    .venv/bin/python bench/run.py --cases http-treq,http-agent,http-fast,pace-treq,pace-fast
"""

from __future__ import annotations

import functools
import os
from typing import Any

from hyperlink import EncodedURL
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer  # type: ignore[import-untyped]

DEFAULT_URL = "http://127.0.0.1:8080/"
#: Endpoints kept at most (one per scheme, host and port).
MAX_ENDPOINTS = 1024

_agent: Agent | None = None
_reactor: Any = None
_timeout = 30.0


class RemoteError(Exception):
    """
    The remote service answered with an error status.
    """

    def __init__(self, code: int, url: bytes, body: bytes):
        super().__init__(f"{code} from {url.decode('ascii', 'replace')!r}")
        self.code = code
        self.url = url
        self.body = body


@implementer(IAgentEndpointFactory)
class CachedEndpoints:
    """
    What Agent does by default (TCP for http, TLS for https), except that
    the endpoint of each (scheme, host, port) is built once: Agent builds a
    HostnameEndpoint for every request, even when the pool then reuses a
    connection, and that runs the host through IDNA each time.
    """

    def __init__(self, reactor: Any, connect_timeout: float = 30.0):
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._tls = BrowserLikePolicyForHTTPS()
        self._endpoints: dict[tuple[bytes, bytes, int], Any] = {}

    def endpointForURI(self, uri: Any) -> Any:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if len(self._endpoints) >= MAX_ENDPOINTS:
                self._endpoints.clear()  # a crawler's many hosts: stay bounded
            endpoint = self._endpoints[key] = self._build(*key)
        return endpoint

    def _build(self, scheme: bytes, host: bytes, port: int) -> Any:
        if scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"unsupported scheme: {scheme!r}")
        endpoint: Any = HostnameEndpoint(self._reactor, host, port, self._connect_timeout)
        if scheme == b"https":
            creator = self._tls.creatorForNetloc(host, port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint


def agent() -> Agent:
    """
    The Agent every job shares, built on first use inside the running
    reactor (the one twistd chose).
    """
    global _agent, _reactor, _timeout
    if _agent is None:
        from twisted.internet import reactor

        _reactor = reactor
        _timeout = float(os.environ.get("PACE_HTTP_TIMEOUT", "30"))
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 200
        _agent = Agent.usingEndpointFactory(reactor, CachedEndpoints(reactor), pool=pool)
    return _agent


@functools.lru_cache(maxsize=4096)
def encoded(url: str) -> bytes:
    """
    C{url} as the bytes Agent wants, exactly as treq would send it (an IRI's
    host in IDNA, its path percent-encoded); computed once per URL.
    """
    return EncodedURL.from_text(url).to_uri().to_text().encode("ascii")


def handle(job: dict) -> Deferred:
    args = job["args"]
    url = args[0] if args else os.environ.get("PACE_TARGET_URL", DEFAULT_URL)
    raw = encoded(url)
    d = agent().request(b"GET", raw)
    d.addCallback(_read, raw)
    d.addTimeout(_timeout, _reactor)
    return d


def _read(response: Any, url: bytes) -> Deferred:
    body = _Body(response.code, url)
    response.deliverBody(body)
    return body.finished


class _Body(Protocol):
    """
    Collects a response body: C{finished} fires with it, or fails with
    L{RemoteError} for an error status.
    """

    def __init__(self, code: int, url: bytes):
        self.code = code
        self.url = url
        self.chunks: list[bytes] = []
        self.finished: Deferred = Deferred(self._cancel)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:  # cancelled
            return
        if not reason.check(ResponseDone, PotentialDataLoss):
            self.finished.errback(reason)
        elif self.code >= 400:
            self.finished.errback(RemoteError(self.code, self.url, b"".join(self.chunks)))
        else:
            self.finished.callback(b"".join(self.chunks))

    def _cancel(self, _: Deferred) -> None:
        # Timed out while reading the body: drop the connection, whose state
        # is unknown, instead of returning it to the pool.
        if self.transport is not None:
            self.transport.stopProducing()
