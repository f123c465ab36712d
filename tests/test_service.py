"""
Tests for PaceService: started and stopped by a MultiService next to other
services; stopService waits for the worker's shutdown.
"""

from __future__ import annotations

from twisted.application.service import MultiService, Service
from twisted.internet import defer

from pace import PaceService
from tests.support import Recorder, RedisTestCase, payload, until


class PaceServiceTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_in_a_multiservice(self):
        self.push("q", *[payload("J", i) for i in range(10)])
        handler = Recorder(expected=10)
        top = MultiService()
        other = Service()
        other.setServiceParent(top)
        gate = defer.Deferred()
        worker = self.worker()
        PaceService(
            worker, lambda job: handler(job) if job["args"] != [9] else gate
        ).setServiceParent(top)
        top.startService()
        self.addCleanup(lambda: top.running and top.stopService())
        self.assertTrue(other.running)
        yield until(lambda: len(handler.jobs) == 9 and worker.in_flight == 1)
        stopped = top.stopService()
        yield until(lambda: not worker.fetching)
        # twistd waits on this Deferred: it must wait for the job in flight.
        self.assertFalse(stopped.called)
        gate.callback(None)
        yield stopped
        self.assertFalse(worker.running)
        self.assertEqual(self.redis.get("resque:stat:processed"), "10")

    @defer.inlineCallbacks
    def test_several_workers_in_one_multiservice(self):
        top = MultiService()
        workers = [self.worker("a"), self.worker("a"), self.worker("b")]
        for w in workers:
            PaceService(w, lambda job: None).setServiceParent(top)
        top.startService()
        self.assertTrue(all(w.running for w in workers))
        yield top.stopService()
        self.assertFalse(any(w.running for w in workers))
