"""
A second SIGTERM to a real `twistd -n pace` whose jobs never settle stops
it at once: it exits within about a second of the second signal, says so
in one log line without a traceback, and every job is back in its queue.
"""

from __future__ import annotations

import json
import os
import signal

from twisted.internet import defer, reactor

from tests.support import RedisTestCase, payload, twistd_pace, until


class SecondSignalTests(RedisTestCase):
    def daemon(self, *extra: str):
        self.log = os.path.abspath(self.mktemp())
        cmd = twistd_pace(self.log, "--queue", "work")
        cmd += ["--redis-url", self.url, *extra]
        return self.spawn(cmd)

    def output(self) -> str:
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""

    @defer.inlineCallbacks
    def check_second_signal(self, sig):
        jobs = [payload("Forever", i) for i in range(5)]
        self.push("work", *jobs)
        proc = self.daemon(
            "--handler", "tests.daemon_handlers.forever", "--grace", "30", "--concurrency", "2"
        )
        yield until(lambda: self.redis.llen("resque:queue:started") == 2, timeout=30)
        proc.send_signal(sig)
        yield until(lambda: "shutting down (2 jobs in flight" in self.output(), timeout=10)
        self.assertIsNone(proc.poll())
        t0 = reactor.seconds()
        proc.send_signal(sig)
        yield until(lambda: proc.poll() is not None, timeout=10)
        self.assertLess(reactor.seconds() - t0, 3)
        out = self.output()
        self.assertNotIn("Traceback", out)
        self.assertNotIn("ReactorNotRunning", out)
        self.assertEqual(out.count("stopping now"), 1, out)
        # The running jobs went back first, then the ones never fetched.
        left = self.redis.lrange("resque:queue:work", 0, -1)
        self.assertEqual([json.loads(p)["args"] for p in left], [[i] for i in range(5)])
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    def test_second_sigterm_stops_now(self):
        return self.check_second_signal(signal.SIGTERM)

    def test_second_sigint_stops_now(self):
        return self.check_second_signal(signal.SIGINT)
