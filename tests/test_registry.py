"""
Tests for pace.registry: workers registered as Resque registers them and
removed on a clean stop; a dead worker pruned and its jobs put back at the
head of their queues, in order, exactly once; live workers left alone; and
the whole chain when a real worker process is killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from pace import keys
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.registry import Registry, fleet, queue_label
from tests.support import Recorder, RedisTestCase, payload, twistd_pace, until

QUEUE = "resque:queue:q"


class RecoveryTests(RedisTestCase):
    def register_dead(self, token: str, jobs: list[str]) -> str:
        processing = keys.processing_list(token, QUEUE)
        record = {"resque_id": f"{token}:q", "lists": [[QUEUE, processing]]}
        self.redis.hset(keys.pace_workers(), token, json.dumps(record))
        self.redis.sadd(keys.resque_workers(), f"{token}:q")
        self.redis.hset(keys.resque_heartbeats(), f"{token}:q", "2026-01-01T00:00:00+00:00")
        # Its deadline passed a minute ago, by the server's clock.
        seconds, micros = self.redis.time()
        self.redis.zadd(keys.deadlines(), {token: seconds * 1000 - 60000})
        if jobs:
            self.redis.rpush(processing, *jobs)
        return processing

    @defer.inlineCallbacks
    def test_dead_workers_jobs_run_first_in_order(self):
        dead = [payload("Dead", i) for i in range(3)]
        processing = self.register_dead("host:1:dead", dead)
        self.push("q", payload("Queued", 3))
        handler = Recorder(expected=4)
        w = self.worker(concurrency=1)
        self.started(w, handler)
        yield handler.done
        self.assertEqual(handler.args, [[0], [1], [2], [3]])
        self.assertEqual(self.redis.llen(processing), 0)
        # Pruned from Resque's registry; Pace's record stays a while, marked,
        # for jobs a worker that was only slow might still push.
        self.assertIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), "host:1:dead")))
        self.assertEqual(self.redis.smembers(keys.resque_workers()), {w.id})
        self.assertFalse(self.redis.hexists(keys.resque_heartbeats(), "host:1:dead:q"))
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_live_workers_are_left_alone(self):
        processing = self.register_dead("host:2:alive", [payload("Busy", 1)])
        self.redis.set(keys.heartbeat("host:2:alive"), "1", px=60000)
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        self.assertEqual(self.redis.llen(processing), 1)
        self.assertEqual(self.redis.llen(QUEUE), 0)
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_concurrent_sweeps_recover_exactly_once(self):
        self.register_dead("host:3:dead", [payload("J", i) for i in range(50)])
        conns = [RedisConnection(resolve_redis_url(self.url)) for _ in range(4)]
        for c in conns:
            self.addCleanup(c.disconnect)
        sweepers = [
            Registry(c, f"sweeper-{i}", f"h:{i}:q", [QUEUE], ["unused"], 30, Clock())
            for i, c in enumerate(conns)
        ]
        moved = yield defer.gatherResults([s.sweep() for s in sweepers])
        self.assertEqual(sorted(moved), [0, 0, 0, 50])
        self.assertEqual(self.redis.lrange(QUEUE, 0, -1), [payload("J", i) for i in range(50)])

    @defer.inlineCallbacks
    def test_heartbeat_and_clean_deregistration(self):
        clock = Clock()
        w = self.worker(heartbeat_ttl=9, clock=clock)
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        ttl = self.redis.pttl(keys.heartbeat(w.token))
        self.assertTrue(0 < ttl <= 9000, ttl)
        self.assertTrue(self.redis.hexists(keys.pace_workers(), w.token))
        self.redis.delete(keys.heartbeat(w.token))
        clock.advance(3)
        yield until(lambda: self.redis.exists(keys.heartbeat(w.token)))
        yield w.shutdown()
        self.assertFalse(self.redis.hexists(keys.pace_workers(), w.token))
        self.assertFalse(self.redis.exists(keys.heartbeat(w.token)))

    @defer.inlineCallbacks
    def test_registered_as_resque_registers_workers(self):
        import re

        self.push("q", payload("J", 1), "bad")
        w = self.worker(["q", "other"])
        gate = defer.Deferred()
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        self.assertEqual(w.id, f"{socket.gethostname()}:{os.getpid()}:q,other")
        self.assertEqual(self.redis.smembers("resque:workers"), {w.id})
        started = self.redis.get(f"resque:worker:{w.id}:started")
        self.assertRegex(started, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000$")
        beat = self.redis.hget("resque:workers:heartbeat", w.id)
        self.assertTrue(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", beat), beat)
        gate.callback(None)
        yield until(lambda: self.redis.get(f"resque:stat:processed:{w.id}") == "2")
        self.assertEqual(self.redis.get(f"resque:stat:failed:{w.id}"), "1")
        yield w.shutdown()
        self.assertEqual(self.redis.smembers("resque:workers"), set())
        self.assertEqual(self.redis.hgetall("resque:workers:heartbeat"), {})
        self.assertEqual(self.redis.keys("resque:worker:*"), [])
        self.assertEqual(self.redis.keys("resque:stat:*:*"), [])
        self.assertEqual(self.redis.get("resque:stat:processed"), "2")


class KillTests(RedisTestCase):
    def worker_process(self, concurrency: int, ttl: float) -> subprocess.Popen:
        return self.spawn(
            [sys.executable, "-m", "tests.worker_process", str(concurrency), str(ttl)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @defer.inlineCallbacks
    def test_kill_9_loses_nothing(self):
        n, concurrency = 3000, 20
        self.redis.rpush("resque:queue:work", *[payload("Job", i) for i in range(n)])
        in_flight_at_kills = 0
        for threshold in (300, 1200):
            proc = self.worker_process(concurrency, 1.0)
            yield until(lambda t=threshold: len(self.done_args()) >= t, timeout=60)
            proc.send_signal(signal.SIGKILL)
            yield until(lambda p=proc: p.poll() is not None)
            # What `pace stats` shows: the dead worker and the jobs it holds.
            held = {
                w["resque_id"]: sum(n for _, _, n in w["held"])
                for w in fleet(self.redis)
                if w["state"] != "pruned"
            }
            self.assertIn(f"{socket.gethostname()}:{proc.pid}:work", held)
            in_flight_at_kills += sum(
                self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")
            )
        survivor = self.worker_process(concurrency, 1.0)
        yield until(lambda: len(set(self.done_args())) == n, timeout=120)
        # Jobs done but not acknowledged when killed come back too, once
        # the survivor sweeps (after the grace, if it saw an outage).
        yield until(lambda: self.redis.keys("resque:pace:processing:*") == [], timeout=60)
        survivor.send_signal(signal.SIGTERM)
        yield until(lambda: survivor.poll() is not None, timeout=30)
        done = self.done_args()
        self.assertEqual(sorted(set(done)), list(range(n)))
        duplicates = len(done) - n
        self.assertLessEqual(duplicates, in_flight_at_kills)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
        # The killed workers' records stay a while, marked pruned, watched.
        records = [json.loads(r) for r in self.redis.hvals(keys.pace_workers())]
        self.assertEqual(len(records), 2)
        self.assertTrue(all("pruned" in r for r in records))


def _commands(r) -> dict:
    return {k[len("cmdstat_") :]: v["calls"] for k, v in r.info("commandstats").items()}


class NamesTests(RedisTestCase):
    def test_queue_labels_name_what_the_worker_reads(self):
        from pace import config

        self.assertEqual(queue_label(config.expand_queue_name("normal")), "normal")
        self.assertEqual(queue_label(config.expand_queue_name("resque:queue:foo:bar")), "foo:bar")
        self.assertEqual(queue_label(config.expand_queue_name("my:key")), "redis-key=my:key")
        import pace

        pace.namespace = "ns"
        self.assertEqual(queue_label(config.expand_queue_name("resque:queue:a:b")), "a:b")
        self.assertEqual(queue_label(config.expand_queue_name("my:key")), "redis-key=my:key")

    def test_processing_lists_hold_no_second_resque_prefix(self):
        # resque-web strips the first "resque:" after the namespace.
        for q in ("normal", "resque:queue:foo:bar", "resque:odd"):
            key = keys.processing_list("h:1:abc", pace_expand(q))
            self.assertTrue(key.startswith("resque:pace:processing:h:1:abc:"), key)
            self.assertNotIn("resque:", key[len("resque:") :], key)
        self.assertEqual(
            keys.processing_list("h:1:abc", pace_expand("resque:queue:foo:bar")),
            "resque:pace:processing:h:1:abc:foo:bar",
        )


def pace_expand(name: str) -> str:
    from pace.config import expand_queue_name

    return expand_queue_name(name)


class WorkingTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_working_is_the_oldest_real_job_without_per_job_writes(self):
        clock = Clock()
        clock.advance(1_764_600_000)
        gates = [defer.Deferred() for _ in range(50)]
        jobs = [payload("Slow", i) for i in range(50)]
        self.push("q", *jobs)
        w = self.worker(concurrency=50, clock=clock)
        self.started(w, lambda job: gates[job["args"][0]])
        yield until(lambda: w.in_flight == 50)
        before = _commands(self.redis).get("set", 0)
        clock.advance(0)
        key = f"resque:worker:{w.id}"
        yield until(lambda: self.redis.exists(key))
        record = json.loads(self.redis.get(key))
        self.assertEqual(record["payload"], json.loads(jobs[0]))
        self.assertEqual(record["queue"], "q")
        self.assertEqual(record["run_at"], "2025-12-01T14:40:00+00:00")
        self.assertEqual(record["in_flight"], 50)
        self.assertTrue(0 < self.redis.pttl(key) <= 5000)
        # 50 jobs started: one write.
        self.assertEqual(_commands(self.redis)["set"] - before, 1)
        gates[0].callback(None)
        clock.advance(1)
        yield until(lambda: json.loads(self.redis.get(key))["payload"]["args"] == [1])
        for g in gates[1:]:
            g.callback(None)
        yield until(lambda: w.in_flight == 0)
        clock.advance(1)
        yield until(lambda: not self.redis.exists(key))
        yield w.shutdown()


class SweepTests(RedisTestCase):
    register_dead = RecoveryTests.register_dead

    def sweeper(self, name: str = "sweeper", ttl: float = 30, clock=None) -> Registry:
        conn = RedisConnection(resolve_redis_url(self.url))
        self.addCleanup(conn.disconnect)
        return Registry(
            conn,
            name,
            f"h:{name}:q",
            [QUEUE],
            [keys.processing_list(name, QUEUE)],
            ttl,
            clock or Clock(),
        )

    @defer.inlineCallbacks
    def test_a_sweep_is_one_call_that_looks_at_due_workers_only(self):
        seconds, _ = self.redis.time()
        pipe = self.redis.pipeline(transaction=False)
        for i in range(10_000):
            token = f"h:{i}:live"
            record = {"resque_id": f"{token}:q", "lists": [[QUEUE, f"p{i}"]]}
            pipe.hset(keys.pace_workers(), token, json.dumps(record))
            pipe.zadd(keys.deadlines(), {token: seconds * 1000 + 60000})
        pipe.execute()
        for i in range(3):
            self.register_dead(f"h:{i}:dead", [payload("D", i)])
        s = self.sweeper()
        before = _commands(self.redis)
        moved = yield s.sweep()
        after = _commands(self.redis)
        self.assertEqual(moved, 3)
        self.assertEqual(after["evalsha"] - before.get("evalsha", 0), 1)
        calls = sum(after.values()) - sum(before.values())
        # Per dead worker a handful of commands; nothing per live one.
        self.assertLess(calls, 60, calls)

    @defer.inlineCallbacks
    def test_after_an_outage_nobody_is_judged_dead_during_the_grace(self):
        self.register_dead("h:1:slow", [payload("J", 1)])
        seconds, _ = self.redis.time()
        # The fleet's latest beat was 100 s ago: nobody could reach Redis.
        self.redis.hset(keys.fleet(), "last", seconds * 1000 - 100_000)
        s = self.sweeper(ttl=3)
        yield s.start()
        self.addCleanup(s.stop)
        quiet = int(self.redis.hget(keys.fleet(), "quiet_until"))
        self.assertGreaterEqual(quiet, seconds * 1000 + 15_000)
        self.assertEqual((yield s.sweep()), 0)
        self.assertEqual(self.redis.llen(QUEUE), 0)
        # The grace over, the worker that never came back is pruned.
        self.redis.hset(keys.fleet(), "quiet_until", 0)
        self.assertEqual((yield s.sweep()), 1)

    @defer.inlineCallbacks
    def test_jobs_pushed_after_a_prune_are_still_found(self):
        # The race: a slow worker is pruned; a move into its processing list
        # it sent before lands after; then it is killed before it beats.
        clock = Clock()
        slow = self.sweeper("slow", ttl=3, clock=clock)
        yield slow.start()
        self.assertTrue(slow.confirmed())
        slow._ticker.stop()  # killed: never beats again
        self.redis.delete(keys.heartbeat("slow"))
        seconds, _ = self.redis.time()
        self.redis.zadd(keys.deadlines(), {"slow": seconds * 1000 - 1})
        other = self.sweeper("other")
        self.assertEqual((yield other.sweep()), 0)
        self.assertFalse(self.redis.sismember(keys.resque_workers(), "h:slow:q"))
        self.redis.rpush(keys.processing_list("slow", QUEUE), payload("Late", 1))
        # Its record is still watched: the next look puts the job back.
        self.redis.zadd(keys.deadlines(), {"slow": seconds * 1000 - 1})
        self.assertEqual((yield other.sweep()), 1)
        self.assertEqual(self.redis.lrange(QUEUE, 0, -1), [payload("Late", 1)])
        # And a worker that Redis has not confirmed for a TTL takes no job.
        clock.advance(3)
        self.assertFalse(slow.confirmed())

    @defer.inlineCallbacks
    def test_an_unconfirmed_worker_fetches_nothing(self):
        from pace.fetch import Fetcher

        clock = Clock()
        slow = self.sweeper("slow", ttl=3, clock=clock)
        yield slow.start()
        self.addCleanup(slow.stop)
        conn = RedisConnection(resolve_redis_url(self.url), charset=None)
        self.addCleanup(conn.disconnect)
        plist = keys.processing_list("slow", QUEUE)
        fetcher = Fetcher(conn, conn, [QUEUE], [plist])
        fetcher.registered = slow.confirmed
        self.redis.rpush(QUEUE, payload("J", 1))
        clock.advance(3)
        got = yield fetcher.fetch(10, wait=False)
        self.assertEqual(got, [[]])
        self.assertEqual(self.redis.llen(QUEUE), 1)

    @defer.inlineCallbacks
    def test_fleet_shows_each_worker_and_the_jobs_it_holds(self):
        # What `pace stats` reads: alive, late (past its deadline, not yet
        # swept: a kill -9), pruned; and the jobs in each processing list.
        live = self.sweeper("live")
        yield live.start()
        self.addCleanup(live.stop)
        self.redis.rpush(keys.processing_list("live", QUEUE), payload("L", 1))
        self.register_dead("h:1:late", [payload("D", 1), payload("D", 2)])
        rows = {w["token"]: w for w in fleet(self.redis)}
        self.assertEqual(rows["live"]["state"], "alive")
        self.assertEqual(rows["live"]["held"], [("q", keys.processing_list("live", QUEUE), 1)])
        self.assertEqual(rows["h:1:late"]["state"], "late")
        self.assertEqual(rows["h:1:late"]["resque_id"], "h:1:late:q")
        self.assertEqual([n for _, _, n in rows["h:1:late"]["held"]], [2])
        yield live.sweep()
        rows = {w["token"]: w for w in fleet(self.redis)}
        self.assertEqual(rows["h:1:late"]["state"], "pruned")
        self.assertEqual([n for _, _, n in rows["h:1:late"]["held"]], [0])

    @defer.inlineCallbacks
    def test_records_from_before_deadlines_are_adopted(self):
        token = "host:9:legacy"
        plist = keys.processing_list(token, QUEUE)
        record = {"resque_id": f"{token}:q", "lists": [[QUEUE, plist]]}
        self.redis.hset(keys.pace_workers(), token, json.dumps(record))
        self.redis.rpush(plist, payload("Old", 1))
        alive = "host:10:legacy"
        self.redis.hset(keys.pace_workers(), alive, json.dumps({"resque_id": "x", "lists": []}))
        self.redis.set(keys.heartbeat(alive), "1", px=60000)
        s = self.sweeper()
        yield s.start()
        self.addCleanup(s.stop)
        self.assertEqual(self.redis.lrange(QUEUE, 0, -1), [payload("Old", 1)])
        self.assertNotIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), alive)))


class LivenessTests(RedisTestCase):
    """
    Real reactor, real time: the heartbeats' own thread, a wall-clock step,
    a stalled reactor, a Redis outage.
    """

    def registry(self, name: str, ttl: float) -> Registry:
        from twisted.internet import reactor

        conn = RedisConnection(resolve_redis_url(self.url))
        self.addCleanup(conn.disconnect)
        r = Registry(
            conn, name, f"h:{name}:q", [QUEUE], [keys.processing_list(name, QUEUE)], ttl, reactor
        )
        self.addCleanup(r.stop)
        return r

    def deadline(self, token: str) -> float:
        return self.redis.zscore(keys.deadlines(), token) or 0

    @defer.inlineCallbacks
    def test_a_wall_clock_step_back_delays_no_heartbeat(self):
        import time

        from twisted.internet import reactor

        a = self.registry("a", ttl=1.2)
        yield a.start()
        first = self.deadline("a")
        # Twisted's timers follow the wall clock: step it back 40 s.
        self.patch(reactor, "seconds", lambda: time.time() - 40)
        yield until(lambda: self.deadline("a") > first + 1500, timeout=5)
        b = self.registry("b", ttl=1.2)
        yield b.sweep()
        self.assertNotIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), "a")))

    @defer.inlineCallbacks
    def test_a_stalled_reactor_is_reported_and_not_taken_for_dead(self):
        import time

        from twisted.internet import reactor
        from twisted.logger import globalLogPublisher

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        a = self.registry("a", ttl=4.5)
        yield a.start()
        reactor.callLater(0, time.sleep, 2)
        yield until(lambda: any("late" in e.get("log_format", "") for e in events), timeout=10)
        lag = [e for e in events if "ran {lag" in e.get("log_format", "")]
        self.assertGreater(lag[0]["lag"], 1.0)
        b = self.registry("b", ttl=4.5)
        yield b.sweep()
        self.assertNotIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), "a")))

    @defer.inlineCallbacks
    def test_outage_longer_than_the_ttl_runs_no_job_twice(self):
        from twisted.internet import reactor, task

        runs: list[int] = []

        def handler(job):
            runs.append(job["args"][0])
            return task.deferLater(reactor, 3, lambda: None)

        n = 30
        self.push("q", *[payload("J", i) for i in range(n)])
        workers = [self.worker(concurrency=10, heartbeat_ttl=1.0) for _ in range(3)]
        for w in workers:
            self.started(w, handler)
        yield until(lambda: len(runs) == n, timeout=15)
        # Redis frozen for 3 TTLs while every job is in flight.
        self.server.process.send_signal(signal.SIGSTOP)
        try:
            yield task.deferLater(reactor, 3.0, lambda: None)
        finally:
            self.server.process.send_signal(signal.SIGCONT)
        ids = {w.token for w in workers}
        yield until(
            lambda: (
                sum(self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")) == 0
            ),
            timeout=30,
        )
        # Several sweeps later: nobody was taken for dead, nothing ran twice.
        yield task.deferLater(reactor, 3.0, lambda: None)
        self.assertEqual(sorted(runs), list(range(n)))
        for token in ids:
            self.assertNotIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), token)))
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)


class _Gate:
    """
    A loopback TCP proxy to the test's Redis that can cut its clients off
    and refuse new ones (Redis unreachable for them), then let them in again.
    """

    def __init__(self, target: int):
        self.target = target
        self.conns: set = set()
        self.port: Any = None
        self.number = 0
        self.open()

    def open(self) -> None:
        from twisted.internet import reactor
        from twisted.protocols import portforward

        gate = self

        class Server(portforward.ProxyServer):
            def connectionMade(self) -> None:
                gate.conns.add(self)
                super().connectionMade()

            def connectionLost(self, reason: Any) -> None:
                gate.conns.discard(self)
                super().connectionLost(reason)

        factory = portforward.ProxyFactory("127.0.0.1", self.target)
        factory.protocol = Server
        factory.noisy = False
        self.port = reactor.listenTCP(self.number, factory, interface="127.0.0.1")
        self.number = self.port.getHost().port

    def cut(self) -> defer.Deferred:
        port, self.port = self.port, None
        for c in list(self.conns):
            c.transport.abortConnection()
            if c.peer is not None:
                c.peer.transport.abortConnection()
        return port.stopListening() if port is not None else defer.succeed(None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.number}/0"


class StaggeredOutageTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_workers_back_late_from_an_outage_are_not_taken_for_dead(self):
        # Redis unreachable for everyone for longer than the TTL; A and B
        # come back ~10 s before C (reconnect backoff): without the grace,
        # their sweeps would prune C and run its jobs a second time.
        from twisted.internet import reactor, task

        runs: list = []
        ends: list[defer.Deferred] = []

        def handler(job):
            runs.append(tuple(job["args"]))
            ends.append(defer.Deferred())
            return ends[-1]

        gates = {}
        workers = {}
        for q in "abc":
            self.push(q, *[payload("J", q, i) for i in range(5)])
            gates[q] = _Gate(self.server.port)
            self.addCleanup(gates[q].cut)
            workers[q] = self.worker(q, redis_url=gates[q].url, concurrency=5, heartbeat_ttl=3)
            self.started(workers[q], handler)
        yield until(lambda: len(runs) == 15, timeout=15)
        for g in gates.values():
            yield g.cut()
        yield task.deferLater(reactor, 6, lambda: None)
        gates["a"].open()
        gates["b"].open()
        yield task.deferLater(reactor, 8, lambda: None)
        gates["c"].open()
        c = workers["c"].token
        self.assertLess(self.redis.zscore(keys.deadlines(), c), _server_ms(self.redis))
        yield until(
            lambda: self.redis.zscore(keys.deadlines(), c) > _server_ms(self.redis), timeout=30
        )
        for d in ends:
            d.callback(None)
        yield until(
            lambda: (
                sum(self.redis.llen(k) for k in self.redis.keys("resque:pace:processing:*")) == 0
            ),
            timeout=30,
        )
        self.assertEqual(sorted(runs), sorted((q, i) for q in "abc" for i in range(5)))
        for w in workers.values():
            self.assertNotIn("pruned", json.loads(self.redis.hget(keys.pace_workers(), w.token)))

    test_workers_back_late_from_an_outage_are_not_taken_for_dead.timeout = 90  # type: ignore


def _server_ms(r) -> int:
    seconds, micros = r.time()
    return seconds * 1000 + micros // 1000


class DaemonPidTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_the_registered_pid_is_the_daemons(self):
        pidfile = os.path.abspath(self.mktemp())
        log = os.path.abspath(self.mktemp())
        proc = self.spawn(
            twistd_pace(
                log,
                "--queue",
                "work",
                "--handler",
                "tests.daemon_handlers.slow",
                "--redis-url",
                self.url,
                pidfile=pidfile,
            )
        )
        yield until(lambda: proc.poll() is not None, timeout=30)  # the parent exits
        yield until(
            lambda: os.path.exists(pidfile) and self.redis.scard("resque:workers"), timeout=30
        )
        with open(pidfile) as f:
            pid = int(f.read())
        self.addCleanup(lambda: _kill(pid))
        (worker,) = self.redis.smembers("resque:workers")
        self.assertNotEqual(pid, proc.pid)
        self.assertEqual(worker, f"{socket.gethostname()}:{pid}:work")
        os.kill(pid, signal.SIGTERM)
        yield until(lambda: not self.redis.smembers("resque:workers"), timeout=30)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
