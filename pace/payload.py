"""
Resque's job payload, ``{"class": "Name", "args": [...]}``: encoding for
enqueue and strict decoding for the worker, so that anything malformed is
named precisely and never reaches a handler, whatever the payload holds.
"""

from __future__ import annotations

import json
from typing import Any

#: The default size limit of a payload, in bytes: anything longer is failed
#: without being decoded. Resque payloads are a class name and a few
#: arguments, rarely past a few kilobytes; 4 MiB leaves room for jobs that
#: carry documents while bounding what one job can cost the reactor (the C
#: decoder takes roughly 10-40 ms for 4 MiB, while Redis would accept a
#: 512 MB value).
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024

#: The class of the payload that failure records give a malformed job (see
#: `pace.failures`): Ruby's ``Resque::Failure.requeue`` can push it back, and
#: `decode` then fails it again instead of handing it to a handler.
MALFORMED_CLASS = "Pace::MalformedPayload"

_loads = json.loads
# The standard library's C scanner, without json.loads' Python layers (two
# regular expressions and three calls per payload). orjson is faster still
# but turns integers past 64 bits into floats: not a correct decoder here.
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class MalformedJob(ValueError):
    """
    A payload that is not a Resque job: too large, not UTF-8, not JSON (or
    nested too deeply to decode), not an object, or without a string
    ``class`` and a list ``args``. ``requeued`` is the payload of a failure
    record that was put back in a queue (see `MALFORMED_CLASS`), else None.
    """

    requeued: dict | None = None


def encode(klass: str, args: list | tuple) -> str:
    """
    The payload Resque.enqueue would push for ``klass`` and ``args``.
    """
    if not isinstance(klass, str) or not klass:
        raise TypeError(f"a job class must be a non-empty string, not {klass!r}")
    return _dumps({"class": klass, "args": list(args)})


def decode(raw: bytes | str, max_bytes: int | None = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """
    The job in ``raw``, or `MalformedJob` saying what is wrong with it: no
    other exception leaves this function. A payload longer than
    ``max_bytes`` (characters, for a ``str``) is failed without being
    decoded; ``None`` means no limit.
    """
    if max_bytes is not None and len(raw) > max_bytes:
        raise MalformedJob(
            f"payload is {len(raw):,} bytes, over the limit of {max_bytes:,} "
            "(max_payload_bytes); failed without decoding"
        )
    try:
        text = raw.decode("utf-8") if type(raw) is bytes else raw
        job, end = _scan(text, 0)
    except Exception:
        # Not only ValueError and StopIteration: deep nesting raises
        # RecursionError, a huge payload MemoryError.
        job, end, text = None, -1, ""
    if end == len(text) and type(job) is dict:
        klass = job.get("class")
        if (
            type(klass) is str
            and klass
            and type(job.get("args")) is list
            and klass != MALFORMED_CLASS
        ):
            return job
    # Anything unusual (surrounding white space, or a bad payload) takes the
    # careful way, which also says precisely what is wrong.
    return _decode_slowly(raw)


def _decode_slowly(raw: bytes | str) -> dict[str, Any]:
    try:
        job = _parse(raw)
    except MalformedJob:
        raise
    except Exception as e:
        # Whatever else the decoder may raise is still a payload problem.
        raise MalformedJob(f"payload could not be decoded: {type(e).__name__}: {e}") from None
    if type(job) is not dict:
        raise MalformedJob(f"payload is a JSON {_json_type(job)}, not an object")
    klass = job.get("class")
    if type(klass) is not str or not klass:
        if "class" not in job:
            raise MalformedJob('payload has no "class"')
        raise MalformedJob(f'"class" is a {_json_type(klass)}, not a non-empty string')
    if type(job.get("args")) is not list:
        if "args" not in job:
            raise MalformedJob('payload has no "args"')
        raise MalformedJob(f'"args" is a {_json_type(job["args"])}, not a list')
    if klass == MALFORMED_CLASS:
        requeued = MalformedJob(
            "a malformed payload put back in its queue from its failure record "
            "(Resque::Failure.requeue or 'Retry'): failed again without running; "
            "remove the failure record instead"
        )
        requeued.requeued = job  # type: ignore[attr-defined]
        raise requeued
    return job


def _parse(raw: bytes | str) -> Any:
    if type(raw) is bytes:
        # Resque payloads are UTF-8; json.loads would guess UTF-16 or -32 too.
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedJob(f"payload is not valid UTF-8: {e}") from None
    try:
        return _loads(raw)
    except RecursionError:
        raise MalformedJob(
            "payload is nested too deeply to decode (Python's JSON decoder "
            "stops at about 1,000 levels)"
        ) from None
    except MemoryError:
        raise MalformedJob(f"payload of {len(raw):,} characters is too large to decode") from None
    except ValueError as e:
        raise MalformedJob(f"payload is not JSON: {e}") from None


def as_text(raw: bytes | str, limit: int | None = None) -> str:
    """
    A payload as text for hooks and failure records; bytes that are not
    UTF-8 are kept visible as escapes rather than dropped. With ``limit``,
    only the first ``limit`` bytes (characters, for a ``str``) are turned
    into text, so that a huge payload costs little.
    """
    if limit is not None and len(raw) > limit:
        raw = raw[:limit]
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", "backslashreplace")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
