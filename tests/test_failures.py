"""
Tests for failure records and faults: Resque's failure format (key by key,
malformed and huge payloads included, requeued the way Ruby's
Resque::Failure.requeue does and by real Ruby Resque when it is on the
machine), job timeouts, handlers that block the reactor, and connections
killed again and again in the middle of batched fetches and
acknowledgements.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import redis
from twisted.internet import defer, task
from twisted.internet import reactor as real_reactor
from twisted.python.failure import Failure
from twisted.trial import unittest

from pace.failures import RECORD_PAYLOAD_PREFIX, JobTimeout, error_text, failure_record
from pace.payload import MALFORMED_CLASS, MalformedJob, as_text, decode
from pace.redisserver import RedisServer
from tests.support import Recorder, RedisTestCase, payload, until

RECORD_KEYS = {"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"}
#: 20 MB that is not UTF-8 anywhere, over the default size limit.
HUGE_INVALID = b'{"class": "J", "args": ["' + b"\xff" * (20 * 1024 * 1024) + b'"]}'


def ruby_requeue(record: dict) -> str:
    """
    What Resque::Failure::Redis.requeue pushes for a record:
    Job.create(item['queue'], item['payload']['class'],
    *item['payload']['args']), i.e. Resque.push(queue, class:, args:).
    """
    job = record["payload"]
    return json.dumps({"class": job["class"], "args": job["args"]})


class FailureRecordTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_resque_format(self):
        self.push("q", payload("Charge", 42, "eur"))

        def handler(job):
            raise ValueError("card declined")

        w = self.worker()
        self.started(w, handler)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(set(record), RECORD_KEYS)
        self.assertEqual(record["payload"], {"class": "Charge", "args": [42, "eur"]})
        self.assertEqual(record["exception"], "ValueError")
        self.assertEqual(record["error"], "card declined")
        self.assertEqual(record["queue"], "q")
        self.assertEqual(record["worker"], w.id)
        self.assertTrue(record["worker"].endswith(":q"))
        self.assertTrue(any("handler" in line for line in record["backtrace"]))
        time.strptime(record["failed_at"].rsplit(" ", 1)[0], "%Y/%m/%d %H:%M:%S")

    @defer.inlineCallbacks
    def test_a_job_is_recorded_as_it_came_not_as_the_handler_left_it(self):
        raw = '{"class": "Edit", "args": [1],  "extra": "\\u00e9"}'
        self.push("q", raw)

        def handler(job):
            job["args"].append("changed")
            raise ValueError("no")

        w = self.worker()
        self.started(w, handler)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["payload"], {"class": "Edit", "args": [1], "extra": "\u00e9"})

    @defer.inlineCallbacks
    def test_malformed_payload_record_key_by_key(self):
        self.redis.rpush("resque:queue:q", "{not json")
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(set(record), RECORD_KEYS)
        # A job Ruby can requeue, with the raw payload as its first argument.
        self.assertEqual(
            record["payload"],
            {"class": MALFORMED_CLASS, "args": ["{not json", {"bytes": 9, "truncated": False}]},
        )
        self.assertEqual(record["exception"], "MalformedJob")
        self.assertTrue(record["error"].startswith("payload is not JSON: "), record["error"])
        self.assertEqual(record["queue"], "q")
        self.assertEqual(record["worker"], w.id)
        self.assertIsInstance(record["backtrace"], list)
        time.strptime(record["failed_at"].rsplit(" ", 1)[0], "%Y/%m/%d %H:%M:%S")

    @defer.inlineCallbacks
    def test_hostile_payloads_among_good_jobs(self):
        nested = b"[" * 100_000 + b"]" * 100_000
        deeper = b'{"class": "J", "args": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
        too_big = json.dumps({"class": "Big", "args": ["x" * (5 * 1024 * 1024)]}).encode()
        bad = [nested, HUGE_INVALID, deeper, too_big]
        for i, raw in enumerate(bad):
            self.redis.rpush(
                "resque:queue:q", payload("Good", 2 * i), raw, payload("Good", 2 * i + 1)
            )
        good = []
        w = self.worker(concurrency=20)
        self.started(w, lambda job: good.append(job["args"][0]))
        yield until(lambda: self.redis.llen("resque:failed") == len(bad) and len(good) == 8)
        yield w.shutdown()
        self.assertEqual(sorted(good), list(range(8)))
        self.assertEqual(self.redis.get("resque:stat:failed"), str(len(bad)))
        records = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        by_size = {r["payload"]["args"][1]["bytes"]: r for r in records}
        self.assertEqual(set(by_size), {len(raw) for raw in bad})
        for raw in bad:
            record = by_size[len(raw)]
            self.assertEqual(record["payload"]["class"], MALFORMED_CLASS)
            text, info = record["payload"]["args"]
            self.assertEqual(text, as_text(raw[:RECORD_PAYLOAD_PREFIX]))
            self.assertEqual(
                info, {"bytes": len(raw), "truncated": len(raw) > RECORD_PAYLOAD_PREFIX}
            )
        self.assertIn("nested too deeply", by_size[len(nested)]["error"])
        self.assertIn("nested too deeply", by_size[len(deeper)]["error"])
        self.assertIn("over the limit", by_size[len(HUGE_INVALID)]["error"])
        self.assertIn(f"{len(too_big):,} bytes", by_size[len(too_big)]["error"])
        # Bounded: at most 5 characters of JSON per byte kept, whatever the size.
        for raw in self.redis.lrange("resque:failed", 0, -1):
            self.assertLess(len(raw), 5 * RECORD_PAYLOAD_PREFIX + 4096)

    @defer.inlineCallbacks
    def test_requeued_as_ruby_requeues_it_fails_again_without_a_handler(self):
        self.redis.rpush("resque:queue:q", b"\xff{not json")
        w = self.worker(concurrency=1)
        handled = []
        self.started(w, handled.append)
        yield until(lambda: self.redis.llen("resque:failed") == 1)
        first = json.loads(self.redis.lindex("resque:failed", 0))
        self.push("q", ruby_requeue(first), payload("After", 1))
        yield until(lambda: self.redis.llen("resque:failed") == 2 and handled)
        yield w.shutdown()
        self.assertEqual(handled, [{"class": "After", "args": [1]}])
        second = json.loads(self.redis.lindex("resque:failed", 1))
        # The same payload, not a wrapper of the wrapper: requeued again and
        # again, it stays the same record.
        self.assertEqual(second["payload"], first["payload"])
        self.assertEqual(first["payload"]["args"][0], "\\xff{not json")
        self.assertEqual(second["exception"], "MalformedJob")
        self.assertIn("failed again without running", second["error"])

    def test_building_a_record_for_a_huge_payload_is_cheap(self):
        # Not a timing assertion: the work is bounded by what it produces.
        try:
            decode(HUGE_INVALID)
        except MalformedJob:
            failure = Failure()
        record = failure_record(HUGE_INVALID, failure, "w", "q")
        self.assertLess(len(record), 5 * RECORD_PAYLOAD_PREFIX + 4096)
        self.assertEqual(
            json.loads(record)["payload"]["args"][1],
            {"bytes": len(HUGE_INVALID), "truncated": True},
        )

    def test_a_broken_exception_str_still_makes_a_record(self):
        class Broken(Exception):
            def __str__(self):
                raise RuntimeError("no str")

        try:
            raise Broken()
        except Broken:
            failure = Failure()
        record = json.loads(failure_record(payload("J"), failure, "w", "q", {"class": "J"}))
        self.assertEqual(record["exception"], "Broken")
        self.assertIn("str() raised", record["error"])
        self.assertIn("Broken", error_text(failure))

    @defer.inlineCallbacks
    def test_records_can_be_turned_off(self):
        self.push("q", payload("J"))
        w = self.worker(record_failures=False)
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: self.redis.get("resque:stat:failed") == "1")
        yield w.shutdown()
        self.assertEqual(self.redis.llen("resque:failed"), 0)


class TimeoutTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_handler_that_never_settles(self):
        clock = task.Clock()
        cancelled = []
        errors = []
        self.push("q", payload("Hang", 1), payload("Fine", 2))
        w = self.worker(job_timeout=30, concurrency=1, clock=clock)
        w.add_hook("error", lambda json, failure: errors.append(failure))
        handler = Recorder(
            result=lambda job: defer.Deferred(cancelled.append) if job["class"] == "Hang" else None
        )
        self.started(w, handler)
        yield until(lambda: w.in_flight == 1)
        clock.advance(29)
        self.assertEqual(errors, [])
        clock.advance(1)
        yield until(lambda: len(handler.jobs) == 2)
        self.assertEqual(len(cancelled), 1)
        self.assertTrue(errors[0].check(JobTimeout))
        yield w.shutdown()
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["exception"], "JobTimeout")
        self.assertEqual(record["error"], "job ran longer than 30 s")
        self.assertEqual(error_text(errors[0]), "JobTimeout: job ran longer than 30 s")


class JobTimeoutTests(unittest.TestCase):
    def test_reads_as_a_sentence(self):
        self.assertEqual(str(JobTimeout(30)), "job ran longer than 30 s")
        self.assertEqual(str(JobTimeout(30.0)), "job ran longer than 30 s")
        self.assertEqual(str(JobTimeout(2.5)), "job ran longer than 2.5 s")
        self.assertEqual(JobTimeout(30).seconds, 30)
        try:
            raise JobTimeout(30)
        except JobTimeout:
            failure = Failure()
        self.assertEqual(error_text(failure), "JobTimeout: job ran longer than 30 s")
        record = json.loads(failure_record(payload("J"), failure, "w", "q", {"class": "J"}))
        self.assertEqual(record["exception"], "JobTimeout")
        self.assertEqual(record["error"], "job ran longer than 30 s")


class BlockingHandlerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_a_handler_blocking_the_reactor_delays_others_but_loses_none(self):
        self.push("q", payload("Block", 0), *[payload("J", i) for i in range(1, 50)])

        def handler(job):
            if job["class"] == "Block":
                time.sleep(1.0)  # the mistake this test is about
            return task.deferLater(real_reactor, 0.001, lambda: None)

        handler = Recorder(expected=50, result=handler)
        w = self.worker(concurrency=10)
        self.started(w, handler)
        yield handler.done
        yield until(lambda: self.redis.get("resque:stat:processed") == "50")
        yield w.shutdown()
        self.assertEqual(sorted(a[0] for a in handler.args), list(range(50)))


class ConnectionKillTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_kills_during_batched_fetches_and_acks_lose_nothing(self):
        n = 3000
        self.push("q", *[payload("J", i) for i in range(n)])
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return task.deferLater(real_reactor, 0.0005, lambda: None)

        w = self.worker(concurrency=50)
        self.started(w, handler)
        killer = redis.Redis(port=self.server.port)
        self.addCleanup(killer.close)

        def kill():
            killer.client_kill_filter(_type="normal", skipme=True)

        kills = task.LoopingCall(kill)
        kills.start(0.05, now=False)
        yield until(lambda: len(seen) >= n // 2, timeout=60)
        kills.stop()
        yield until(lambda: set(seen) >= set(range(n)), timeout=60)
        yield until(lambda: w.in_flight == 0)
        yield until(lambda: self.redis.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual(sorted(set(seen)), list(range(n)))
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)


class RestartWithPersistenceTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_redis_restarted_mid_run_with_appendonly(self):
        own = RedisServer(None, None, "--appendonly", "yes", "--appendfsync", "always")
        own.start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        n = 1000
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(n)])
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return task.deferLater(real_reactor, 0.002, lambda: None)

        w = self.worker(redis_url=own.url, concurrency=20)
        self.started(w, handler)
        yield until(lambda: len(seen) >= 200, timeout=30)
        own.restart()
        yield until(lambda: set(seen) >= set(range(n)), timeout=60)
        yield until(lambda: client.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual(sorted(set(seen)), list(range(n)))


class ManyFailuresTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_thousands_of_failures_in_one_turn_are_all_recorded(self):
        # More failures settle in one reactor turn than Lua's unpack() takes.
        n = 9000
        self.push("q", *[payload("J", i) for i in range(n)])
        pending: list[defer.Deferred] = []
        w = self.worker(concurrency=n)
        self.started(w, lambda job: pending.append(defer.Deferred()) or pending[-1])
        yield until(lambda: w.in_flight == n, timeout=30)
        for d in pending:
            d.errback(ValueError("no"))
        yield until(lambda: self.redis.llen("resque:failed") == n, timeout=30)
        yield w.shutdown()
        self.assertEqual(self.redis.get("resque:stat:failed"), str(n))


#: Ruby Resque 2.7.0 on our Redis: resque-web's failed page, its "Retry
#: all" (POST /failed/requeue/all, which calls Resque::Failure.requeue_all),
#: then what is queued and recorded.
_RUBY = r"""
$LOAD_PATH.unshift(File.join(ENV.fetch("PACE_RESQUE_SRC"), "lib"))
require "json"
require "resque"
require "resque/server"
require "rack/mock"
Resque.redis = Redis.new(port: Integer(ARGV[0]))
app = Rack::MockRequest.new(Resque::Server.new)
page = app.get("/failed")
retry_all = app.post("/failed/requeue/all")
puts JSON.generate(
  "page_status" => page.status,
  "page" => page.body,
  "retry_all_status" => retry_all.status,
  "queued" => Resque.redis.lrange("queue:q", 0, -1),
  "failed" => Resque::Failure.all(0, Resque::Failure.count),
)
"""


def _ruby_resque_missing() -> str | None:
    src = os.environ.get("PACE_RESQUE_SRC")
    if not src or not os.path.exists(os.path.join(src, "lib", "resque.rb")):
        return "PACE_RESQUE_SRC does not name a resque v2.7.0 source tree"
    if shutil.which("ruby") is None:
        return "needs ruby"
    libs = ("redis", "redis/namespace", "mono_logger", "multi_json", "json", "sinatra/base")
    probe = subprocess.run(
        ["ruby", "-e", "; ".join(f'require "{lib}"' for lib in libs)], capture_output=True
    )
    if probe.returncode != 0:
        return "needs ruby with " + ", ".join(libs)
    return None


class RubyResqueTests(RedisTestCase):
    skip = _ruby_resque_missing()

    @defer.inlineCallbacks
    def test_retry_all_in_resque_web_requeues_what_pace_recorded(self):
        self.redis.rpush("resque:queue:q", b"\xff{not json", b"[" * 1000, HUGE_INVALID)
        self.push("q", payload("Charge", 7))
        w = self.worker(concurrency=1)
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: self.redis.llen("resque:failed") == 4)
        yield w.shutdown()
        out = subprocess.run(
            ["ruby", "-e", _RUBY, str(self.server.port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        ruby = json.loads(out.stdout)
        self.assertEqual(ruby["page_status"], 200)
        # The raw payload shows on the failed page (HTML-escaped).
        self.assertIn("\\\\xff{not json", ruby["page"])
        self.assertIn("[[[[", ruby["page"])
        self.assertIn(MALFORMED_CLASS, ruby["page"])
        # "Retry all" went through every record, none raised.
        self.assertEqual(ruby["retry_all_status"], 302)
        self.assertTrue(all("retried_at" in record for record in ruby["failed"]))
        self.assertEqual(len(ruby["queued"]), 4)
        self.assertEqual(
            sorted(json.loads(j)["class"] for j in ruby["queued"]),
            ["Charge"] + [MALFORMED_CLASS] * 3,
        )
        # Back in Pace: the real job runs, the malformed ones fail again
        # with the same payloads, and no handler sees them.
        handled = []
        w2 = self.worker(concurrency=1)
        self.started(w2, handled.append)
        yield until(lambda: self.redis.llen("resque:failed") == 7 and handled)
        yield w2.shutdown()
        self.assertEqual(handled, [{"class": "Charge", "args": [7]}])
        records = [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]
        first = [r["payload"] for r in records[:4] if r["payload"]["class"] == MALFORMED_CLASS]
        again = [r["payload"] for r in records[4:]]
        self.assertEqual(sorted(map(json.dumps, again)), sorted(map(json.dumps, first)))
