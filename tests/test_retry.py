"""
Tests for pace.retry: the backoff and its jitter on a Clock with a seeded
random, which failures are retried, the attempt number in the payload, and
the retry's atomic write into the schedule against the real redis-server.
"""

from __future__ import annotations

import json
import random

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial import unittest

import pace
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.mover import Mover
from pace.payload import MalformedJob
from pace.retry import attempt_of, retry_payload, schedule_retry, with_attempts
from tests.support import RedisTestCase


def failed(exc: BaseException) -> Failure:
    return Failure(exc)


class PolicyTests(unittest.TestCase):
    def test_exponential_backoff_capped(self):
        r = pace.Retry(attempts=10, base=1.0, factor=2.0, max_delay=60, jitter=False)
        self.assertEqual([r.delay(n) for n in range(1, 9)], [1, 2, 4, 8, 16, 32, 60, 60])
        self.assertEqual(pace.Retry(jitter=False, max_delay=5).delay(10**6), 5)

    def test_jitter_spreads_a_burst(self):
        r = pace.Retry(base=10, jitter=True, random=random.Random(7))
        delays = [r.delay(3) for _ in range(200)]
        self.assertTrue(all(20 <= d <= 40 for d in delays))
        # Whole-second timestamps: a burst failing at the same instant lands
        # on many different seconds, not one.
        clock = task.Clock()
        clock.advance(1000.3)
        seconds = {pace.schedule.timestamp_of(clock.seconds() + d) for d in delays}
        self.assertGreater(len(seconds), 15)
        again = pace.Retry(base=10, random=random.Random(7))
        self.assertEqual([again.delay(3) for _ in range(200)], delays)

    def test_which_failures_are_retried(self):
        r = pace.Retry(attempts=3, retry_on=(ConnectionError, defer.TimeoutError))
        self.assertTrue(r.retries(failed(ConnectionError()), 1))
        self.assertTrue(r.retries(failed(defer.TimeoutError()), 2))
        self.assertFalse(r.retries(failed(ConnectionError()), 3))
        self.assertFalse(r.retries(failed(ValueError()), 1))
        self.assertFalse(pace.Retry().retries(failed(pace.NoRetry("bad input")), 1))
        self.assertFalse(pace.Retry().retries(failed(MalformedJob("x")), 1))
        self.assertTrue(pace.Retry().retries(failed(KeyError()), 4))

    def test_bad_policies_refused(self):
        for kw in [
            {"attempts": 0},
            {"attempts": 2.5},
            {"base": -1},
            {"factor": 0.5},
            {"max_delay": float("inf")},
        ]:
            self.assertRaises(ValueError, pace.Retry, **kw)
        self.assertRaises(TypeError, pace.Retry, retry_on=("ValueError",))

    def test_attempt_in_the_payload(self):
        self.assertEqual(attempt_of({"class": "J", "args": []}), 1)
        self.assertEqual(attempt_of({"class": "J", "args": [], "pace_attempt": 3}), 3)
        self.assertEqual(attempt_of({"class": "J", "args": [], "pace_attempt": "x"}), 1)
        job = {"class": "J", "args": [1, "/"], "id": "abc", "pace_attempt": 2}
        self.assertEqual(
            retry_payload(job, "q", 3),
            '{"class":"J","args":[1,"/"],"id":"abc","pace_attempt":3,"queue":"q"}',
        )

    def test_record_gets_the_attempt_count(self):
        self.assertEqual(
            json.loads(with_attempts('{"payload":{}}', 4)), {"payload": {}, "attempts": 4}
        )


class ScheduleRetryTests(RedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.conn = RedisConnection(resolve_redis_url(self.url), "test")
        self.addCleanup(self.conn.disconnect)
        self.clock = task.Clock()
        self.clock.advance(2000000000.25)

    @defer.inlineCallbacks
    def test_retry_acknowledges_the_attempt_in_the_same_step(self):
        raw = '{"class":"J","args":[1]}'
        self.redis.rpush("resque:pace:processing:w:resque:queue:q", raw)
        ack = ("resque:pace:processing:w:resque:queue:q", "host:1:q", raw.encode())
        ts = yield schedule_retry(self.conn, self.clock, json.loads(raw), "q", 1.5, ack)
        self.assertEqual(ts, 2000000002)
        entry = '{"class":"J","args":[1],"pace_attempt":2,"queue":"q"}'
        self.assertEqual(self.redis.lrange("resque:delayed:2000000002", 0, -1), [entry])
        self.assertEqual(self.redis.smembers("resque:timestamps:" + entry), {"delayed:2000000002"})
        self.assertEqual(self.redis.zrange("resque:delayed_queue_schedule", 0, -1), ["2000000002"])
        self.assertEqual(self.redis.llen("resque:pace:processing:w:resque:queue:q"), 0)
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        self.assertEqual(self.redis.get("resque:stat:processed:host:1:q"), "1")
        # Already acknowledged (requeued by shutdown): nothing is doubled.
        again = yield schedule_retry(self.conn, self.clock, json.loads(raw), "q", 1.5, ack)
        self.assertEqual(again, 0)
        self.assertEqual(self.redis.llen("resque:delayed:2000000002"), 1)
        # The mover brings it back with its attempt number.
        m = Mover(self.conn, self.clock, offset=0.01)
        self.clock.advance(2)
        yield m.move_once()
        self.assertEqual(
            self.redis.lrange("resque:queue:q", 0, -1),
            ['{"class":"J","args":[1],"pace_attempt":2}'],
        )
