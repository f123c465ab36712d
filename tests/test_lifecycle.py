"""
The lifecycle state machine on a `task.Clock`: a shutdown during any start
step (waiting for Redis, registering, a start hook that returns a Deferred,
the first fetch) leaves no timer and writes nothing after the stop; pause
after shutdown leaves no timer; resume never starts a second loop; the
whole shutdown ends by grace + 5 s on the clock with Redis frozen.
"""

from __future__ import annotations

import os
import signal

import redis
from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock

from pace.lifecycle import STOPPED
from pace.redisserver import RedisServer, free_port
from tests.proxy import Proxy
from tests.support import ProxiedTestCase, RedisTestCase, payload, until

#: Uneven, late steps, as a loaded reactor runs its timers.
STEPS = [0.01, 0.3, 2.9, 0.05, 7, 1.3, 31, 0.2, 64]


def turn() -> defer.Deferred:
    # One pass of the real reactor, for the sockets.
    return task.deferLater(reactor, 0, lambda: None)


class StopDuringStartTests(RedisTestCase):
    def worker_on(self, clock, **kw):
        kw.setdefault("grace", 2)
        kw.setdefault("jobs_per_second", 50)
        kw.setdefault("log_interval", 5)
        return self.worker(clock=clock, **kw)

    @defer.inlineCallbacks
    def check_left_nothing(self, w, clock, done):
        stopping = w.shutdown()
        # Redis may not answer (that is the point of some of these): the
        # shutdown deadline, on the clock, ends the wait.
        for step in STEPS:
            if stopping.called:
                break
            clock.advance(step / 10)
            yield turn()
        yield stopping
        yield done
        self.assertEqual(w.state, STOPPED)
        self.assertEqual(clock.getDelayedCalls(), [])
        # Time passes: nothing wakes up, nothing writes.
        for step in STEPS:
            clock.advance(step)
            yield turn()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(w.fetching)

    def assert_nothing_written(self):
        self.assertEqual(self.redis.smembers("resque:workers"), set())
        self.assertEqual(self.redis.hgetall("resque:pace:workers"), {})
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
        self.assertEqual(self.redis.keys("resque:worker:*"), [])

    @defer.inlineCallbacks
    def test_stop_while_waiting_for_redis(self):
        clock = Clock()
        w = self.worker_on(clock, redis_url=f"redis://127.0.0.1:{free_port()}/0")
        done = w.start(lambda job: None)
        yield turn()
        self.assertEqual(w.state, "starting")
        yield self.check_left_nothing(w, clock, done)

    @defer.inlineCallbacks
    def test_stop_while_registering(self):
        clock = Clock()
        proxy = yield Proxy(self.server.port, reactor).start()
        self.addCleanup(proxy.stop)
        w = self.worker_on(clock, redis_url=proxy.url)
        # Connections are made (their PING answered), and then Redis holds
        # every write: the registry's first script waits.
        self.redis.client_pause(10_000, all=False)
        self.addCleanup(self.redis.client_unpause)
        done = w.start(lambda job: None)
        yield until(lambda: w.parts.commands.protocol is not None)
        yield until(lambda: w.parts.fetch_conn.protocol is not None)
        self.assertEqual(w.state, "starting")
        yield self.check_left_nothing(w, clock, done)
        self.redis.client_unpause()
        self.assert_nothing_written()

    @defer.inlineCallbacks
    def test_stop_during_a_start_hook_that_returns_a_deferred(self):
        clock = Clock()
        self.push("q", payload("J", 1))
        hook = defer.Deferred()
        ran = []
        w = self.worker_on(clock)
        w.add_hook("start", lambda: hook)
        done = w.start(ran.append)
        yield until(lambda: self.redis.smembers("resque:workers"))
        self.assertEqual(w.state, "starting")
        yield self.check_left_nothing(w, clock, done)
        # The hook ends after the stop: nothing starts, nothing is fetched.
        hook.callback(None)
        yield self.check_left_nothing(w, clock, done)
        self.assertEqual(ran, [])
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        self.assert_nothing_written()

    @defer.inlineCallbacks
    def test_stop_during_the_first_fetch(self):
        clock = Clock()
        w = self.worker_on(clock)
        done = w.start(lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        yield self.check_left_nothing(w, clock, done)
        self.push("q", payload("J", 1))
        yield turn()
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        self.assert_nothing_written()


class PauseResumeTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_pause_after_shutdown_is_refused_and_leaves_no_timer(self):
        clock = Clock()
        w = self.worker(clock=clock, log_interval=None)
        done = self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        stopping = w.shutdown()
        self.assertFalse(w.pause(5))
        yield stopping
        yield done
        self.assertFalse(w.pause(5))
        self.assertFalse(w.paused)
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_resume_twice_never_starts_a_second_loop(self):
        clock = Clock()
        w = self.worker(clock=clock, log_interval=None, concurrency=5)
        ran = []
        self.started(w, lambda job: ran.append(job["args"][0]))
        yield until(lambda: w.parts.fetcher._blocked)
        fetcher = w.parts.fetcher
        fetch, outstanding, most = fetcher.fetch, [0], [0]

        def counted(*a, **kw):
            outstanding[0] += 1
            most[0] = max(most[0], outstanding[0])

            def done(result):
                outstanding[0] -= 1
                return result

            return fetch(*a, **kw).addBoth(done)

        fetcher.fetch = counted
        # Paused and resumed in the same turn, then again once the loop has
        # stopped, and resumed twice each time.
        self.assertTrue(w.pause())
        self.assertTrue(w.resume())
        self.assertFalse(w.resume())
        self.assertTrue(w.pause(3))
        yield until(lambda: not w.fetching)
        self.assertTrue(w.resume())
        self.assertFalse(w.resume())
        # No timer left to resume (or pause) it later.
        self.assertEqual([c for c in clock.getDelayedCalls() if "resume" in repr(c)], [])
        self.push("q", *[payload("J", i) for i in range(50)])
        yield until(lambda: len(ran) == 50)
        self.assertEqual(ran, list(range(50)))
        self.assertEqual(most[0], 1)


class FrozenShutdownTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_shutdown_ends_by_grace_plus_5_on_the_clock(self):
        own = RedisServer().start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port)
        self.addCleanup(client.close)
        client.rpush("resque:queue:q", payload("Forever", 1))
        clock = Clock()
        grace = 3
        w = self.worker(redis_url=own.url, grace=grace, clock=clock, log_interval=None)
        done = self.started(w, lambda job: defer.Deferred())
        yield until(lambda: w.in_flight == 1)
        os.kill(own.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, own.process.pid, signal.SIGCONT)
        stopped = w.shutdown()
        elapsed = 0.0
        # Uneven steps adding up to grace + 5, the promised bound.
        for step in [0.4, 1.9, 0.05, 1.6, 0.8, 1.1, 0.9, 1.25]:
            if elapsed + step < grace:
                self.assertFalse(stopped.called)
            clock.advance(step)
            elapsed += step
            for _ in range(3):
                yield turn()
        self.assertEqual(elapsed, grace + 5)
        self.assertTrue(stopped.called)
        yield stopped
        yield done
        self.assertEqual(clock.getDelayedCalls(), [])


class NeverStartedTests(RedisTestCase):
    def test_pause_for_a_while_then_shutdown_before_start_leaves_no_timer(self):
        clock = Clock()
        w = self.worker(clock=clock)
        self.assertTrue(w.pause(30))
        w.shutdown()
        self.assertEqual(w.state, STOPPED)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertFalse(w.pause(30))
        self.assertEqual(clock.getDelayedCalls(), [])


class RegisterRetryTests(ProxiedTestCase):
    @defer.inlineCallbacks
    def setUp(self):
        yield super().setUp()
        # After the handshake (PING), the first command of each connection
        # (the registry's, on the commands connection) goes through, and its
        # reply is lost.
        self.proxy.drop_next(2, after=1)

    @defer.inlineCallbacks
    def test_connection_lost_while_registering_is_retried(self):
        clock = Clock()
        self.push("q", *[payload("J", i) for i in range(5)])
        ran = []
        w = self.worker(redis_url=self.proxy.url, clock=clock, log_interval=None)
        done = self.started(w, lambda job: ran.append(job["args"][0]))
        yield until(self.logged.has("could not register yet"))
        self.assertEqual(w.state, "starting")
        clock.advance(0.7)
        clock.advance(2.5)
        yield until(lambda: len(ran) == 5, timeout=15)
        self.assertEqual(ran, list(range(5)))
        self.assertFalse(done.called)
        self.assertEqual(self.redis.smembers("resque:workers"), {w.id})

    @defer.inlineCallbacks
    def test_stop_while_waiting_to_register_again_leaves_no_timer(self):
        clock = Clock()
        w = self.worker(redis_url=self.proxy.url, clock=clock, log_interval=None)
        done = w.start(lambda job: None)
        yield until(self.logged.has("could not register yet"))
        yield w.shutdown()
        yield done
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(self.redis.smembers("resque:workers"), set())
