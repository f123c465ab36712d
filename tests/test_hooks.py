"""
Tests for hooks: the five events, class-level before per-worker, awaited
when they return Deferreds, isolated when they fail; error hooks for every
way a job can fail; the catch-all for what Twisted logs as unhandled.
"""

from __future__ import annotations

import gc

from twisted.internet import defer, reactor, task
from twisted.python.failure import Failure

import pace
from pace.hooks import Hooks
from tests.support import Recorder, RedisTestCase, payload, until


class HookOrderTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_lifecycle_order_and_arguments(self):
        calls = []
        pace.Worker.add_hook("initialize", lambda q: calls.append(("class-init", q)))
        pace.Worker.add_hook("start", lambda: calls.append("class-start"))
        pace.Worker.add_hook(
            "processed", lambda job: calls.append(("class-processed", job["args"]))
        )
        pace.Worker.add_hook("shutdown", lambda: calls.append("class-shutdown"))
        w = self.worker()
        w.add_hook("start", lambda: calls.append("start"))
        w.add_hook("processed", lambda job: calls.append(("processed", job["args"])))
        w.add_hook("shutdown", lambda: calls.append("shutdown"))
        self.push("q", payload("J", 1))
        self.started(w, lambda job: None)
        yield until(lambda: ("processed", [1]) in calls)
        yield w.shutdown()
        self.assertEqual(
            calls,
            [
                ("class-init", "resque:queue:q"),
                "class-start",
                "start",
                ("class-processed", [1]),
                ("processed", [1]),
                "class-shutdown",
                "shutdown",
            ],
        )

    @defer.inlineCallbacks
    def test_instance_hooks_stay_with_their_worker(self):
        seen = []
        w1, w2 = self.worker("a"), self.worker("b")
        w1.add_hook("processed", lambda job: seen.append(("w1", job["class"])))
        self.push("a", payload("A"))
        self.push("b", payload("B"))
        h2 = Recorder(expected=1)
        self.started(w1, lambda job: None)
        self.started(w2, h2)
        yield h2.done
        yield until(lambda: seen)
        yield defer.gatherResults([w1.shutdown(), w2.shutdown()])
        self.assertEqual(seen, [("w1", "A")])

    @defer.inlineCallbacks
    def test_shutdown_waits_for_async_hooks(self):
        gate = defer.Deferred()
        w = self.worker()
        w.add_hook("shutdown", lambda: gate)
        self.started(w, lambda job: None)
        yield until(lambda: w.running and w.fetching)
        stopped = w.shutdown()
        yield until(lambda: w.state == "stopping" and gate.callbacks)
        self.assertFalse(stopped.called)
        gate.callback(None)
        yield stopped

    @defer.inlineCallbacks
    def test_async_processed_hook_holds_the_slot(self):
        gate = defer.Deferred()
        w = self.worker(concurrency=1)
        w.add_hook("processed", lambda job: gate if job["args"] == [1] else None)
        handler = Recorder()
        self.push("q", payload("J", 1), payload("J", 2))
        self.started(w, handler)
        yield until(lambda: w.in_flight == 1 and handler.jobs)
        self.assertEqual(handler.args, [[1]])
        gate.callback(None)
        yield until(lambda: len(handler.jobs) == 2)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_failing_hooks_are_isolated(self):
        calls = []

        def boom(job):
            raise RuntimeError("hook raised")

        w = self.worker()
        w.add_hook("processed", boom)
        w.add_hook("processed", lambda job: defer.fail(RuntimeError("hook failed")))
        w.add_hook("processed", lambda job: calls.append(job["args"]))
        self.push("q", payload("J", 1), payload("J", 2))
        self.started(w, lambda job: None)
        yield until(lambda: len(calls) == 2)
        yield w.shutdown()
        self.assertEqual(calls, [[1], [2]])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 4)
        self.assertEqual(self.redis.get("resque:stat:failed"), None)

    def test_unknown_event_and_uncallable(self):
        w = self.worker()
        self.assertRaises(ValueError, w.add_hook, "finished", lambda: None)
        self.assertRaises(TypeError, w.add_hook, "start", "nope")

    def test_clear_hooks(self):
        pace.Worker.add_hook("start", lambda: None)
        pace.Worker.clear_hooks()
        self.assertEqual(Hooks(parent=pace.Worker._class_hooks).for_event("start"), [])


class JobErrorTests(RedisTestCase):
    """
    Every way a job can fail reaches the error hooks with the raw payload,
    and the worker goes on with the next job.
    """

    @defer.inlineCallbacks
    def assert_fails_and_goes_on(self, handler, exc_type):
        errors = []
        w = self.worker()
        w.add_hook("error", lambda json, failure: errors.append((json, failure)))
        processed = []
        w.add_hook("processed", processed.append)
        bad, good = payload("Bad", 1), payload("Good", 2)
        self.push("q", bad, good)
        self.started(w, handler)
        yield until(lambda: errors and processed)
        yield w.shutdown()
        [(json, failure)] = errors
        self.assertEqual(json, bad)
        self.assertIsInstance(failure, Failure)
        self.assertTrue(failure.check(exc_type), failure)
        self.assertEqual([j["class"] for j in processed], ["Good"])
        self.assertEqual(self.redis.get("resque:stat:failed"), "1")
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")

    def test_handler_raises(self):
        def handler(job):
            if job["class"] == "Bad":
                raise KeyError("missing")

        return self.assert_fails_and_goes_on(handler, KeyError)

    def test_errback(self):
        def handler(job):
            if job["class"] == "Bad":
                return task.deferLater(reactor, 0, lambda: 1 / 0)

        return self.assert_fails_and_goes_on(handler, ZeroDivisionError)

    def test_failing_coroutine(self):
        async def handler(job):
            await task.deferLater(reactor, 0, lambda: None)
            if job["class"] == "Bad":
                raise ValueError("coroutine failed")

        return self.assert_fails_and_goes_on(handler, ValueError)

    def test_raise_inside_an_errback(self):
        def handler(job):
            if job["class"] != "Bad":
                return None

            def errback(f):
                raise LookupError("raised while handling " + f.getErrorMessage())

            return task.deferLater(reactor, 0, lambda: 1 / 0).addErrback(errback)

        return self.assert_fails_and_goes_on(handler, LookupError)


class CatchAllTests(RedisTestCase):
    @defer.inlineCallbacks
    def run_with_worker(self, action, exc_type):
        errors = []
        pace.Worker.add_hook("error", lambda json, failure: errors.append(("class", json, failure)))
        w = self.worker()
        w.add_hook("error", lambda json, failure: errors.append(("worker", json, failure)))
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        action()
        yield until(lambda: len(errors) == 2)
        yield w.shutdown()
        self.assertEqual([e[0] for e in errors], ["class", "worker"])
        self.assertEqual([e[1] for e in errors], [None, None])
        self.assertTrue(errors[0][2].check(exc_type))
        self.flushLoggedErrors(exc_type)

    def test_error_in_calllater_callback(self):
        def fire_and_forget():
            reactor.callLater(0, lambda: {}["missing"])

        return self.run_with_worker(fire_and_forget, KeyError)

    def test_deferred_collected_with_unhandled_failure(self):
        def fire_and_forget():
            d = defer.Deferred()
            d.errback(RuntimeError("nobody listened"))
            del d
            gc.collect()

        return self.run_with_worker(fire_and_forget, RuntimeError)

    def test_legacy_log_err(self):
        from twisted.python import log as legacy

        def fire_and_forget():
            legacy.err(Failure(ZeroDivisionError("legacy")))

        return self.run_with_worker(fire_and_forget, ZeroDivisionError)

    @defer.inlineCallbacks
    def test_application_logs_are_not_unhandled_errors(self):
        from twisted.logger import Logger

        errors = []
        pace.Worker.add_hook("error", lambda json, failure: errors.append(failure))
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        try:
            raise ValueError("handled and logged by the application")
        except ValueError:
            Logger(namespace="myapp.billing").failure("billing hiccup")
        # Something Twisted does log as unhandled, to know when to look.
        reactor.callLater(0, lambda: 1 / 0)
        yield until(lambda: errors)
        yield w.shutdown()
        self.assertEqual([f.type for f in errors], [ZeroDivisionError])
        self.flushLoggedErrors(ValueError, ZeroDivisionError)

    @defer.inlineCallbacks
    def test_observer_removed_when_last_worker_stops(self):
        from pace.catchall import catch_all

        w1, w2 = self.worker(), self.worker()
        self.started(w1, lambda job: None)
        self.started(w2, lambda job: None)
        self.assertTrue(catch_all.active)
        yield w1.shutdown()
        self.assertTrue(catch_all.active)
        yield w2.shutdown()
        self.assertFalse(catch_all.active)
        errors = []
        pace.Worker.add_hook("error", lambda *a: errors.append(a))
        reactor.callLater(0, lambda: 1 / 0)
        yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(errors, [])
        self.flushLoggedErrors(ZeroDivisionError)
