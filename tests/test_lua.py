"""
The Lua scripts, run on a real Redis: each transition is atomic and does
exactly what the worker counts on.
"""

from __future__ import annotations

from twisted.internet import defer

from pace import lua
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from tests.support import RedisTestCase


class LuaTests(RedisTestCase):
    def setUp(self):
        super().setUp()
        self.conn = RedisConnection(resolve_redis_url(self.url), "test")
        self.addCleanup(self.conn.disconnect)

    @defer.inlineCallbacks
    def test_pop_takes_at_most_n_in_priority_order(self):
        self.redis.rpush("a", "a1", "a2")
        self.redis.rpush("b", "b1", "b2", "b3")
        got = yield lua.POP(self.conn, ["a", "b"], [3])
        self.assertEqual(got, [["a1", "a2"], ["b1"]])
        self.assertEqual(self.redis.lrange("b", 0, -1), ["b2", "b3"])

    @defer.inlineCallbacks
    def test_pop_reliable_moves_into_the_processing_lists(self):
        self.redis.rpush("a", "a1")
        self.redis.rpush("b", "b1", "b2")
        got = yield lua.POP_RELIABLE(self.conn, ["a", "b", "pa", "pb"], [5])
        self.assertEqual(got, [["a1"], ["b1", "b2"]])
        self.assertEqual(self.redis.lrange("pa", 0, -1), ["a1"])
        self.assertEqual(self.redis.lrange("pb", 0, -1), ["b1", "b2"])
        self.assertEqual(self.redis.exists("a", "b"), 0)

    @defer.inlineCallbacks
    def test_requeue_puts_back_at_the_head_in_order(self):
        self.redis.rpush("q", "later")
        self.redis.rpush("p", "x", "j1", "j2")
        # Payloads go in last first.
        yield lua.REQUEUE(self.conn, ["q", "p"], ["j2", "j1"])
        self.assertEqual(self.redis.lrange("q", 0, -1), ["j1", "j2", "later"])
        self.assertEqual(self.redis.lrange("p", 0, -1), ["x"])

    @defer.inlineCallbacks
    def test_settle_counts_records_and_acknowledges(self):
        keys = ["processed", "failed", "failed_list", "wp", "wf", "p1", "p2"]
        self.redis.rpush("p1", "j1", "j2", "j1")
        self.redis.rpush("p2", "k1")
        # 3 processed, 1 failed with its record; acks: one j1 from list 1,
        # k1 from list 2.
        args = [3, 1, 1, "record", 1, 1, "j1", 2, 1, "k1"]
        yield lua.SETTLE(self.conn, keys, args)
        self.assertEqual(self.redis.mget("processed", "failed", "wp", "wf"), ["3", "1", "3", "1"])
        self.assertEqual(self.redis.lrange("failed_list", 0, -1), ["record"])
        self.assertEqual(self.redis.lrange("p1", 0, -1), ["j2", "j1"])
        self.assertEqual(self.redis.exists("p2"), 0)

    @defer.inlineCallbacks
    def test_script_sent_in_full_only_when_unknown(self):
        self.redis.script_flush()
        self.redis.config_resetstat()
        for _ in range(3):
            yield lua.POP(self.conn, ["a", "b"], [1])
        stats = self.redis.info("commandstats")
        self.assertEqual(stats["cmdstat_eval"]["calls"], 1)
        self.assertEqual(stats["cmdstat_evalsha"]["calls"], 3)
