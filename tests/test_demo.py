"""
`make demo`, smoke-tested at a small size: its own redis-server (or
$REDIS_URL, touching only the demo queue), a local HTTP service, twistd
pace with examples/http.py, progress and a summary, the worker's log kept,
plain lines through a pipe, one line for an unusable $REDIS_URL, a clean end
on Ctrl-C, and everything it started stopped.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

from tests.support import ROOT, RedisTestCase


def demo_env(redis_url: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return dict(env, PYTHONPATH=ROOT)


def closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


class DemoTests(RedisTestCase):
    def run_demo(self, redis_url: str | None, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pace.demo", "--jobs", "300", *extra],
            cwd=ROOT,
            env=demo_env(redis_url),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )

    def assert_nothing_left(self, out: str) -> None:
        # Nothing of this demo still running: its redis-server's port is
        # closed, and no twistd of this checkout serves the demo queue.
        for port in re.findall(r"redis-server \(.*\) on port (\d+)", out):
            self.assertTrue(closed(int(port)), f"redis-server on {port} still answers")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        ours = [line for line in ps.splitlines() if ROOT in line and "pace-demo" in line]
        self.assertEqual(ours, [])

    def test_demo_piped_through_cat(self):
        out = subprocess.run(
            f"{sys.executable} -m pace.demo --jobs 300 | cat",
            shell=True,
            cwd=ROOT,
            env=demo_env(None),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        text = out.stdout
        self.assertNotIn("\r", text)
        self.assertIn("Starting a private redis-server...", text)
        self.assertIn("Started a private redis-server", text)
        self.assertIn("Enqueueing 300 jobs", text)
        self.assertIn("300 / 300 done", text)
        self.assertIn("Done: 300 jobs", text)
        self.assertIn("0 failed", text)
        for line in text.splitlines():
            m = re.search(r"(\d+) in flight", line)
            if m:
                self.assertLessEqual(int(m.group(1)), 100, line)
        [log] = set(re.findall(r"The worker's log: (\S+)", text))
        with open(log) as f:
            logged = f.read()
        self.assertIn("starting up", logged)
        self.assertNotIn("Starting factory", logged)
        self.assertNotIn("Traceback", out.stdout + out.stderr)
        self.assert_nothing_left(text)

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

    def test_unreachable_redis_url_is_one_line(self):
        out = self.run_demo("redis://:hunter2@127.0.0.1:1/0")
        self.assertEqual(out.returncode, 1)
        self.assertNotIn("Traceback", out.stdout + out.stderr)
        [line] = [x for x in out.stdout.splitlines() if x.startswith("demo:")]
        self.assertIn("cannot use the Redis at $REDIS_URL (redis://:***@127.0.0.1:1/0)", line)
        self.assertNotIn("hunter2", out.stdout + out.stderr)

    def test_ctrl_c_ends_cleanly(self):
        # Ctrl-C on a terminal signals the whole foreground process group.
        proc = subprocess.Popen(
            [sys.executable, "-m", "pace.demo", "--jobs", "200000", "--quiet"],
            cwd=ROOT,
            env=demo_env(None),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            # As a terminal's shell starts it: a suite run in the background
            # (CI, `cmd &`) has SIGINT ignored, which exec would pass on.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.addCleanup(lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
        seen = b""
        deadline = time.monotonic() + 60
        while b"The worker's log" not in seen:
            self.assertLess(time.monotonic(), deadline, seen)
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                self.assertTrue(chunk, seen)
                seen += chunk
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        text = (seen + rest).decode()
        self.assertEqual(proc.returncode, 130, text)
        self.assertIn("Interrupted: stopping what the demo started", text)
        self.assertNotIn("Traceback", text)
        self.assert_nothing_left(text)
