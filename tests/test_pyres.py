"""
Interoperability with a Resque implementation we did not write, pyres: jobs
pyres enqueues run in Pace, jobs Pace enqueues run in a pyres worker, and
the failure records Pace writes are read and retried through pyres' own
failure API.
"""

from __future__ import annotations

import json

from pyres import ResQ, failure
from pyres.failure.base import BaseBackend
from pyres.worker import Worker as PyresWorker
from twisted.internet import defer

import pace
from tests import pyres_jobs
from tests.support import RedisTestCase, until


class PyresTests(RedisTestCase):
    def setUp(self):
        super().setUp()
        self.resq = ResQ(server=f"127.0.0.1:{self.server.port}")

    @defer.inlineCallbacks
    def test_pace_runs_jobs_pyres_enqueued(self):
        self.resq.enqueue_from_string("SendEmail", "mail", "ada@example.com", 3)
        router = pace.JobRouter()
        seen = []
        router.add("SendEmail", lambda address, n: seen.append((address, n)))
        w = self.worker("mail")
        self.started(w, router)
        yield until(lambda: seen)
        yield w.shutdown()
        self.assertEqual(seen, [("ada@example.com", 3)])

    @defer.inlineCallbacks
    def test_pyres_runs_jobs_pace_enqueued(self):
        del pyres_jobs.results[:]
        yield pace.enqueue("math", "tests.pyres_jobs.Adder", 2, 40, redis_url=self.url)
        worker = PyresWorker(["math"], server=f"127.0.0.1:{self.server.port}")
        job = worker.reserve(timeout=1)
        self.assertIsNotNone(job)
        worker.process(job)
        self.assertEqual(pyres_jobs.results, [42])

    @defer.inlineCallbacks
    def test_pyres_reads_and_retries_pace_failures(self):
        pace.namespace = None
        self.push("billing", json.dumps({"class": "Charge", "args": [7]}))
        w = self.worker("billing")
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        self.assertEqual(failure.count(self.resq), 1)
        [record] = failure.all(self.resq, 0, 10)
        self.assertEqual(record["payload"], {"class": "Charge", "args": [7]})
        self.assertEqual(record["exception"], "ZeroDivisionError")
        self.assertEqual(record["queue"], "billing")
        # pyres' retry() ends with an LREM in redis-py 2's signature, which
        # redis-py 3 and later reject: requeue() is the part that works.
        failure.requeue(self.resq, BaseBackend(None, record["queue"], record["payload"]))
        seen = []
        w2 = self.worker("billing")
        self.started(w2, seen.append)
        yield until(lambda: seen)
        yield w2.shutdown()
        self.assertEqual(seen, [{"class": "Charge", "args": [7]}])

    @defer.inlineCallbacks
    def test_pyres_reads_and_requeues_malformed_records(self):
        from pace.payload import MALFORMED_CLASS

        self.redis.rpush("resque:queue:billing", b"\xff{not json")
        w = self.worker("billing")
        handled = []
        self.started(w, handled.append)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        [record] = failure.all(self.resq, 0, 10)
        self.assertEqual(record["payload"]["class"], MALFORMED_CLASS)
        self.assertEqual(record["payload"]["args"][0], "\\xff{not json")
        self.assertEqual(record["exception"], "MalformedJob")
        failure.requeue(self.resq, BaseBackend(None, record["queue"], record["payload"]))
        yield until(lambda: self.redis.llen("resque:failed") == 2)
        yield w.shutdown()
        self.assertEqual(handled, [])
        self.assertEqual(failure.all(self.resq, 1, 1)[0]["payload"], record["payload"])
