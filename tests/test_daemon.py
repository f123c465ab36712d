"""
A real daemon: `twistd -n pace` in a subprocess processes jobs, pauses on
SIGUSR2, resumes on SIGCONT, and on SIGTERM mid-stream exits within the
grace period with every job either done or back in its queue, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

from twisted.internet import defer

from pace.redisserver import RedisServer
from tests.support import RedisTestCase, payload, twistd_pace, until


class DaemonTests(RedisTestCase):
    def daemon(self, *extra: str) -> subprocess.Popen:
        self.log = os.path.abspath(self.mktemp())
        cmd = twistd_pace(
            self.log,
            "--queue",
            "work",
            "--handler",
            "tests.daemon_handlers.slow",
            "--redis-url",
            self.url,
            *extra,
        )
        return self.spawn(cmd)

    def logged(self, text: str) -> bool:
        try:
            with open(self.log) as f:
                return text in f.read()
        except OSError:
            return False

    def fetching(self) -> bool:
        # A worker that fetches has its fetch connection in a blocking pop
        # (flag "b": blocked on a list).
        return any("b" in c["flags"] for c in self.redis.client_list())

    @defer.inlineCallbacks
    def test_processes_pauses_resumes_and_stops(self):
        self.push("work", *[payload("Job", i) for i in range(20)])
        proc = self.daemon("--concurrency", "10")
        yield until(lambda: len(self.done_args()) == 20, timeout=30)
        self.assertEqual(sorted(self.done_args()), list(range(20)))

        yield until(self.fetching)
        proc.send_signal(signal.SIGUSR2)
        yield until(lambda: self.logged("paused") and not self.fetching(), timeout=15)
        self.push("work", *[payload("Job", i) for i in range(20, 25)])
        self.assertEqual(self.redis.llen("resque:queue:work"), 5)
        self.assertFalse(self.fetching())

        proc.send_signal(signal.SIGCONT)
        yield until(lambda: len(self.done_args()) == 25, timeout=15)

        proc.send_signal(signal.SIGTERM)
        yield until(lambda: proc.poll() is not None, timeout=30)
        # twistd ends by re-raising the signal that stopped it.
        self.assertIn(proc.returncode, (0, -signal.SIGTERM))
        self.assertTrue(self.logged("stopped"))
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def test_sigterm_mid_stream_loses_nothing(self):
        n = 400
        self.push("work", *[payload("Job", i) for i in range(n)])
        proc = self.daemon("--concurrency", "20", "--grace", "10")
        yield until(lambda: len(self.done_args()) >= 50, timeout=30)
        proc.send_signal(signal.SIGTERM)
        yield until(lambda: proc.poll() is not None, timeout=30)
        # twistd ends by re-raising the signal that stopped it.
        self.assertIn(proc.returncode, (0, -signal.SIGTERM))
        done = self.done_args()
        left = [json.loads(p)["args"][0] for p in self.redis.lrange("resque:queue:work", 0, -1)]
        # Every job ran or is back, none twice, and what is left is in order.
        self.assertEqual(sorted(done + left), list(range(n)))
        self.assertEqual(left, sorted(left))
        self.assertGreater(len(left), 0)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def test_sigquit_stops_gracefully(self):
        proc = self.daemon()
        yield until(self.fetching, timeout=30)
        proc.send_signal(signal.SIGQUIT)
        yield until(lambda: proc.poll() is not None, timeout=30)
        self.assertEqual(proc.returncode, 0)
        self.assertTrue(self.logged("stopped"))
        self.assertEqual(self.redis.smembers("resque:workers"), set())

    @defer.inlineCallbacks
    def test_exits_with_status_1_when_the_worker_cannot_run(self):
        own = RedisServer(None, None, "--requirepass", "right").start()
        self.addCleanup(own.cleanup)
        proc = self.daemon("--redis-url", f"redis://:wrong@127.0.0.1:{own.port}/0")
        yield until(lambda: proc.poll() is not None, timeout=30)
        self.assertEqual(proc.returncode, 1)
        self.assertTrue(self.logged("WRONGPASS"))
        with open(self.log) as f:
            self.assertNotIn(":wrong@", f.read())
