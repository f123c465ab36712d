"""
Tests for the ``pace`` command's Redis (pace/cli/connect.py): each Redis
error explained in one line, and the ``cli`` extra asked for by name when
redis-py or rich is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pace.cli.connect import explain
from tests.support import ROOT, RedisTestCase


def without(module: str, *argv: str) -> subprocess.CompletedProcess:
    # The command as it runs where `module` is not installed.
    code = (
        f"import sys; sys.modules[{module!r}] = None; from pace.cli import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=60,
    )


class ConnectTests(RedisTestCase):
    def test_explain(self):
        import redis

        url = "redis://:pw@127.0.0.1:1/0"
        self.assertIn("wants a password", explain(redis.AuthenticationError("NOAUTH x"), url))
        self.assertIn(
            "wants a password",
            explain(
                redis.ResponseError("HELLO must be called with the client already authenticated"),
                url,
            ),
        )
        self.assertIn("did not answer", explain(redis.TimeoutError("t"), url))
        self.assertNotIn(":pw@", explain(redis.ConnectionError("c"), url))
        self.assertIsNone(explain(ValueError("not redis"), url))

    def test_missing_redis_py_asks_for_the_extra(self):
        out = without("redis", "--redis-url", self.url, "stats")
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertEqual(
            out.stderr, "pace: error: the pace command needs redis-py: pip install 'txpace[cli]'\n"
        )
