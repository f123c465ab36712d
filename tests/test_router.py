"""
Tests for pace.JobRouter: dispatch by Resque class name with the job's args,
unknown classes fail the job (with a record), nothing imported.
"""

from __future__ import annotations

import json
import sys

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

import pace
from pace import tap
from tests.support import RedisTestCase, payload, until

router = pace.JobRouter()
calls: list = []


@router.job("SendEmail")
def send_email(address, subject):
    calls.append(("email", address, subject))
    return task.deferLater(reactor, 0, lambda: None)


@router.job("Charge")
async def charge(amount):
    calls.append(("charge", amount))


class RouterUnitTests(unittest.TestCase):
    def test_registration_errors(self):
        r = pace.JobRouter()
        r.add("A", lambda: None)
        self.assertRaises(ValueError, r.add, "A", lambda: None)
        self.assertRaises(ValueError, r.add, "", lambda: None)
        self.assertRaises(TypeError, r.add, "B", "nope")
        self.assertEqual(r.classes, ["A"])

    def test_unknown_class_names_it(self):
        e = self.assertRaises(pace.UnknownJobClass, router, {"class": "os.system", "args": []})
        self.assertIn("'os.system'", str(e))
        self.assertIn("Charge, SendEmail", str(e))


class RouterRetryTests(unittest.TestCase):
    def test_retry_per_class(self):
        r = pace.JobRouter()
        policy = pace.Retry(attempts=3)
        r.job("Flaky", retry=policy)(lambda: None)
        r.job("Plain")(lambda: None)
        self.assertIs(r.retry_for("Flaky"), policy)
        self.assertIsNone(r.retry_for("Plain"))
        self.assertIsNone(r.retry_for("Unknown"))
        with self.assertRaisesRegex(TypeError, "must be a pace.Retry"):
            r.add("Bad", lambda: None, retry=3)
        self.assertNotIn("Bad", r.classes)


class RouterWorkerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_dispatch_through_a_worker(self):
        del calls[:]
        modules = set(sys.modules)
        self.push(
            "q",
            payload("SendEmail", "ada@example.com", "hi"),
            payload("Charge", 42),
            payload("os.path.join", "a"),
        )
        w = self.worker(concurrency=1)
        self.started(w, router)
        yield until(lambda: self.redis.get("resque:stat:processed") == "3")
        yield w.shutdown()
        self.assertEqual(calls, [("email", "ada@example.com", "hi"), ("charge", 42)])
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["exception"], "UnknownJobClass")
        self.assertIn("os.path.join", record["error"])
        self.assertEqual(set(sys.modules) - modules, set())

    def test_twistd_accepts_a_router(self):
        options = tap.Options()
        options.parseOptions(["--queue", "q", "--handler", "tests.test_router.router"])
        self.assertIs(options["handler"], router)
