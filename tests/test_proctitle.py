"""
Tests for pace.proctitle: while a worker runs, Resque 2.x's own pid lookup
(the `ps | grep` of lib/resque/worker.rb, run here as it is written) lists
this process; once it stops, the old title is back.
"""

from __future__ import annotations

import os
import subprocess

from twisted.internet import defer
from twisted.trial import unittest

from pace import proctitle
from tests.support import RedisTestCase, until

# Resque::Worker#linux_worker_pids, verbatim.
RESQUE_PIDS = (
    'ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\\sStarting|[r]esque-[0-9]" '
    '| grep -v "resque-web"'
)


def resque_pids() -> list[str]:
    out = subprocess.run(RESQUE_PIDS, shell=True, capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()]


class TitleTests(unittest.TestCase):
    def test_title_while_running_and_restored_after(self):
        before = proctitle.title()
        a, b = object(), object()
        proctitle.worker_started(a, "h:1:q")
        proctitle.worker_started(b, "h:1:other")
        self.assertEqual(proctitle.title(), "pace (resque-2 compatible): h:1:q h:1:other")
        self.assertIn(str(os.getpid()), resque_pids())
        proctitle.worker_stopped(a)
        self.assertEqual(proctitle.title(), "pace (resque-2 compatible): h:1:other")
        proctitle.worker_stopped(b)
        self.assertEqual(proctitle.title(), before)
        self.assertNotIn(str(os.getpid()), resque_pids())


class WorkerTitleTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_a_running_worker_is_a_resque_process_to_ruby(self):
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        self.assertIn(w.id, proctitle.title())
        self.assertIn(str(os.getpid()), resque_pids())
        yield w.shutdown()
        self.assertNotIn(str(os.getpid()), resque_pids())
