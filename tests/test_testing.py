"""
Tests for pace.testing, used as a user would in their own trial tests.
"""

from __future__ import annotations

from twisted.internet import defer

import pace
from pace import testing
from tests.support import RedisTestCase, payload


class DrainTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_drain_runs_everything_then_fires(self):
        self.push("q", *[payload("J", i) for i in range(25)], "not json")
        seen = []
        processed, failed = yield testing.drain(
            "q", lambda job: seen.append(job), redis_url=self.url
        )
        self.assertEqual([j["args"] for j in processed], [[i] for i in range(25)])
        self.assertEqual(len(seen), 25)
        self.assertEqual([json for json, _ in failed], ["not json"])
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    @defer.inlineCallbacks
    def test_drain_of_an_empty_queue(self):
        processed, failed = yield testing.drain("q", lambda job: None, redis_url=self.url)
        self.assertEqual((processed, failed), ([], []))

    @defer.inlineCallbacks
    def test_enqueued(self):
        yield pace.enqueue("q", "SendEmail", "ada@example.com", redis_url=self.url)
        jobs = yield testing.enqueued("q", redis_url=self.url)
        self.assertEqual(jobs, [{"class": "SendEmail", "args": ["ada@example.com"]}])
