"""
The fetch loop's backoff: exponential, capped, jittered so that a fleet
does not retry in step.
"""

from __future__ import annotations

import random

from twisted.trial import unittest

from pace.fetchloop import BACKOFF_FIRST, backoff


class BackoffTests(unittest.TestCase):
    def test_exponential_without_jitter(self):
        middle = lambda: 0.5  # noqa: E731 - jitter factor exactly 1
        self.assertEqual(
            [backoff(n, 100, middle) for n in range(1, 6)],
            [BACKOFF_FIRST * 2**i for i in range(5)],
        )

    def test_capped(self):
        middle = lambda: 0.5  # noqa: E731
        self.assertEqual(backoff(20, 2.0, middle), 2.0)
        self.assertEqual(backoff(10**6, 30.0, middle), 30.0)

    def test_jittered_within_half_and_one_and_a_half(self):
        rand = random.Random(9).random
        delays = [backoff(8, 2.0, rand) for _ in range(200)]
        self.assertTrue(all(1.0 <= d <= 3.0 for d in delays))
        self.assertGreater(len(set(delays)), 150)
        self.assertLess(min(delays), 1.2)
        self.assertGreater(max(delays), 2.8)
        # Seeded, the same again.
        rand = random.Random(9).random
        self.assertEqual(delays, [backoff(8, 2.0, rand) for _ in range(200)])
