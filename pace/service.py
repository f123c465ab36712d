"""
PaceService: a worker as a Twisted IService, for .tac files, twistd and
MultiServices. stopService returns the worker's shutdown Deferred, so twistd
waits for the grace period and for unstarted jobs to go back to Redis.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from pace.runner import (
    PAUSE_SIGNALS,
    STOP_SIGNALS,
    install_signal_handlers,
    restore_signal_handlers,
)
from pace.worker import Handler, Worker

log = Logger()


_exit_status = [0]
_exit_registered = [False]


def _exit_with_status() -> None:
    if _exit_status[0]:
        os._exit(_exit_status[0])


def _register_exit_status() -> None:
    # Registered when the first service is made, so before the exit
    # handlers of what the application sets up after it (sentry-sdk's
    # flush, logging): atexit runs last-registered first, so this runs
    # after them. Not at import: importing pace has no side effects.
    if not _exit_registered[0]:
        _exit_registered[0] = True
        atexit.register(_exit_with_status)


class PaceService(Service):
    """
    Runs ``worker`` with ``handler`` while the service runs; ``stopService``
    returns the worker's shutdown Deferred. Under twistd, SIGUSR2 pauses and
    SIGCONT resumes the worker, SIGQUIT shuts it down gracefully (twistd maps
    SIGTERM and SIGINT to a graceful stop). If the worker fails, the process
    stops and exits with status 1.
    """

    def __init__(self, worker: Worker, handler: Handler):
        # Unique, so several workers can sit in one MultiService.
        self.name = f"pace {worker.id} {worker.token}"  # type: ignore[assignment]
        self.worker = worker
        self.handler = handler
        self._done: defer.Deferred | None = None
        self._signals: dict[int, Any] = {}
        _register_exit_status()

    def startService(self) -> None:
        super().startService()
        if threading.current_thread() is threading.main_thread():
            # Like Resque's workers: SIGUSR2 pauses, SIGCONT resumes.
            from twisted.internet import reactor

            self._signals = install_signal_handlers(self.worker, reactor, PAUSE_SIGNALS)
            # After twistd's own: a second SIGTERM/SIGINT would otherwise
            # end in ReactorNotRunning instead of stopping the worker now.
            reactor.addSystemEventTrigger("after", "startup", self._take_stop_signals, reactor)
        self._done = self.worker.start(self.handler)
        self._done.addCallbacks(self._worker_stopped, self._worker_failed)

    def _take_stop_signals(self, reactor: Any) -> None:
        if self.running:
            self._signals.update(
                install_signal_handlers(self.worker, reactor, STOP_SIGNALS, stop=reactor.stop)
            )

    def _worker_stopped(self, _: Any) -> None:
        # The worker stopped by itself (SIGQUIT, burst mode): so does the
        # process, gracefully.
        from twisted.internet import reactor

        if reactor.running and self.running:
            reactor.stop()

    def _worker_failed(self, failure: Any) -> None:
        log.critical(
            "pace: the worker stopped with an error: {error}; exiting",
            error=failure.getErrorMessage(),
        )
        from twisted.internet import reactor

        # A daemon whose worker cannot run should exit, with a status that
        # tells its supervisor so (twistd itself would exit 0).
        _exit_status[0] = 1
        if reactor.running and self.running:
            reactor.stop()

    def stopService(self) -> defer.Deferred:
        super().stopService()
        # SIGTERM and SIGINT stay ours while the worker stops: a second one
        # stops it at once.
        stops = {getattr(signal, name, None) for name in STOP_SIGNALS}
        restore_signal_handlers({n: h for n, h in self._signals.items() if n not in stops})
        self._signals = {}
        return self.worker.shutdown()
