"""
Resque's job payload, ``{"class": "Name", "args": [...]}``: encoding for
enqueue and strict decoding for the worker, so that anything malformed is
named precisely and never reaches a handler.
"""

from __future__ import annotations

import json
from typing import Any

_loads = json.loads
# The standard library's C scanner, without json.loads' Python layers (two
# regular expressions and three calls per payload). orjson is faster still
# but turns integers past 64 bits into floats: not a correct decoder here.
_scan = json.JSONDecoder().scan_once
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


class MalformedJob(ValueError):
    """
    A payload that is not a Resque job: not UTF-8, not JSON, not an object,
    or without a string ``class`` and a list ``args``.
    """


def encode(klass: str, args: list | tuple) -> str:
    """
    The payload Resque.enqueue would push for ``klass`` and ``args``.
    """
    if not isinstance(klass, str) or not klass:
        raise TypeError(f"a job class must be a non-empty string, not {klass!r}")
    return _dumps({"class": klass, "args": list(args)})


def decode(raw: bytes | str) -> dict[str, Any]:
    """
    The job in ``raw``, or `MalformedJob` saying what is wrong with it.
    """
    try:
        text = raw.decode("utf-8") if type(raw) is bytes else raw
        job, end = _scan(text, 0)
    except (ValueError, StopIteration):
        job, end, text = None, -1, ""
    if (
        end == len(text)
        and type(job) is dict
        and type(job.get("class")) is str
        and job["class"]
        and type(job.get("args")) is list
    ):
        return job
    # Anything unusual (surrounding white space, or a bad payload) takes the
    # careful way, which also says precisely what is wrong.
    return _decode_slowly(raw)


def _decode_slowly(raw: bytes | str) -> dict[str, Any]:
    if type(raw) is bytes:
        # Resque payloads are UTF-8; json.loads would guess UTF-16 or -32 too.
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedJob(f"payload is not valid UTF-8: {e}") from None
    try:
        job = _loads(raw)
    except ValueError as e:
        raise MalformedJob(f"payload is not JSON: {e}") from None
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
    return job


def as_text(raw: bytes | str) -> str:
    """
    A payload as text for hooks and failure records; bytes that are not
    UTF-8 are kept visible as escapes rather than dropped.
    """
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
