"""
Running jobs: whatever a payload or a handler does, it ends as a succeeded
or a failed job with a record, never as an error of the worker; a handler
past ``job_timeout`` is cancelled and failed; slots are held until what a
handler returned settles.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.task import Clock

from tests.support import RedisTestCase, payload, until


class ProcessorTests(RedisTestCase):
    def records(self):
        return [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]

    @defer.inlineCallbacks
    def test_bad_payloads_fail_and_the_batch_goes_on(self):
        self.push("q", "not json", "[" * 100000, payload("Good", 1), b"\xff\xfe")
        ran = []
        w = self.worker(concurrency=10)
        self.started(w, lambda job: ran.append(job["args"]))
        yield until(lambda: self.redis.get("resque:stat:processed") == "4")
        self.assertEqual(ran, [[1]])
        self.assertEqual(self.redis.get("resque:stat:failed"), "3")
        self.assertEqual(len(self.records()), 3)

    @defer.inlineCallbacks
    def test_job_timeout_cancels_and_fails(self):
        clock = Clock()
        self.push("q", payload("Slow", 1))
        cancelled = []
        w = self.worker(job_timeout=2, clock=clock, log_interval=None)
        self.started(w, lambda job: defer.Deferred(cancelled.append))
        yield until(lambda: w.in_flight == 1)
        clock.advance(1.9)
        self.assertEqual(w.in_flight, 1)
        clock.advance(0.2)
        self.assertEqual(len(cancelled), 1)
        yield until(lambda: self.redis.get("resque:stat:failed") == "1")
        [record] = self.records()
        self.assertEqual(record["exception"], "JobTimeout")
        self.assertEqual(record["payload"], {"class": "Slow", "args": [1]})

    @defer.inlineCallbacks
    def test_slots_held_until_settled(self):
        self.push("q", *[payload("J", i) for i in range(5)])
        gates = []
        w = self.worker(concurrency=2)
        self.started(w, lambda job: gates.append(defer.Deferred()) or gates[-1])
        yield until(lambda: len(gates) == 2)
        self.assertEqual(w.parts.processor.free, 0)
        self.assertEqual(self.redis.llen("resque:queue:q"), 3)
        gates[0].callback(None)
        yield until(lambda: len(gates) == 3)
        self.assertEqual(w.in_flight, 2)
        for g in gates[1:]:
            g.callback(None)
        yield until(lambda: len(gates) == 5)
        for g in gates[3:]:
            g.callback(None)
        yield until(lambda: self.redis.get("resque:stat:processed") == "5")
