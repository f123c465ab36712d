"""
pace.SharedLimit against the real redis-server: one schedule on the server's
clock for every holder of the name, no burst at start-up or after an outage.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

import pace
from pace import keys
from pace.sharedlimit import MAX_REBOOKS, SharedLimit
from tests.support import RedisTestCase, until


def _server_micros(r) -> int:
    seconds, micros = r.time()
    return seconds * 1_000_000 + micros


class SharedLimitTests(RedisTestCase):
    def limit(self, rate: float, name: str = "api") -> SharedLimit:
        limit = SharedLimit(name, rate, redis_url=self.url)
        self.addCleanup(limit.disconnect)
        return limit

    def test_bad_arguments_say_what_is_wrong(self) -> None:
        for rate in (0, -1, "10", True, None):
            with self.assertRaises(ValueError) as e:
                SharedLimit("api", rate)
            self.assertIn("per_second", str(e.exception))
        with self.assertRaises(ValueError):
            SharedLimit("", 10)

    def test_exported(self) -> None:
        self.assertIs(pace.SharedLimit, SharedLimit)

    @defer.inlineCallbacks
    def test_first_reservation_is_now_then_one_interval_apart(self) -> None:
        limit = self.limit(10)
        slots = yield limit.reserve(3)
        times = [slot.at for slot in slots]
        # No burst at start-up: the very first slot is "now", the next ones
        # an interval apart, whatever the rate.
        self.assertLess(abs(times[0] - reactor.seconds()), 0.5)
        self.assertAlmostEqual(times[1] - times[0], limit.interval, places=6)
        self.assertGreater(limit.interval, 1 / 10)

    @defer.inlineCallbacks
    def test_two_holders_share_one_schedule(self) -> None:
        # Two limits of one name on two connections, as two processes: the
        # server's key holds the end of the schedule both booked into.
        a, b = self.limit(100), self.limit(100)
        before = _server_micros(self.redis)
        yield defer.gatherResults([a.reserve(5), b.reserve(5), a.reserve(5)])
        end = int(self.redis.get(keys.shared_limit("api")))
        # 15 slots booked back to back from (about) the first reservation.
        self.assertGreaterEqual(end - before, 15 * a._interval_us)
        self.assertLess(end - before, 15 * a._interval_us + 500_000)
        ttl = self.redis.pttl(keys.shared_limit("api"))
        self.assertGreater(ttl, 0)

    @defer.inlineCallbacks
    def test_takes_in_one_turn_share_one_command(self) -> None:
        limit = self.limit(1000)
        yield limit.take()  # connected, script loaded
        before = self.redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        yield defer.gatherResults([limit.take() for _ in range(20)])
        after = self.redis.info("commandstats")["cmdstat_evalsha"]["calls"]
        self.assertEqual(after - before, 1)

    @defer.inlineCallbacks
    def test_takes_fire_in_order_at_the_rate(self) -> None:
        limit = self.limit(50)
        order: list[int] = []
        yield defer.gatherResults(
            [limit.take().addCallback(lambda _, i=i: order.append(i)) for i in range(5)]
        )
        self.assertEqual(order, [0, 1, 2, 3, 4])
        # The schedule moved on by five slots: five takes cost 5/50 s of it.
        yield limit.take()

    @defer.inlineCallbacks
    def test_cancelled_take_never_fires(self) -> None:
        limit = self.limit(5)
        yield limit.take()
        d = limit.take()
        d.cancel()
        yield self.assertFailure(d, defer.CancelledError)

    @defer.inlineCallbacks
    def test_while_redis_is_frozen_takes_wait_and_no_burst_follows(self) -> None:
        limit = self.limit(20)
        yield limit.take()
        pid = self.server.process.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        waiting = [limit.take() for _ in range(10)]
        # Frozen for a while: nothing may be granted meanwhile.
        hold = defer.Deferred()
        reactor.callLater(1.0, hold.callback, None)
        yield hold
        self.assertFalse(any(d.called for d in waiting))
        os.kill(pid, signal.SIGCONT)
        resumed = reactor.seconds()
        granted: list[float] = []
        yield defer.gatherResults(
            [d.addCallback(lambda _: granted.append(reactor.seconds())) for d in waiting]
        )
        # After the outage the ten go one interval apart, from the server's
        # present: never a burst of what piled up.
        span = granted[-1] - granted[0]
        self.assertGreaterEqual(span, 9 * limit.interval - 0.01)
        self.assertGreaterEqual(granted[0], resumed - 0.01)

    @defer.inlineCallbacks
    def test_a_refusal_for_good_fails_the_take(self) -> None:
        self.redis.rpush(keys.shared_limit("api"), "not a string")
        limit = self.limit(5)
        d = limit.take()
        yield self.assertFailure(d, Exception)

    def evalsha_calls(self) -> int:
        return self.redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)

    @defer.inlineCallbacks
    def test_a_start_too_late_takes_a_new_slot_then_goes(self) -> None:
        # A reactor that runs the grant's timer late: starting then could
        # bunch up with other processes' next slots, so it books again; a
        # few times at most, then it goes anyway (nobody starves).
        clock = Clock()
        limit = SharedLimit("api", 10, redis_url=self.url, clock=clock)
        self.addCleanup(limit.disconnect)
        granted = lambda: [c for c in clock.getDelayedCalls() if c.func == limit._fire]  # noqa: E731
        d = limit.take()
        before = self.evalsha_calls()
        for _ in range(MAX_REBOOKS):
            clock.advance(0)  # the take's flush: one reservation
            yield until(granted)
            clock.advance(granted()[0].getTime() - clock.seconds() + 1.0)  # a second late
            self.assertFalse(d.called)
        clock.advance(0)
        yield until(granted)
        clock.advance(granted()[0].getTime() - clock.seconds() + 1.0)
        self.assertTrue(d.called)
        # One reservation per try (the first may have been a full EVAL).
        self.assertGreaterEqual(self.evalsha_calls() - before, MAX_REBOOKS)

    @defer.inlineCallbacks
    def test_a_start_on_time_goes_at_once(self) -> None:
        clock = Clock()
        limit = SharedLimit("api", 10, redis_url=self.url, clock=clock)
        self.addCleanup(limit.disconnect)
        granted = lambda: [c for c in clock.getDelayedCalls() if c.func == limit._fire]  # noqa: E731
        d = limit.take()
        clock.advance(0)
        yield until(granted)
        clock.advance(granted()[0].getTime() - clock.seconds() + 0.005)
        self.assertTrue(d.called)
