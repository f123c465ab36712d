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


def leaky(job: dict):
    # A handler whose errors quote the Redis URL it was given, in every form
    # a password can take in a message: what pace.sentry must scrub.
    import sys

    from pace.config import parse_redis_url

    url = sys.argv[sys.argv.index("--redis-url") + 1]
    password = parse_redis_url(url).password
    n = job["args"][0]
    if n == 0:
        reactor.callLater(0, _unhandled, url)
    messages = (
        f"could not reach {url}",
        f"could not reach redis://127.0.0.1:1/0?db=0&password={password}",
        f"AUTH {password} was refused",
        f"sentinels redis+sentinel://:{password}@s1:26379,s2:26380/mymaster",
    )
    raise RuntimeError(messages[n % len(messages)])


def _unhandled(url: str) -> None:
    raise RuntimeError(f"unhandled, for {url}")


def forever(job: dict):
    # Records that it started, then never settles.
    d = pace.enqueue("started", "Started", *job["args"])
    return d.addCallback(lambda _: defer.Deferred())
