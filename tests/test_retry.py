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


class Flaky:
    """
    A handler failing its first ``failures`` runs of each job.
    """

    def __init__(self, failures: int, exc: type[BaseException] = ConnectionError):
        self.failures = failures
        self.exc = exc
        self.runs: list[dict] = []

    def __call__(self, job: dict) -> None:
        self.runs.append(job)
        if len(self.runs) <= self.failures:
            raise self.exc(f"run {len(self.runs)} failed")


class RetryWorkerTests(RedisTestCase):
    """
    A real worker on the real Redis, its clock (retry times, the mover) a
    Clock moved by hand, late and unevenly.
    """

    def setUp(self) -> None:
        super().setUp()
        self.clock = task.Clock()
        self.clock.advance(2000000000.7)
        self.errors: list[tuple[int, bool, float | None]] = []

    def start(self, handler, queue="q", **kw) -> pace.Worker:
        w = self.worker(queue, clock=self.clock, log_interval=None, **kw)
        w.add_hook(
            "error",
            lambda raw, f: self.errors.append(
                (f.pace_attempt, f.pace_last_attempt, getattr(f, "pace_retry_in", None))
            ),
        )
        self.started(w, handler)
        return w

    @defer.inlineCallbacks
    def run_until(self, predicate, step: float = 0.6) -> defer.Generator:
        from tests.support import until

        def advanced():
            self.clock.advance(step)
            return predicate()

        yield until(advanced, timeout=20, interval=0.01)

    @defer.inlineCallbacks
    def test_fails_twice_then_succeeds(self):
        handler = Flaky(2)
        w = self.start(handler, retry=pace.Retry(attempts=5, base=2, jitter=False))
        yield pace.enqueue("q", "Job", 7, redis_url=self.url)
        yield self.run_until(lambda: len(handler.runs) == 3 and not w.in_flight)
        self.assertEqual([j.get("pace_attempt", 1) for j in handler.runs], [1, 2, 3])
        self.assertEqual([j["args"] for j in handler.runs], [[7]] * 3)
        self.assertEqual(self.errors, [(1, False, 2.0), (2, False, 4.0)])
        yield w.shutdown()
        self.assertEqual(self.redis.llen("resque:failed"), 0)
        self.assertEqual(self.redis.get("resque:stat:processed"), "3")
        self.assertIsNone(self.redis.get("resque:stat:failed"))
        self.assertEqual(self.redis.keys("resque:delayed*"), [])
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def test_always_fails_records_once_with_the_count(self):
        handler = Flaky(100)
        w = self.start(handler, retry=pace.Retry(attempts=4, base=1, max_delay=3, jitter=False))
        yield pace.enqueue("q", "Job", "x", redis_url=self.url)
        yield self.run_until(lambda: self.redis.llen("resque:failed") == 1)
        # Nothing more is run or recorded.
        yield self.run_until(lambda: True, step=30)
        yield w.shutdown()
        self.assertEqual(len(handler.runs), 4)
        self.assertEqual(
            [e[:2] for e in self.errors], [(1, False), (2, False), (3, False), (4, True)]
        )
        self.assertEqual([e[2] for e in self.errors], [1.0, 2.0, 3.0, None])
        [record] = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        self.assertEqual(record["attempts"], 4)
        self.assertEqual(record["payload"], {"class": "Job", "args": ["x"], "pace_attempt": 4})
        self.assertEqual(record["exception"], "ConnectionError")
        self.assertEqual(self.redis.get("resque:stat:failed"), "1")
        self.assertEqual(self.redis.get("resque:stat:processed"), "4")

    @defer.inlineCallbacks
    def test_retry_times_follow_the_backoff(self):
        handler = Flaky(100)
        self.start(handler, retry=pace.Retry(attempts=3, base=10, factor=3, jitter=False))
        yield pace.enqueue("q", "Job", redis_url=self.url)
        t0 = self.clock.seconds()
        yield self.run_until(lambda: len(handler.runs) == 1, step=0)
        yield self.run_until(lambda: self.redis.zcard("resque:delayed_queue_schedule") == 1, step=0)
        self.assertEqual(
            self.redis.zrange("resque:delayed_queue_schedule", 0, -1), [str(int(t0) + 11)]
        )
        yield self.run_until(lambda: len(handler.runs) == 2, step=0.5)
        # Never early: attempt 2 ran once the clock passed its timestamp.
        self.assertGreaterEqual(self.clock.seconds(), t0 + 10)

    @defer.inlineCallbacks
    def test_no_retry_and_retry_on(self):
        router = pace.JobRouter()
        runs = []

        @router.job("Refuse")
        def refuse():
            runs.append("refuse")
            raise pace.NoRetry("bad input: retrying will not help")

        @router.job("Odd", retry=pace.Retry(attempts=3, retry_on=(ConnectionError,)))
        def odd():
            runs.append("odd")
            raise ValueError("not retried")

        w = self.start(router, retry=pace.Retry(attempts=3))
        yield pace.enqueue("q", "Refuse", redis_url=self.url)
        yield pace.enqueue("q", "Odd", redis_url=self.url)
        self.push("q", "malformed")
        yield self.run_until(lambda: self.redis.llen("resque:failed") == 3)
        yield w.shutdown()
        self.assertEqual(runs, ["refuse", "odd"])
        self.assertEqual([e[:2] for e in self.errors], [(1, True)] * 3)
        records = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        self.assertEqual([r["attempts"] for r in records[:2]], [1, 1])
        self.assertEqual(records[2]["exception"], "MalformedJob")

    @defer.inlineCallbacks
    def test_timeouts_are_retried(self):
        runs = []

        def hang(job):
            runs.append(job)
            return defer.Deferred()

        w = self.start(hang, job_timeout=5, retry=pace.Retry(attempts=2, base=1, jitter=False))
        yield pace.enqueue("q", "Slow", redis_url=self.url)
        yield self.run_until(lambda: self.redis.llen("resque:failed") == 1, step=2)
        yield w.shutdown()
        self.assertEqual(len(runs), 2)
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["exception"], "JobTimeout")
        self.assertEqual(record["attempts"], 2)

    @defer.inlineCallbacks
    def test_namespaced(self):
        pace.namespace = "ns"
        handler = Flaky(1)
        w = self.start(handler, retry=pace.Retry(attempts=2, base=1, jitter=False))
        yield pace.enqueue("q", "Job", redis_url=self.url)
        yield self.run_until(lambda: len(handler.runs) == 2 and not w.in_flight)
        yield w.shutdown()
        self.assertEqual(handler.runs[1]["pace_attempt"], 2)
        self.assertEqual(self.redis.get("ns:resque:stat:processed"), "2")
        self.assertEqual(self.redis.keys("resque:*"), [])

    @defer.inlineCallbacks
    def test_whole_key_queues_cannot_retry(self):
        with self.assertRaisesRegex(ValueError, "retry= needs Resque queues"):
            self.worker("my:own:list", retry=pace.Retry())
        router = pace.JobRouter()
        router.job("Job", retry=pace.Retry(attempts=3))(Flaky(100))
        w = self.start(router, queue="my:own:list")
        self.redis.rpush("my:own:list", '{"class":"Job","args":[]}')
        yield self.run_until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        self.assertEqual(self.errors, [(1, True, None)])
        self.assertEqual(self.redis.zcard("resque:delayed_queue_schedule"), 0)

    @defer.inlineCallbacks
    def test_not_reliable_mode(self):
        handler = Flaky(1)
        w = self.start(handler, reliable=False, retry=pace.Retry(attempts=2, base=1, jitter=False))
        yield pace.enqueue("q", "Job", redis_url=self.url)
        yield self.run_until(lambda: len(handler.runs) == 2 and not w.in_flight)
        yield w.shutdown()
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")
        self.assertEqual(self.redis.llen("resque:failed"), 0)


class FaultTests(RedisTestCase):
    """
    Retries and delayed jobs through a Redis restart and through workers
    killed with SIGKILL: every job runs, every attempt at least once, none
    lost, nothing left behind.
    """

    def runs(self, client) -> list[tuple[int, int]]:
        return [tuple(json.loads(p)["args"]) for p in client.lrange("resque:queue:runs", 0, -1)]

    @defer.inlineCallbacks
    def test_redis_restarted_with_retries_and_delayed_jobs_due(self):
        import redis

        from pace.redisserver import RedisServer
        from tests.support import until

        own = RedisServer(None, None, "--appendonly", "yes", "--appendfsync", "always")
        own.start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        n = 200
        client.rpush("resque:queue:q", *[json.dumps({"class": "J", "args": [i]}) for i in range(n)])
        from twisted.internet import reactor

        now = int(reactor.seconds())
        for i in range(n, n + 100):
            yield pace.enqueue_at(now + 1 + i % 3, "q", "J", i, redis_url=own.url)
        runs: list[tuple[int, int]] = []

        def handler(job):
            attempt = job.get("pace_attempt", 1)
            runs.append((job["args"][0], attempt))
            if attempt == 1:
                raise ConnectionError("first attempts fail")

        policy = pace.Retry(attempts=3, base=0.5, jitter=False)
        w = self.worker(redis_url=own.url, concurrency=20, retry=policy)
        self.started(w, handler)
        yield until(lambda: len(runs) >= 150, timeout=30)
        own.restart()
        succeeded = lambda: {i for i, a in runs if a == 2}  # noqa: E731
        yield until(lambda: succeeded() == set(range(n + 100)), timeout=60)
        yield until(lambda: client.zcard("resque:delayed_queue_schedule") == 0, timeout=30)
        yield until(lambda: client.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual({i for i, a in runs if a == 1}, set(range(n + 100)))
        self.assertEqual(client.llen("resque:failed"), 0)
        self.assertEqual(client.keys("resque:timestamps:*"), [])

    @defer.inlineCallbacks
    def test_workers_killed_while_retrying_lose_no_attempt(self):
        import signal
        import subprocess
        import sys

        from tests.support import until

        n = 300
        self.redis.rpush(
            "resque:queue:work", *[json.dumps({"class": "J", "args": [i]}) for i in range(n)]
        )

        def spawn():
            return self.spawn(
                [sys.executable, "-m", "tests.retry_worker_process", "1.0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        procs = [spawn(), spawn()]
        in_flight_at_kills = 0
        for threshold in (150, 400, 650):
            yield until(lambda t=threshold: len(self.runs(self.redis)) >= t, timeout=90)
            victim = procs.pop(0)
            victim.send_signal(signal.SIGKILL)
            yield until(lambda p=victim: p.poll() is not None)
            in_flight_at_kills += sum(
                self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")
            )
            procs.append(spawn())

        def finished() -> bool:
            return {i for i, a in self.runs(self.redis) if a == 3} == set(range(n))

        yield until(finished, timeout=120)
        yield until(lambda: self.redis.zcard("resque:delayed_queue_schedule") == 0, timeout=30)
        yield until(lambda: self.redis.keys("resque:pace:processing:*") == [], timeout=30)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            yield until(lambda p=p: p.poll() is not None, timeout=30)
        runs = self.runs(self.redis)
        for attempt in (1, 2, 3):
            self.assertEqual({i for i, a in runs if a == attempt}, set(range(n)), attempt)
        self.assertEqual({a for _, a in runs}, {1, 2, 3})
        # An attempt runs twice only if a kill caught it in flight.
        self.assertLessEqual(len(runs) - 3 * n, in_flight_at_kills)
        self.assertEqual(self.redis.llen("resque:failed"), 0)
        self.assertEqual(self.redis.keys("resque:timestamps:*"), [])
