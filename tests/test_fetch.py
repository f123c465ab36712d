"""
The fetcher on a real Redis: batches sized to what was asked, put-back in
original order (in chunks past Lua's limits), and an unblocked pop that
returns no job and loses none.
"""

from __future__ import annotations

from twisted.internet import defer, reactor

from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.fetch import Fetcher
from tests.support import RedisTestCase, until


class FetcherTests(RedisTestCase):
    def setUp(self):
        super().setUp()
        url = resolve_redis_url(self.url)
        self.conn = RedisConnection(url, "fetch", charset=None)
        self.commands = RedisConnection(url, "commands")
        self.addCleanup(self.conn.disconnect)
        self.addCleanup(self.commands.disconnect)

    def fetcher(self, queues, processing=None):
        return Fetcher(self.conn, self.commands, queues, processing, reactor=reactor)

    @defer.inlineCallbacks
    def test_batch_sized_to_the_count_across_queues(self):
        self.redis.rpush("a", "a1", "a2")
        self.redis.rpush("b", "b1", "b2")
        got = yield self.fetcher(["a", "b"], ["pa", "pb"]).fetch(3)
        self.assertEqual(got, [[b"a1", b"a2"], [b"b1"]])
        self.assertEqual(self.redis.lrange("pb", 0, -1), ["b1"])
        self.assertEqual(self.redis.lrange("b", 0, -1), ["b2"])

    @defer.inlineCallbacks
    def test_requeue_in_order_in_chunks(self):
        n = 2500
        payloads = [f"j{i}" for i in range(n)]
        self.redis.rpush("p", *payloads)
        self.redis.rpush("q", "later")
        yield self.fetcher(["q"], ["p"]).requeue(0, payloads)
        self.assertEqual(self.redis.lrange("q", 0, -1), payloads + ["later"])
        self.assertEqual(self.redis.llen("p"), 0)

    @defer.inlineCallbacks
    def test_unblock_ends_the_blocking_pop_with_no_job(self):
        fetcher = self.fetcher(["q"], ["p"])
        d = fetcher.fetch(1)
        yield until(lambda: fetcher._blocked)
        t0 = reactor.seconds()
        yield fetcher.unblock()
        got = yield d
        self.assertEqual(got, [[]])
        self.assertLess(reactor.seconds() - t0, 1.5)
        self.redis.rpush("q", "j")
        self.assertEqual((yield fetcher.fetch(1)), [[b"j"]])
