"""
Tests for pace.throttle with a Clock: the rate holds in every one-second
window, jobs spread across the second, and a worker obeys it.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from pace.throttle import Throttle
from tests.support import RedisTestCase, payload, until


def drive(rate: float, seconds: float, wanted: int = 1000) -> list[tuple[float, int]]:
    """
    A greedy consumer that always wants C{wanted} more; returns (time, n)
    for every grant over C{seconds} of fake time.
    """
    clock = Clock()
    throttle = Throttle(rate, clock)
    grants: list[tuple[float, int]] = []

    def ask() -> None:
        throttle.take(wanted).addCallback(got)

    def got(n: int) -> None:
        if n:
            grants.append((clock.seconds(), n))
            ask()

    throttle.start()
    ask()
    step = 0.001
    for _ in range(int(seconds / step)):
        clock.advance(step)
    throttle.stop()
    return grants


def max_in_window(grants: list[tuple[float, int]], width: float) -> int:
    best = 0
    for i, (start, _) in enumerate(grants):
        total = sum(n for t, n in grants[i:] if t < start + width - 1e-9)
        best = max(best, total)
    return best


class ThrottleTests(unittest.TestCase):
    def test_no_one_second_window_above_the_rate(self):
        for rate in (3, 50, 1000, 2500):
            grants = drive(rate, 5.0)
            self.assertLessEqual(max_in_window(grants, 1.0), rate, rate)

    def test_long_run_averages_the_rate(self):
        for rate in (50, 1000):
            grants = drive(rate, 10.0)
            total = sum(n for _, n in grants)
            self.assertGreaterEqual(total, rate * 10 * 0.97, rate)
            self.assertLessEqual(total, rate * 10)

    def test_jobs_spread_across_the_second(self):
        # The Ruby original sent each second's jobs in one burst; here no
        # 10 ms may carry more than its share (plus one step of tokens).
        grants = drive(1000, 3.0)
        self.assertLessEqual(max_in_window(grants, 0.01), 10)
        self.assertLessEqual(max_in_window(grants, 0.1), 100)
        grants = drive(20, 3.0)
        self.assertLessEqual(max_in_window(grants, 0.05), 1)

    def test_fractional_rate(self):
        grants = drive(0.5, 10.0)
        times = [t for t, _ in grants]
        self.assertEqual(len(times), 5)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        # Within one 1 ms step of 2 s apart (the clock is advanced in steps).
        self.assertTrue(all(g >= 2.0 - 0.0011 for g in gaps), gaps)

    def test_refund_returns_tokens(self):
        clock = Clock()
        t = Throttle(10, clock)
        t.start()
        d = t.take(5)
        self.assertEqual(self.successResultOf(d), 1)
        t.refund(1)
        self.assertEqual(self.successResultOf(t.take(5)), 1)

    def test_cancel_fires_waiter_with_zero(self):
        clock = Clock()
        t = Throttle(1, clock)
        t.start()
        self.successResultOf(t.take(1))
        d = t.take(1)
        self.assertNoResult(d)
        t.cancel()
        self.assertEqual(self.successResultOf(d), 0)

    def test_bad_rates(self):
        for rate in (0, -1, "10", None, True):
            self.assertRaises(ValueError, Throttle, rate, Clock())


class WorkerThrottleTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_worker_runs_at_most_the_rate(self):
        clock = Clock()
        self.push("q", *[payload("J", i) for i in range(100)])
        starts: list[float] = []
        w = self.worker(jobs_per_second=20, clock=clock)
        self.started(w, lambda job: starts.append(clock.seconds()))
        yield until(lambda: len(starts) == 1 and w.parts.throttle.waiting)
        # Two fake seconds, in 10 ms steps; after each, let the real reactor
        # carry the fetch to Redis and back until the worker waits again.
        for _ in range(200):
            clock.advance(0.01)
            yield until(lambda: w.parts.throttle.waiting)
        # 20 a second from t=0 to t=2: 40, or 41 with the one due at t=2.
        self.assertIn(len(starts), (40, 41))
        self.assertEqual(max_in_window([(t, 1) for t in starts], 1.0), 20)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # One job per 50 ms step; a start can land one 10 ms test step late
        # when float addition puts the clock just short of a refill.
        self.assertGreaterEqual(min(gaps), 0.04 - 1e-6, starts)
        yield w.shutdown()


class StartedTests(unittest.TestCase):
    def test_window_counts_from_the_start_not_the_take(self):
        # A take at t=0 whose jobs only start at t=0.4 (a slow fetch), then a
        # greedy consumer whose jobs start at once: counted by start time,
        # no one-second window may hold more than the rate.
        clock = Clock()
        t = Throttle(10, clock)
        t.start()
        starts = []
        n = self.successResultOf(t.take(10))
        clock.advance(0.4)
        t.started()
        starts += [clock.seconds()] * n

        def got(n):
            if n:
                starts.extend([clock.seconds()] * n)
                t.started()
                t.take(10).addCallback(got)

        t.take(10).addCallback(got)
        for _ in range(300):
            clock.advance(0.01)
        t.stop()
        self.assertLessEqual(max_in_window([(s, 1) for s in starts], 1.0), 10)
