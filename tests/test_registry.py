"""
Tests for pace.registry: workers registered as Resque registers them and
removed on a clean stop; a dead worker pruned and its jobs put back at the
head of their queues, in order, exactly once; live workers left alone; and
the whole chain when a real worker process is killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from twisted.internet import defer
from twisted.internet.task import Clock

from pace import keys
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.registry import Registry
from tests.support import Recorder, RedisTestCase, payload, until

QUEUE = "resque:queue:q"


class RecoveryTests(RedisTestCase):
    def register_dead(self, token: str, jobs: list[str]) -> str:
        processing = keys.processing_list(token, QUEUE)
        record = {"resque_id": f"{token}:q", "lists": [[QUEUE, processing]]}
        self.redis.hset(keys.pace_workers(), token, json.dumps(record))
        self.redis.sadd(keys.resque_workers(), f"{token}:q")
        self.redis.hset(keys.resque_heartbeats(), f"{token}:q", "2026-01-01T00:00:00+00:00")
        if jobs:
            self.redis.rpush(processing, *jobs)
        return processing

    @defer.inlineCallbacks
    def test_dead_workers_jobs_run_first_in_order(self):
        dead = [payload("Dead", i) for i in range(3)]
        processing = self.register_dead("host:1:dead", dead)
        self.push("q", payload("Queued", 3))
        handler = Recorder(expected=4)
        w = self.worker(concurrency=1)
        self.started(w, handler)
        yield handler.done
        self.assertEqual(handler.args, [[0], [1], [2], [3]])
        self.assertEqual(self.redis.llen(processing), 0)
        self.assertFalse(self.redis.hexists(keys.pace_workers(), "host:1:dead"))
        # Pruned from Resque's registry too.
        self.assertEqual(self.redis.smembers(keys.resque_workers()), {w.id})
        self.assertFalse(self.redis.hexists(keys.resque_heartbeats(), "host:1:dead:q"))
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_live_workers_are_left_alone(self):
        processing = self.register_dead("host:2:alive", [payload("Busy", 1)])
        self.redis.set(keys.heartbeat("host:2:alive"), "1", px=60000)
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        self.assertEqual(self.redis.llen(processing), 1)
        self.assertEqual(self.redis.llen(QUEUE), 0)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_concurrent_sweeps_recover_exactly_once(self):
        self.register_dead("host:3:dead", [payload("J", i) for i in range(50)])
        conns = [RedisConnection(resolve_redis_url(self.url)) for _ in range(4)]
        for c in conns:
            self.addCleanup(c.disconnect)
        sweepers = [
            Registry(c, f"sweeper-{i}", f"h:{i}:q", [QUEUE], ["unused"], 30, Clock())
            for i, c in enumerate(conns)
        ]
        moved = yield defer.gatherResults([s.sweep() for s in sweepers])
        self.assertEqual(sorted(moved), [0, 0, 0, 50])
        self.assertEqual(self.redis.lrange(QUEUE, 0, -1), [payload("J", i) for i in range(50)])

    @defer.inlineCallbacks
    def test_heartbeat_and_clean_deregistration(self):
        clock = Clock()
        w = self.worker(heartbeat_ttl=9, clock=clock)
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        ttl = self.redis.pttl(keys.heartbeat(w.token))
        self.assertTrue(0 < ttl <= 9000, ttl)
        self.assertTrue(self.redis.hexists(keys.pace_workers(), w.token))
        self.redis.delete(keys.heartbeat(w.token))
        clock.advance(3)
        yield until(lambda: self.redis.exists(keys.heartbeat(w.token)))
        yield w.shutdown()
        self.assertFalse(self.redis.hexists(keys.pace_workers(), w.token))
        self.assertFalse(self.redis.exists(keys.heartbeat(w.token)))

    @defer.inlineCallbacks
    def test_registered_as_resque_registers_workers(self):
        import re
        import socket

        self.push("q", payload("J", 1), "bad")
        w = self.worker(["q", "other"])
        gate = defer.Deferred()
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        self.assertEqual(w.id, f"{socket.gethostname()}:{os.getpid()}:q,other")
        self.assertEqual(self.redis.smembers("resque:workers"), {w.id})
        started = self.redis.get(f"resque:worker:{w.id}:started")
        self.assertRegex(started, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$")
        beat = self.redis.hget("resque:workers:heartbeat", w.id)
        self.assertTrue(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", beat), beat)
        gate.callback(None)
        yield until(lambda: self.redis.get(f"resque:stat:processed:{w.id}") == "2")
        self.assertEqual(self.redis.get(f"resque:stat:failed:{w.id}"), "1")
        yield w.shutdown()
        self.assertEqual(self.redis.smembers("resque:workers"), set())
        self.assertEqual(self.redis.hgetall("resque:workers:heartbeat"), {})
        self.assertEqual(self.redis.keys("resque:worker:*"), [])
        self.assertEqual(self.redis.keys("resque:stat:*:*"), [])
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")

    @defer.inlineCallbacks
    def test_busy_summary_on_heartbeat(self):
        clock = Clock()
        gate = defer.Deferred()
        self.push("q", payload("J", 1))
        w = self.worker(heartbeat_ttl=3, clock=clock)
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        clock.advance(1)
        yield until(lambda: self.redis.exists(f"resque:worker:{w.id}"))
        busy = json.loads(self.redis.get(f"resque:worker:{w.id}"))
        self.assertEqual(busy["queue"], "q")
        self.assertEqual(busy["payload"]["args"], ["1 jobs in flight"])
        gate.callback(None)
        yield until(lambda: w.in_flight == 0)
        clock.advance(1)
        yield until(lambda: not self.redis.exists(f"resque:worker:{w.id}"))
        yield w.shutdown()


class KillTests(RedisTestCase):
    def worker_process(self, concurrency: int, ttl: float) -> subprocess.Popen:
        return self.spawn(
            [sys.executable, "-m", "tests.worker_process", str(concurrency), str(ttl)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @defer.inlineCallbacks
    def test_kill_9_loses_nothing(self):
        n, concurrency = 3000, 20
        self.redis.rpush("resque:queue:work", *[payload("Job", i) for i in range(n)])
        in_flight_at_kills = 0
        for threshold in (300, 1200):
            proc = self.worker_process(concurrency, 1.0)
            yield until(lambda t=threshold: len(self.done_args()) >= t, timeout=60)
            proc.send_signal(signal.SIGKILL)
            yield until(lambda p=proc: p.poll() is not None)
            in_flight_at_kills += sum(
                self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")
            )
        survivor = self.worker_process(concurrency, 1.0)
        yield until(lambda: len(set(self.done_args())) == n, timeout=120)
        survivor.send_signal(signal.SIGTERM)
        yield until(lambda: survivor.poll() is not None, timeout=30)
        done = self.done_args()
        self.assertEqual(sorted(set(done)), list(range(n)))
        duplicates = len(done) - n
        self.assertLessEqual(duplicates, in_flight_at_kills)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
        self.assertEqual(self.redis.hlen(keys.pace_workers()), 0)
