"""
PaceService: a worker as a Twisted IService, for .tac files, twistd and
MultiServices. stopService returns the worker's shutdown Deferred, so twistd
waits for the grace period and for unstarted jobs to go back to Redis.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from pace.worker import Handler, Worker

log = Logger()


class PaceService(Service):
    name = "pace"

    def __init__(self, worker: Worker, handler: Handler):
        self.worker = worker
        self.handler = handler
        self._done: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        self._done = self.worker.start(self.handler)
        self._done.addErrback(self._worker_failed)

    def _worker_failed(self, failure: Any) -> None:
        log.failure("pace: the worker stopped with an error", failure)
        from twisted.internet import reactor

        # A daemon whose worker cannot run should exit, not idle forever.
        if reactor.running and self.running:
            reactor.stop()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return self.worker.shutdown()
