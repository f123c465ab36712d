"""
Tests for ``pace scheduled list|remove|run-now`` (pace/cli/scheduled.py)
against the private Redis.
"""

from __future__ import annotations

import json

from twisted.internet import defer

import pace
from tests.cli_support import CLITestCase

TS = 2000000000


class ScheduledTests(CLITestCase):
    @defer.inlineCallbacks
    def schedule(self) -> defer.Generator:
        yield pace.enqueue_at(TS, "mail", "SendEmail", "a@b.c", redis_url=self.url)
        yield pace.enqueue_at(TS, "mail", "SendEmail", "c@d.e", redis_url=self.url)
        yield pace.enqueue_at(TS + 60, "billing", "Charge", 42, redis_url=self.url)

    @defer.inlineCallbacks
    def test_list(self):
        yield self.schedule()
        code, out = self.pace("scheduled", "list")
        self.assertEqual(code, 0, out)
        self.assertIn("Delayed jobs (3)", out)
        self.assertIn(f"{TS}:1", out)
        self.assertIn("2033-05-18T03:33:20Z", out)
        self.assertIn('["c@d.e"]', out)
        self.assertLess(out.index("SendEmail"), out.index("Charge"))
        code, out = self.pace("scheduled", "list", "--count", "1")
        self.assertIn("Delayed jobs (3)", out)
        self.assertNotIn("Charge", out)
        code, out = self.pace("scheduled", "list", "--json")
        data = json.loads(out)
        self.assertEqual(data["total"], 3)
        self.assertEqual(
            data["jobs"][2],
            {
                "id": f"{TS + 60}:0",
                "due": "2033-05-18T03:34:20Z",
                "queue": "billing",
                "class": "Charge",
                "args": [42],
                "attempt": 1,
            },
        )

    @defer.inlineCallbacks
    def test_remove_keeps_the_layout_consistent(self):
        yield self.schedule()
        code, out = self.pace("scheduled", "remove", f"{TS}:0", f"{TS}:1")
        self.assertEqual(code, 0, out)
        self.assertFalse(self.redis.exists(f"resque:delayed:{TS}"))
        self.assertEqual(self.redis.zrange("resque:delayed_queue_schedule", 0, -1), [str(TS + 60)])
        self.assertEqual(
            self.redis.keys("resque:timestamps:*"),
            ['resque:timestamps:{"class":"Charge","args":[42],"queue":"billing"}'],
        )
        code, out = self.pace("scheduled", "remove", f"{TS}:0", "nonsense")
        self.assertEqual(code, 1)
        self.assertIn("no delayed job", out)
        self.assertIn("is not TIMESTAMP:INDEX", out)
        self.assertNotIn("Traceback", out)

    @defer.inlineCallbacks
    def test_run_now(self):
        yield self.schedule()
        code, out = self.pace("scheduled", "run-now", f"{TS + 60}:0")
        self.assertEqual(code, 0, out)
        self.assertEqual(
            self.redis.lrange("resque:queue:billing", 0, -1), ['{"class":"Charge","args":[42]}']
        )
        self.assertEqual(self.redis.smembers("resque:queues"), {"billing"})
        self.assertEqual(self.redis.zrange("resque:delayed_queue_schedule", 0, -1), [str(TS)])
        self.assertEqual(self.redis.llen(f"resque:delayed:{TS}"), 2)

    def test_malformed_entries(self):
        self.redis.rpush(f"resque:delayed:{TS}", "garbage")
        self.redis.zadd("resque:delayed_queue_schedule", {str(TS): TS})
        code, out = self.pace("scheduled", "list")
        self.assertEqual(code, 0, out)
        self.assertIn("(malformed)", out)
        code, out = self.pace("scheduled", "run-now", f"{TS}:0")
        self.assertEqual(code, 1)
        self.assertIn("malformed", out)
        self.assertEqual(self.redis.llen(f"resque:delayed:{TS}"), 1)
        code, out = self.pace("scheduled", "remove", f"{TS}:0")
        self.assertEqual(code, 0, out)
        self.assertEqual(self.redis.keys("*"), [])
