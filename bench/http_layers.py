"""
Where treq's CPU per request goes: the same GET made through Agent with
treq's layers added one at a time, then treq itself and
examples/fast_http.py, against the benchmark's local HTTP server (nginx if
on the PATH, else twisted.web in another process), 100 requests in flight on
one persistent pool. Prints the client's CPU microseconds per request, the
median of a few rounds (variants interleaved, so that drift hits them all).

    .venv/bin/python bench/http_layers.py                # about a minute
    .venv/bin/python bench/http_layers.py --requests 5000 --rounds 1

Not part of ``make bench``; the findings are in examples/fast_http.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from servers import HTTPServer

IN_FLIGHT = 100


class Variant(NamedTuple):
    name: str
    #: The start of the name of the variant this one is compared to.
    parent: str | None
    #: Makes one request and reads its body.
    one: Callable[[], Any]


def variants(url: str) -> list[Variant]:
    """
    The variants measured, each built on the Agent and pool made here.
    """
    from http.cookiejar import CookieJar

    import treq
    from hyperlink import EncodedURL
    from treq.client import HTTPClient, _BufferedResponse
    from treq.response import _Response
    from twisted.internet import reactor
    from twisted.web.client import (
        Agent,
        ContentDecoderAgent,
        CookieAgent,
        GzipDecoder,
        HTTPConnectionPool,
        RedirectAgent,
        readBody,
    )

    from examples import fast_http

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 200
    agent = Agent(reactor, pool=pool)
    cached = Agent.usingEndpointFactory(reactor, fast_http.CachedEndpoints(reactor), pool=pool)
    jar = CookieJar()
    cookies = CookieAgent(cached, jar)
    redirects = RedirectAgent(cookies)
    decoder = ContentDecoderAgent(redirects, [(b"gzip", GzipDecoder)])
    client, fast_client = HTTPClient(agent), HTTPClient(cached)
    raw = url.encode("ascii")
    job = {"class": "Fetch", "args": [url]}

    def hyperlink() -> bytes:
        return EncodedURL.from_text(url).to_uri().to_text().encode("ascii")

    def get(a: Any, url: bytes = raw) -> Any:
        return a.request(b"GET", url).addCallback(readBody)

    return [
        Variant("bare Agent: Agent.request + readBody", None, lambda: get(agent)),
        Variant("Agent keeping its endpoint per host", "bare Agent", lambda: get(cached)),
        Variant(
            "  + URL through hyperlink each time", "Agent keeping", lambda: get(cached, hyperlink())
        ),
        Variant("  + CookieAgent", "Agent keeping", lambda: get(cookies)),
        Variant("  + CookieAgent, RedirectAgent", "  + CookieAgent", lambda: get(redirects)),
        Variant("  + ..., ContentDecoderAgent", "  + CookieAgent, Redirect", lambda: get(decoder)),
        Variant(
            "  + ..., treq's response wrappers, treq.content",
            "  + ..., ContentDecoder",
            lambda: (
                decoder.request(b"GET", raw)
                .addCallback(_BufferedResponse)
                .addCallback(_Response, jar)
                .addCallback(treq.content)
            ),
        ),
        Variant(
            "bare treq: HTTPClient.get + treq.content",
            "bare Agent",
            lambda: client.get(url).addCallback(treq.content),
        ),
        Variant(
            "  allow_redirects=False, unbuffered=True",
            "bare treq",
            lambda: client.get(url, allow_redirects=False, unbuffered=True).addCallback(
                treq.content
            ),
        ),
        Variant(
            "  over the Agent keeping its endpoints",
            "bare treq",
            lambda: fast_client.get(url).addCallback(treq.content),
        ),
        Variant("examples/fast_http.py handle()", "bare Agent", lambda: fast_http.handle(job)),
    ]


def measure(one: Callable[[], Any], requests: int) -> Any:
    """
    C{requests} requests, C{IN_FLIGHT} at a time; fires with the CPU
    microseconds per request.
    """
    from twisted.internet import defer

    done: defer.Deferred = defer.Deferred()
    started = finished_count = 0
    cpu0 = time.process_time()

    def launch() -> None:
        nonlocal started
        started += 1
        one().addCallbacks(finished, failed)

    def finished(_: object) -> None:
        nonlocal finished_count
        finished_count += 1
        if finished_count == requests:
            done.callback((time.process_time() - cpu0) * 1e6 / requests)
        elif started < requests:
            launch()

    def failed(failure: Any) -> None:
        if not done.called:
            done.errback(failure)

    for _ in range(min(IN_FLIGHT, requests)):
        launch()
    return done


async def main_async(url: str, requests: int, rounds: int) -> list[tuple[Variant, float]]:
    table = variants(url)
    cpu: list[list[float]] = [[] for _ in table]
    for variant in table:  # warm up: connections, caches
        await measure(variant.one, min(requests, 2000))
    for n in range(rounds):
        print(f"round {n + 1}/{rounds}", file=sys.stderr, flush=True)
        for variant, values in zip(table, cpu, strict=True):
            values.append(await measure(variant.one, requests))
    return [(v, statistics.median(values)) for v, values in zip(table, cpu, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--requests", type=int, default=10_000, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from twisted.internet import defer, task

    # Twisted's readBody warns on every small response (twisted#8227).
    warnings.filterwarnings("ignore", "Using readBody with a transport", DeprecationWarning)
    server = HTTPServer().start()
    results: list[tuple[Variant, float]] = []
    try:

        def run(reactor: Any) -> Any:
            d = defer.ensureDeferred(main_async(server.url, args.requests, args.rounds))
            return d.addCallback(results.extend)

        try:
            task.react(run)
        except SystemExit as e:
            if e.code:
                return int(e.code)
    finally:
        server.stop()
    print(
        f"client CPU microseconds per request ({server.kind}, {IN_FLIGHT} in flight, "
        f"median of {args.rounds} x {args.requests:,}), and the difference to the line named:"
    )
    width = max(len(v.name) for v, _ in results)
    for variant, us in results:
        line = f"  {variant.name.ljust(width)}  {us:5.0f}"
        if variant.parent is not None:
            parent, base = next((v, u) for v, u in results if v.name.startswith(variant.parent))
            line += f"  {us - base:+4.0f} vs {parent.name.strip().split(':')[0]}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
