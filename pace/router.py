"""
JobRouter: a handler that dispatches each job to the callable registered for
its Resque class name, calling it with the job's args, as Resque calls a
class's perform. Nothing is ever imported because of a payload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class UnknownJobClass(LookupError):
    """
    No callable is registered for the job's class.
    """


class JobRouter:
    """
    Register callables by Resque class name::

        router = pace.JobRouter()

        @router.job("SendEmail")
        def send_email(address, subject):
            return treq.post(...)

    The router is itself a handler: ``worker.start(router)``, or
    ``twistd pace --handler mypkg.jobs.router``. ``retry=pace.Retry(...)``
    gives a class its own retry policy, in place of the worker's.
    """

    def __init__(self) -> None:
        self._routes: dict[str, Callable[..., Any]] = {}
        self._retries: dict[str, Any] = {}

    def job(
        self, name: str, *, retry: Any = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add(name, fn, retry=retry)
            return fn

        return register

    def retry_for(self, name: str) -> Any:
        """
        The retry policy registered for class ``name``, or None (the
        worker's applies).
        """
        return self._retries.get(name)

    def add(self, name: str, fn: Callable[..., Any], *, retry: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a job class name must be a non-empty string, not {name!r}")
        if not callable(fn):
            raise TypeError(f"the handler for {name!r} must be callable, not {fn!r}")
        if name in self._routes:
            raise ValueError(f"a handler for {name!r} is already registered")
        if retry is not None:
            from pace.retry import Retry

            if not isinstance(retry, Retry):
                raise TypeError(f"retry for {name!r} must be a pace.Retry, not {retry!r}")
            self._retries[name] = retry
        self._routes[name] = fn

    @property
    def classes(self) -> list[str]:
        return sorted(self._routes)

    def __call__(self, job: dict) -> Any:
        fn = self._routes.get(job["class"])
        if fn is None:
            known = ", ".join(self.classes) or "none"
            raise UnknownJobClass(
                f"no handler registered for job class {job['class']!r} (registered: {known})"
            )
        return fn(*job["args"])
