"""
Reporting job errors to Sentry (sentry-sdk, extra `sentry`), as the Ruby
original reported them to Airbrake: an error hook that sends each failure
with the job's class, queue and payload as context, and never a password:
every event is scrubbed of Redis passwords (and of ``sys.argv``) last,
after every other processor, just before it is sent.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from pace.config import scrub
from pace.payload import MAX_PAYLOAD_BYTES

try:
    import sentry_sdk
except ImportError:  # pragma: no cover - depends on the extra
    sentry_sdk = None  # type: ignore[assignment]


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
                    scope.add_event_processor(_strip_frame_variables)  # type: ignore[arg-type]
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
    scrub_client(sentry_sdk.get_client())
    return SentryHook()


#: The client options whose callbacks see what is about to be sent; their
#: return value is what leaves the process.
_LAST_STEPS = ("before_send", "before_send_transaction", "before_send_log")


def scrub_client(client: Any) -> None:
    """
    Make ``client`` (a sentry-sdk client) scrub Redis passwords from
    everything it sends: the user's own ``before_send`` (and the transaction
    and log ones) still runs, and what it returns is scrubbed. Idempotent.
    """
    options = getattr(client, "options", None)
    if not isinstance(options, dict):
        return
    for name in _LAST_STEPS:
        if name in options and not getattr(options[name], "_pace_scrubs", False):
            options[name] = _scrubbing(options[name])


def _scrubbing(inner: Any) -> Any:
    def last_step(event: Any, hint: Any) -> Any:
        if inner is not None:
            event = inner(event, hint)
        return scrub_event(event) if event is not None else None

    last_step._pace_scrubs = True  # type: ignore[attr-defined]
    return last_step


def scrub_event(event: Any) -> Any:
    """
    ``event`` without ``sys.argv`` (the ArgvIntegration puts it in
    ``extra``; ``ps`` users put passwords there) and with every string in it
    redacted: URL passwords in any form, and any known Redis password
    wherever it appears.
    """
    if isinstance(event, dict):
        extra = event.get("extra")
        if isinstance(extra, dict):
            extra.pop("sys.argv", None)
    return _scrub(event)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _strip_frame_variables(event: dict, hint: Any) -> dict:
    for exc in (event.get("exception") or {}).get("values") or []:
        for frame in (exc.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    return event


def _job_context(payload: str, send_args: bool) -> dict[str, Any]:
    job = None
    if len(payload) <= MAX_PAYLOAD_BYTES:
        # Past the limit it is a malformed job anyway; decoding it would only
        # cost time. Anything decoding raises (deep nesting) means malformed.
        try:
            job = json.loads(payload)
        except Exception:
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
