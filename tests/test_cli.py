"""
Tests for the `pace` admin command against the private Redis: every
command, its output and its exit code.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from twisted.internet import defer

from pace import cli
from pace.cli.output import Output
from tests.support import RedisTestCase, payload, until


class CLITests(RedisTestCase):
    def pace(self, *argv: str) -> tuple[int, str]:
        buffer = io.StringIO()
        code = cli.main(["--redis-url", self.url, *argv], Output(buffer))
        return code, buffer.getvalue()

    def fail_jobs(self, n: int = 2) -> None:
        for i in range(n):
            record = {
                "failed_at": "2026/11/29 03:00:00 UTC",
                "payload": {"class": "Charge", "args": [i]},
                "exception": "ValueError",
                "error": f"declined {i}",
                "backtrace": [],
                "worker": "h:1:q",
                "queue": "billing",
            }
            self.redis.rpush("resque:failed", json.dumps(record))

    def test_enqueue_parses_json_and_bare_words(self):
        code, out = self.pace("enqueue", "mail", "SendEmail", '"a@b.c"', "3", "{}", "word")
        self.assertEqual(code, 0, out)
        self.assertEqual(
            json.loads(self.redis.lindex("resque:queue:mail", 0)),
            {"class": "SendEmail", "args": ["a@b.c", 3, {}, "word"]},
        )
        self.assertEqual(self.redis.smembers("resque:queues"), {"mail"})

    @defer.inlineCallbacks
    def test_stats(self):
        self.push("q", payload("J", 1))
        self.redis.sadd("resque:queues", "q")
        gate = defer.Deferred()
        w = self.worker(concurrency=1)
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        self.redis.rpush("resque:queue:q", payload("J", 2))
        code, out = self.pace("stats")
        self.assertEqual(code, 0)
        self.assertIn(w.id, out)
        self.assertRegex(out, r"\nq\s+1\n")
        gate.callback(None)
        yield w.shutdown()

    def test_failed_list_show(self):
        self.fail_jobs()
        code, out = self.pace("failed", "list")
        self.assertEqual(code, 0)
        self.assertIn("Failed jobs (2)", out)
        self.assertIn("declined 1", out)
        code, out = self.pace("failed", "show", "1", "--json")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out)["error"], "declined 1")

    def test_failed_retry_as_resque_does(self):
        self.fail_jobs()
        code, out = self.pace("failed", "retry", "1")
        self.assertEqual(code, 0, out)
        record = json.loads(self.redis.lindex("resque:failed", 1))
        self.assertIn("retried_at", record)
        self.assertEqual(
            json.loads(self.redis.lindex("resque:queue:billing", 0)),
            {"class": "Charge", "args": [1]},
        )
        self.assertEqual(self.redis.llen("resque:failed"), 2)

    def test_failed_retry_all_remove_clear(self):
        self.fail_jobs(3)
        self.assertEqual(self.pace("failed", "retry-all")[0], 0)
        self.assertEqual(self.redis.llen("resque:queue:billing"), 3)
        code, _ = self.pace("failed", "remove", "0")
        self.assertEqual(code, 0)
        self.assertEqual(
            [json.loads(r)["error"] for r in self.redis.lrange("resque:failed", 0, -1)],
            ["declined 1", "declined 2"],
        )
        code, out = self.pace("failed", "clear", "--yes")
        self.assertEqual((code, self.redis.llen("resque:failed")), (0, 0))

    def test_queues_clear_needs_confirmation(self):
        self.push("q", payload("J"))
        code, out = self.pace("queues", "clear", "q")
        self.assertEqual(code, 1)
        self.assertIn("--yes", out)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        code, out = self.pace("queues", "clear", "q", "--yes")
        self.assertEqual(code, 0)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    def test_errors_and_exit_codes(self):
        code, out = self.pace("failed", "show", "5")
        self.assertEqual(code, 1)
        self.assertIn("empty", out)
        self.fail_jobs(1)
        code, out = self.pace("failed", "retry", "7")
        self.assertEqual(code, 1)
        self.assertIn("0 to 0", out)
        buffer = io.StringIO()
        code = cli.main(["--redis-url", "redis://:hunter2@127.0.0.1:1/0", "stats"], Output(buffer))
        self.assertEqual(code, 1)
        self.assertIn("cannot reach Redis", buffer.getvalue())
        self.assertNotIn("hunter2", buffer.getvalue())

    def test_console_script(self):
        pace_bin = os.path.join(os.path.dirname(sys.executable), "pace")
        out = subprocess.run(
            [pace_bin, "--redis-url", self.url, "enqueue", "q", "Job", "1"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        usage = subprocess.run([pace_bin], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(usage.returncode, 2)

    def test_redis_refusing_says_what_to_check(self):
        self.redis.set("resque:failed", "not a list")
        code, out = self.pace("failed", "list")
        self.assertEqual(code, 1)
        self.assertIn("WRONGTYPE", out)
        self.assertIn("--namespace", out)

    def test_clearing_an_empty_failed_list(self):
        code, out = self.pace("failed", "clear")
        self.assertEqual(code, 0)
        self.assertIn("already empty", out)
