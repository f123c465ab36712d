"""
The README's example runs as printed, so the docs cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support import RedisTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        return f.read()


def readme_example() -> str:
    text = readme()
    marker = text.index("<!-- README example")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


class ReadmeTests(RedisTestCase):
    def test_example_runs(self):
        out = subprocess.run(
            [sys.executable, "-c", readme_example()],
            env=dict(os.environ, REDIS_URL=self.url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(
            sorted(out.stdout.splitlines()),
            [
                "done: SendEmail ['ada@example.com']",
                "done: SendEmail ['grace@example.com']",
            ],
        )
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")
        self.assertEqual(self.redis.llen("resque:queue:normal"), 0)


class ReadmeSnippetTests(RedisTestCase):
    def test_every_python_snippet_imports_what_it_uses(self):
        # Each runs alone, as a reader pastes it: nothing assumed imported.
        snippets = re.findall(r"```python\n(.*?)```", readme(), re.S)
        self.assertGreaterEqual(len(snippets), 2)
        router = snippets[1]
        namespace: dict = {}
        exec(compile(router, "README.md", "exec"), namespace)
        self.assertEqual(namespace["router"].classes, ["SendEmail"])

    def test_scheduling_snippet_runs(self):
        from twisted.internet import defer

        import pace

        [snippet] = [
            s for s in re.findall(r"```python\n(.*?)```", readme(), re.S) if "enqueue_in" in s
        ]
        namespace: dict = {}
        exec(compile(snippet, "README.md", "exec"), namespace)
        self.assertEqual(namespace["worker"].retry.attempts, 5)
        self.assertEqual(namespace["router"].retry_for("Charge").attempts, 3)
        pace.redis_url = self.url
        d = defer.Deferred.fromCoroutine(namespace["schedule"]())
        return d.addCallback(
            lambda _: self.assertEqual(self.redis.zcard("resque:delayed_queue_schedule"), 2)
        )

    def test_no_pointer_outside_the_repository(self):
        self.assertNotIn("shared/DESIGN.md", readme())

    def test_daemon_line_has_no_pid_file_and_parses(self):
        from pace import tap

        text = readme()
        line = re.search(r"^    twistd -n (.*?)\n\n", text, re.S | re.M).group(1)
        words = line.replace("\\\n", " ").split()
        self.assertEqual(words[0], "--pidfile=")
        args = words[words.index("pace") + 1 :]
        args[args.index("mypkg.jobs.handle")] = "tests.test_tap.handler"
        options = tap.Options()
        options.parseOptions(args)
        self.assertEqual(options["queue"], ["high", "normal"])
