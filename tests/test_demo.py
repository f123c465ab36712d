"""
`make demo`, smoke-tested at a small size: its own redis-server (or
$REDIS_URL, touching only the demo queue), a local HTTP service, twistd
pace with examples/http.py, progress and a summary, everything stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import RedisTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DemoTests(RedisTestCase):
    def run_demo(self, redis_url: str | None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        if redis_url:
            env["REDIS_URL"] = redis_url
        return subprocess.run(
            [sys.executable, "-m", "pace.demo", "--jobs", "300"],
            cwd=ROOT,
            env=dict(env, PYTHONPATH=ROOT),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def test_demo_with_its_own_redis(self):
        out = self.run_demo(None)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Started a private redis-server", out.stdout)
        self.assertIn("300 / 300 done", out.stdout)
        self.assertIn("Done: 300 jobs", out.stdout)
        self.assertIn("0 failed", out.stdout)
        # Nothing left behind: no redis-server or twistd of the demo running.
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn("pace-demo", ps)

    def test_demo_with_redis_url_touches_only_its_queue(self):
        self.redis.set("users:data", "precious")
        self.redis.rpush("resque:queue:other", "not ours")
        out = self.run_demo(self.url)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("Using the Redis at $REDIS_URL", out.stdout)
        self.assertIn("'pace-demo:'", out.stdout)
        self.assertIn("Done: 300 jobs", out.stdout)
        self.assertEqual(self.redis.get("users:data"), "precious")
        self.assertEqual(self.redis.lrange("resque:queue:other", 0, -1), ["not ours"])
        self.assertEqual(self.redis.llen("pace-demo:resque:queue:pace-demo"), 0)
        self.assertEqual(self.redis.get("pace-demo:resque:stat:processed"), "300")
        # Everything the demo wrote is under its namespace.
        outside = [k for k in self.redis.keys("*") if not k.startswith("pace-demo:")]
        self.assertEqual(sorted(outside), ["resque:queue:other", "users:data"])
