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


def readme_example() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
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
