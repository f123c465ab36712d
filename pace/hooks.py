"""
Lifecycle hooks: initialize, start, processed, error and shutdown, at class
level (every worker) and per worker. A hook that raises or fails is logged
and isolated; hooks that return Deferreds or coroutines are waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutine
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

log = Logger()

EVENTS = ("initialize", "start", "processed", "error", "shutdown")


class Hooks:
    """
    The hooks of one scope. A scope with a ``parent`` runs the parent's hooks
    first, then its own, each in the order added.
    """

    def __init__(self, parent: Hooks | None = None):
        self._parent = parent
        self._own: dict[str, list[Callable[..., Any]]] = {e: [] for e in EVENTS}

    def add(self, event: str, fn: Callable[..., Any]) -> None:
        if event not in self._own:
            raise ValueError(f"unknown hook event {event!r}; use one of {', '.join(EVENTS)}")
        if not callable(fn):
            raise TypeError(f"a {event} hook must be callable, not {fn!r}")
        self._own[event].append(fn)

    def clear(self) -> None:
        for fns in self._own.values():
            fns.clear()

    def for_event(self, event: str) -> list[Callable[..., Any]]:
        own = self._own[event]
        if self._parent is None:
            return own
        inherited = self._parent.for_event(event)
        return inherited + own if inherited else own

    def run_own(self, event: str, *args: Any) -> Deferred | None:
        """
        Like `run`, for this scope's own hooks only.
        """
        fns = self._own[event]
        return call_isolated(fns, event, args) if fns else None

    def run(self, event: str, *args: Any) -> Deferred | None:
        """
        Call every hook of ``event``. Returns ``None`` when all of them
        returned at once (the common case on the per-job path), else a
        Deferred that fires, never with a failure, once they all settled.
        """
        # Called for every job: no list is built when there are no hooks.
        own = self._own[event]
        parent = self._parent
        inherited = parent.for_event(event) if parent is not None else None
        if inherited:
            fns = inherited + own if own else inherited
        elif own:
            fns = own
        else:
            return None
        return call_isolated(fns, event, args)


def call_isolated(fns: list[Callable[..., Any]], event: str, args: tuple) -> Deferred | None:
    waits = []
    for fn in fns:
        try:
            result = fn(*args)
        except Exception:
            log.failure("pace: {event} hook {hook!r} raised", event=event, hook=fn)
            continue
        if iscoroutine(result):
            result = Deferred.fromCoroutine(result)
        if isinstance(result, Deferred):
            waits.append(result.addErrback(_hook_failed, event, fn))
    if not waits:
        return None
    return gatherResults(waits)


def _hook_failed(failure: Any, event: str, fn: Any) -> None:
    log.failure("pace: {event} hook {hook!r} failed", failure, event=event, hook=fn)


class scoped:
    """
    A method that acts on the class's hooks when called on the class and on
    the worker's own hooks when called on a worker:
    ``Worker.add_hook(...)`` and ``worker.add_hook(...)``.
    """

    def __init__(self, fn: Callable[..., Any]):
        self._fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, instance: Any, owner: type) -> Callable[..., Any]:
        hooks = owner._class_hooks if instance is None else instance._hooks  # type: ignore[attr-defined]
        fn = self._fn

        def bound(*args: Any, **kwargs: Any) -> Any:
            return fn(hooks, *args, **kwargs)

        bound.__doc__ = fn.__doc__
        bound.__name__ = fn.__name__
        bound.__wrapped__ = fn  # type: ignore[attr-defined]
        return bound
