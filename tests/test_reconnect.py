"""
Tests for losing Redis: the worker logs it, reconnects with backoff and goes
on fetching by itself, with one fetch loop and no job lost.
"""

from __future__ import annotations

import redis
from twisted.internet import defer, reactor

from pace import lifecycle
from pace.redisserver import RedisServer
from tests.support import Recorder, RedisTestCase, payload, until


def kill_pace_clients(client: redis.Redis) -> int:
    return client.client_kill_filter(_type="normal", skipme=True)


class ReconnectTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_connection_killed_while_blocked(self):
        handler = Recorder(expected=20)
        w = self.worker()
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        loop = w.parts.loop.current
        self.assertGreaterEqual(kill_pace_clients(self.redis), 2)
        yield until(lambda: w.parts.fetch_conn.protocol is None)
        self.push("q", *[payload("J", i) for i in range(20)])
        yield handler.done
        self.assertEqual(handler.args, [[i] for i in range(20)])
        self.assertIs(w.parts.loop.current, loop)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_jobs_moved_by_a_fetch_whose_reply_was_lost_are_reclaimed(self):
        handler = Recorder(expected=1)
        w = self.worker()
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        # What a batched move leaves behind when the connection dies before
        # its reply arrives: a job in our processing list that we never saw.
        self.redis.rpush(w.parts.processing[0], payload("Lost", 1))
        kill_pace_clients(self.redis)
        yield handler.done
        self.assertEqual(handler.args, [[1]])
        yield until(lambda: self.redis.llen(w.parts.processing[0]) == 0)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_connection_killed_inside_a_job(self):
        self.push("q", *[payload("J", i) for i in range(10)])
        gate = defer.Deferred()
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return gate if job["args"] == [0] else None

        w = self.worker(concurrency=1)
        self.started(w, handler)
        yield until(lambda: seen == [0])
        kill_pace_clients(self.redis)
        yield until(lambda: w.parts.commands.protocol is None)
        gate.callback(None)
        yield until(lambda: len(seen) == 10)
        yield until(lambda: self.redis.get("resque:stat:processed") == "10")
        self.assertEqual(seen, list(range(10)))
        yield w.shutdown()
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def test_redis_restarted(self):
        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        handler = Recorder()
        w = self.worker(redis_url=own.url)
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        loop = w.parts.loop.current
        own.restart()
        yield until(lambda: w.parts.fetch_conn.protocol is None)
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(30)])
        yield until(lambda: len(handler.jobs) == 30, timeout=20)
        self.assertEqual(handler.args, [[i] for i in range(30)])
        self.assertIs(w.parts.loop.current, loop)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_shutdown_while_redis_is_down(self):
        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        w = self.worker(redis_url=own.url)
        done = self.started(w, lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        own.stop()
        yield until(lambda: w.parts.fetch_conn.protocol is None)
        started = reactor.seconds()
        yield w.shutdown()
        yield done
        # Grace 5 s with nothing in flight: only the writes that Redis, being
        # down, never takes wait, and not past the deadline.
        self.assertLess(reactor.seconds() - started, lifecycle.AFTER_GRACE + 1)

    @defer.inlineCallbacks
    def test_wrong_password_fails_start_with_a_clear_error(self):
        own = RedisServer(None, None, "--requirepass", "right")
        own.start()
        self.addCleanup(own.cleanup)
        w = self.worker(redis_url=f"redis://:wrong@127.0.0.1:{own.port}/0")
        done = w.start(lambda job: None)
        e = yield self.assertFailure(done, Exception)
        self.assertIn("WRONGPASS", str(e))
        self.assertNotIn("wrong", str(e).replace("WRONGPASS", ""))
