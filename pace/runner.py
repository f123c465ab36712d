"""
Running a worker as the whole program: the reactor runs until the worker
has stopped, and Unix signals drive it as they drive a Resque worker.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.logger import Logger

log = Logger()

#: Signal -> (worker method, what the log says).
SIGNALS = {
    "SIGTERM": "shutdown",
    "SIGINT": "shutdown",
    "SIGQUIT": "shutdown",
    "SIGUSR2": "pause",
    "SIGCONT": "resume",
}


#: What a daemon under twistd adds: twistd itself turns SIGTERM and SIGINT
#: into stopService, which shuts the worker down gracefully.
PAUSE_SIGNALS = ("SIGUSR2", "SIGCONT", "SIGQUIT")


def install_signal_handlers(
    worker: Any, reactor: Any, names: tuple[str, ...] = tuple(SIGNALS)
) -> dict[int, Any]:
    """
    Map Unix signals to the worker, after Twisted installed its own (which
    would stop the reactor at once on SIGTERM and SIGINT). Returns the
    handlers replaced, for `restore_signal_handlers`.
    """
    previous = {}
    for name in names:
        method = SIGNALS[name]
        signum = getattr(signal, name, None)
        if signum is None:
            continue

        def handler(signum: int, frame: Any, method: str = method, name: str = name) -> None:
            log.info("pace: {signal} received: {action}", signal=name, action=method)
            reactor.callFromThread(getattr(worker, method))

        previous[signum] = signal.signal(signum, handler)
    return previous


def restore_signal_handlers(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def run_worker(worker: Any, handler: Any, reactor: Any = None) -> None:
    if reactor is None:
        from twisted.internet import reactor

    def started() -> None:
        install_signal_handlers(worker, reactor)
        d = worker.start(handler)
        d.addErrback(lambda f: log.failure("pace: worker failed", f))
        d.addBoth(lambda _: reactor.stop() if reactor.running else None)

    # Anything else that stops the reactor still gets a graceful shutdown.
    reactor.addSystemEventTrigger("before", "shutdown", worker.shutdown)
    reactor.addSystemEventTrigger("after", "startup", started)
    reactor.run()
