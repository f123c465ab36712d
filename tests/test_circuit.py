"""
pace.Circuit on a Clock, advanced unevenly and late as a loaded reactor is.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

import pace
from pace.circuit import CLOSED, HALF_OPEN, NORMAL, OPEN, PROBE, Circuit


class CircuitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.changes: list[tuple[str, str]] = []
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def circuit(self, **kw) -> Circuit:
        c = Circuit(clock=self.clock, **kw)
        c.listen(lambda c, old, new: self.changes.append((old, new)))
        return c

    def fail(self, c: Circuit, n: int, every: float = 0.0) -> None:
        for _ in range(n):
            c.settled(c.admit(), False)
            self.clock.advance(every)

    def test_defaults_and_export(self) -> None:
        c = pace.Circuit()
        self.assertEqual((c.failures, c.window, c.cool_off, c.shared), (10, 5.0, 30.0, False))
        self.assertIs(pace.CircuitOpen.__name__, "CircuitOpen")

    def test_bad_arguments(self) -> None:
        for kw in ({"failures": 0}, {"failures": 1.5}, {"window": 0}, {"cool_off": -1}):
            self.assertRaises(ValueError, Circuit, **kw)

    def test_opens_after_failures_within_the_window(self) -> None:
        c = self.circuit(failures=3, window=5.0)
        self.fail(c, 2, every=2.0)
        self.assertEqual(c.state, CLOSED)
        self.fail(c, 1)
        self.assertEqual(c.state, OPEN)
        self.assertEqual(c.room(), 0)
        self.assertIsNone(c.admit())
        self.assertEqual(self.changes, [(CLOSED, OPEN)])
        self.assertIn("3 jobs failed", c.reason)

    def test_failures_spread_wider_than_the_window_never_open(self) -> None:
        c = self.circuit(failures=3, window=5.0)
        for step in (2.6, 2.6, 2.6, 2.6, 2.6, 2.6):
            self.fail(c, 1, every=step)
        self.assertEqual(c.state, CLOSED)

    def test_successes_do_not_reset_the_count_but_time_does(self) -> None:
        c = self.circuit(failures=2, window=1.0)
        self.fail(c, 1)
        c.settled(c.admit(), True)
        self.clock.advance(1.5)  # late: the first failure is out of the window
        self.fail(c, 1)
        self.assertEqual(c.state, CLOSED)
        self.fail(c, 1)
        self.assertEqual(c.state, OPEN)

    def test_one_trial_job_after_the_cool_off_and_success_closes(self) -> None:
        c = self.circuit(failures=1, cool_off=30.0)
        self.fail(c, 1)
        self.clock.advance(29.9)
        self.assertEqual(c.state, OPEN)
        self.clock.advance(7.3)  # the reactor was late
        self.assertEqual(c.state, HALF_OPEN)
        self.assertEqual(c.room(), 1)
        ticket = c.admit()
        self.assertEqual(ticket, PROBE)
        # The others wait while the trial job runs.
        self.assertEqual(c.room(), 0)
        self.assertIsNone(c.admit())
        c.settled(ticket, True)
        self.assertEqual(c.state, CLOSED)
        self.assertIsNone(c.room())
        self.assertEqual(c.admit(), NORMAL)
        self.assertEqual(self.changes, [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)])

    def test_a_failed_trial_opens_it_again_for_a_whole_cool_off(self) -> None:
        c = self.circuit(failures=1, cool_off=10.0)
        self.fail(c, 1)
        self.clock.advance(10.0)
        ticket = c.admit()
        self.clock.advance(4.0)
        c.settled(ticket, False)
        self.assertEqual(c.state, OPEN)
        self.assertIn("trial job", c.reason)
        self.clock.advance(9.9)
        self.assertEqual(c.state, OPEN)
        self.clock.advance(0.2)
        self.assertEqual(c.state, HALF_OPEN)

    def test_jobs_started_before_it_opened_change_nothing(self) -> None:
        c = self.circuit(failures=2)
        old = [c.admit() for _ in range(3)]
        self.fail(c, 2)
        self.assertEqual(c.state, OPEN)
        c.settled(old[0], True)  # a slow job from before succeeds: still open
        c.settled(old[1], False)
        self.assertEqual(c.state, OPEN)
        self.clock.advance(30)
        c.settled(old[2], True)  # nor does it close a half-open circuit
        self.assertEqual(c.state, HALF_OPEN)

    def test_log_event_on_every_open_and_close(self) -> None:
        c = self.circuit(failures=1, cool_off=1.0)
        self.fail(c, 1)
        self.clock.advance(1.0)
        c.settled(c.admit(), True)
        states = [e["circuit_state"] for e in self.events if "circuit_state" in e]
        self.assertEqual(states, [OPEN, HALF_OPEN, CLOSED])

    def test_stop_cancels_the_timer(self) -> None:
        c = self.circuit(failures=1)
        self.fail(c, 1)
        c.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_failing_listener_is_isolated(self) -> None:
        c = self.circuit(failures=1)
        c.listen(lambda *a: 1 / 0)
        self.fail(c, 1)
        self.assertEqual(c.state, OPEN)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
