"""
Tests for failure records and faults: Resque's failure format, job
timeouts, handlers that block the reactor, and connections killed again and
again in the middle of batched fetches and acknowledgements.
"""

from __future__ import annotations

import json
import time

import redis
from twisted.internet import defer, task
from twisted.internet import reactor as real_reactor

from pace.failures import JobTimeout
from pace.redisserver import RedisServer
from tests.support import Recorder, RedisTestCase, payload, until


class FailureRecordTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_resque_format(self):
        self.push("q", payload("Charge", 42, "eur"))

        def handler(job):
            raise ValueError("card declined")

        w = self.worker()
        self.started(w, handler)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(
            set(record),
            {"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"},
        )
        self.assertEqual(record["payload"], {"class": "Charge", "args": [42, "eur"]})
        self.assertEqual(record["exception"], "ValueError")
        self.assertEqual(record["error"], "card declined")
        self.assertEqual(record["queue"], "q")
        self.assertEqual(record["worker"], w.id)
        self.assertTrue(record["worker"].endswith(":q"))
        self.assertTrue(any("handler" in line for line in record["backtrace"]))
        time.strptime(record["failed_at"].rsplit(" ", 1)[0], "%Y/%m/%d %H:%M:%S")

    @defer.inlineCallbacks
    def test_malformed_payload_kept_whole_as_text(self):
        self.redis.rpush("resque:queue:q", "{not json")
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["payload"], "{not json")
        self.assertEqual(record["exception"], "MalformedJob")

    @defer.inlineCallbacks
    def test_records_can_be_turned_off(self):
        self.push("q", payload("J"))
        w = self.worker(record_failures=False)
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: self.redis.get("resque:stat:failed") == "1")
        yield w.shutdown()
        self.assertEqual(self.redis.llen("resque:failed"), 0)


class TimeoutTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_handler_that_never_settles(self):
        clock = task.Clock()
        cancelled = []
        errors = []
        self.push("q", payload("Hang", 1), payload("Fine", 2))
        w = self.worker(job_timeout=30, concurrency=1, clock=clock)
        w.add_hook("error", lambda json, failure: errors.append(failure))
        handler = Recorder(
            result=lambda job: defer.Deferred(cancelled.append) if job["class"] == "Hang" else None
        )
        self.started(w, handler)
        yield until(lambda: w.in_flight == 1)
        clock.advance(29)
        self.assertEqual(errors, [])
        clock.advance(1)
        yield until(lambda: len(handler.jobs) == 2)
        self.assertEqual(len(cancelled), 1)
        self.assertTrue(errors[0].check(JobTimeout))
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["exception"], "JobTimeout")
        self.assertEqual(record["error"], "job ran longer than 30 s")


class BlockingHandlerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_a_handler_blocking_the_reactor_delays_others_but_loses_none(self):
        self.push("q", payload("Block", 0), *[payload("J", i) for i in range(1, 50)])

        def handler(job):
            if job["class"] == "Block":
                time.sleep(1.0)  # the mistake this test is about
            return task.deferLater(real_reactor, 0.001, lambda: None)

        handler = Recorder(expected=50, result=handler)
        w = self.worker(concurrency=10)
        self.started(w, handler)
        yield handler.done
        yield until(lambda: self.redis.get("resque:stat:processed") == "50")
        yield w.shutdown()
        self.assertEqual(sorted(a[0] for a in handler.args), list(range(50)))


class ConnectionKillTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_kills_during_batched_fetches_and_acks_lose_nothing(self):
        n = 3000
        self.push("q", *[payload("J", i) for i in range(n)])
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return task.deferLater(real_reactor, 0.0005, lambda: None)

        w = self.worker(concurrency=50)
        self.started(w, handler)
        killer = redis.Redis(port=self.server.port)
        self.addCleanup(killer.close)

        def kill():
            killer.client_kill_filter(_type="normal", skipme=True)

        kills = task.LoopingCall(kill)
        kills.start(0.05, now=False)
        yield until(lambda: len(seen) >= n // 2, timeout=60)
        kills.stop()
        yield until(lambda: set(seen) >= set(range(n)), timeout=60)
        yield until(lambda: w.in_flight == 0)
        yield until(lambda: self.redis.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual(sorted(set(seen)), list(range(n)))
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)


class RestartWithPersistenceTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_redis_restarted_mid_run_with_appendonly(self):
        own = RedisServer(None, None, "--appendonly", "yes", "--appendfsync", "always")
        own.start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        n = 1000
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(n)])
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return task.deferLater(real_reactor, 0.002, lambda: None)

        w = self.worker(redis_url=own.url, concurrency=20)
        self.started(w, handler)
        yield until(lambda: len(seen) >= 200, timeout=30)
        own.restart()
        yield until(lambda: set(seen) >= set(range(n)), timeout=60)
        yield until(lambda: client.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual(sorted(set(seen)), list(range(n)))


class ManyFailuresTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_thousands_of_failures_in_one_turn_are_all_recorded(self):
        # More failures settle in one reactor turn than Lua's unpack() takes.
        n = 9000
        self.push("q", *[payload("J", i) for i in range(n)])
        pending: list[defer.Deferred] = []
        w = self.worker(concurrency=n)
        self.started(w, lambda job: pending.append(defer.Deferred()) or pending[-1])
        yield until(lambda: w.in_flight == n, timeout=30)
        for d in pending:
            d.errback(ValueError("no"))
        yield until(lambda: self.redis.llen("resque:failed") == n, timeout=30)
        yield w.shutdown()
        self.assertEqual(self.redis.get("resque:stat:failed"), str(n))
