"""
What the tests share: one private redis-server per test run (started on
first use, stopped at exit), a synchronous redis-py client to set up and
inspect it, and helpers to wait for things without sleeping.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
from typing import Any

import redis
from twisted.internet import defer, reactor
from twisted.trial import unittest

import pace
from pace.redisserver import RedisServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_server: RedisServer | None = None


def server() -> RedisServer:
    global _server
    if _server is None:
        _server = RedisServer().start()
        atexit.register(_server.cleanup)
    return _server


def _restore_env(name: str, old: str | None) -> None:
    if old is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = old


def payload(klass: str, *args: Any) -> str:
    return json.dumps({"class": klass, "args": list(args)})


class RedisTestCase(unittest.TestCase):
    """
    A test against the private Redis: emptied before each test (it is ours),
    with C{self.url} and a redis-py client C{self.redis}.
    """

    def setUp(self) -> None:
        self.server = server()
        self.url = self.server.url
        self.redis = redis.Redis(port=self.server.port, decode_responses=True)
        self.redis.flushall()
        self.addCleanup(self.redis.close)
        self.addCleanup(self._reset_globals, pace.redis_url, pace.namespace)
        self.addCleanup(pace.disconnect)
        self.addCleanup(pace.Worker.clear_hooks)

    def _reset_globals(self, url: Any, ns: Any) -> None:
        pace.redis_url, pace.namespace = url, ns

    def set_env(self, name: str, value: str | None) -> None:
        """
        Set (or with None, remove) an environment variable for this test.
        """
        old = os.environ.get(name)
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
        self.addCleanup(_restore_env, name, old)

    def spawn(self, cmd: list[str], **popen: Any) -> subprocess.Popen:
        """
        Start a process from the project root that talks to our Redis; it
        is killed, if still running, when the test ends.
        """
        env = dict(os.environ, PYTHONPATH=ROOT, REDIS_URL=self.url)
        popen.setdefault("stdin", subprocess.DEVNULL)  # never the terminal
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, **popen)

        def stop() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

        self.addCleanup(stop)
        return proc

    def done_args(self) -> list:
        """
        First arguments of the jobs tests.daemon_handlers recorded as done.
        """
        return [json.loads(p)["args"][0] for p in self.redis.lrange("resque:queue:done", 0, -1)]

    def push(self, queue: str, *payloads: str) -> None:
        self.redis.rpush(pace.expand_queue_name(queue), *payloads)

    def worker(self, queue: Any = "q", **kw: Any) -> pace.Worker:
        kw.setdefault("redis_url", self.url)
        kw.setdefault("grace", 5)
        return pace.Worker(queue, **kw)

    def started(self, worker: pace.Worker, handler: Any) -> defer.Deferred:
        """
        Start C{worker} and make sure it is stopped when the test ends.
        """
        done = worker.start(handler)
        self.addCleanup(lambda: worker.shutdown())
        return done


def twistd_pace(log: str, *args: str, pidfile: str = "") -> list[str]:
    """
    The command line of a real ``twistd pace`` with this Python, logging to
    ``log``: in the foreground without a pidfile, or with ``pidfile`` as a
    daemon.
    """
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    head = [twistd, f"--pidfile={pidfile}"] if pidfile else [twistd, "-n", "--pidfile="]
    return [*head, "-l", log, "pace", *args]


def until(predicate: Any, timeout: float = 10.0, interval: float = 0.005) -> defer.Deferred:
    """
    Fire once C{predicate()} is true, checking on each reactor tick; used
    only where the thing waited for (another process, Redis) cannot call us.
    """
    d: defer.Deferred = defer.Deferred()
    deadline = reactor.seconds() + timeout

    def check() -> None:
        if predicate():
            d.callback(None)
        elif reactor.seconds() > deadline:
            d.errback(AssertionError(f"timed out after {timeout}s waiting for {predicate}"))
        else:
            reactor.callLater(interval, check)

    check()
    return d


class Recorder:
    """
    A handler that records jobs and can fire a Deferred after N of them.
    """

    def __init__(self, expected: int | None = None, result: Any = None):
        self.jobs: list[dict] = []
        self.expected = expected
        self.result = result
        self.done: defer.Deferred = defer.Deferred()

    def __call__(self, job: dict) -> Any:
        self.jobs.append(job)
        if self.expected is not None and len(self.jobs) == self.expected:
            self.done.callback(self.jobs)
        return self.result(job) if callable(self.result) else self.result

    @property
    def args(self) -> list:
        return [j["args"] for j in self.jobs]


class Logged:
    """
    The log events of a test, as text: ``logged.count("no reply")``, and
    `until` a line appears.
    """

    def __init__(self, case: unittest.TestCase):
        from twisted.logger import globalLogPublisher

        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        case.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events]

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines())

    def has(self, text: str) -> Any:
        return lambda: self.count(text) > 0


class ProxiedTestCase(RedisTestCase):
    """
    A test with C{self.proxy}, a L{tests.proxy.Proxy} in front of the
    private Redis (C{self.proxy.url} for workers), and C{self.logged}.
    """

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        from tests.proxy import Proxy

        self.proxy = yield Proxy(self.server.port, reactor).start()
        self.addCleanup(self.proxy.stop)
        self.logged = Logged(self)
