"""
Tests for ``pace stats`` (pace/cli/stats.py): queues by Resque's name rule,
workers with start, last beat and jobs in flight, --json parsed, numbers
right-aligned, ISO 8601 UTC dates, and --watch in plain lines when piped.
"""

from __future__ import annotations

import json
import re

from twisted.internet import defer

from tests.cli_support import CLITestCase
from tests.support import payload, until

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class StatsTests(CLITestCase):
    @defer.inlineCallbacks
    def test_stats_of_a_running_worker(self):
        self.push("q", payload("J", 1), payload("J", 2))
        self.redis.sadd("resque:queues", "q")
        gate = defer.Deferred()
        w = self.worker(concurrency=2, heartbeat_ttl=0.6)
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 2)
        self.redis.rpush("resque:queue:q", payload("J", 3))
        # The working record names the oldest job and how many run (written
        # at most once a second).
        yield until(
            lambda: (
                json.loads(self.redis.get(f"resque:worker:{w.id}") or "{}").get("in_flight") == 2
            )
        )
        code, out = self.pace("stats", "--json")
        self.assertEqual(code, 0, out)
        data = json.loads(out)
        self.assertEqual(data["queues"], [{"queue": "q", "jobs": 1}])
        [row] = data["workers"]
        self.assertEqual(row["worker"], w.id)
        self.assertEqual(row["in_flight"], 2)
        self.assertIsNone(row["paused"])  # not published by workers
        self.assertRegex(row["started"], ISO)
        self.assertRegex(row["last_beat"], ISO)
        # The two running jobs sit in its processing list, in no queue: an
        # operator sees them (after a kill -9 too, until a sweep).
        self.assertEqual(
            data["held"], [{"worker": w.id, "state": "alive", "queue": "q", "jobs": 2}]
        )
        code, out = self.pace("stats")
        self.assertIn(w.id, out)
        self.assertRegex(out, r"\nq\s+1\n")
        self.assertIn("Jobs held by Pace workers", out)
        gate.callback(None)
        yield w.shutdown()

    def test_numbers_right_aligned_and_full_names_when_piped(self):
        long_name = "queue-" + "x" * 150
        for name, n in ((long_name, 1234), ("q", 5)):
            self.redis.sadd("resque:queues", name)
            self.redis.rpush(f"resque:queue:{name}", *[payload("J")] * n)
        code, out = self.pace("stats")
        lines = out.splitlines()
        rows = [line for line in lines if line.startswith(("q ", long_name))]
        self.assertEqual(len(rows), 2, out)
        [short] = [r for r in rows if r.startswith("q ")]
        [long] = [r for r in rows if r.startswith(long_name)]
        self.assertTrue(long.endswith("  1,234"), rows)
        self.assertTrue(short.endswith("    5"), rows)
        self.assertEqual(len(rows[0]), len(rows[1]))
        self.assertIn(long_name, out)  # whole, no wrapping at 80 columns
        self.assertNotIn("…", out)

    def test_queue_names_with_colons_are_resque_names(self):
        self.redis.sadd("resque:queues", "foo:bar")
        self.redis.rpush("resque:queue:foo:bar", payload("J"), payload("J"))
        self.redis.rpush("foo:bar", payload("J"))  # not Resque's queue foo:bar
        code, out = self.pace("stats", "--json")
        self.assertEqual(json.loads(out)["queues"], [{"queue": "foo:bar", "jobs": 2}])

    def test_resque_dates_shown_as_iso_utc(self):
        wid = "host:1:q"
        self.redis.sadd("resque:workers", wid)
        self.redis.set(f"resque:worker:{wid}:started", "2026-12-01 20:34:05 +0100")
        self.redis.hset("resque:workers:heartbeat", wid, "2026-12-01T19:40:00+00:00")
        self.redis.set(f"resque:worker:{wid}", json.dumps({"queue": "q", "payload": {}}))
        code, out = self.pace("stats", "--json")
        [row] = json.loads(out)["workers"]
        self.assertEqual(row["started"], "2026-12-01T19:34:05Z")
        self.assertEqual(row["last_beat"], "2026-12-01T19:40:00Z")
        self.assertEqual(row["in_flight"], 1)  # a Ruby worker works on one job

    def test_watch_piped_is_plain_lines_and_bounded(self):
        self.redis.sadd("resque:queues", "q")
        code, out = self.pace("stats", "--watch", "0.01", "--count", "3")
        self.assertEqual(code, 0, out)
        self.assertEqual(out.count("pace stats at "), 3)
        self.assertNotIn("\r", out)
        self.assertNotIn("\x1b", out)

    def test_watch_on_a_terminal_redraws_in_place(self):
        code, out = self.pace("stats", "--watch", "0.01", "--count", "2", tty=True)
        self.assertEqual(code, 0, out)
        self.assertEqual(out.count("\x1b[H\x1b[2J"), 2)

    def test_watch_json_is_one_document_a_line(self):
        code, out = self.pace("stats", "--watch", "0.01", "--count", "2", "--json")
        docs = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(docs), 2)
