"""
Resque's failure record: what Resque's Redis failure backend writes to
``resque:failed``, so resque-web, ``Resque::Failure`` and pyres can list and
retry the jobs Pace failed; and the errors Pace fails jobs with.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.internet.defer import TimeoutError as DeferredTimeoutError
from twisted.python.failure import Failure

from pace.config import scrub
from pace.payload import MALFORMED_CLASS, MalformedJob, as_text

#: How much of a malformed payload its failure record keeps, in bytes. The
#: record says the payload's full size; 16 KiB is plenty to recognise a
#: payload by, and keeps the record (and the reactor time to build it)
#: small, however large the payload.
RECORD_PAYLOAD_PREFIX = 16 * 1024


class JobTimeout(Exception):
    """
    A job whose handler ran longer than the worker's ``job_timeout``.
    """

    def __init__(self, seconds: float):
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"job ran longer than {_seconds(self.seconds)} s"


def failure_record(
    raw: bytes | str,
    failure: Failure,
    worker: str,
    queue: str,
    job: dict | None = None,
) -> str:
    """
    The JSON record Resque writes for a failed job. ``job`` is the decoded
    payload, None for a malformed one. A job's payload is kept as it came
    (``raw`` is valid JSON then), so that requeueing it runs the same job; a
    malformed payload becomes `malformed_payload`.
    """
    exc = failure.value
    head = json.dumps(
        {
            "failed_at": time.strftime("%Y/%m/%d %H:%M:%S %Z"),
            "exception": type(exc).__name__,
            "error": _message(exc) or type(exc).__name__,
            "backtrace": _backtrace(failure),
            "worker": worker,
            "queue": queue,
        }
    )
    if job is not None:
        # Splicing the payload in costs nothing to encode and cannot fail on
        # deep nesting, as encoding the decoded job again could.
        body = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    else:
        body = json.dumps(malformed_payload(raw, exc))
    return f'{head[:-1]}, "payload": {body}}}'


def malformed_payload(raw: bytes | str, exc: BaseException | None = None) -> dict[str, Any]:
    """
    The payload a failure record gives a malformed job: a job of class
    `pace.payload.MALFORMED_CLASS` whose arguments are the payload's text
    (its first `RECORD_PAYLOAD_PREFIX` bytes) and ``{"bytes": <full size>,
    "truncated": <bool>}``. resque-web shows it as it shows any job;
    ``Resque::Failure.requeue`` and "Retry all" can push it back without an
    error; a Pace worker then fails it again without running a handler, and
    a Ruby worker, finding no such class, fails it too.
    """
    if isinstance(exc, MalformedJob) and exc.requeued is not None:
        # Put back from its record and failed again: the same payload, not
        # a wrapper of the wrapper.
        return exc.requeued
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    text = as_text(raw, RECORD_PAYLOAD_PREFIX)
    return {
        "class": MALFORMED_CLASS,
        "args": [text, {"bytes": size, "truncated": size > RECORD_PAYLOAD_PREFIX}],
    }


def _backtrace(failure: Failure) -> list[str]:
    # Resque lists the innermost frame first, as "file:line:in `method'".
    frames = failure.frames or []
    return [f"{path}:{line}:in `{name}'" for name, path, line, _, _ in reversed(frames)]


def _seconds(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _message(exc: BaseException) -> str:
    if isinstance(exc, DeferredTimeoutError) and exc.args and isinstance(exc.args[0], (int, float)):
        # Deferred.addTimeout's error reads "(30.0, 'Deferred')".
        return f"job ran longer than {_seconds(exc.args[0])} s"
    try:
        # Handlers' errors may quote a Redis URL: records and logs must not.
        return scrub(str(exc))
    except Exception:
        # A failure record must not fail for an exception's broken __str__.
        return f"<{type(exc).__name__} whose str() raised>"


def error_text(failure: Any) -> str:
    """
    One line for a log: the exception's class and message.
    """
    exc = failure.value
    return f"{type(exc).__name__}: {_message(exc)}"


class ShutdownDeadline(Exception):
    """
    At most once: a job still running at the shutdown deadline is cancelled
    and failed, never put back.
    """
