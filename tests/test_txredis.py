"""
The txredisapi adapter: a connection dropped during AUTH (a proxy whose
backend went away, a restart mid-handshake) is a lost connection, not a
wrong password: the worker reconnects and runs jobs, and `pace.enqueue`
works. A wrong password still fails for good (tests/test_reconnect.py).
Also: TCP keepalive on every connection.
"""

from __future__ import annotations

import socket

import redis
from twisted.internet import defer, reactor

import pace
from pace.redisserver import RedisServer
from tests.proxy import Proxy
from tests.support import Logged, Recorder, RedisTestCase, payload, until


class AuthDropTests(RedisTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        super().setUp()
        self.own = RedisServer(None, None, "--requirepass", "s3cret").start()
        self.addCleanup(self.own.cleanup)
        self.client = redis.Redis(port=self.own.port, password="s3cret", decode_responses=True)
        self.addCleanup(self.client.close)
        self.proxy = yield Proxy(self.own.port, reactor).start()
        self.addCleanup(self.proxy.stop)
        self.logged = Logged(self)

    @defer.inlineCallbacks
    def test_worker_reconnects_after_a_drop_during_auth(self):
        self.client.rpush("resque:queue:q", *[payload("J", i) for i in range(10)])
        # Both connections of the worker lose their AUTH reply, then the
        # next attempts of each too.
        self.proxy.drop_next(4)
        handler = Recorder()
        w = self.worker(redis_url=self.proxy.url_with(":s3cret"), grace=1)
        done = self.started(w, handler)
        yield until(lambda: len(handler.jobs) == 10, timeout=20)
        self.assertEqual(handler.args, [[i] for i in range(10)])
        self.assertEqual(self.proxy.dropped, 4)
        self.assertTrue(any(b"AUTH" in data for data in self.proxy.forwarded))
        self.assertFalse(done.called)
        self.assertEqual(self.logged.count("refused"), 0)
        self.assertEqual(self.logged.count("s3cret"), 0)

    @defer.inlineCallbacks
    def test_enqueue_works_after_a_drop_during_auth(self):
        self.proxy.drop_next(2)
        url = self.proxy.url_with(":s3cret")
        length = yield pace.enqueue("q", "J", 1, redis_url=url, timeout=10)
        self.assertEqual(length, 1)
        self.assertEqual(self.proxy.dropped, 2)
        self.assertEqual((yield pace.enqueue("q", "J", 2, redis_url=url, timeout=10)), 2)
        self.assertEqual(self.client.llen("resque:queue:q"), 2)


class KeepaliveTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_every_worker_connection_has_tcp_keepalive(self):
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        for conn in (w.parts.commands, w.parts.fetch_conn):
            handle = conn.protocol.transport.getHandle()
            self.assertEqual(handle.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE), 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                self.assertLessEqual(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE), 60)


class BackoffCapTests(RedisTestCase):
    def test_the_reconnect_backoff_never_waits_past_its_cap(self):
        # txredisapi's jitter is normal around the delay: uncapped, a wait at
        # the cap ran up to a third past it, and the registry's grace after
        # an outage counts on the cap.
        import random

        from pace.connection import RECONNECT_MAX_DELAY, RedisConnection

        conn = RedisConnection(pace.resolve_redis_url(self.url), "backoff")
        self.addCleanup(conn.disconnect)
        factory = conn._link.factory
        random.seed(4)
        delays = [factory.retryDelay(attempt) for attempt in range(1, 200)]
        self.assertLessEqual(max(delays), RECONNECT_MAX_DELAY)
        self.assertGreater(max(delays), RECONNECT_MAX_DELAY * 0.8)
        self.assertLess(delays[0], 1.0)
