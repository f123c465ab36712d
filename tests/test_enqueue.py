"""
Tests for pace.enqueue: byte-for-byte what Resque.enqueue writes, and a
round trip through a worker.
"""

from __future__ import annotations

import json

from twisted.internet import defer

import pace
from tests.support import Recorder, RedisTestCase


class EnqueueTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_resque_format(self):
        length = yield pace.enqueue("normal", "SendEmail", "a@b.c", 3, redis_url=self.url)
        self.assertEqual(length, 1)
        [raw] = self.redis.lrange("resque:queue:normal", 0, -1)
        self.assertEqual(json.loads(raw), {"class": "SendEmail", "args": ["a@b.c", 3]})
        self.assertEqual(self.redis.smembers("resque:queues"), {"normal"})

    @defer.inlineCallbacks
    def test_namespaced_and_module_url(self):
        pace.namespace = "ns"
        pace.redis_url = self.url
        yield pace.enqueue("normal", "Job")
        yield pace.enqueue("my:absolute", "Job")
        self.assertEqual(self.redis.llen("ns:resque:queue:normal"), 1)
        self.assertEqual(self.redis.llen("ns:my:absolute"), 1)
        self.assertEqual(self.redis.smembers("ns:resque:queues"), {"normal", "my:absolute"})

    @defer.inlineCallbacks
    def test_enqueue_many_then_work(self):
        length = yield pace.enqueue_many("q", "Job", [[i] for i in range(100)], redis_url=self.url)
        self.assertEqual(length, 100)
        handler = Recorder(expected=100)
        w = self.worker()
        self.started(w, handler)
        yield handler.done
        self.assertEqual(handler.args, [[i] for i in range(100)])
        yield w.shutdown()

    def test_bad_class(self):
        self.assertRaises(TypeError, pace.enqueue, "q", "", redis_url=self.url)
