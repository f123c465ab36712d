"""
Transient Redis errors never drop a result: with Redis out of memory the
acknowledgements, counters and failure records of settled jobs are kept and
written once it has room again, no job runs twice, and the worker fetches
nothing meanwhile. Results also survive a server that answers BUSY (a long
script) for a while. A permanent error (WRONGTYPE) is reported once, not
once a second.
"""

from __future__ import annotations

import json

import redis
from twisted.internet import defer, reactor, task, threads

import pace
from pace import fetchloop
from pace.enqueue import EnqueueError
from pace.redisserver import RedisServer
from tests.support import Logged, RedisTestCase, payload, until


class OwnServer(RedisTestCase):
    def own_server(self, *extra: str) -> tuple[RedisServer, redis.Redis]:
        own = RedisServer(None, None, *extra).start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, decode_responses=True)
        self.addCleanup(client.close)
        return own, client


class OutOfMemoryTests(OwnServer):
    @defer.inlineCallbacks
    def check_out_of_memory(self, reliable):
        own, client = self.own_server("--maxmemory-policy", "noeviction")
        n, first = 60, 10
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(n)])
        runs: dict[int, int] = {}
        gates: list[tuple[int, defer.Deferred]] = []

        def handler(job):
            i = job["args"][0]
            runs[i] = runs.get(i, 0) + 1
            if i < first:
                d = defer.Deferred()
                gates.append((i, d))
                return d
            return None

        w = self.worker(redis_url=own.url, concurrency=first, reliable=reliable, grace=1)
        self.started(w, handler)
        yield until(lambda: len(gates) == first)
        # Below what the server already uses: every write is refused (OOM).
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", used // 2)
        for i, d in gates:
            if i % 3 == 0:
                d.errback(RuntimeError(f"job {i} failed"))
            else:
                d.callback(None)
        books = w.parts.books
        # Jobs fetched before the first refusal came back run; from then on
        # the loop waits for results to be writable, and fetches nothing
        # through several refused retries, though a plain LPOP would still
        # be served.
        yield until(lambda: books.blocked and books._writable_waiters, timeout=20)
        ran, left, retries = len(runs), client.llen("resque:queue:q"), books._failures
        self.assertLess(ran, n)
        yield until(lambda: books._failures >= retries + 3, timeout=20)
        self.assertEqual(len(runs), ran)
        self.assertEqual(client.llen("resque:queue:q"), left)
        self.assertIsNone(client.get("resque:stat:processed"))
        client.config_set("maxmemory", 0)
        yield until(lambda: client.get("resque:stat:processed") == str(n), timeout=20)
        yield until(lambda: not w.in_flight)
        failed = len([i for i in range(first) if i % 3 == 0])
        self.assertEqual(sorted(runs), list(range(n)))
        self.assertEqual(set(runs.values()), {1})
        self.assertEqual(client.get("resque:stat:failed"), str(failed))
        records = [json.loads(r) for r in client.lrange("resque:failed", 0, -1)]
        self.assertEqual(
            sorted(r["payload"]["args"][0] for r in records),
            [i for i in range(first) if i % 3 == 0],
        )
        yield w.shutdown()
        # Every acknowledgement written: nothing left for a later worker to
        # recover and run a second time.
        self.assertEqual(client.keys("resque:pace:processing:*"), [])
        self.assertEqual(client.llen("resque:queue:q"), 0)

    def test_out_of_memory_reliable(self):
        return self.check_out_of_memory(True)

    def test_out_of_memory_at_most_once(self):
        return self.check_out_of_memory(False)

    @defer.inlineCallbacks
    def test_shutdown_ends_in_time_while_out_of_memory(self):
        own, client = self.own_server("--maxmemory-policy", "noeviction")
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(3)])
        gate = defer.Deferred()
        w = self.worker(redis_url=own.url, concurrency=3, grace=1)
        done = self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 3)
        client.config_set("maxmemory", 1)
        gate.callback(None)
        yield until(lambda: w.parts.books.blocked)
        t0 = reactor.seconds()
        yield w.shutdown()
        yield done
        self.assertLess(reactor.seconds() - t0, 1 + 5)
        client.config_set("maxmemory", 0)
        # The results were never written: the jobs are still in the
        # processing list, for a later worker. None lost.
        self.assertEqual(client.llen(w.parts.processing[0]), 3)


class BusyTests(OwnServer):
    @defer.inlineCallbacks
    def test_results_kept_while_redis_is_busy(self):
        # A server restarting with a large append-only file answers LOADING
        # for as long as it reads it; making that last on two shared cores
        # takes hundreds of MB. BUSY (a script running too long) is the same
        # path: an error reply that passes by itself.
        own, client = self.own_server("--busy-reply-threshold", "100")
        client.rpush("resque:queue:q", *[payload("J", i) for i in range(20)])
        gate = defer.Deferred()
        runs: list[int] = []

        def handler(job):
            runs.append(job["args"][0])
            return gate if job["args"][0] == 0 else None

        w = self.worker(redis_url=own.url, concurrency=1, grace=1)
        self.started(w, handler)
        yield until(lambda: runs == [0])
        logged = Logged(self)
        # A script that runs for 5 s (long enough for a loaded machine to look
        # while it runs): every other client hears BUSY.
        busy = redis.Redis(port=own.port)
        self.addCleanup(busy.close)
        spin = (
            "local t = redis.call('TIME') while true do "
            "if redis.call('TIME')[1] - t[1] >= 5 then return 1 end end"
        )
        # The EVAL blocks its caller: it runs off the reactor thread.
        blocking = threads.deferToThread(busy.eval, spin, 0)
        yield until(lambda: client_busy(own.port))
        gate.callback(None)
        yield until(logged.has("BUSY"), timeout=10)
        self.assertTrue(w.parts.books.blocked)
        yield blocking
        yield until(lambda: client.get("resque:stat:processed") == "20", timeout=20)
        self.assertEqual(sorted(runs), list(range(20)))
        yield w.shutdown()
        self.assertEqual(client.keys("resque:pace:processing:*"), [])


def client_busy(port: int) -> bool:
    c = redis.Redis(port=port, socket_timeout=1)
    try:
        c.ping()
    except redis.exceptions.BusyLoadingError:
        return True
    except redis.exceptions.ResponseError as e:
        return "BUSY" in str(e)
    finally:
        c.close()
    return False


class PermanentErrorTests(OwnServer):
    @defer.inlineCallbacks
    def test_noauth_says_the_server_wants_a_password(self):
        own, _ = self.own_server("--requirepass", "s3cret")
        logged = Logged(self)
        w = self.worker(redis_url=own.url, grace=1)
        yield self.assertFailure(w.start(lambda job: None), Exception)
        self.assertEqual(logged.count("could not start"), 1)
        self.assertEqual(logged.count("the server wants a password"), 1)
        e = yield self.assertFailure(
            pace.enqueue("q", "J", redis_url=own.url, timeout=5), EnqueueError
        )
        self.assertIn("NOAUTH", str(e))
        self.assertIn("the server wants a password", str(e))

    @defer.inlineCallbacks
    def test_wrongtype_on_a_queue_is_reported_once(self):
        clock = task.Clock()
        self.redis.set("resque:queue:q", "x")
        logged = Logged(self)
        reported = []
        w = self.worker(reliable=False, clock=clock, log_interval=None)
        w.add_hook("error", lambda json, failure: reported.append(failure))
        self.started(w, lambda job: None)
        loop = w.parts.loop
        yield until(lambda: loop._errors >= 1)
        # A minute of backoffs, the clock advanced unevenly and late.
        for step in [0.05, 3, 0.7, 31, 12, 45, 2.5, 60, 90]:
            clock.advance(step)
            yield until(lambda: loop._waiting is not None and not loop._waiting.called)
        self.assertGreaterEqual(loop._errors, 5)
        self.assertEqual(len(reported), 1)
        self.assertIn("WRONGTYPE", str(reported[0].value))
        self.assertEqual(logged.count("WRONGTYPE"), 1)
        self.assertIn("holds another type", logged.lines()[-1] + "".join(logged.lines()))
        # Once the key is mended, fetching goes on (and says so).
        self.redis.delete("resque:queue:q")
        self.push("q", payload("J", 1))
        clock.advance(fetchloop.BACKOFF_PERMANENT * 2)
        yield until(lambda: self.redis.llen("resque:queue:q") == 0)
        yield until(logged.has("fetching from"))
