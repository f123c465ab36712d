"""
Tests for ``pace failed`` (pace/cli/failed.py): list, show (as text and
JSON), retry as Resque's requeue does (colons in queue names included),
retry-all, remove, clear; and records as they may really be found in
resque:failed: not JSON, not UTF-8, lone surrogates, 100 MB.
"""

from __future__ import annotations

import json

from tests.cli_support import CLITestCase, record


class FailedTests(CLITestCase):
    def test_list_and_show(self):
        self.fail_jobs()
        code, out = self.pace("failed", "list")
        self.assertEqual(code, 0)
        self.assertIn("Failed jobs (2)", out)
        self.assertIn("declined 1", out)
        self.assertIn("2026-11-29T03:00:00Z", out)
        code, out = self.pace("failed", "show", "1")
        self.assertEqual(code, 0)
        self.assertIn("  error: declined 1", out)
        self.assertIn("  failed_at: 2026-11-29T03:00:00Z", out)

    def test_json(self):
        self.fail_jobs(3)
        code, out = self.pace("failed", "list", "--json", "--start", "1")
        self.assertEqual(code, 0, out)
        data = json.loads(out)
        self.assertEqual(data["total"], 3)
        self.assertEqual([r["index"] for r in data["records"]], [1, 2])
        self.assertEqual(data["records"][0]["error"], "declined 1")
        self.assertEqual(data["records"][0]["failed_at"], "2026-11-29T03:00:00Z")
        code, out = self.pace("failed", "show", "2", "--json")
        self.assertEqual(json.loads(out), json.loads(record(2)))

    def test_retry_as_resque_does(self):
        self.fail_jobs()
        code, out = self.pace("failed", "retry", "1")
        self.assertEqual(code, 0, out)
        rec = json.loads(self.redis.lindex("resque:failed", 1))
        self.assertRegex(rec["retried_at"], r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d UTC$")
        self.assertEqual(
            json.loads(self.redis.lindex("resque:queue:billing", 0)),
            {"class": "Charge", "args": [1]},
        )
        self.assertEqual(self.redis.llen("resque:failed"), 2)
        code, out = self.pace("failed", "list")
        self.assertRegex(out, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$")

    def test_retry_to_a_queue_with_a_colon(self):
        self.fail_jobs(1, queue="foo:bar")
        code, out = self.pace("failed", "retry", "0")
        self.assertEqual(code, 0, out)
        self.assertEqual(self.redis.llen("resque:queue:foo:bar"), 1)
        self.assertEqual(self.redis.exists("foo:bar"), 0)
        self.assertEqual(self.redis.smembers("resque:queues"), {"foo:bar"})

    def test_retry_all_remove_clear(self):
        self.fail_jobs(3)
        self.redis.rpush("resque:failed", "not json")
        code, out = self.pace("failed", "retry-all")
        self.assertEqual(code, 0)
        self.assertIn("3 failed jobs enqueued again, 1 skipped", out)
        self.assertEqual(self.redis.llen("resque:queue:billing"), 3)
        code, _ = self.pace("failed", "remove", "0")
        self.assertEqual(code, 0)
        self.assertEqual(
            [r for r in self.redis.lrange("resque:failed", 0, -1)][1:],
            [self.redis.lindex("resque:failed", 1), "not json"],
        )
        code, out = self.pace("failed", "clear", "--yes")
        self.assertEqual((code, self.redis.llen("resque:failed")), (0, 0))

    def test_errors(self):
        code, out = self.pace("failed", "show", "5")
        self.assertEqual(code, 1)
        self.assertIn("empty", out)
        self.fail_jobs(1)
        code, out = self.pace("failed", "retry", "7")
        self.assertEqual(code, 1)
        self.assertIn("0 to 0", out)
        code, out = self.pace("failed", "clear")
        self.assertEqual(code, 1)
        self.assertIn("add --yes", out)
        self.assertEqual(self.redis.llen("resque:failed"), 1)

    def test_clearing_an_empty_failed_list(self):
        code, out = self.pace("failed", "clear")
        self.assertEqual(code, 0)
        self.assertIn("already empty", out)


class OddRecordTests(CLITestCase):
    def push_raw(self, *raws: bytes) -> None:
        import redis

        raw = redis.Redis(port=self.server.port)
        self.addCleanup(raw.close)
        raw.rpush("resque:failed", *raws)

    def test_not_utf8_lone_surrogates_and_control_characters(self):
        self.push_raw(
            b'{"payload": {"class": "J\xff\xfe", "args": []}, "queue": "q",'
            b' "error": "bad \xc3 byte", "exception": "E"}',
            record(1, error="lone \ud800 and \x1b[31m red \u2028").encode(),
            b"\xff\x00 not even json \x1b]0;title\x07",
        )
        for argv in (["failed", "list"], ["failed", "show", "0"], ["failed", "show", "2"]):
            code, out = self.pace(*argv)
            self.assertEqual(code, 0, (argv, out))
            self.assertNotIn("\x1b", out)
            self.assertNotIn("\x07", out)
            out.encode("utf-8")  # printable on any terminal
        code, out = self.pace("failed", "list")
        self.assertIn("J\\xff\\xfe", out)
        self.assertIn("bad \\xc3 byte", out)
        self.assertIn("lone \\ud800 and \\x1b[31m red \\u2028", out)
        self.assertIn("\\xff\\x00 not even json \\x1b]0;title\\x07", out)
        self.assertIn("(not a JSON record)", out)
        code, out = self.pace("failed", "list", "--json")
        records = json.loads(out)["records"]
        self.assertEqual(len(records), 3)
        code, out = self.pace("failed", "show", "1", "--json")
        self.assertEqual(json.loads(out)["error"], "lone \ud800 and \x1b[31m red \u2028")

    def test_retry_keeps_the_bytes_of_a_payload(self):
        self.push_raw(b'{"payload": {"class": "J", "args": ["\xff"]}, "queue": "q"}')
        code, out = self.pace("failed", "retry", "0")
        self.assertEqual(code, 0, out)
        import redis

        raw = redis.Redis(port=self.server.port)
        self.addCleanup(raw.close)
        self.assertEqual(raw.lindex("resque:queue:q", 0), b'{"class": "J", "args": ["\xff"]}')

    def test_a_100_mb_record_is_cut_unless_full(self):
        big = "x" * 100_000_000
        self.push_raw(record(0, error=big).encode(), record(1).encode())
        code, out = self.pace("failed", "list")
        self.assertEqual(code, 0)
        self.assertLess(len(out), 2000)
        self.assertIn("(99,999,880 more characters)", out)
        self.assertIn("declined 1", out)
        code, out = self.pace("failed", "show", "0")
        self.assertLess(len(out), 5000)
        self.assertIn("--full shows them whole", out)
        code, out = self.pace("failed", "show", "0", "--full")
        self.assertIn(big, out)
