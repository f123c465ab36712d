"""
Tests for pace.mover against the real redis-server: due jobs moved onto
their queues (Resque's payload, without "queue") on a Clock driven late and
unevenly, nothing early, malformed entries recorded once, and many movers
(processes killed with SIGKILL among them) moving each job exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from twisted.internet import defer, reactor, task

import pace
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.mover import Mover
from tests.support import RedisTestCase, until

T0 = 2000000000


class MoverTests(RedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.conn = RedisConnection(resolve_redis_url(self.url), "test")
        self.addCleanup(self.conn.disconnect)
        self.clock = task.Clock()
        self.clock.advance(T0 - 0.5)

    def mover(self, **kw) -> Mover:
        kw.setdefault("offset", 0.01)
        m = Mover(self.conn, self.clock, "host:1:q", **kw)
        self.addCleanup(m.stop)
        return m

    @defer.inlineCallbacks
    def settle(self, mover: Mover, advance: float = 0) -> defer.Generator:
        # Let the script call in flight (a real Redis round trip) return.
        self.clock.advance(advance)
        while mover._running is not None:
            yield task.deferLater(reactor, 0.001, lambda: None)

    @defer.inlineCallbacks
    def test_moves_due_jobs_never_early(self):
        yield pace.enqueue_at(T0, "q", "Now", 1, redis_url=self.url)
        yield pace.enqueue_at(T0 + 2, "other", "Later", "a/é", redis_url=self.url)
        m = self.mover()
        m.start()
        yield self.settle(m)  # at T0 - 0.5: nothing due
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
        yield self.settle(m, 0.49)  # still before T0
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
        yield self.settle(m, 0.02)  # T0 + 0.01: due, and moved on time
        self.assertEqual(self.redis.lrange("resque:queue:q", 0, -1), ['{"class":"Now","args":[1]}'])
        self.assertEqual(self.redis.smembers("resque:queues"), {"q"})
        self.assertFalse(self.redis.exists("resque:delayed:2000000000"))
        self.assertFalse(
            self.redis.exists('resque:timestamps:{"class":"Now","args":[1],"queue":"q"}')
        )
        self.assertEqual(self.redis.zrange("resque:delayed_queue_schedule", 0, -1), ["2000000002"])
        # A reactor running late: the clock jumps far past the next one.
        yield self.settle(m, 7.3)
        self.assertEqual(
            self.redis.lrange("resque:queue:other", 0, -1), ['{"class":"Later","args":["a/é"]}']
        )
        self.assertEqual(self.redis.keys("resque:delayed*"), [])
        self.assertEqual(self.redis.keys("resque:timestamps:*"), [])
        self.assertEqual(m.moved, 2)

    @defer.inlineCallbacks
    def test_idle_mover_calls_once_a_second(self):
        m = self.mover()
        calls = []
        real = m.move_once
        m.move_once = lambda: calls.append(self.clock.seconds()) or real()
        m.start()
        for step in [0.3, 0.25, 0.9, 0.05, 1.5, 0.2, 0.8]:
            yield self.settle(m, step)
        # One call at the start, then one as soon as the clock (running late)
        # has passed each next second: never two within one second.
        self.assertEqual([round(c - T0, 2) for c in calls], [-0.2, 0.05, 2.5, 3.5])

    @defer.inlineCallbacks
    def test_full_batches_go_on_at_once(self):
        self.redis.rpush(
            "resque:delayed:2000000000",
            *[json.dumps({"class": "J", "args": [i], "queue": "q"}) for i in range(25)],
        )
        self.redis.zadd("resque:delayed_queue_schedule", {"2000000000": T0})
        m = self.mover(batch=10)
        self.clock.advance(1)
        m.start()
        for _ in range(4):
            yield self.settle(m, 0)
        got = [json.loads(p)["args"][0] for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(got, list(range(25)))
        self.assertEqual(self.redis.zcard("resque:delayed_queue_schedule"), 0)

    @defer.inlineCallbacks
    def test_other_key_orders_and_stale_timestamps(self):
        odd = '{"queue":"q","class":"J","args":[1.0e+20]}'
        self.redis.rpush("resque:delayed:1999999990", odd)
        self.redis.zadd(
            "resque:delayed_queue_schedule", {"1999999990": 1999999990, "1999999991": 1999999991}
        )
        m = self.mover()
        m.start()
        yield self.settle(m)
        # Payload kept as it is (Resque ignores the extra key); the empty
        # timestamp resque-scheduler's remove_delayed leaves is cleaned up.
        self.assertEqual(self.redis.lrange("resque:queue:q", 0, -1), [odd])
        self.assertEqual(self.redis.zcard("resque:delayed_queue_schedule"), 0)

    @defer.inlineCallbacks
    def test_malformed_entries_become_failures(self):
        good = '{"class":"J","args":[],"queue":"q"}'
        bad = ["not json", "[1]", '{"class":"J","args":[]}', '{"class":"J","args":5,"queue":"q"}']
        self.redis.rpush("resque:delayed:1999999999", bad[0], good, *bad[1:])
        self.redis.zadd("resque:delayed_queue_schedule", {"1999999999": 1999999999})
        m = self.mover()
        m.start()
        yield self.settle(m)
        while m._running is not None or self.redis.llen("resque:pace:schedule:malformed"):
            yield self.settle(m)
        self.assertEqual(self.redis.lrange("resque:queue:q", 0, -1), ['{"class":"J","args":[]}'])
        records = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        # Recorded as every malformed payload is: a job Ruby's tools can
        # requeue, holding the raw text.
        self.assertEqual([r["payload"]["args"][0] for r in records], bad)
        self.assertEqual({r["payload"]["class"] for r in records}, {"Pace::MalformedPayload"})
        self.assertEqual({r["exception"] for r in records}, {"MalformedJob"})
        self.assertIn('no "queue"', records[2]["error"])
        self.assertEqual(records[3]["queue"], "q")
        self.assertEqual(self.redis.get("resque:stat:failed"), "4")
        self.assertEqual(m.recorded, 4)

    @defer.inlineCallbacks
    def test_many_movers_move_each_job_once(self):
        n = 2000
        for ts in range(T0 - 20, T0):
            self.redis.rpush(
                f"resque:delayed:{ts}",
                *[
                    json.dumps({"class": "J", "args": [ts, i], "queue": "q"})
                    for i in range(n // 20)
                ],
            )
            self.redis.zadd("resque:delayed_queue_schedule", {str(ts): ts})
        movers = [self.mover(batch=7) for _ in range(12)]
        for m in movers:
            m.start()
        while any(m._running is not None for m in movers) or self.redis.zcard(
            "resque:delayed_queue_schedule"
        ):
            yield task.deferLater(reactor, 0.001, lambda: None)
            self.clock.advance(0)
        got = [tuple(json.loads(p)["args"]) for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(len(got), n)
        self.assertEqual(set(got), {(ts, i) for ts in range(T0 - 20, T0) for i in range(n // 20)})
        self.assertEqual(sum(m.moved for m in movers), n)
        self.assertGreater(sum(1 for m in movers if m.moved), 1)

    @defer.inlineCallbacks
    def test_movers_killed_while_moving_lose_and_double_nothing(self):
        n = 6000
        now = int(reactor.seconds())
        for ts in range(now - 30, now):
            self.redis.rpush(
                f"resque:delayed:{ts}",
                *[
                    json.dumps({"class": "J", "args": [ts, i], "queue": "q"})
                    for i in range(n // 30)
                ],
            )
            self.redis.zadd("resque:delayed_queue_schedule", {str(ts): ts})
        procs = []

        def spawn() -> subprocess.Popen:
            p = self.spawn(
                [sys.executable, "-m", "tests.mover_process", "3"], stdout=subprocess.PIPE
            )
            procs.append(p)
            return p

        for _ in range(4):
            spawn()
        kills = 0
        while self.redis.zcard("resque:delayed_queue_schedule") and kills < 8:
            goal = kills * 300 + 100
            yield until(lambda g=goal: self.redis.llen("resque:queue:q") > g, timeout=60)
            victim = next(p for p in procs if p.poll() is None)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            kills += 1
            spawn()
        yield until(lambda: not self.redis.zcard("resque:delayed_queue_schedule"), timeout=120)
        got = [tuple(json.loads(p)["args"]) for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(len(got), n)
        self.assertEqual(len(set(got)), n)
        self.assertGreater(kills, 2)
        self.assertEqual(self.redis.keys("resque:timestamps:*"), [])
