"""
Tests for ``pace queues clear`` and ``pace enqueue`` (pace/cli/queues.py,
pace/cli/enqueue.py) and the queue-name rule they share
(pace/cli/names.py): a name is a Resque queue name, colons and all.
"""

from __future__ import annotations

import json

import pace
from pace.cli.names import queue_key
from tests.cli_support import CLITestCase
from tests.support import payload


class NamesTests(CLITestCase):
    def test_queue_key(self):
        self.assertEqual(queue_key("foo:bar"), "resque:queue:foo:bar")
        pace.namespace = "ns"
        self.assertEqual(queue_key("normal"), "ns:resque:queue:normal")
        self.assertRaises(ValueError, queue_key, "")


class EnqueueTests(CLITestCase):
    def test_enqueue_parses_json_and_bare_words(self):
        code, out = self.pace("enqueue", "mail", "SendEmail", '"a@b.c"', "3", "{}", "word")
        self.assertEqual(code, 0, out)
        self.assertEqual(
            json.loads(self.redis.lindex("resque:queue:mail", 0)),
            {"class": "SendEmail", "args": ["a@b.c", 3, {}, "word"]},
        )
        self.assertEqual(self.redis.smembers("resque:queues"), {"mail"})

    def test_enqueue_on_a_queue_with_a_colon(self):
        code, out = self.pace("enqueue", "foo:bar", "Job")
        self.assertEqual(code, 0, out)
        self.assertEqual(self.redis.llen("resque:queue:foo:bar"), 1)
        self.assertEqual(self.redis.smembers("resque:queues"), {"foo:bar"})


class QueuesClearTests(CLITestCase):
    def test_needs_confirmation(self):
        self.push("q", payload("J"))
        code, out = self.pace("queues", "clear", "q")
        self.assertEqual(code, 1)
        self.assertIn("--yes", out)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        code, out = self.pace("queues", "clear", "--yes", "q")
        self.assertEqual(code, 0)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    def test_clear_a_queue_with_a_colon(self):
        self.redis.rpush("resque:queue:foo:bar", payload("J"), payload("J"))
        self.redis.rpush("foo:bar", "someone else's list")
        code, out = self.pace("queues", "clear", "foo:bar", "--yes")
        self.assertEqual(code, 0, out)
        self.assertIn("2 jobs deleted from foo:bar", out)
        self.assertEqual(self.redis.llen("resque:queue:foo:bar"), 0)
        self.assertEqual(self.redis.llen("foo:bar"), 1)

    def test_clear_an_empty_queue(self):
        code, out = self.pace("queues", "clear", "nothing")
        self.assertEqual(code, 0)
        self.assertIn("no jobs waiting", out)
