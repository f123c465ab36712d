"""
Tests for graceful shutdown and pause/resume: nothing dropped, jobs not run
are back at the head of their queue in order, the grace period enforced.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.task import Clock

from tests.support import Recorder, RedisTestCase, payload, until


class ShutdownTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_waits_for_jobs_in_flight(self):
        gate = defer.Deferred()
        w = self.worker()
        self.push("q", payload("Slow", 1))
        done = self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        stopped = w.shutdown()
        yield until(lambda: not w.fetching)
        self.assertFalse(stopped.called)
        gate.callback(None)
        yield stopped
        yield done
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def check_unstarted_jobs_go_back_in_order(self, reliable):
        jobs = [payload("J", i) for i in range(30)]
        self.push("q", *jobs)
        w = self.worker(concurrency=10, reliable=reliable)
        started = []

        def handler(job):
            started.append(job)
            if len(started) == 3:
                # Shutdown from inside the batch: the rest of it never starts.
                w.shutdown()

        yield self.started(w, handler)
        self.assertEqual(len(started), 3)
        self.assertEqual(self.redis.lrange("resque:queue:q", 0, -1), jobs[3:])
        self.assertEqual(self.redis.get("resque:stat:processed"), "3")
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    def test_unstarted_jobs_go_back_in_order_reliable(self):
        return self.check_unstarted_jobs_go_back_in_order(True)

    def test_unstarted_jobs_go_back_in_order_plain(self):
        return self.check_unstarted_jobs_go_back_in_order(False)

    @defer.inlineCallbacks
    def test_jobs_still_running_at_the_deadline_go_back_first(self):
        clock = Clock()
        jobs = [payload("J", i) for i in range(6)]
        self.push("q", *jobs)
        self.redis.rpush("resque:queue:q", payload("Later", 99))
        cancelled = []
        w = self.worker(concurrency=4, grace=10, clock=clock)

        def handler(job):
            if job["args"] == [0]:
                return None
            return defer.Deferred(lambda d: cancelled.append(job["args"]))

        done = self.started(w, handler)
        yield until(lambda: w.in_flight == 4)
        stopped = w.shutdown()
        yield until(lambda: not w.fetching and clock.getDelayedCalls())
        clock.advance(9)
        self.assertFalse(stopped.called)
        clock.advance(1)
        yield stopped
        yield done
        self.assertEqual(sorted(cancelled), [[1], [2], [3], [4]])
        self.assertEqual(
            self.redis.lrange("resque:queue:q", 0, -1), jobs[1:] + [payload("Later", 99)]
        )
        self.assertEqual(self.redis.get("resque:stat:processed"), "1")
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])

    @defer.inlineCallbacks
    def test_idempotent(self):
        w = self.worker()
        done = self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        d1, d2 = w.shutdown(), w.shutdown()
        yield defer.gatherResults([d1, d2, done])
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_prompt_while_blocked_on_an_empty_queue(self):
        w = self.worker()
        done = self.started(w, lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        yield w.shutdown()
        yield done

    def test_before_start(self):
        w = self.worker()
        return w.shutdown()


class PauseTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_pause_stops_fetching_and_resume_starts_again(self):
        w = self.worker()
        handler = Recorder()
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        self.assertTrue(w.pause())
        self.assertTrue(w.paused)
        self.assertFalse(w.pause())
        yield until(lambda: not w.fetching)
        self.push("q", payload("J", 1))
        # The worker is idle: no fetch loop, nothing in flight.
        self.assertEqual((w.parts.loop.current, w.in_flight, handler.jobs), (None, 0, []))
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        self.assertTrue(w.resume())
        self.assertFalse(w.resume())
        yield until(lambda: handler.jobs)
        self.assertEqual(handler.args, [[1]])
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_resume_twice_while_blocked_starts_no_second_loop(self):
        w = self.worker()
        self.started(w, lambda job: None)
        yield until(lambda: w.parts.fetcher._blocked)
        loop = w.parts.loop.current
        w.pause()
        w.resume()
        w.resume()
        self.assertIs(w.parts.loop.current, loop)
        # Count fetches in flight at once: one loop means never more than one.
        active, peak = [0], [0]
        original = w.parts.fetcher.fetch

        def fetch(n, wait=True):
            active[0] += 1
            peak[0] = max(peak[0], active[0])

            def done(result):
                active[0] -= 1
                return result

            return original(n, wait).addBoth(done)

        w.parts.fetcher.fetch = fetch
        w.pause()
        w.resume()
        self.push("q", *[payload("J", i) for i in range(5)])
        yield until(lambda: self.redis.llen("resque:queue:q") == 0)
        self.assertIs(w.parts.loop.current, loop)
        self.assertEqual(peak, [1])
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_pause_with_duration_resumes_by_itself(self):
        clock = Clock()
        w = self.worker(clock=clock)
        handler = Recorder(expected=1)
        self.started(w, handler)
        yield until(lambda: w.parts.fetcher._blocked)
        self.assertTrue(w.pause(5))
        self.push("q", payload("J", 1))
        yield until(lambda: not w.fetching)
        clock.advance(4.9)
        self.assertTrue(w.paused)
        clock.advance(0.1)
        self.assertFalse(w.paused)
        yield handler.done
        yield w.shutdown()

    @defer.inlineCallbacks
    def test_jobs_in_flight_go_on_while_paused(self):
        gate = defer.Deferred()
        processed = []
        w = self.worker()
        w.add_hook("processed", processed.append)
        self.push("q", payload("J", 1))
        self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        w.pause()
        gate.callback(None)
        yield until(lambda: processed)
        self.assertTrue(w.paused)
        yield w.shutdown()

    def test_pause_before_start(self):
        w = self.worker()
        self.assertTrue(w.pause())
        self.assertTrue(w.resume())


class ResultsWrittenTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_every_count_is_written_before_the_worker_stops(self):
        # The last batch of counters may still be on its way when shutdown
        # begins; the worker must wait for it, not close the connection.
        for reliable in (False, True):
            self.redis.flushall()
            n = 3000
            self.push("q", *[payload("J", i) for i in range(n)])
            handler = Recorder(expected=n)
            w = self.worker(reliable=reliable)
            done = self.started(w, handler)
            yield handler.done
            yield w.shutdown()
            yield done
            self.assertEqual(self.redis.get("resque:stat:processed"), str(n))


class ImmediateShutdownTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_shutdown_immediately_puts_running_jobs_back_at_once(self):
        from tests.support import Logged

        logged = Logged(self)
        clock = Clock()
        self.push("q", payload("Forever", 1))
        w = self.worker(grace=30, clock=clock, log_interval=None)
        done = self.started(w, lambda job: defer.Deferred())
        yield until(lambda: w.in_flight == 1)
        # No clock advance needed: it does not wait for the grace period.
        yield w.shutdown(immediately=True)
        yield done
        self.assertEqual(self.redis.lrange("resque:queue:q", 0, -1), [payload("Forever", 1)])
        self.assertEqual(logged.count("told to stop at once: stopping now"), 1)
        self.assertEqual(logged.count("again"), 0)


class PauseHoldsFetchedJobsTests(RedisTestCase):
    """
    Issue 10's three cases: a pause also holds jobs already fetched.
    """

    def pausing_handler(self, seconds=None):
        started = []

        def handler(job):
            started.append(job["args"][0])
            if job["args"][0] == 1:
                self.w.pause(seconds)
            return None

        return started, handler

    @defer.inlineCallbacks
    def test_jobs_fetched_with_the_pausing_one_wait_for_resume_in_order(self):
        clock = Clock()
        self.push("q", *[payload("J", i) for i in (1, 2, 3)])
        self.w = w = self.worker(clock=clock)
        started, handler = self.pausing_handler()
        self.started(w, handler)
        yield until(lambda: started == [1])
        # Fetched in the same batch as job 1, jobs 2 and 3 wait: in reliable
        # mode, in the processing list.
        clock.advance(0.03)
        clock.advance(0.07)
        self.assertEqual(started, [1])
        [processing] = w.parts.processing
        yield until(
            lambda: self.redis.lrange(processing, 0, -1) == [payload("J", i) for i in (2, 3)]
        )
        self.assertTrue(w.resume())
        self.assertEqual(started, [1, 2, 3])
        yield w.shutdown()
        self.assertEqual(self.redis.get("resque:stat:processed"), "3")

    @defer.inlineCallbacks
    def test_shutdown_while_paused_puts_them_back_at_the_head_in_order(self):
        clock = Clock()
        self.push("q", *[payload("J", i) for i in (1, 2, 3)])
        self.w = w = self.worker(clock=clock)
        started, handler = self.pausing_handler(30)
        self.started(w, handler)
        yield until(lambda: started == [1])
        self.push("q", payload("J", 4))
        yield w.shutdown()
        self.assertEqual(started, [1])
        self.assertEqual(
            self.redis.lrange("resque:queue:q", 0, -1), [payload("J", i) for i in (2, 3, 4)]
        )
        self.assertEqual(self.redis.keys("resque:pace:processing:*"), [])
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_at_most_once_too(self):
        clock = Clock()
        self.push("q", *[payload("J", i) for i in (1, 2, 3)])
        self.w = w = self.worker(clock=clock, reliable=False)
        started, handler = self.pausing_handler()
        self.started(w, handler)
        yield until(lambda: started == [1])
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)  # popped, held here
        yield w.shutdown()
        self.assertEqual(started, [1])
        self.assertEqual(
            self.redis.lrange("resque:queue:q", 0, -1), [payload("J", i) for i in (2, 3)]
        )
