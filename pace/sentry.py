"""
Reporting job errors to Sentry (sentry-sdk, extra `sentry`), as the Ruby
original reported them to Airbrake: an error hook that sends each failure
with the job's class, queue and payload as context.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

try:
    import sentry_sdk
except ImportError:  # pragma: no cover - depends on the extra
    sentry_sdk = None


class SentryHook:
    """
    An error hook (``fn(json, failure)``). sentry-sdk queues events for its
    own background thread, so reporting never blocks the reactor; `flush`
    waits for that queue off the reactor thread.
    """

    #: Report failed attempts that will be retried too (pace.Retry).
    every_attempt = False

    def __call__(self, payload: str | None, failure: Failure) -> None:
        if not self.every_attempt and not getattr(failure, "pace_last_attempt", True):
            return
        exc_info = (failure.type, failure.value, failure.getTracebackObject())
        with sentry_sdk.isolation_scope() as scope:
            if payload is None:
                scope.set_tag("pace.source", "unhandled")
            else:
                scope.set_tag("pace.source", "job")
                pii = sentry_sdk.get_client().should_send_default_pii()
                if not pii:
                    # Stack frames carry the job's arguments as local
                    # variables; they are personal data too.
                    scope.add_event_processor(_strip_frame_variables)
                job = _job_context(payload, pii)
                queue = getattr(failure, "pace_queue", None)
                if queue:
                    job["queue"] = queue
                    scope.set_tag("job.queue", queue)
                if "class" in job:
                    scope.set_tag("job.class", job["class"])
                scope.set_context("job", job)
            scope.capture_exception(exc_info)

    def flush(self, timeout: float = 5.0) -> Deferred:
        return deferToThread(sentry_sdk.flush, timeout)


def hook(dsn: str | None = None, **options: Any) -> SentryHook:
    """
    An error hook that reports to Sentry. With ``dsn`` (or ``options``),
    sentry-sdk is initialised here; without, an existing initialisation is
    used, else sentry-sdk is initialised from ``$SENTRY_DSN``.
    """
    if sentry_sdk is None:
        raise RuntimeError("pace.sentry needs sentry-sdk: pip install 'txpace[sentry]'")
    if dsn is not None or options:
        sentry_sdk.init(dsn=dsn, **options)
    elif not sentry_sdk.get_client().is_active():
        sentry_sdk.init()
    return SentryHook()


def _strip_frame_variables(event: dict, hint: Any) -> dict:
    for exc in (event.get("exception") or {}).get("values") or []:
        for frame in (exc.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    return event


def _job_context(payload: str, send_args: bool) -> dict[str, Any]:
    try:
        job = json.loads(payload)
    except ValueError:
        job = None
    if not isinstance(job, dict):
        # A malformed payload is the bug itself: send it, cut to a sane size.
        return {"payload": payload[:4096]}
    context: dict[str, Any] = {"class": job.get("class")}
    if send_args:
        context["args"] = job.get("args")
    else:
        context["args"] = "[Filtered: set send_default_pii=True to send job arguments]"
    return {k: v for k, v in context.items() if v is not None}
