"""
`pace pause`, `pace resume` and `pace check` (pace/cli/fleet.py) against the
private Redis: keys written, output and exit codes.
"""

from __future__ import annotations

import io
import json

from pace import cli
from pace.cli.output import Output
from tests.support import RedisTestCase


class FleetCommandTests(RedisTestCase):
    def pace(self, *argv: str) -> tuple[int, str]:
        buffer = io.StringIO()
        code = cli.main(["--redis-url", self.url, *argv], Output(buffer))
        return code, buffer.getvalue()

    def test_pause_and_resume_a_queue(self):
        code, text = self.pace("pause", "mail")
        self.assertEqual(code, 0, text)
        self.assertEqual(self.redis.get("resque:pace:paused:mail"), "operator")
        self.assertEqual(self.redis.ttl("resque:pace:paused:mail"), -1)
        code, text = self.pace("resume", "mail")
        self.assertEqual((code, self.redis.exists("resque:pace:paused:mail")), (0, 0))
        self.assertIn("mail resumed", text)
        code, text = self.pace("resume", "mail")
        self.assertEqual(code, 0)
        self.assertIn("was not paused", text)

    def test_pause_for_seconds(self):
        code, text = self.pace("pause", "mail", "--for", "90")
        self.assertEqual(code, 0, text)
        self.assertGreater(self.redis.pttl("resque:pace:paused:mail"), 89_000)
        self.assertIn("for 90s", text)

    def test_pause_all_sets_resques_own_key(self):
        self.assertEqual(self.pace("pause", "--all")[0], 0)
        self.assertEqual(self.redis.get("resque:pause-all-workers"), "true")
        self.assertEqual(self.pace("resume", "--all")[0], 0)
        self.assertIsNone(self.redis.get("resque:pause-all-workers"))

    def test_namespace(self):
        self.assertEqual(self.pace("--namespace", "ns", "pause", "--all")[0], 0)
        self.assertEqual(self.redis.get("ns:resque:pause-all-workers"), "true")
        self.assertEqual(self.pace("pause", "mail", "--namespace", "ns")[0], 0)
        self.assertEqual(self.redis.get("ns:resque:pace:paused:mail"), "operator")

    def test_mistakes_are_one_line_and_change_nothing(self):
        for argv in (
            ("pause",),
            ("pause", "mail", "--all"),
            ("pause", "--all", "--for", "5"),
            ("pause", "mail", "--for", "soon"),
            ("pause", "mail", "--for", "0"),
            ("resume",),
        ):
            code, text = self.pace(*argv)
            self.assertNotEqual(code, 0, argv)
            self.assertEqual(len(text.strip().splitlines()), 1, (argv, text))
            self.assertNotIn("Traceback", text)
        self.assertEqual(self.redis.keys("*"), [])

    def heartbeat(self, token: str, resque_id: str, alive: bool = True, **extra) -> None:
        self.redis.hset(
            "resque:pace:workers", token, json.dumps({"resque_id": resque_id, "lists": [], **extra})
        )
        if alive:
            self.redis.set(f"resque:pace:heartbeat:{token}", "1", px=30_000)

    def test_check(self):
        code, text = self.pace("check")
        self.assertEqual(code, 1)
        self.assertIn("no live Pace worker", text)
        self.heartbeat("h:1:a", "h:1:mail,bulk")
        self.heartbeat("h:2:b", "h:2:sms", alive=False)
        self.assertEqual(self.pace("check")[0], 0)
        self.assertEqual(self.pace("check", "--queue", "mail", "--queue", "bulk")[0], 0)
        code, text = self.pace("check", "--queue", "mail", "--queue", "sms")
        self.assertEqual(code, 1)
        self.assertEqual(text.strip().splitlines(), [text.strip()])
        self.assertIn("sms", text)

    def test_check_reads_queues_from_the_registration_when_there(self):
        self.heartbeat("h:1:a", "odd-name", queues=["a:b"])
        self.assertEqual(self.pace("check", "--queue", "a:b")[0], 0)

    def test_check_with_redis_down_says_so(self):
        buffer = io.StringIO()
        code = cli.main(["--redis-url", "redis://127.0.0.1:1/0", "check"], Output(buffer))
        self.assertEqual(code, 1)
        self.assertEqual(len(buffer.getvalue().strip().splitlines()), 1)

    def test_stats_shows_fleet_pauses(self):
        self.redis.sadd("resque:queues", "mail", "bulk", "sms")
        self.pace("pause", "mail")
        self.pace("pause", "bulk", "--for", "120")
        code, text = self.pace("stats")
        self.assertEqual(code, 0, text)
        self.assertRegex(
            text, r"paused for the fleet: bulk \(1[12]\ds more\), mail \(until resumed\)"
        )
        self.assertNotIn("pause-all-workers", text)
        self.pace("pause", "--all")
        code, text = self.pace("stats", "--json")
        data = json.loads(text)
        self.assertEqual(set(data["paused_queues"]), {"mail", "bulk"})
        self.assertIsNone(data["paused_queues"]["mail"])
        self.assertTrue(data["pause_all_workers"])
