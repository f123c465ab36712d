"""
The job Pace exists for: one HTTP request per job, thousands in flight, on
a persistent connection pool shared by every job (treq over an Agent).

    PACE_TARGET_URL=http://127.0.0.1:8080/ \\
    twistd -n pace --queue http --handler examples.http.handle

A job's first argument, if any, is the URL; else $PACE_TARGET_URL.
"""

from __future__ import annotations

import os
from typing import Any

import treq
from twisted.internet.defer import Deferred

_client: Any = None


class RemoteError(Exception):
    """
    The remote service answered with an error status.
    """


def client() -> Any:
    # Built on first use, inside the running reactor twistd chose.
    global _client
    if _client is None:
        from treq.client import HTTPClient
        from twisted.internet import reactor
        from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

        class QuietFactory(_HTTP11ClientFactory):
            # Otherwise each new connection logs "Starting factory" and
            # "Stopping factory": two lines per job at first.
            noisy = False

        pool = HTTPConnectionPool(reactor, persistent=True)
        pool._factory = QuietFactory
        pool.maxPersistentPerHost = 200
        _client = HTTPClient(Agent(reactor, pool=pool))
    return _client


def handle(job: dict) -> Deferred:
    args = job["args"]
    url = args[0] if args else os.environ.get("PACE_TARGET_URL", "http://127.0.0.1:8080/")
    d = client().get(url, timeout=30)
    d.addCallback(_check)
    return d


def _check(response: Any) -> Deferred:
    if response.code >= 400:
        # Read the body anyway so the connection goes back to the pool.
        return treq.content(response).addCallback(
            lambda body: _raise(
                RemoteError(f"{response.code} from {response.request.absoluteURI!r}")
            )
        )
    return treq.content(response)


def _raise(exc: Exception) -> None:
    raise exc
