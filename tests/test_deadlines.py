"""
Every wait on Redis has a deadline: through a proxy gone half-open (nothing
gets through, no socket closes) and against a SIGSTOPped redis-server, a
worker notices, recovers once the network heals without losing a job, and
shuts down within grace + 5 s; `pace.enqueue` fails within its timeout and
works again afterwards.
"""

from __future__ import annotations

import gc
import json
import os
import signal

import redis
from twisted.internet import defer, reactor
from twisted.logger import formatEvent, globalLogPublisher

import pace
from pace.enqueue import EnqueueError
from pace.fetch import BLOCK_MARGIN, BLOCK_SECONDS
from pace.redisserver import RedisServer
from tests.proxy import Proxy
from tests.support import Logged, ProxiedTestCase, RedisTestCase, payload, until

GRACE = 1
#: What issue 9 promises for the whole shutdown, whatever Redis does.
SHUTDOWN_BOUND = GRACE + 5


class HalfOpenTests(ProxiedTestCase):
    @defer.inlineCallbacks
    def test_blocking_pop_is_abandoned_after_its_timeout(self):
        w = self.worker(redis_url=self.proxy.url, grace=GRACE)
        self.started(w, lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        old = w.parts.fetch_conn.protocol
        self.proxy.half_open()
        # A blocking pop of BLOCK_SECONDS, sent at most BLOCK_SECONDS ago,
        # is given up BLOCK_MARGIN after its own timeout (checked a few times
        # per timeout): its connection is aborted and made anew.
        bound = 2 * (BLOCK_SECONDS + BLOCK_MARGIN) + 1
        yield until(lambda: w.parts.fetch_conn.protocol is not old, timeout=bound)
        self.assertTrue(self.logged.count("sent no reply for"))
        self.assertTrue(self.logged.count("on the fetch connection"))

    @defer.inlineCallbacks
    def test_idle_worker_recovers_once_healed(self):
        runs: dict[int, int] = {}

        def handler(job):
            runs[job["args"][0]] = runs.get(job["args"][0], 0) + 1

        w = self.worker(redis_url=self.proxy.url, grace=GRACE)
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        self.proxy.half_open()
        yield until(self.logged.has("on the fetch connection"), timeout=15)
        self.proxy.heal()
        self.push("q", *[payload("J", i) for i in range(100)])
        yield until(lambda: len(runs) == 100, timeout=20)
        self.assertEqual(sorted(runs), list(range(100)))
        self.assertEqual(set(runs.values()), {1})

    @defer.inlineCallbacks
    def test_busy_worker_recovers_once_healed_and_loses_nothing(self):
        n = 5000
        self.push("q", *[payload("J", i) for i in range(n)])
        runs: dict[int, int] = {}

        def handler(job):
            runs[job["args"][0]] = runs.get(job["args"][0], 0) + 1

        w = self.worker(redis_url=self.proxy.url, grace=GRACE, concurrency=10)
        self.started(w, handler)
        yield until(lambda: len(runs) >= 200, timeout=20)
        self.proxy.half_open()
        before = len(runs)
        yield until(self.logged.has("sent no reply for"), timeout=15)
        self.assertLess(before, n, "the jobs ran out before the network broke")
        self.proxy.heal()
        yield until(lambda: len(runs) == n, timeout=60)
        # Every job ran; in reliable mode one whose acknowledgement was lost
        # with the connection may run twice, none is lost.
        self.assertEqual(sorted(runs), list(range(n)))
        yield until(lambda: self.redis.llen(w.parts.processing[0]) == 0, timeout=20)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    @defer.inlineCallbacks
    def test_shutdown_ends_in_time_while_half_open(self):
        self.push("q", payload("Forever", 1))
        w = self.worker(redis_url=self.proxy.url, grace=GRACE)
        done = self.started(w, lambda job: defer.Deferred())
        yield until(lambda: w.in_flight == 1)
        self.proxy.half_open()
        t0 = reactor.seconds()
        yield w.shutdown()
        yield done
        self.assertLess(reactor.seconds() - t0, SHUTDOWN_BOUND)
        # Not put back (Redis unreachable): still in the processing list, for
        # the next worker to recover. Never lost.
        self.assertEqual(
            self.redis.llen("resque:queue:q") + self.redis.llen(w.parts.processing[0]), 1
        )
        self.assertTrue(self.logged.count("gave up"))


class FrozenRedisTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_shutdown_ends_in_time_while_redis_is_frozen(self):
        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        client.rpush("resque:queue:q", payload("Forever", 1), payload("Waiting", 2))
        w = self.worker(redis_url=own.url, grace=GRACE, concurrency=1)
        done = self.started(w, lambda job: defer.Deferred())
        yield until(lambda: w.in_flight == 1)
        yield until(lambda: w.parts.fetcher._blocked or w.parts.loop._waiting is not None)
        os.kill(own.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, own.process.pid, signal.SIGCONT)
        t0 = reactor.seconds()
        yield w.shutdown()
        yield done
        self.assertLess(reactor.seconds() - t0, SHUTDOWN_BOUND)
        os.kill(own.process.pid, signal.SIGCONT)
        # Both jobs are in Redis still: in the queue, or in the processing
        # list that a later worker recovers.
        processing = w.parts.processing[0]
        yield until(lambda: client.ping())
        self.assertEqual(client.llen("resque:queue:q") + client.llen(processing), 2)


class EnqueueDeadlineTests(ProxiedTestCase):
    def enqueue(self, *args, timeout=10):
        return pace.enqueue("q", "J", *args, redis_url=self.proxy.url, timeout=timeout)

    @defer.inlineCallbacks
    def test_fails_in_time_and_works_again_once_healed(self):
        self.assertEqual((yield self.enqueue(1)), 1)
        self.proxy.half_open()
        t0 = reactor.seconds()
        e = yield self.assertFailure(self.enqueue(2, timeout=1), EnqueueError)
        self.assertLess(reactor.seconds() - t0, 2)
        self.assertIn("within 1 s", str(e))
        self.proxy.heal()
        # The frozen connection is given up by its reply deadline; a call
        # made at once after that (before the socket's connectionLost, a
        # reactor turn later) waits for the new connection and goes through.
        sent = []

        def observer(event):
            if not sent and "on the enqueue connection" in formatEvent(event):
                sent.append(None)
                reactor.callLater(0, lambda: sent.append(self.enqueue(3)))

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        yield until(lambda: len(sent) == 2, timeout=15)
        self.assertEqual((yield sent[1]), 2)
        queued = [json.loads(p)["args"] for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(queued, [[1], [3]])
        self.assertEqual(self.redis.smembers("resque:queues"), {"q"})
        gc.collect()  # an unhandled error in a dropped Deferred shows now

    @defer.inlineCallbacks
    def test_pending_calls_fail_on_disconnect(self):
        yield self.enqueue(1)
        self.proxy.half_open()
        pending = [self.enqueue(i, timeout=30) for i in range(5)]
        yield pace.disconnect()
        for d in pending:
            e = yield self.assertFailure(d, EnqueueError)
            self.assertIn("closed", str(e))
        self.proxy.heal()
        self.assertEqual((yield self.enqueue(9)), 2)
        gc.collect()

    @defer.inlineCallbacks
    def test_many_calls_while_half_open_all_fire(self):
        yield self.enqueue(0)
        self.proxy.half_open()
        calls = [self.enqueue(i, timeout=1) for i in range(1, 101)]
        results = yield defer.DeferredList(calls, consumeErrors=True)
        self.assertEqual([ok for ok, _ in results], [False] * 100)
        self.assertTrue(all(f.check(EnqueueError) for _, f in results))
        gc.collect()


class StuckReclaimTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_stopping_now_does_not_wait_for_a_reclaim_on_a_dead_network(self):
        proxy = yield Proxy(self.server.port, reactor).start()
        self.addCleanup(proxy.stop)
        logged = Logged(self)
        w = self.worker(redis_url=proxy.url, grace=30)
        done = self.started(w, lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        # The network goes; then the fetch connection drops (as a reset
        # would): the worker connects again through the dead network, where
        # its handshake (and, were it connected, the look for jobs lost in
        # transit) never gets an answer.
        proxy.half_open()
        port = w.parts.fetch_conn.protocol.transport.getHost().port
        [fetch_front] = [f for f in proxy.fronts if f.transport.getPeer().port == port]
        accepted = proxy.accepted
        fetch_front.transport.abortConnection()
        yield until(logged.has("fetch from ['resque:queue:q'] interrupted"))
        yield until(lambda: proxy.accepted > accepted)
        t0 = reactor.seconds()
        yield w.shutdown(immediately=True)
        yield done
        self.assertLess(reactor.seconds() - t0, 3)
