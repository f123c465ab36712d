"""
Fleet control with real `twistd -n pace` workers: four sharing a limit,
checked window by window from the start times they record; a queue pause
reaching three workers; Resque's pause-all-workers set by `pace pause --all`;
burst mode; `pace check` against live and killed workers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from twisted.internet import defer, reactor

import pace
from tests.support import ROOT, RedisTestCase, payload, twistd_pace, until


def windows(times: list[float], width: float) -> int:
    """
    The most starts in any window [t, t + width) that begins at a start.
    """
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def hold(seconds: float) -> defer.Deferred:
    # Only to let time pass where the point is that nothing happens.
    d: defer.Deferred = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


class FleetTests(RedisTestCase):
    timeout = 120

    def daemon(self, *extra: str, handler: str = "tests.fleet_handlers.stamp"):
        log = os.path.abspath(self.mktemp())
        cmd = twistd_pace(log, "--queue", "work")
        cmd += ["--handler", handler, "--redis-url", self.url, "--log-interval", "0", *extra]
        return self.spawn(cmd)

    def pace_cli(self, *argv: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, PYTHONPATH=ROOT)
        cmd = [sys.executable, "-m", "pace.cli", "--redis-url", self.url, *argv]
        return subprocess.run(
            cmd,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def starts(self) -> list[dict]:
        raw = self.redis.lrange("resque:queue:starts", 0, -1)
        return [json.loads(json.loads(p)["args"][0]) for p in raw]

    def registered(self) -> int:
        return self.redis.hlen("resque:pace:workers")

    @defer.inlineCallbacks
    def test_four_workers_share_a_limit_window_by_window(self):
        rate, n = 25, 200
        procs = [self.daemon("--shared-limit", f"api={rate}") for _ in range(4)]
        yield until(lambda: self.registered() == 4, timeout=60)
        self.push("work", *[payload("Job", i) for i in range(n)])
        yield until(lambda: len(self.starts()) == n, timeout=60)
        starts = self.starts()
        times = sorted(s["t"] for s in starts)
        self.assertEqual(sorted(s["args"][0] for s in starts), list(range(n)))
        # No one-second window above the rate, start-up included...
        self.assertLessEqual(windows(times, 1.0), rate)
        # ...spread evenly: no 100 ms window above twice its share...
        self.assertLessEqual(windows(times, 0.1), 2 * rate / 10)
        # ...at least 95 % of the rate while there is a backlog...
        reached = (n - 1) / (times[-1] - times[0])
        self.assertGreaterEqual(reached, 0.95 * rate)
        # ...and no process starved.
        per = {p.pid: 0 for p in procs}
        for s in starts:
            per[s["pid"]] += 1
        self.assertGreaterEqual(min(per.values()), n / 4 / 2, per)

    @defer.inlineCallbacks
    def test_a_queue_pause_reaches_three_workers_within_a_second(self):
        for _ in range(3):
            self.daemon("--jobs-per-second", "10", "--concurrency", "5")
        yield until(lambda: self.registered() == 3, timeout=60)
        self.push("work", *[payload("Job", i) for i in range(400)])
        yield until(lambda: len({s["pid"] for s in self.starts()}) == 3, timeout=30)
        yield pace.pause_queue("work", redis_url=self.url)
        paused_at = time.time()
        yield hold(3.0)
        starts = self.starts()
        late = [s["t"] - paused_at for s in starts if s["t"] > paused_at + 1.2]
        self.assertEqual(late, [])
        count = len(starts)
        yield pace.resume_queue("work", redis_url=self.url)
        yield until(lambda: len({s["pid"] for s in self.starts()[count:]}) == 3, timeout=30)

    @defer.inlineCallbacks
    def test_a_timed_pause_ends_by_itself(self):
        self.daemon()
        yield until(lambda: self.registered() == 1, timeout=60)
        yield pace.pause_queue("work", seconds=3, redis_url=self.url)
        paused_at = time.time()
        yield hold(1.2)
        self.push("work", payload("Job", 1))
        yield until(lambda: len(self.starts()) == 1, timeout=30)
        # Not before the pause ran out, and soon after.
        self.assertGreaterEqual(self.starts()[0]["t"], paused_at + 2.9)
        self.assertLess(self.starts()[0]["t"], paused_at + 3 + 2)

    @defer.inlineCallbacks
    def test_pace_pause_all_is_honoured_and_resume_all_ends_it(self):
        self.daemon()
        yield until(lambda: self.registered() == 1, timeout=60)
        done = yield reactor_thread(self.pace_cli, "pause", "--all")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.redis.get("resque:pause-all-workers"), "true")
        yield hold(1.5)
        self.push("work", *[payload("Job", i) for i in range(5)])
        yield hold(2.0)
        self.assertEqual(self.starts(), [])
        done = yield reactor_thread(self.pace_cli, "resume", "--all")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIsNone(self.redis.get("resque:pause-all-workers"))
        yield until(lambda: len(self.starts()) == 5, timeout=30)

    @defer.inlineCallbacks
    def test_burst_processes_what_is_queued_and_exits_0(self):
        self.push("work", *[payload("Job", i) for i in range(20)])
        proc = self.daemon(
            "--burst", "--shared-limit", "api=40", handler="tests.fleet_handlers.fail_odd"
        )
        yield until(lambda: proc.poll() is not None, timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(sorted(s["args"][0] for s in self.starts()), list(range(0, 20, 2)))
        self.assertEqual(self.redis.llen("resque:failed"), 10)
        self.assertEqual(self.redis.llen("resque:queue:work"), 0)

    @defer.inlineCallbacks
    def test_check_counts_live_workers_only(self):
        done = yield reactor_thread(self.pace_cli, "check")
        self.assertEqual(done.returncode, 1)
        self.assertIn("no live Pace worker", done.stderr + done.stdout)
        proc = self.daemon("--heartbeat-ttl", "2")
        yield until(lambda: self.registered() == 1, timeout=60)
        done = yield reactor_thread(self.pace_cli, "check", "--queue", "work")
        self.assertEqual(done.returncode, 0, done.stderr)
        done = yield reactor_thread(self.pace_cli, "check", "--queue", "work", "--queue", "other")
        self.assertEqual(done.returncode, 1)
        self.assertIn("no live Pace worker for other", done.stderr + done.stdout)
        self.assertEqual(len((done.stderr + done.stdout).strip().splitlines()), 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.time()
        yield until(lambda: self.redis.keys("resque:pace:heartbeat:*") == [], timeout=10)
        self.assertLess(time.time() - killed, 2 + 1)
        done = yield reactor_thread(self.pace_cli, "check")
        self.assertEqual(done.returncode, 1)


def reactor_thread(fn, *args):
    from twisted.internet import threads

    return threads.deferToThread(fn, *args)


class CircuitInWorkerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_opens_waits_lets_one_through_and_closes(self):
        self.push("q", *[payload("Call", i) for i in range(20)])
        circuit = pace.Circuit(failures=3, window=5.0, cool_off=0.3)
        w = self.worker("q", concurrency=1, circuit=circuit)
        told = []
        w.add_hook("error", lambda json, failure: told.append((json, failure)))
        calls = []

        def handler(job):
            calls.append(job["args"][0])
            if len(calls) <= 4:  # three to open it, then the first trial job
                raise ConnectionError("remote service down")

        self.started(w, handler)
        yield until(lambda: len(calls) == 20 and not w.in_flight, timeout=20)
        # None was failed fast: the only failures are the jobs that ran.
        self.assertEqual(self.redis.get("resque:stat:failed"), "4")
        self.assertEqual(sorted(calls), list(range(20)))
        opened = [f for j, f in told if j is None]
        self.assertEqual(len(opened), 2)
        self.assertTrue(all(f.check(pace.CircuitOpen) for f in opened))
        self.assertEqual(circuit.state, "closed")
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_shared_pauses_the_queue_for_the_fleet(self):
        self.push("q", *[payload("Call", i) for i in range(5)])
        circuit = pace.Circuit(failures=2, cool_off=30.0, shared=True)
        w = self.worker("q", concurrency=1, circuit=circuit)
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: self.redis.get("resque:pace:paused:q") is not None, timeout=20)
        self.assertEqual(self.redis.get("resque:pace:paused:q"), w.token)
        self.assertGreater(self.redis.pttl("resque:pace:paused:q"), 30_000)
        other = self.worker("q")
        self.started(other, lambda job: None)
        yield until(lambda: other._fleet.blocked, timeout=10)
        self.assertEqual(self.redis.llen("resque:queue:q"), 3)
        yield w.shutdown()
        yield other.shutdown()
        self.flushLoggedErrors(ZeroDivisionError)

    @defer.inlineCallbacks
    def test_retried_failures_count_too(self):
        # With retries the failed attempts go back through the schedule,
        # not into resque:failed: the circuit must still see them.
        self.push("q", *[payload("Call", i) for i in range(5)])
        circuit = pace.Circuit(failures=2, cool_off=30.0)
        w = self.worker("q", concurrency=1, circuit=circuit, retry=pace.Retry(attempts=3, base=60))
        told = []
        w.add_hook("error", lambda json, failure: told.append(failure) if json is None else None)
        self.started(w, lambda job: 1 / 0)
        yield until(lambda: circuit.state == "open", timeout=20)
        self.assertEqual(self.redis.llen("resque:failed"), 0)
        self.assertTrue(told and told[0].check(pace.CircuitOpen))
        self.assertEqual(self.redis.llen("resque:queue:q"), 3)
        yield w.shutdown()
        self.flushLoggedErrors(ZeroDivisionError)


class SharedLimitInWorkerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_jobs_wait_for_slots_and_go_back_at_shutdown(self):
        limit = pace.SharedLimit("api", 4, redis_url=self.url)
        self.addCleanup(limit.disconnect)
        self.push("q", *[payload("Call", i) for i in range(40)])
        w = self.worker("q", shared_limit=limit, concurrency=50)
        seen = []
        self.started(w, lambda job: seen.append(job["args"][0]))
        yield until(lambda: len(seen) >= 2, timeout=20)
        yield w.shutdown()
        # Nothing lost: what did not start is back at the head, in order.
        left = [json.loads(p)["args"][0] for p in self.redis.lrange("resque:queue:q", 0, -1)]
        self.assertEqual(seen + left, list(range(40)))
        self.assertLess(len(seen), 10)

    @defer.inlineCallbacks
    def test_redis_frozen_mid_run_jobs_wait_and_no_burst_follows(self):
        rate = 10
        limit = pace.SharedLimit("api", rate, redis_url=self.url)
        self.addCleanup(limit.disconnect)
        self.push("q", *[payload("Call", i) for i in range(30)])
        w = self.worker("q", shared_limit=limit, concurrency=50)
        starts: list[float] = []
        self.started(w, lambda job: starts.append(time.time()))
        yield until(lambda: len(starts) >= 8, timeout=20)
        pid = self.server.process.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        frozen = time.time()
        yield hold(2.0)
        os.kill(pid, signal.SIGCONT)
        thawed = time.time()
        yield until(lambda: len(starts) == 30, timeout=30)
        # While frozen, only slots booked before it could be used...
        during = [t for t in starts if frozen + 0.2 < t < thawed]
        self.assertLessEqual(len(during), 1)
        # ...and what piled up does not come as a burst afterwards.
        self.assertLessEqual(windows(starts, 1.0), rate)
        yield w.shutdown()
