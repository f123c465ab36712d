"""
Back off when the remote service is struggling: a 503 or a timeout pauses
every worker of the process for a while (they resume by themselves), as the
Ruby original's Pace.pause did. The job itself fails and goes to the failed
list, from where it can be retried.

    PACE_TARGET_URL=http://127.0.0.1:8080/ PACE_PAUSE_SECONDS=30 \\
    twistd -n pace --queue http --handler examples.pause.handle
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.error import ConnectingCancelledError
from twisted.logger import Logger
from twisted.web._newclient import ResponseNeverReceived

import pace
from examples import http

log = Logger()


class ServiceUnavailable(Exception):
    pass


def handle(job: dict) -> Deferred:
    args = job["args"]
    url = args[0] if args else os.environ.get("PACE_TARGET_URL", "http://127.0.0.1:8080/")
    d = http.client().get(url, timeout=float(os.environ.get("PACE_HTTP_TIMEOUT", "10")))
    d.addCallbacks(_check, _timed_out)
    return d


def _pause() -> None:
    seconds = float(os.environ.get("PACE_PAUSE_SECONDS", "30"))
    if pace.pause(seconds):
        log.warn("remote service unavailable: pausing for {seconds}s", seconds=seconds)


def _check(response: Any) -> Deferred:
    if response.code == 503:
        _pause()
        return http.treq.content(response).addCallback(
            lambda _: http._raise(ServiceUnavailable("503 from the remote service"))
        )
    return http._check(response)


def _timed_out(failure: Any) -> Any:
    if failure.check(TimeoutError, ResponseNeverReceived, ConnectingCancelledError):
        _pause()
    return failure
