"""
The bookkeeper: results of a reactor turn go out in one script call, and a
batch Redis does not take is kept (and the bookkeeper blocked) until it
does.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from pace.bookkeeping import Bookkeeper
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.redisserver import RedisServer
from tests.support import RedisTestCase, until


class BookkeeperTests(RedisTestCase):
    def setUp(self):
        super().setUp()
        self.conn = RedisConnection(resolve_redis_url(self.url), "test")
        self.addCleanup(self.conn.disconnect)
        self.redis.rpush("p", *[f"j{i}" for i in range(100)])
        self.books = Bookkeeper(self.conn, ["p"], "w1", reactor=reactor)

    @defer.inlineCallbacks
    def test_one_script_call_per_turn(self):
        yield self.conn.connected()
        self.redis.config_resetstat()
        for i in range(100):
            self.books.settled(0, f"j{i}".encode(), failed=i < 3, record=f"r{i}")
        yield self.books.idle()
        stats = self.redis.info("commandstats")
        calls = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("eval", "evalsha"))
        self.assertEqual(calls, 1 + ("cmdstat_eval" in stats))  # NOSCRIPT once at most
        self.assertEqual(self.redis.get("resque:stat:processed"), "100")
        self.assertEqual(self.redis.get("resque:stat:failed"), "3")
        self.assertEqual(self.redis.lrange("resque:failed", 0, -1), ["r0", "r1", "r2"])
        self.assertEqual(self.redis.llen("p"), 0)

    @defer.inlineCallbacks
    def test_kept_and_blocked_while_redis_refuses(self):
        yield self.conn.connected()
        self.redis.config_set("maxmemory-policy", "noeviction")
        self.redis.config_set("maxmemory", 1)
        self.addCleanup(self.redis.config_set, "maxmemory", 0)
        self.books.settled(0, b"j0")
        yield until(lambda: self.books.blocked)
        writable = self.books.writable()
        self.assertFalse(writable.called)
        self.assertEqual(self.books.unacknowledged(), [(0, b"j0")])
        self.redis.config_set("maxmemory", 0)
        yield writable
        yield self.books.idle()
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        self.assertEqual(self.redis.lrange("p", 0, 0), ["j1"])
        self.assertEqual(self.books.unacknowledged(), [])


class CloseWhileRedisIsGoneTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_no_retry_timer_after_close(self):
        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        conn = RedisConnection(resolve_redis_url(own.url), "test")
        self.addCleanup(conn.disconnect)
        clock = Clock()
        books = Bookkeeper(conn, ["p"], "w1", reactor=reactor, clock=clock)
        yield conn.connected()
        # The batch is sent and never answered: the server dies under it.
        os.kill(own.process.pid, signal.SIGSTOP)
        books.settled(0, b"j0")
        yield until(lambda: books._in_flight is not None)
        os.kill(own.process.pid, signal.SIGKILL)
        own.process.wait()
        yield until(lambda: books.blocked)
        self.assertEqual(books.unacknowledged(), [(0, b"j0")])
        books.close()
        yield conn.disconnect()
        self.assertEqual(clock.getDelayedCalls(), [])
