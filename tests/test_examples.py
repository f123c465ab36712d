"""
Tests for the example handlers, each run by a real pace.Worker against the
private Redis: echo logs its job; http makes one request per job to a local
twisted.web Site over a persistent pool and fails the job on an error
status; sleep blocks in threads while the reactor keeps going; pause pauses
the process's workers on a 503 or a timeout, and they resume by themselves.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.error import ConnectingCancelledError
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.policies import WrappingFactory
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

import examples.fast_http
import examples.http
from examples import echo, pause, sleep
from tests.support import RedisTestCase, payload, until


class CountingFactory(WrappingFactory):
    """
    Keeps the open connections (C{protocols}) and counts those ever made.
    """

    def __init__(self, wrapped: Any):
        super().__init__(wrapped)
        self.connections = 0

    def buildProtocol(self, addr: Any) -> Any:
        self.connections += 1
        return super().buildProtocol(addr)


class Target(Resource):
    """
    The remote service: records the path of each request, answers with the
    next of C{codes} (then 200), or with C{hang}, never.
    """

    isLeaf = True

    def __init__(self, codes: tuple[int, ...] = (), hang: bool = False):
        super().__init__()
        self.paths: list[str] = []
        self.codes = list(codes)
        self.hang = hang
        self.lost: list[Any] = []

    def render_GET(self, request: Any) -> Any:
        self.paths.append(request.path.decode())
        if self.hang:
            request.notifyFinish().addErrback(lambda _: self.lost.append(request))
            return NOT_DONE_YET
        code = self.codes.pop(0) if self.codes else 200
        request.setResponseCode(code)
        return b"fine" if code < 400 else b"not fine"


class ExampleTestCase(RedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        # The examples share one HTTP client (and its pool) per process.
        self.addCleanup(self._close_http_client)

    def serve(self, resource: Resource) -> str:
        """
        Serve C{resource} on a local port until the test ends; its base URL.
        Also closes the example's shared HTTP client at the end.
        """
        self.site = CountingFactory(Site(resource))
        port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self._stop_server, port, self.site)
        # Runs first: the client's cached connections close, then the server.
        self.addCleanup(self._close_http_client)
        return f"http://127.0.0.1:{port.getHost().port}"

    @defer.inlineCallbacks
    def _close_http_client(self) -> Any:
        client, examples.http._client = examples.http._client, None
        if client is not None:
            yield client._agent._pool.closeCachedConnections()
        agent, examples.fast_http._agent = examples.fast_http._agent, None
        if agent is not None:
            yield agent._pool.closeCachedConnections()

    @defer.inlineCallbacks
    def _stop_server(self, port: Any, factory: CountingFactory) -> Any:
        yield port.stopListening()
        for protocol in list(factory.protocols):
            protocol.transport.abortConnection()
        yield until(lambda: not factory.protocols)

    def count(self, name: str) -> int:
        return int(self.redis.get(f"resque:stat:{name}") or 0)

    def failed_records(self) -> list[dict]:
        return [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]

    def processed_list(self, w: Any) -> list[dict]:
        done: list[dict] = []
        w.add_hook("processed", done.append)
        return done


class EchoTests(ExampleTestCase):
    @defer.inlineCallbacks
    def test_logs_the_job(self):
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        w = self.worker()
        done = self.processed_list(w)
        self.push("q", payload("Greet", "hi", 2))
        self.started(w, echo.handle)
        yield until(lambda: done)
        yield w.shutdown()
        logged = [e for e in events if e.get("log_namespace") == "examples.echo"]
        self.assertEqual([formatEvent(e) for e in logged], ["echo: Greet ['hi', 2]"])
        self.assertEqual((logged[0]["job_class"], logged[0]["args"]), ("Greet", ["hi", 2]))
        self.assertEqual(self.count("processed"), 1)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)


class HttpTests(ExampleTestCase):
    @defer.inlineCallbacks
    def test_one_request_per_job_on_a_persistent_pool(self):
        target = Target()
        base = self.serve(target)
        self.set_env("PACE_TARGET_URL", f"{base}/from-env")
        w = self.worker(concurrency=5)
        done = self.processed_list(w)
        self.push("q", *[payload("Fetch", f"{base}/job/{i}") for i in range(20)])
        self.push("q", *[payload("Fetch")] * 5)
        self.started(w, examples.http.handle)
        yield until(lambda: len(done) == 25)
        yield w.shutdown()
        expected = [f"/job/{i}" for i in range(20)] + ["/from-env"] * 5
        self.assertEqual(sorted(target.paths), sorted(expected))
        self.assertEqual(self.count("processed"), 25)
        self.assertEqual(self.failed_records(), [])
        # Connections are kept and shared: never more than jobs at a time.
        self.assertLessEqual(self.site.connections, 5)

    @defer.inlineCallbacks
    def test_error_status_fails_the_job(self):
        target = Target(codes=(500,))
        base = self.serve(target)
        w = self.worker()
        errors = []
        w.add_hook("error", lambda json, failure: errors.append((json, failure)))
        job = payload("Fetch", f"{base}/broken")
        self.push("q", job)
        self.started(w, examples.http.handle)
        yield until(lambda: errors)
        yield w.shutdown()
        self.assertEqual(target.paths, ["/broken"])
        ((text, failure),) = errors
        self.assertEqual(text, job)
        self.assertTrue(failure.check(examples.http.RemoteError))
        self.assertIn("500", failure.getErrorMessage())
        (record,) = self.failed_records()
        self.assertEqual(record["exception"], "RemoteError")
        self.assertEqual(record["payload"], {"class": "Fetch", "args": [f"{base}/broken"]})
        self.assertEqual(record["queue"], "q")
        # As in Resque, processed counts every job, failed ones too.
        self.assertEqual((self.count("processed"), self.count("failed")), (1, 1))


class FastHttpTests(ExampleTestCase):
    @defer.inlineCallbacks
    def test_requests_on_a_persistent_pool_and_error_statuses(self):
        target = Target(codes=(200,) * 30 + (503,))
        base = self.serve(target)
        self.set_env("PACE_TARGET_URL", f"{base}/from-env")
        w = self.worker(concurrency=5)
        done = self.processed_list(w)
        errors = []
        w.add_hook("error", lambda json, failure: errors.append(failure))
        self.push("q", *[payload("Fetch", f"{base}/job/{i}") for i in range(25)])
        self.push("q", *[payload("Fetch")] * 5)
        self.started(w, examples.fast_http.handle)
        yield until(lambda: len(done) == 30)
        self.push("q", payload("Fetch", f"{base}/busy"))
        yield until(lambda: errors)
        yield w.shutdown()
        expected = [f"/job/{i}" for i in range(25)] + ["/from-env"] * 5 + ["/busy"]
        self.assertEqual(sorted(target.paths), sorted(expected))
        self.assertTrue(errors[0].check(examples.fast_http.RemoteError))
        self.assertEqual(errors[0].value.code, 503)
        self.assertEqual((self.count("processed"), self.count("failed")), (31, 1))
        self.assertLessEqual(self.site.connections, 5)


class SleepTests(ExampleTestCase):
    @defer.inlineCallbacks
    def test_blocking_work_runs_in_threads(self):
        spans: list[tuple[Any, float, float]] = []
        original = sleep.blocking_work

        def recorded(seconds: float) -> float:
            start = reactor.seconds()
            result = original(seconds)
            spans.append((threading.get_ident(), start, reactor.seconds()))
            return result

        self.patch(sleep, "blocking_work", recorded)
        ticks: list[float] = []
        ticker = task.LoopingCall(lambda: ticks.append(reactor.seconds()))
        ticker.start(0.01)
        self.addCleanup(lambda: ticker.running and ticker.stop())

        w = self.worker(concurrency=5)
        done = self.processed_list(w)
        self.push("q", *[payload("Nap", 0.2)] * 5)
        self.started(w, sleep.handle)
        yield until(lambda: len(done) == 5)
        yield w.shutdown()
        self.assertEqual(len(spans), 5)
        self.assertNotIn(threading.get_ident(), {ident for ident, _, _ in spans})
        # All five were blocking at once...
        last_start = max(start for _, start, _ in spans)
        first_end = min(end for _, _, end in spans)
        self.assertLess(last_start, first_end)
        # ...while the reactor went on turning.
        self.assertGreaterEqual(len([t for t in ticks if last_start < t < first_end]), 2)
        self.assertEqual(self.count("processed"), 5)


class PauseTests(ExampleTestCase):
    @defer.inlineCallbacks
    def test_503_pauses_every_worker_until_they_resume(self):
        target = Target(codes=(503,))
        self.set_env("PACE_TARGET_URL", self.serve(target) + "/api")
        self.set_env("PACE_PAUSE_SECONDS", "0.3")
        w = self.worker(concurrency=1)
        other = self.worker("other")
        done = self.processed_list(w)
        self.push("q", payload("Call"), payload("Call"))
        self.started(other, lambda job: None)
        self.started(w, pause.handle)
        yield until(lambda: w.paused)
        # Every worker of the process; the second job waits in its queue.
        self.assertTrue(other.paused)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        self.assertEqual(target.paths, ["/api"])
        yield until(lambda: done)
        self.assertFalse(w.paused)
        self.assertFalse(other.paused)
        yield defer.gatherResults([w.shutdown(), other.shutdown()])
        self.assertEqual(target.paths, ["/api", "/api"])
        (record,) = self.failed_records()
        self.assertEqual(record["exception"], "ServiceUnavailable")
        self.assertEqual((self.count("processed"), self.count("failed")), (2, 1))

    @defer.inlineCallbacks
    def test_timeout_pauses(self):
        target = Target(hang=True)
        self.set_env("PACE_TARGET_URL", self.serve(target) + "/slow")
        self.set_env("PACE_HTTP_TIMEOUT", "0.2")
        self.set_env("PACE_PAUSE_SECONDS", "60")
        w = self.worker(concurrency=1)
        errors = []
        w.add_hook("error", lambda json, failure: errors.append(failure))
        self.push("q", payload("Call"), payload("Call"))
        self.started(w, pause.handle)
        yield until(lambda: errors)
        self.assertTrue(errors[0].check(ResponseNeverReceived))
        self.assertTrue(w.paused)
        self.assertEqual(target.paths, ["/slow"])
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        # The client gave up on the hanging request: its connection closed.
        yield until(lambda: target.lost)
        yield w.shutdown()
        (record,) = self.failed_records()
        self.assertEqual(record["payload"], {"class": "Call", "args": []})
        # Shut down while paused, the second job is still there for later.
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)

    @defer.inlineCallbacks
    def test_connect_timeout_pauses(self):
        # A service too busy to accept connections: a listening socket whose
        # accept queue is full, so that the kernel drops new connection
        # attempts and connecting hangs until the client gives up.
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        for _ in range(3):
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
        self.set_env("PACE_TARGET_URL", f"http://127.0.0.1:{listener.getsockname()[1]}/")
        self.set_env("PACE_HTTP_TIMEOUT", "0.2")
        self.set_env("PACE_PAUSE_SECONDS", "60")
        w = self.worker(concurrency=1)
        errors = []
        w.add_hook("error", lambda json, failure: errors.append(failure))
        self.push("q", payload("Call"))
        self.started(w, pause.handle)
        yield until(lambda: errors)
        # It was the connecting that timed out...
        self.assertTrue(errors[0].check(ConnectingCancelledError))
        # ...and that is a timeout too.
        self.assertTrue(w.paused)


class RecipeTests(RedisTestCase):
    """
    docs/examples.rst's recipe for examples/http.py, run as printed: a
    `twistd web` target with a backlog that keeps up with the worker's
    --concurrency 200, and a `twistd pace` worker; no job fails.
    """

    @defer.inlineCallbacks
    def test_http_recipe_at_concurrency_200(self):
        import os
        import sys

        from pace.redisserver import free_port
        from tests.support import ROOT

        bin_dir = os.path.dirname(sys.executable)
        port = free_port()
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        web = self.spawn(
            [
                os.path.join(bin_dir, "twistd"),
                "-n",
                f"--pidfile={where}/web.pid",
                "-l",
                f"{where}/web.log",
                "web",
                "--listen",
                f"tcp:{port}:interface=127.0.0.1:backlog=1024",
                "--path",
                ROOT,
            ]
        )
        yield until(lambda: _listening(port) or web.poll() is not None, timeout=30)
        self.push("http", *[payload("HttpGet") for _ in range(500)])
        self.set_env("PACE_TARGET_URL", f"http://127.0.0.1:{port}/")
        worker = self.spawn(
            [
                os.path.join(bin_dir, "twistd"),
                "-n",
                "--pidfile=",
                "-l",
                f"{where}/pace.log",
                "pace",
                "--queue",
                "http",
                "--handler",
                "examples.http.handle",
                "--concurrency",
                "200",
            ]
        )
        yield until(
            lambda: (
                int(self.redis.get("resque:stat:processed") or 0)
                + int(self.redis.get("resque:stat:failed") or 0)
                >= 500
                or worker.poll() is not None
            ),
            timeout=60,
        )
        self.assertEqual(self.redis.get("resque:stat:processed"), "500")
        self.assertIsNone(self.redis.get("resque:stat:failed"))


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True
