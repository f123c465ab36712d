"""
Tests for pace.metrics (a real Prometheus endpoint scraped over HTTP) and
the periodic throughput log line.
"""

from __future__ import annotations

import treq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from pace import metrics
from tests.support import RedisTestCase, payload, until


class MetricsTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_endpoint(self):
        self.push("q", payload("Ok", 1), payload("Ok", 2), payload("Bad", 3), "junk")
        self.redis.rpush("resque:queue:q2", payload("Waiting"))
        w = self.worker(["q", "q2"], concurrency=2)
        w.pause()
        svc = metrics.service(w, 0, interface="127.0.0.1")
        svc.startService()
        self.addCleanup(svc.stopService)
        port = svc.server._port.getHost().port

        def handler(job):
            if job["class"] == "Bad":
                raise ValueError("bad")

        self.started(w, handler)
        w.resume()
        yield until(lambda: self.redis.get("resque:stat:processed") == "5")
        w.pause()
        yield svc.metrics.read_depths()
        response = yield treq.get(f"http://127.0.0.1:{port}/metrics", persistent=False)
        text = yield response.text()
        self.assertEqual(response.code, 200)
        self.assertIn('pace_jobs_processed_total{job_class="Ok",queue="q"} 2.0', text)
        self.assertIn('pace_jobs_processed_total{job_class="Waiting",queue="q2"} 1.0', text)
        self.assertIn('pace_jobs_failed_total{job_class="Bad",queue="q"} 1.0', text)
        self.assertIn('pace_jobs_failed_total{job_class="(malformed)",queue="q"} 1.0', text)
        self.assertIn("pace_job_duration_seconds_count 5.0", text)
        self.assertIn("pace_fetch_batch_size_count", text)
        self.assertIn('pace_queue_depth{queue="q"} 0.0', text)
        self.assertIn("pace_jobs_in_flight 0.0", text)
        self.assertIn("pace_paused 1.0", text)
        yield w.shutdown()


class ThroughputLogTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_periodic_line(self):
        events = []
        observer = lambda e: events.append(e) if "jobs_per_second" in e else None  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        clock = Clock()
        self.push("q", *[payload("J", i) for i in range(30)])
        w = self.worker(log_interval=10, clock=clock)
        self.started(w, lambda job: None)
        yield until(lambda: self.redis.get("resque:stat:processed") == "30")
        clock.advance(10)
        [event] = events
        self.assertEqual(event["jobs_per_second"], 3.0)
        self.assertEqual(event["processed_total"], 30)
        self.assertEqual(
            (event["in_flight"], event["failed"], event["paused_state"]), (0, 0, False)
        )
        yield w.shutdown()


class HealthzTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_200_while_running_503_otherwise(self):
        from pace.queuepause import pause_queue

        w = self.worker("q")
        svc = metrics.service(w, 0, interface="127.0.0.1")
        svc.startService()
        self.addCleanup(svc.stopService)
        url = f"http://127.0.0.1:{svc.server._port.getHost().port}/healthz"
        response = yield treq.get(url, persistent=False)
        self.assertEqual(response.code, 503)  # not started yet
        yield response.content()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        response = yield treq.get(url, persistent=False)
        self.assertEqual(response.code, 200)
        self.assertEqual((yield response.text()), "ok\n")
        # Paused for the fleet: still alive, and the gauge says so.
        yield pause_queue("q", redis_url=self.url)
        yield until(lambda: w._fleet.blocked)
        response = yield treq.get(url, persistent=False)
        self.assertEqual(response.code, 200)
        yield response.content()
        text = yield (yield treq.get(url.replace("healthz", "metrics"), persistent=False)).text()
        self.assertIn('pace_queue_paused{queue="q"} 1.0', text)
        yield w.shutdown()
        response = yield treq.get(url, persistent=False)
        self.assertEqual(response.code, 503)
        yield response.content()
