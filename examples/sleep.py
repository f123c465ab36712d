"""
Blocking work (a library without Twisted support, a CPU-bound step) runs in
Twisted's thread pool so the reactor, and every other job, keeps going.

    twistd -n pace --queue sleep --handler examples.sleep.handle

A job's first argument is how many seconds to block (default 0.1).
"""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread


def blocking_work(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def handle(job: dict) -> Deferred:
    seconds = float(job["args"][0]) if job["args"] else 0.1
    return deferToThread(blocking_work, seconds)
