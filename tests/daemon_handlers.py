"""
Handlers that tests/test_daemon.py runs inside a real `twistd pace`.
"""

from __future__ import annotations

from twisted.internet import defer, reactor, task

import pace


def slow(job: dict):
    # Each job takes a little while, then records itself on the "done" queue:
    # what a real job's side effect would be, visible from outside.
    d = task.deferLater(reactor, 0.02, lambda: None)
    d.addCallback(lambda _: pace.enqueue("done", "Done", *job["args"]))
    return d


def forever(job: dict):
    # Records that it started, then never settles.
    d = pace.enqueue("started", "Started", *job["args"])
    return d.addCallback(lambda _: defer.Deferred())
