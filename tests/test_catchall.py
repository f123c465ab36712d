"""
Tests for the catch-all (pace/catchall.py): what Twisted logs as unhandled
(a Deferred collected with a failure, legacy log.err) reaches error hooks
with json None, once per class-level hook and per worker; an application's
own error logs and Pace's own reports do not; the log observer is there
only while a worker is registered.
"""

from __future__ import annotations

import gc

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import log as legacy_log
from twisted.trial import unittest

import pace
from pace.catchall import _CatchAll


class CatchAllTests(unittest.TestCase):
    def setUp(self) -> None:
        self.catch = _CatchAll()
        self.seen: list = []
        self.addCleanup(pace.Worker.clear_hooks)

    def worker(self, name: str) -> pace.Worker:
        # Never started: the catch-all only needs its hooks.
        w = pace.Worker("q", redis_url="redis://127.0.0.1:1/0")
        w.add_hook("error", lambda json, f: self.seen.append((name, json, f.value)))
        self.catch.register(w)
        self.addCleanup(self.catch.unregister, w)
        return w

    def test_a_collected_deferred_failure_reaches_every_worker(self):
        pace.Worker.add_hook("error", lambda json, f: self.seen.append(("class", json, f.value)))
        self.worker("a")
        self.worker("b")
        error = ValueError("lost in a callback")
        d = defer.fail(error)
        del d
        gc.collect()
        self.flushLoggedErrors(ValueError)
        self.assertEqual(
            self.seen, [("class", None, error), ("a", None, error), ("b", None, error)]
        )

    def test_legacy_log_err(self):
        self.worker("a")
        error = KeyError("legacy")
        legacy_log.err(error)
        self.flushLoggedErrors(KeyError)
        self.assertEqual(self.seen, [("a", None, error)])

    def test_application_and_pace_logs_are_not_caught(self):
        self.worker("a")
        for namespace in ("myapp.jobs", "pace.worker"):
            try:
                raise RuntimeError(namespace)
            except RuntimeError:
                Logger(namespace=namespace).failure("logged on purpose")
        Logger(namespace="twisted.internet.defer").error("an error without a failure")
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.seen, [])

    def test_observes_only_while_a_worker_is_registered(self):
        w = self.worker("a")
        self.assertTrue(self.catch.active)
        self.assertEqual(self.catch.workers, [w])
        self.catch.unregister(w)
        self.assertFalse(self.catch.active)
        legacy_log.err(KeyError("nobody listening"))
        self.flushLoggedErrors(KeyError)
        self.assertEqual(self.seen, [])
        self.catch.register(w)
        self.catch.register(w)  # twice: still once
        legacy_log.err(KeyError("again"))
        self.flushLoggedErrors(KeyError)
        self.assertEqual(len(self.seen), 1)
