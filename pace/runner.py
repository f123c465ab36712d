"""
Running a worker as the whole program: the reactor runs until the worker
has stopped, and Unix signals drive it as they drive a Resque worker.
"""

from __future__ import annotations

import signal
from typing import Any

from twisted.logger import Logger

log = Logger()

#: Signal -> what it does to the worker.
SIGNALS = {
    "SIGTERM": "shutdown",
    "SIGINT": "shutdown",
    "SIGQUIT": "shutdown",
    "SIGUSR2": "pause",
    "SIGCONT": "resume",
}


#: What a daemon under twistd adds: twistd itself turns the first SIGTERM
#: and SIGINT into stopService, which shuts the worker down gracefully.
PAUSE_SIGNALS = ("SIGUSR2", "SIGCONT", "SIGQUIT")
#: Installed under twistd once its reactor runs: the first asks twistd to
#: stop (gracefully), a second stops the worker now.
STOP_SIGNALS = ("SIGTERM", "SIGINT")


class _Signals:
    # What the worker hears from signals, on the reactor thread.
    def __init__(self, worker: Any, stop: Any):
        self._worker = worker
        self._stop = stop
        self._stopping = False

    def shutdown(self, name: str) -> None:
        if self._stopping:
            # The worker says so, in one line: a second line here would
            # say the same thing again.
            self._worker.shutdown(immediately=True)
            return
        self._stopping = True
        log.info(
            "pace: {signal} received: shutting down (send it again to stop at once)",
            signal=name,
        )
        self._stop()

    def pause(self, name: str) -> None:
        if self._worker.pause():
            log.info("pace: {signal} received: paused", signal=name)

    def resume(self, name: str) -> None:
        # timeout(1) and systemd send SIGCONT too: say something only when
        # it changes something.
        if self._worker.resume():
            log.info("pace: {signal} received: resumed", signal=name)


def install_signal_handlers(
    worker: Any,
    reactor: Any,
    names: tuple[str, ...] = tuple(SIGNALS),
    stop: Any = None,
) -> dict[int, Any]:
    """
    Map Unix signals to the worker, after Twisted installed its own (which
    would stop the reactor at once on SIGTERM and SIGINT). ``stop`` is what
    a first SIGTERM/SIGINT/SIGQUIT does (default: ``worker.shutdown``).
    Returns the handlers replaced, for `restore_signal_handlers`.
    """
    actions = _Signals(worker, stop or worker.shutdown)
    previous = {}
    for name in names:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        act = getattr(actions, SIGNALS[name])

        def handler(signum: int, frame: Any, act: Any = act, name: str = name) -> None:
            reactor.callFromThread(act, name)

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
