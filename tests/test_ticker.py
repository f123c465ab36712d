"""
Tests for pace.ticker: ticks on the monotonic clock whatever the reactor's
wall clock says, a warning when the reactor runs late, and a task.Clock in
tests.
"""

from __future__ import annotations

import time

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from pace.ticker import Ticker
from tests.support import until


class TickerTests(unittest.TestCase):
    def test_follows_a_test_clock(self):
        clock, ticks = Clock(), []
        t = Ticker(clock, 2.0, lambda: ticks.append(clock.seconds()))
        t.start()
        clock.pump([1.5, 1.0, 2.0])
        t.stop()
        clock.advance(10)
        self.assertEqual(ticks, [2.5, 4.5])

    @defer.inlineCallbacks
    def test_a_wall_clock_step_back_does_not_hold_ticks(self):
        ticks = []
        t = Ticker(reactor, 0.3, lambda: ticks.append(time.monotonic()))
        self.addCleanup(t.stop)
        t.start()
        # The reactor's clock steps back 40 s: a timer set before it would
        # fire 40 s late.
        self.patch(reactor, "seconds", lambda: time.time() - 40)
        yield until(lambda: len(ticks) >= 3, timeout=5)

    @defer.inlineCallbacks
    def test_warns_once_per_stall_of_more_than_a_second(self):
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        t = Ticker(reactor, 10, lambda: None)
        self.addCleanup(t.stop)
        t.start()
        reactor.callLater(0.3, time.sleep, 1.5)
        stalls = lambda: [e for e in events if "ran {lag" in e.get("log_format", "")]  # noqa: E731
        yield until(lambda: stalls(), timeout=5)
        # Ticks on time again, and no second warning for the same stall.
        yield until(lambda: 0 <= t.lag < 0.5, timeout=5)
        warnings = [e for e in events if "ran {lag" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertGreater(warnings[0]["lag"], 1.0)
