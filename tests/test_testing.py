"""
Tests for pace.testing, used as a user would in their own trial tests.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.internet import defer

import pace
from pace import testing
from tests.support import ROOT, RedisTestCase, payload


class DrainTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_drain_runs_everything_then_fires(self):
        self.push("q", *[payload("J", i) for i in range(25)], "not json")
        seen = []
        processed, failed = yield testing.drain(
            "q", lambda job: seen.append(job), redis_url=self.url
        )
        self.assertEqual([j["args"] for j in processed], [[i] for i in range(25)])
        self.assertEqual(len(seen), 25)
        self.assertEqual([json for json, _ in failed], ["not json"])
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    @defer.inlineCallbacks
    def test_drain_of_an_empty_queue(self):
        processed, failed = yield testing.drain("q", lambda job: None, redis_url=self.url)
        self.assertEqual((processed, failed), ([], []))

    @defer.inlineCallbacks
    def test_enqueued(self):
        yield pace.enqueue("q", "SendEmail", "ada@example.com", redis_url=self.url)
        jobs = yield testing.enqueued("q", redis_url=self.url)
        self.assertEqual(jobs, [{"class": "SendEmail", "args": ["ada@example.com"]}])


USER_TESTS = """
from twisted.internet import defer
from twisted.trial import unittest

import pace
import pace.testing


class UserTests(unittest.TestCase):
    def setUp(self):
        if CLEAN:
            pace.testing.cleanup(self)

    @defer.inlineCallbacks
    def test_leaves_a_worker_and_connections_open(self):
        yield pace.enqueue("user-q", "Job", 1)
        worker = pace.Worker("user-q", grace=1)
        worker.start(lambda job: defer.Deferred())  # a job that never ends
        yield pace.enqueue("user-q", "Job", 2)
"""


class CleanupTests(RedisTestCase):
    def run_user_tests(self, clean: bool) -> subprocess.CompletedProcess:
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        with open(os.path.join(where, "test_user.py"), "w") as f:
            f.write(f"CLEAN = {clean}\n" + USER_TESTS)
        return subprocess.run(
            [sys.executable, "-m", "twisted.trial", "test_user"],
            cwd=where,
            env=dict(os.environ, REDIS_URL=self.url, PYTHONPATH=f"{where}:{ROOT}"),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )

    def test_cleanup_leaves_the_reactor_clean(self):
        dirty = self.run_user_tests(clean=False)
        self.assertIn("DirtyReactorAggregateError", dirty.stdout)
        self.assertNotEqual(dirty.returncode, 0)
        self.redis.flushall()
        clean = self.run_user_tests(clean=True)
        self.assertEqual(clean.returncode, 0, clean.stdout[-3000:])
        self.assertIn("PASSED", clean.stdout)
        # The jobs fetched went back to their queue at shutdown.
        self.assertEqual(self.redis.llen("resque:queue:user-q"), 2)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
