"""
Pace and real Ruby Resque 2.7.0 sharing a fleet: each case of issue 11 with
Resque's own code doing its part (tests/ruby/resque_tool.rb). Runs when
`ruby` with Debian's ruby-redis, ruby-redis-namespace, ruby-json,
ruby-multi-json and ruby-mono-logger is installed and $PACE_RESQUE_SRC names
a resque v2.7.0 source tree; skipped, saying why, otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess

from twisted.internet import defer, reactor, task, utils

import pace
from pace import failures, keys
from pace.registry import WORKING_TTL, fleet
from tests.support import ROOT, RedisTestCase, payload, twistd_pace, until

SRC = os.environ.get("PACE_RESQUE_SRC", "")
TOOL = os.path.join(ROOT, "tests", "ruby", "resque_tool.rb")


def _why_skipped() -> str | None:
    if not shutil.which("ruby"):
        return "no ruby on this machine (apt-get install ruby ruby-redis ruby-redis-namespace ...)"
    if not SRC or not os.path.exists(os.path.join(SRC, "lib", "resque", "worker.rb")):
        return "set PACE_RESQUE_SRC to a resque v2.7.0 source tree (resque/resque at v2.7.0)"
    check = subprocess.run(
        ["ruby", "-I" + os.path.join(SRC, "lib"), "-e", 'require "resque"; print Resque::VERSION'],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        return "Ruby cannot load resque (missing gems?): " + check.stderr.strip()[-200:]
    if check.stdout != "2.7.0":
        return f"PACE_RESQUE_SRC holds resque {check.stdout}, not 2.7.0"
    return None


SKIP = _why_skipped()


class InteropTestCase(RedisTestCase):
    if SKIP:
        skip = SKIP

    @defer.inlineCallbacks
    def ruby(self, *args: str, **env: str) -> defer.Deferred:
        out, err, code = yield utils.getProcessOutputAndValue(
            "ruby",
            ["-I" + os.path.join(SRC, "lib"), TOOL, *args],
            env=dict(os.environ, REDIS_URL=self.url, **env),
            path=ROOT,
        )
        if code != 0:
            raise AssertionError(f"ruby {args} exited {code}: {err.decode()[-2000:]}")
        return json.loads(out)

    def failed(self) -> list[dict]:
        return [json.loads(r) for r in self.redis.lrange("resque:failed", 0, -1)]

    def twistd(self, *extra: str, daemon: bool = False) -> subprocess.Popen:
        self.log = os.path.abspath(self.mktemp())
        return self.spawn(
            twistd_pace(
                self.log,
                "--handler",
                "tests.test_resque_interop.forever",
                "--redis-url",
                self.url,
                *extra,
                pidfile=self.pidfile if daemon else "",
            )
        )


def _blocked(job: dict) -> defer.Deferred:
    return defer.Deferred()


#: A handler for twistd (--handler tests.test_resque_interop.forever): jobs
#: that never end, so a kill -9 finds them all in flight.
forever = _blocked


class SameHostTests(InteropTestCase):
    @defer.inlineCallbacks
    def test_a_ruby_worker_starting_leaves_a_live_pace_worker_alone(self):
        # Item 1: Resque's prune greps ps for its titles; Pace says it is one.
        self.push("q", payload("Slow", 1))
        w = self.worker()
        gate = defer.Deferred()
        self.started(w, lambda job: gate)
        yield until(lambda: self.redis.exists(f"resque:worker:{w.id}"), timeout=5)
        started = self.redis.get(f"resque:worker:{w.id}:started")
        result = yield self.ruby("start-worker", "q")
        self.assertEqual(result["failed"], [])
        self.assertIn(w.id, self.redis.smembers("resque:workers"))
        self.assertEqual(self.redis.get(f"resque:worker:{w.id}:started"), started)
        info = yield self.ruby("workers")
        self.assertIn(str(os.getpid()), info["known_pids"])
        gate.callback(None)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_a_pace_worker_starting_leaves_a_live_ruby_worker_alone(self):
        # The other direction: a Pace sweep touches no Ruby worker.
        ruby = self.spawn(
            [
                "ruby",
                "-I" + os.path.join(SRC, "lib"),
                "-e",
                'require "resque"; Resque.redis = ENV["REDIS_URL"]; '
                'ENV["FORK_PER_JOB"] = "false"; Resque::Worker.new("q").work(0.2)',
            ]
        )
        yield until(lambda: self.redis.scard("resque:workers") == 1, timeout=15)
        (ruby_id,) = self.redis.smembers("resque:workers")
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching, timeout=10)
        yield w.parts.registry.sweep()
        self.assertIn(ruby_id, self.redis.smembers("resque:workers"))
        ruby.send_signal(signal.SIGQUIT)
        yield w.shutdown()


class KillTests(InteropTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.pidfile = os.path.abspath(self.mktemp())

    @defer.inlineCallbacks
    def killed_pace(self) -> defer.Deferred:
        self.redis.rpush("resque:queue:work", *[payload("Slow", i) for i in range(5)])
        proc = self.twistd("--queue", "work", "--heartbeat-ttl", "2")
        yield until(
            lambda: sum(n for w in fleet(self.redis) for _, _, n in w["held"]) > 0, timeout=20
        )
        (rid,) = self.redis.smembers("resque:workers")
        proc.send_signal(signal.SIGKILL)
        yield until(lambda: proc.poll() is not None)
        return rid

    @defer.inlineCallbacks
    def test_after_kill_9_rubys_prunes_write_no_fake_record_and_pace_puts_jobs_back(self):
        # Item 2, both of Ruby's prune paths, then Pace's sweep.
        yield self.killed_pace()
        held = {w["resque_id"]: w["held"] for w in fleet(self.redis)}
        self.assertTrue(held, "pace stats shows the dead worker and its jobs")
        # "Working" of a dead worker fades within WORKING_TTL.
        yield task.deferLater(reactor, WORKING_TTL + 0.5, lambda: None)
        # Ruby's expired-heartbeat path (a pruner of other queues).
        expired = yield self.ruby("prune", "other", PRUNE_INTERVAL="0")
        self.assertEqual(expired["failed"], [])
        self.assertEqual(self.redis.smembers("resque:workers"), set())
        # A Pace worker's sweep puts the jobs back to their queue.
        self.redis.delete(*self.redis.keys("resque:pace:heartbeat:*") or ["none"])
        got = []
        w = self.worker("work")
        self.started(w, got.append)
        yield until(lambda: len(got) == 5, timeout=30)
        self.assertEqual(sorted(j["args"][0] for j in got), list(range(5)))
        # Acknowledged (in a batch, a moment later): nobody holds a job.
        yield until(
            lambda: [n for r in fleet(self.redis) for _, _, n in r["held"]] == [0, 0], timeout=10
        )
        self.assertEqual(self.failed(), [])
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_after_kill_9_rubys_same_host_prune_writes_no_record(self):
        rid = yield self.killed_pace()
        yield task.deferLater(reactor, WORKING_TTL + 0.5, lambda: None)
        same_host = yield self.ruby("prune", "work")
        self.assertEqual(same_host["failed"], [])
        self.assertNotIn(rid, self.redis.smembers("resque:workers"))

    @defer.inlineCallbacks
    def test_a_prune_right_after_a_kill_records_only_a_real_job(self):
        yield self.killed_pace()
        result = yield self.ruby("prune", "work")
        for record in result["failed"]:
            self.assertEqual(record["payload"]["class"], "Slow")
            self.assertIn(record["payload"]["args"][0], range(5))

    @defer.inlineCallbacks
    def test_daemon_registers_its_own_pid_and_ruby_sees_it_alive(self):
        # Item 5: twistd forks; the id is made after.
        self.twistd("--queue", "work", daemon=True)
        yield until(
            lambda: os.path.exists(self.pidfile) and self.redis.scard("resque:workers"), timeout=30
        )
        with open(self.pidfile) as f:
            pid = f.read().strip()
        self.addCleanup(_kill, int(pid))
        info = yield self.ruby("workers")
        self.assertEqual([w["pid"] for w in info["workers"]], [int(pid)])
        self.assertIn(pid, info["known_pids"])
        result = yield self.ruby("prune", "work")
        self.assertEqual(result["failed"], [])
        self.assertEqual(self.redis.scard("resque:workers"), 1)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class RecordTests(InteropTestCase):
    @defer.inlineCallbacks
    def records(self, *jobs: str) -> defer.Deferred:
        def handler(job):
            if job["class"] == "Boom":
                raise ValueError("boom")
            return defer.Deferred()  # "Slow": times out

        self.push("q", *jobs)
        w = self.worker(job_timeout=0.2)
        self.started(w, handler)
        yield until(lambda: self.redis.llen("resque:failed") == len(jobs), timeout=10)
        yield w.shutdown()
        return self.failed()

    @defer.inlineCallbacks
    def test_ruby_requeues_the_records_of_failed_and_timed_out_jobs(self):
        # Item 3 for well-formed payloads: Resque::Failure.requeue and
        # requeue_all (resque-web's "Retry all").
        yield self.records(payload("Boom", 1), payload("Slow", 2))
        each = yield self.ruby("requeue-each")
        self.assertEqual(each["results"], ["ok", "ok"])
        requeued = [json.loads(p) for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(sorted(j["class"] for j in requeued), ["Boom", "Slow"])
        self.redis.delete("resque:queue:q")
        every = yield self.ruby("requeue-all")
        self.assertTrue(every["ok"], every)
        self.assertEqual(self.redis.llen("resque:queue:q"), 2)

    @defer.inlineCallbacks
    def test_ruby_requeues_or_safely_skips_malformed_payload_records(self):
        # Item 3 for malformed payloads: the records are pace.failures'
        # (another branch); this case states the promise.
        records = yield self.records("not json", '{"class": 5}', payload("Boom", 1))
        every = yield self.ruby("requeue-all")
        self.assertTrue(every["ok"], every)
        self.assertEqual(len(records), 3)

    if not hasattr(failures, "malformed_payload"):
        # Passes with wip-10's pace.failures (tried); until it is merged:
        test_ruby_requeues_or_safely_skips_malformed_payload_records.todo = (  # type: ignore
            "malformed-payload records are redesigned in pace.failures (issue 11 item 3, wip-10)"
        )


class QueueNameTests(InteropTestCase):
    @defer.inlineCallbacks
    def test_a_queue_name_with_colons_both_ways(self):
        # Item 4: Ruby's queue foo:bar, named unambiguously on Pace's side.
        yield self.ruby("enqueue-to", "foo:bar", "Job", "[1]")
        got = []
        w = self.worker("resque:queue:foo:bar")
        self.started(w, got.append)
        yield until(lambda: got, timeout=10)
        self.assertEqual(got[0]["args"], [1])
        info = yield self.ruby("workers")
        self.assertEqual(info["workers"][0]["queues"], ["foo:bar"])
        yield w.shutdown()
        yield pace.enqueue("resque:queue:foo:bar", "Job", 2, redis_url=self.url)
        self.assertIn("foo:bar", self.redis.smembers("resque:queues"))
        yield self.ruby("start-worker", "foo:bar")
        self.assertEqual(self.redis.llen("resque:queue:foo:bar"), 0)
        # An absolute key is not registered as a Resque queue of that name.
        w = self.worker("my:key")
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching, timeout=10)
        info = yield self.ruby("workers")
        self.assertEqual(info["workers"][0]["queues"], ["redis-key=my:key"])
        yield w.shutdown()


class KeyListingTests(InteropTestCase):
    @defer.inlineCallbacks
    def test_every_key_resque_web_lists_exists(self):
        # Item 6: resque-web's key listing (Resque.keys) of a busy worker.
        self.push("q", payload("Slow", 1), payload("Slow", 2))
        w = self.worker()
        self.started(w, _blocked)
        yield until(lambda: w.in_flight == 2, timeout=10)
        listing = yield self.ruby("keys")
        self.assertEqual([k for k, kind, _ in listing if kind == "none"], [])
        lists = {k: n for k, kind, n in listing if k.startswith("pace:processing:")}
        self.assertEqual(list(lists.values()), [2], listing)
        (key,) = lists
        page = yield self.ruby("web", "/stats/keys")
        self.assertEqual(page["status"], 200)
        self.assertIn(key, page["body"])
        page = yield self.ruby("web", f"/stats/keys/{key}")
        self.assertIn("is a list", page["body"])
        yield w.shutdown()


class WorkingTests(InteropTestCase):
    @defer.inlineCallbacks
    def test_working_shows_the_real_job_within_two_seconds(self):
        # Item 7: Resque::Worker.working, as resque-web's Working page reads it.
        w = self.worker()
        self.started(w, _blocked)
        yield until(lambda: w.fetching, timeout=10)
        self.push("q", payload("LongJob", 7))
        yield until(lambda: w.in_flight == 1, timeout=5)
        t0 = reactor.seconds()
        yield until(lambda: self.redis.exists(f"resque:worker:{w.id}"), timeout=2)
        info = yield self.ruby("workers")
        (working,) = info["working"]
        self.assertEqual(working["id"], w.id)
        self.assertEqual(working["job"]["payload"], {"class": "LongJob", "args": [7]})
        self.assertEqual(working["job"]["queue"], "q")
        import calendar
        import time

        run_at = calendar.timegm(time.strptime(working["job"]["run_at"], "%Y-%m-%dT%H:%M:%S+00:00"))
        self.assertLess(abs(run_at - t0), 2)
        # resque-web's Working page shows it.
        page = yield self.ruby("web", "/working")
        self.assertEqual(page["status"], 200)
        self.assertIn("LongJob", page["body"])
        self.assertIn("1 of 1 Workers Working", page["body"])
        yield w.shutdown()
        self.assertEqual(socket.gethostname(), w.id.split(":")[0])
        self.assertFalse(keys.worker_busy(w.id) in self.redis.keys("*"))
