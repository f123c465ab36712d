"""
Fleet pauses in Redis: pace.pause_queue / resume_queue, Resque's
pause-all-workers switch, and a worker's PauseWatch reading them.
"""

from __future__ import annotations

from twisted.internet import defer, reactor

import pace
from pace import keys
from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.queuepause import PauseWatch, is_pause_all
from tests.support import RedisTestCase, until


class PauseQueueTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_pause_sets_a_key_and_resume_deletes_it(self) -> None:
        yield pace.pause_queue("mail", redis_url=self.url)
        self.assertEqual(self.redis.get("resque:pace:paused:mail"), "operator")
        self.assertEqual(self.redis.ttl("resque:pace:paused:mail"), -1)
        yield pace.resume_queue("mail", redis_url=self.url)
        self.assertIsNone(self.redis.get("resque:pace:paused:mail"))

    @defer.inlineCallbacks
    def test_a_timed_pause_ends_by_itself(self) -> None:
        yield pace.pause_queue("mail", seconds=30, redis_url=self.url)
        ttl = self.redis.pttl("resque:pace:paused:mail")
        self.assertGreater(ttl, 29_000)
        self.assertLessEqual(ttl, 30_000)

    def test_bad_seconds_and_names_are_refused(self) -> None:
        for seconds in (0, -1, "5", True):
            self.assertRaises(ValueError, pace.pause_queue, "mail", seconds)
        self.assertRaises(ValueError, pace.pause_queue, "")

    @defer.inlineCallbacks
    def test_namespace_applies(self) -> None:
        pace.namespace = "ns"
        yield pace.pause_queue("mail", redis_url=self.url)
        self.assertEqual(self.redis.get("ns:resque:pace:paused:mail"), "operator")
        self.assertEqual(keys.pause_all_workers(), "ns:resque:pause-all-workers")

    def test_pause_all_reads_as_resque_does(self) -> None:
        for value in ("true", "TRUE", " True\n", b"true"):
            self.assertTrue(is_pause_all(value))
        for value in (None, "false", "1", "yes", ""):
            self.assertFalse(is_pause_all(value))


class PauseWatchTests(RedisTestCase):
    def watch(self, queues=("resque:queue:mail", "resque:queue:bulk"), own=None):
        conn = RedisConnection(resolve_redis_url(self.url))
        self.addCleanup(conn.disconnect)
        self.changes: list[bool] = []
        w = PauseWatch(conn, list(queues), reactor, self.changes.append, own=own)
        self.addCleanup(w.stop)
        return w

    @defer.inlineCallbacks
    def test_a_pause_of_any_queue_of_the_worker_pauses_it(self) -> None:
        w = self.watch()
        yield w.start()
        self.assertFalse(w.paused)
        yield pace.pause_queue("bulk", redis_url=self.url)
        yield w.check()
        self.assertTrue(w.paused)
        self.assertEqual(w.paused_queues, {"resque:queue:bulk"})
        yield pace.resume_queue("bulk", redis_url=self.url)
        yield w.check()
        self.assertFalse(w.paused)
        self.assertEqual(self.changes, [True, False])

    @defer.inlineCallbacks
    def test_it_reads_by_itself_twice_a_second(self) -> None:
        w = self.watch()
        yield w.start()
        yield pace.pause_queue("mail", seconds=1.2, redis_url=self.url)
        yield until(lambda: self.changes, timeout=5)
        self.assertEqual(self.changes, [True])
        # ...and sees the TTL run out.
        yield until(lambda: self.changes == [True, False], timeout=5)

    @defer.inlineCallbacks
    def test_resques_pause_all_workers(self) -> None:
        w = self.watch()
        self.redis.set("resque:pause-all-workers", "true")
        yield w.start()
        self.assertTrue(w.paused)
        self.assertTrue(w.pause_all)
        self.redis.delete("resque:pause-all-workers")
        yield w.check()
        self.assertFalse(w.paused)

    @defer.inlineCallbacks
    def test_its_own_circuit_pause_does_not_stop_this_worker(self) -> None:
        w = self.watch(own="me")
        yield pace.pause_queue("mail", redis_url=self.url, by="me")
        yield w.start()
        self.assertFalse(w.paused)
        self.assertEqual(w.paused_queues, {"resque:queue:mail"})
        yield pace.pause_queue("mail", redis_url=self.url, by="someone else")
        yield w.check()
        self.assertTrue(w.paused)
