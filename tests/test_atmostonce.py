"""
At most once means once: with ``reliable=False`` a job still running at the
shutdown deadline is cancelled and recorded as failed with its payload,
never put back, so no later worker runs it again.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.task import Clock

from tests.support import Recorder, RedisTestCase, payload, until


class AtMostOnceTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_job_running_at_the_deadline_is_failed_not_put_back(self):
        clock = Clock()
        self.push("q", payload("Late", 1))
        cancelled = []
        w = self.worker(reliable=False, grace=10, clock=clock, log_interval=None)
        done = self.started(w, lambda job: defer.Deferred(lambda d: cancelled.append(job)))
        yield until(lambda: w.in_flight == 1)
        stopped = w.shutdown()
        yield until(lambda: not w.fetching and clock.getDelayedCalls())
        clock.advance(4)
        clock.advance(5.5)
        self.assertFalse(stopped.called)
        self.assertEqual(cancelled, [])
        clock.advance(0.7)
        yield stopped
        yield done
        self.assertEqual(len(cancelled), 1)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
        self.assertEqual(self.redis.get("resque:stat:failed"), "1")
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        records = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        self.assertEqual(len(records), 1)
        self.assertEqual(records[0]["payload"], {"class": "Late", "args": [1]})
        self.assertEqual(records[0]["exception"], "ShutdownDeadline")
        self.assertIn("at most once", records[0]["error"])

        # A second worker finds nothing to run.
        again = Recorder()
        yield self.worker(reliable=False, burst=True).start(again)
        self.assertEqual(again.jobs, [])

    @defer.inlineCallbacks
    def test_jobs_settling_within_grace_are_not_failed(self):
        clock = Clock()
        self.push("q", payload("Quick", 1))
        gate = defer.Deferred()
        w = self.worker(reliable=False, grace=10, clock=clock, log_interval=None)
        done = self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        stopped = w.shutdown()
        clock.advance(9)
        gate.callback(None)
        yield stopped
        yield done
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        self.assertIsNone(self.redis.get("resque:stat:failed"))
        self.assertEqual(self.redis.llen("resque:failed"), 0)
