"""
Tests for pace.recovery: the jobs of a dead worker go back to the head of
their queues, in order, exactly once; live workers are left alone; and the
whole chain holds when a real worker process is killed with SIGKILL.
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
from pace.recovery import Recovery
from tests.support import Recorder, RedisTestCase, payload, until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "resque:queue:q"


class RecoveryTests(RedisTestCase):
    def register_dead(self, token: str, jobs: list[str]) -> str:
        processing = keys.processing_list(token, QUEUE)
        self.redis.hset(keys.pace_workers(), token, json.dumps([[QUEUE, processing]]))
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
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_live_workers_are_left_alone(self):
        processing = self.register_dead("host:2:alive", [payload("Busy", 1)])
        self.redis.set(keys.heartbeat("host:2:alive"), "1", px=60000)
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w._loop is not None)
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
            Recovery(c, f"sweeper-{i}", [QUEUE], ["unused"], 30, Clock())
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
        yield until(lambda: w._loop is not None)
        ttl = self.redis.pttl(keys.heartbeat(w._token))
        self.assertTrue(0 < ttl <= 9000, ttl)
        self.assertTrue(self.redis.hexists(keys.pace_workers(), w._token))
        self.redis.delete(keys.heartbeat(w._token))
        clock.advance(3)
        yield until(lambda: self.redis.exists(keys.heartbeat(w._token)))
        yield w.shutdown()
        self.assertFalse(self.redis.hexists(keys.pace_workers(), w._token))
        self.assertFalse(self.redis.exists(keys.heartbeat(w._token)))


class KillTests(RedisTestCase):
    def worker_process(self, concurrency: int, ttl: float) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process", str(concurrency), str(ttl)],
            cwd=ROOT,
            env=dict(os.environ, REDIS_URL=self.url, PYTHONPATH=ROOT),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def stop():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

        self.addCleanup(stop)
        return proc

    def done(self) -> list:
        return [json.loads(p)["args"][0] for p in self.redis.lrange("resque:queue:done", 0, -1)]

    @defer.inlineCallbacks
    def test_kill_9_loses_nothing(self):
        n, concurrency = 3000, 20
        self.redis.rpush("resque:queue:work", *[payload("Job", i) for i in range(n)])
        in_flight_at_kills = 0
        for threshold in (300, 1200):
            proc = self.worker_process(concurrency, 1.0)
            yield until(lambda t=threshold: len(self.done()) >= t, timeout=60)
            proc.send_signal(signal.SIGKILL)
            yield until(lambda p=proc: p.poll() is not None)
            in_flight_at_kills += sum(
                self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")
            )
        survivor = self.worker_process(concurrency, 1.0)
        yield until(lambda: len(set(self.done())) == n, timeout=120)
        survivor.send_signal(signal.SIGTERM)
        yield until(lambda: survivor.poll() is not None, timeout=30)
        done = self.done()
        self.assertEqual(sorted(set(done)), list(range(n)))
        duplicates = len(done) - n
        self.assertLessEqual(duplicates, in_flight_at_kills)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
        self.assertEqual(self.redis.hlen(keys.pace_workers()), 0)
