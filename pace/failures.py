"""
Resque's failure record: what Resque's Redis failure backend writes to
``resque:failed``, so resque-web, ``Resque::Failure`` and pyres can list and
retry the jobs Pace failed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from twisted.python.failure import Failure

from pace.payload import as_text


def failure_record(
    raw: bytes | str,
    failure: Failure,
    worker: str,
    queue: str,
    job: dict | None = None,
) -> str:
    """
    The JSON record Resque writes for a failed job. The payload is the
    decoded job where it decodes, and the raw text where it does not, so
    nothing is lost even for malformed payloads.
    """
    exc = failure.value
    return json.dumps(
        {
            "failed_at": time.strftime("%Y/%m/%d %H:%M:%S %Z"),
            "payload": job if job is not None else as_text(raw),
            "exception": type(exc).__name__,
            "error": str(exc) or type(exc).__name__,
            "backtrace": _backtrace(failure),
            "worker": worker,
            "queue": queue,
        }
    )


def _backtrace(failure: Failure) -> list[str]:
    # Resque lists the innermost frame first, as "file:line:in `method'".
    frames = failure.frames or []
    return [f"{path}:{line}:in `{name}'" for name, path, line, _, _ in reversed(frames)]


def error_text(failure: Any) -> str:
    exc = failure.value
    return f"{type(exc).__name__}: {exc}"


class JobTimeout(Exception):
    """
    A job's handler ran longer than ``job_timeout`` and was cancelled.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        super().__init__(f"job ran longer than {seconds:g} s")


class ShutdownDeadline(Exception):
    """
    At most once: a job still running at the shutdown deadline is cancelled
    and failed, never put back.
    """
