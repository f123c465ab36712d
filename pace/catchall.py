"""
The catch-all: while any worker runs, errors that Twisted logs as unhandled
(a failing callLater callback, a Deferred garbage-collected with a failure)
are passed to error hooks with ``json`` ``None``, as EventMachine's
``error_handler`` did for the Ruby original.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.failure import Failure

_LEVELS = (LogLevel.error, LogLevel.critical)
_TWISTED = ("twisted.",)


class _CatchAll:
    def __init__(self) -> None:
        self._workers: list[Any] = []

    def register(self, worker: Any) -> None:
        if not self._workers:
            globalLogPublisher.addObserver(self)  # type: ignore[arg-type]
        if worker not in self._workers:
            self._workers.append(worker)

    def unregister(self, worker: Any) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
            if not self._workers:
                globalLogPublisher.removeObserver(self)  # type: ignore[arg-type]

    @property
    def workers(self) -> list[Any]:
        return list(self._workers)

    @property
    def active(self) -> bool:
        return bool(self._workers)

    def __call__(self, event: dict) -> None:
        failure = event.get("log_failure")
        if failure is None and event.get("isError"):
            failure = event.get("failure")  # legacy twisted.python.log.err
        elif event.get("log_level") not in _LEVELS:
            return
        if not isinstance(failure, Failure):
            return
        # Only what Twisted itself logs as unhandled (a Deferred collected
        # with a failure, an error in a timed call, legacy log.err): not
        # Pace's own reports, which would loop, nor an application's logs.
        namespace = str(event.get("log_namespace", ""))
        if not namespace.startswith(_TWISTED) and namespace != "log_legacy":
            return
        if not self._workers:
            return
        workers = list(self._workers)
        # Class-level hooks once, then each running worker's own hooks.
        type(workers[0]).class_hooks().run_own("error", None, failure)
        for worker in workers:
            worker.report_unhandled(failure)


catch_all = _CatchAll()
