"""
Tests for pace.worker: jobs in, handler called, results out, against the
private Redis.
"""

from __future__ import annotations

from twisted.internet import defer, reactor, task

import pace
from tests.support import Recorder, RedisTestCase, payload, until


class WorkerBasicsTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_jobs_run_in_queue_order(self):
        self.push("q", *[payload("Job", i) for i in range(50)])
        handler = Recorder(expected=50)
        w = self.worker(concurrency=1)
        done = self.started(w, handler)
        yield handler.done
        self.assertEqual(handler.args, [[i] for i in range(50)])
        self.assertEqual(handler.jobs[0]["class"], "Job")
        yield w.shutdown()
        yield done
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    @defer.inlineCallbacks
    def test_deferred_and_coroutine_handlers(self):
        self.push("q", payload("A", 1), payload("B", 2))
        seen = []

        def handler(job):
            if job["class"] == "A":
                return task.deferLater(reactor, 0, seen.append, job["args"])

            async def run():
                await task.deferLater(reactor, 0, lambda: None)
                seen.append(job["args"])

            return run()

        processed = []
        w = self.worker()
        w.add_hook("processed", processed.append)
        self.started(w, handler)
        yield until(lambda: len(processed) == 2)
        self.assertEqual(sorted(seen), [[1], [2]])
        yield w.shutdown()
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")

    @defer.inlineCallbacks
    def test_two_workers_two_queues_one_reactor(self):
        self.push("a", *[payload("A", i) for i in range(20)])
        self.push("b", *[payload("B", i) for i in range(30)])
        ha, hb = Recorder(expected=20), Recorder(expected=30)
        wa, wb = self.worker("a"), self.worker("b")
        self.started(wa, ha)
        self.started(wb, hb)
        yield defer.gatherResults([ha.done, hb.done])
        self.assertEqual({j["class"] for j in ha.jobs}, {"A"})
        self.assertEqual({j["class"] for j in hb.jobs}, {"B"})
        yield defer.gatherResults([wa.shutdown(), wb.shutdown()])

    @defer.inlineCallbacks
    def test_queues_in_priority_order(self):
        self.push("low", *[payload("Low", i) for i in range(5)])
        self.push("high", *[payload("High", i) for i in range(5)])
        handler = Recorder(expected=10)
        w = self.worker(["high", "low"], concurrency=3)
        self.assertEqual(w.queues, ["resque:queue:high", "resque:queue:low"])
        self.assertEqual(w.queue, "resque:queue:high")
        self.started(w, handler)
        yield handler.done
        self.assertEqual([j["class"] for j in handler.jobs], ["High"] * 5 + ["Low"] * 5)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_blocking_fetch_picks_up_new_jobs(self):
        for reliable in (True, False):
            handler = Recorder(expected=3)
            w = self.worker(reliable=reliable)
            self.started(w, handler)
            # Let the worker go idle on its blocking pop first.
            yield until(lambda w=w: w.parts.fetcher._blocked)
            self.push("q", payload("Late", 1), payload("Late", 2), payload("Late", 3))
            yield handler.done
            self.assertEqual(handler.args, [[1], [2], [3]])
            yield w.shutdown()

    @defer.inlineCallbacks
    def test_unreliable_mode_works_too(self):
        self.push("q", *[payload("J", i) for i in range(200)])
        handler = Recorder(expected=200)
        w = self.worker(reliable=False)
        self.started(w, handler)
        yield handler.done
        self.assertEqual(handler.args, [[i] for i in range(200)])
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_reliable_mode_keeps_jobs_in_processing_until_settled(self):
        self.push("q", payload("Slow", 1))
        gate = defer.Deferred()
        w = self.worker()
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        [processing] = w.parts.processing
        self.assertEqual(self.redis.lrange(processing, 0, -1), [payload("Slow", 1)])
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
        gate.callback(None)
        yield until(lambda: self.redis.llen(processing) == 0)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_namespace(self):
        pace.namespace = "test"
        self.redis.rpush("test:resque:queue:q", payload("N", 1))
        handler = Recorder(expected=1)
        w = self.worker()
        self.assertEqual(w.queue, "test:resque:queue:q")
        self.started(w, handler)
        yield handler.done
        yield w.shutdown()
        self.assertEqual(self.redis.get("test:resque:stat:processed"), "1")

    @defer.inlineCallbacks
    def test_namespace_is_taken_when_the_worker_is_made(self):
        pace.namespace = "mine"
        w = self.worker(heartbeat_ttl=0.3)
        pace.namespace = "other"
        self.redis.rpush("mine:resque:queue:q", payload("N", 1))
        handler = Recorder(expected=1)
        self.started(w, handler)
        yield handler.done
        # Beats, counters and the registry all under the worker's namespace,
        # however long it runs: nothing under the one set later.
        yield until(lambda: self.redis.get("mine:resque:stat:processed") == "1")
        yield until(lambda: len(self.redis.keys("mine:resque:workers*")) >= 2)
        yield w.shutdown()
        self.assertEqual(self.redis.keys("other:*"), [])
        self.assertEqual(self.redis.keys("resque:*"), [])

    def test_start_twice_is_an_error(self):
        w = self.worker()
        self.started(w, lambda job: None)
        self.assertRaises(RuntimeError, w.start, lambda job: None)

    def test_handler_must_be_callable(self):
        self.assertRaises(TypeError, self.worker().start, "not callable")


class WorkerArgumentsTests(RedisTestCase):
    def test_queue_from_environment(self):
        self.set_env("PACE_QUEUE", "envq")
        self.assertEqual(pace.Worker(redis_url=self.url).queue, "resque:queue:envq")

    def test_queues_from_environment_comma_separated(self):
        self.set_env("PACE_QUEUE", "a,b")
        self.assertEqual(
            pace.Worker(redis_url=self.url).queues, ["resque:queue:a", "resque:queue:b"]
        )

    def test_no_queue_names_both(self):
        self.set_env("PACE_QUEUE", None)
        e = self.assertRaises(ValueError, pace.Worker, redis_url=self.url)
        self.assertIn("queue", str(e))
        self.assertIn("PACE_QUEUE", str(e))

    def test_bad_numbers(self):
        for kw in (
            {"concurrency": 0},
            {"concurrency": 1.5},
            {"grace": -1},
            {"jobs_per_second": 0},
            {"jobs_per_second": "fast"},
            {"job_timeout": 0},
        ):
            self.assertRaises(ValueError, self.worker, **kw)

    def test_password_never_in_repr(self):
        w = pace.Worker("q", redis_url="redis://user:s3cret@localhost:6379/0")
        self.assertNotIn("s3cret", repr(w))
        self.assertIn("***", repr(w))

    def test_defaults(self):
        w = pace.Worker("q", redis_url=self.url)
        self.assertEqual((w.concurrency, w.grace, w.reliable, w.job_timeout), (100, 25, True, None))


class ConcurrencyTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_cap_reached_and_never_exceeded(self):
        self.push("q", *[payload("J", i) for i in range(40)])
        gates: list[defer.Deferred] = []
        peak = []

        def handler(job):
            d = defer.Deferred()
            gates.append(d)
            peak.append(w.in_flight + 1)
            return d

        w = self.worker(concurrency=7)
        self.started(w, handler)
        while len(gates) < 40:
            yield until(lambda: len(gates) and w.in_flight == 7 or len(gates) == 40)
            self.assertLessEqual(w.in_flight, 7)
            pending = [g for g in gates if not g.called]
            pending[0].callback(None)
        for g in gates:
            if not g.called:
                g.callback(None)
        yield until(lambda: w.in_flight == 0)
        self.assertEqual(max(peak), 7)
        self.assertEqual(len(gates), 40)
        yield w.shutdown()
