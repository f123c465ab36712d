"""
Signals drive a worker as they drive a Resque worker: SIGUSR2 pauses,
SIGCONT resumes (and says so only when it does), a first SIGTERM asks for a
graceful stop and a second stops now.
"""

from __future__ import annotations

import os
import signal

from twisted.internet import defer, reactor

from pace.runner import install_signal_handlers, restore_signal_handlers
from tests.support import Logged, RedisTestCase, until


class SignalTests(RedisTestCase):
    def install(self, worker, names, **kw):
        previous = install_signal_handlers(worker, reactor, names, **kw)
        self.addCleanup(restore_signal_handlers, previous)

    @defer.inlineCallbacks
    def test_sigusr2_pauses_and_sigcont_resumes_once(self):
        logged = Logged(self)
        w = self.worker(grace=1)
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        self.install(w, ("SIGUSR2", "SIGCONT"))
        os.kill(os.getpid(), signal.SIGUSR2)
        yield until(lambda: w.paused)
        os.kill(os.getpid(), signal.SIGCONT)
        yield until(lambda: not w.paused)
        # timeout(1) and systemd send SIGCONT to processes that were never
        # stopped: nothing to say then.
        os.kill(os.getpid(), signal.SIGCONT)
        os.kill(os.getpid(), signal.SIGUSR2)
        yield until(lambda: w.paused)
        self.assertEqual(logged.count("SIGCONT received: resumed"), 1)
        self.assertEqual(logged.count("SIGUSR2 received: paused"), 2)

    @defer.inlineCallbacks
    def test_second_sigterm_stops_now(self):
        gate = defer.Deferred()
        self.push("q", '{"class": "J", "args": []}')
        w = self.worker(grace=60)
        done = self.started(w, lambda job: gate)
        yield until(lambda: w.in_flight == 1)
        asked = []
        self.install(w, ("SIGTERM",), stop=lambda: asked.append(w.shutdown()))
        os.kill(os.getpid(), signal.SIGTERM)
        yield until(lambda: asked)
        self.assertFalse(done.called)
        t0 = reactor.seconds()
        os.kill(os.getpid(), signal.SIGTERM)
        yield done
        self.assertLess(reactor.seconds() - t0, 5)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
