"""
Tests for pace.schedule: the delayed job written key by key as
resque-scheduler writes it, the encoding byte for byte, timestamps rounded up.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone

from twisted.internet import defer, task, threads
from twisted.trial import unittest

import pace
from pace.schedule import delayed_payload, ruby_float, ruby_json, timestamp_of
from tests.support import RedisTestCase


class LayoutTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_layout_key_by_key(self):
        ts = yield pace.enqueue_at(
            2000000000.2, "normal", "SendEmail", "a/é", 3, redis_url=self.url
        )
        self.assertEqual(ts, 2000000001)
        payload = '{"class":"SendEmail","args":["a/é",3],"queue":"normal"}'
        self.assertEqual(
            sorted(self.redis.keys("*")),
            sorted(
                [
                    "resque:delayed_queue_schedule",
                    "resque:delayed:2000000001",
                    "resque:timestamps:" + payload,
                ]
            ),
        )
        self.assertEqual(
            self.redis.zrange("resque:delayed_queue_schedule", 0, -1, withscores=True),
            [("2000000001", 2000000001.0)],
        )
        self.assertEqual(self.redis.type("resque:delayed:2000000001"), "list")
        self.assertEqual(self.redis.lrange("resque:delayed:2000000001", 0, -1), [payload])
        # The member is not namespaced: Ruby uses it as a key through
        # Redis::Namespace.
        self.assertEqual(
            self.redis.smembers("resque:timestamps:" + payload), {"delayed:2000000001"}
        )

    @defer.inlineCallbacks
    def test_same_job_twice_and_namespace(self):
        pace.namespace = "ns"
        yield pace.enqueue_at(2000000000, "q", "Job", redis_url=self.url)
        yield pace.enqueue_at(2000000000, "q", "Job", redis_url=self.url)
        yield pace.enqueue_at(2000000005, "q", "Job", redis_url=self.url)
        payload = '{"class":"Job","args":[],"queue":"q"}'
        self.assertEqual(self.redis.llen("ns:resque:delayed:2000000000"), 2)
        self.assertEqual(
            self.redis.smembers("ns:resque:timestamps:" + payload),
            {"delayed:2000000000", "delayed:2000000005"},
        )
        self.assertEqual(self.redis.zcard("ns:resque:delayed_queue_schedule"), 2)

    @defer.inlineCallbacks
    def test_enqueue_in_rounds_up(self):
        from twisted.internet import reactor

        before = reactor.seconds()
        ts = yield pace.enqueue_in(10.1, "q", "Job", redis_url=self.url)
        self.assertGreaterEqual(ts, before + 10.1)
        self.assertLess(ts, reactor.seconds() + 11.1)
        self.assertEqual(ts, int(ts))

    @defer.inlineCallbacks
    def test_bad_input_refused_clearly_and_nothing_written(self):
        naive = datetime(2030, 1, 1)
        with self.assertRaisesRegex(ValueError, "naive datetime"):
            yield pace.enqueue_at(naive, "q", "Job", redis_url=self.url)
        with self.assertRaisesRegex(ValueError, "not a Resque queue"):
            yield pace.enqueue_at(2e9, "my:special:queue", "Job", redis_url=self.url)
        with self.assertRaisesRegex(ValueError, "not valid in JSON"):
            yield pace.enqueue_at(2e9, "q", "Job", float("nan"), redis_url=self.url)
        with self.assertRaisesRegex(TypeError, "seconds must be a number"):
            yield pace.enqueue_in("5", "q", "Job", redis_url=self.url)
        with self.assertRaisesRegex(TypeError, "job class"):
            yield pace.enqueue_at(2e9, "q", "", redis_url=self.url)
        self.assertEqual(self.redis.keys("*"), [])


class BoundedTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_frozen_redis_fails_in_bounded_time(self):
        import signal

        from pace.redisserver import RedisServer

        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        os.kill(own.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, own.process.pid, signal.SIGCONT)
        from twisted.internet import reactor

        t0 = reactor.seconds()
        with self.assertRaisesRegex(pace.EnqueueError, "Redis at redis://127.0.0.1"):
            yield pace.enqueue_in(60, "q", "Job", redis_url=own.url, timeout=0.5)
        self.assertLess(reactor.seconds() - t0, 5)
        with self.assertRaises(pace.EnqueueError):
            yield pace.enqueue("q", "Job", redis_url=own.url, timeout=0.5)


class EncodingTests(unittest.TestCase):
    def test_timestamps_round_up(self):
        self.assertEqual(timestamp_of(100), 100)
        self.assertEqual(timestamp_of(100.0001), 101)
        aware = datetime(2030, 1, 1, tzinfo=timezone(timedelta(hours=2)))
        self.assertEqual(timestamp_of(aware), int(aware.timestamp()))
        self.assertEqual(
            timestamp_of(aware + timedelta(microseconds=1)), int(aware.timestamp()) + 1
        )
        self.assertRaises(ValueError, timestamp_of, math.inf)
        self.assertRaises(TypeError, timestamp_of, True)

    def test_as_ruby_json_writes_it(self):
        # Outputs of Ruby 3.1's JSON.generate (json 2.6) for the same values.
        self.assertEqual(
            ruby_json(["é", "\u2028", "\x01\x1f\x7f", "😀", "a/b", '"\\\n\t', None, True, 2**70]),
            '["é","\u2028","\\u0001\\u001f\x7f","😀","a/b","\\"\\\\\\n\\t",null,true,'
            "1180591620717411303424]",
        )
        self.assertEqual(ruby_json({"k": {}, "l": []}), '{"k":{},"l":[]}')
        self.assertEqual(
            delayed_payload("Job", [1], "q", {"pace_attempt": 2}),
            '{"class":"Job","args":[1],"pace_attempt":2,"queue":"q"}',
        )

    def test_floats_as_ruby_writes_them(self):
        cases = {
            1.0: "1.0",
            -0.0: "-0.0",
            0.1: "0.1",
            1e-4: "0.0001",
            1e-5: "1.0e-05",
            123456789012345.6: "123456789012345.6",
            1e15: "1.0e+15",
            1.5e15: "1.5e+15",
            2105270890488280.5: "2105270890488280.5",
            9999999999999998.0: "9.999999999999998e+15",
            1e20: "1.0e+20",
            1e100: "1.0e+100",
            5e-324: "5.0e-324",
        }
        for value, ruby in cases.items():
            self.assertEqual(ruby_float(value), ruby, value)


def _ruby_scheduler_missing() -> str | None:
    for name in ("PACE_RESQUE_SRC", "PACE_RESQUE_SCHEDULER_SRC"):
        if not os.path.isdir(os.path.join(os.environ.get(name, "/nonexistent"), "lib")):
            return f"${name} does not name a source checkout (resque 2.7, resque-scheduler 5)"
    if shutil.which("ruby") is None:
        return "needs ruby"
    libs = ("redis", "redis-namespace", "mono_logger", "multi_json")
    if subprocess.run(
        ["ruby", "-e", "; ".join(f'require "{x}"' for x in libs)], capture_output=True
    ).returncode:
        return "needs ruby with " + ", ".join(libs)
    return None


class RubySchedulerInteropTests(RedisTestCase):
    skip = _ruby_scheduler_missing()

    @defer.inlineCallbacks
    def test_both_ways(self):
        from pace.config import resolve_redis_url
        from pace.connection import RedisConnection
        from pace.mover import Mover

        t = 2000000000
        yield pace.enqueue_at(t + 200, "q", "PaceJob", 2, "/é", redis_url=self.url)
        yield pace.enqueue_at(t + 200, "q", "PaceJob", 9, redis_url=self.url)
        yield pace.enqueue_at(t + 50, "early", "Early", [1.0e20], {"a": None}, redis_url=self.url)
        script = os.path.join(os.path.dirname(__file__), "ruby", "scheduler_interop.rb")
        out = yield threads.deferToThread(
            subprocess.run,
            ["ruby", script, str(self.server.port), str(t)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        ruby = json.loads(out.stdout.splitlines()[-1])
        # Ruby finds and removes Pace's job by its exact string.
        self.assertEqual(ruby["scheduled_at"], [t + 200])
        self.assertTrue(ruby["delayed"])
        self.assertEqual(ruby["count"], 3)
        self.assertEqual(ruby["removed"], 1)
        # Ruby's scheduler moved Pace's due job as Pace would.
        self.assertEqual(ruby["moved_by_ruby"], ['{"class":"Early","args":[[1.0e+20],{"a":null}]}'])
        # Pace moves Ruby's jobs, byte for byte the payloads Ruby enqueues.
        conn = RedisConnection(resolve_redis_url(self.url), "test")
        self.addCleanup(conn.disconnect)
        clock = task.Clock()
        clock.advance(t + 250)
        yield Mover(conn, clock).move_once()
        self.assertEqual(
            self.redis.lrange("resque:queue:q", 0, -1),
            [ruby["ruby_payloads"][0], '{"class":"PaceJob","args":[9]}'],
        )
        self.assertEqual(self.redis.lrange("resque:queue:other", 0, -1), [ruby["ruby_payloads"][1]])
        self.assertEqual(self.redis.zcard("resque:delayed_queue_schedule"), 0)
        self.assertEqual(self.redis.keys("resque:timestamps:*"), [])
