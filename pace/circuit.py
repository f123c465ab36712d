"""
A circuit breaker for the remote service a worker's jobs call: pure logic on
an injected clock. After ``failures`` failed jobs within ``window`` seconds it
opens (the worker stops starting jobs; none is failed fast), after
``cool_off`` it lets one job through, and that job's outcome closes it or
opens it again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from pace.config import check_number

log = Logger()

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

#: Tickets handed to jobs by `Circuit.admit`.
NORMAL, PROBE = "normal", "probe"


class CircuitOpen(Exception):
    """
    What error hooks are told (with ``json`` None) when a circuit opens and
    the worker stops starting jobs.
    """


class Circuit:
    """
    Counts failed jobs; ``shared=True`` makes the worker pause its whole
    queue for the fleet (see `pace.pause_queue`) while the circuit is open.
    """

    def __init__(
        self,
        failures: int = 10,
        window: float = 5.0,
        cool_off: float = 30.0,
        shared: bool = False,
        *,
        clock: Any = None,
    ):
        if type(failures) is not int or failures < 1:
            raise ValueError(f"failures must be a whole number >= 1, not {failures!r}")
        for name, value in (("window", window), ("cool_off", cool_off)):
            check_number(name, value, " of seconds")
        self.failures = failures
        self.window = float(window)
        self.cool_off = float(cool_off)
        self.shared = bool(shared)
        self.clock = clock
        self.state = CLOSED
        #: Why it last opened, for logs and error hooks.
        self.reason: str | None = None
        self._recent: deque[float] = deque()
        self._probe_out = False
        self._half_open_call: Any = None
        self._listeners: list[Callable[[Circuit, str, str], Any]] = []

    def __repr__(self) -> str:
        return f"<pace.Circuit {self.state} {self.failures} in {self.window:g}s>"

    def _clock(self) -> Any:
        if self.clock is None:
            from twisted.internet import reactor

            self.clock = reactor
        return self.clock

    def listen(self, fn: Callable[[Circuit, str, str], Any]) -> None:
        """
        Call ``fn(circuit, old_state, new_state)`` on every change.
        """
        self._listeners.append(fn)

    # -- what the worker asks ------------------------------------------------

    def room(self) -> int | None:
        """
        How many jobs may start now: None for no limit (closed), 1 for the
        trial job of a half-open circuit, else 0.
        """
        if self.state == CLOSED:
            return None
        if self.state == HALF_OPEN and not self._probe_out:
            return 1
        return 0

    def admit(self) -> str | None:
        """
        A ticket for a job about to start (`NORMAL`, or `PROBE` for the one
        job a half-open circuit lets through), or None: it must wait.
        """
        if self.state == CLOSED:
            return NORMAL
        if self.state == HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return PROBE
        return None

    def settled(self, ticket: str | None, ok: bool) -> None:
        """
        Tell the circuit how the job holding ``ticket`` ended.
        """
        if ticket == PROBE:
            self._probe_out = False
            if ok:
                self._change(CLOSED)
            else:
                self._open("the trial job after the cool-off failed")
            return
        if ok or self.state != CLOSED:
            # Jobs started before the circuit opened say nothing new.
            return
        now = self._clock().seconds()
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.failures:
            self._open(f"{len(recent)} jobs failed within {self.window:g}s")

    def stop(self) -> None:
        """
        Cancel the cool-off timer (the worker is stopping).
        """
        call, self._half_open_call = self._half_open_call, None
        if call is not None and call.active():
            call.cancel()

    # -- transitions ---------------------------------------------------------

    def _open(self, why: str) -> None:
        self.reason = why
        self._recent.clear()
        self.stop()
        self._half_open_call = self._clock().callLater(self.cool_off, self._half_open)
        self._change(OPEN)

    def _half_open(self) -> None:
        self._half_open_call = None
        self._change(HALF_OPEN)

    def _change(self, new: str) -> None:
        old, self.state = self.state, new
        if new == OPEN:
            log.warn(
                "pace: circuit opened ({why}); no job starts for {cool_off:g}s",
                why=self.reason,
                cool_off=self.cool_off,
                circuit_state=new,
            )
        elif new == CLOSED and old != CLOSED:
            self._recent.clear()
            log.info("pace: circuit closed: the trial job succeeded", circuit_state=new)
        elif new == HALF_OPEN:
            log.info("pace: circuit half-open: letting one job through", circuit_state=new)
        if old == new:
            return
        for fn in list(self._listeners):
            try:
                fn(self, old, new)
            except Exception:
                log.failure("pace: a circuit listener failed")
