"""
Delayed jobs in resque-scheduler's layout: `enqueue_at` and `enqueue_in`
write what Ruby's ``Resque.enqueue_at`` writes, byte for byte, so either side
can schedule, find, remove and run the other's jobs. Moving due jobs onto
their queues is `pace.mover`'s work.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

from twisted.internet import defer

from pace import keys, lua
from pace.config import expand_queue_name, namespaced


def enqueue_at(
    when: float | datetime,
    queue: str,
    klass: str,
    *args: Any,
    redis_url: str | None = None,
    timeout: float | None = None,
) -> defer.Deferred:
    """
    Schedule a job for Resque class ``klass`` with ``args`` to be pushed onto
    ``queue`` at ``when``: a UNIX time or an aware `datetime`. Its timestamp
    is ``when`` rounded up to the second, so it never runs early. Fires with
    that timestamp, or fails as `pace.enqueue` does (`pace.EnqueueError`
    within ``timeout`` seconds).
    """
    from pace.enqueue import _bounded

    try:
        timestamp = timestamp_of(when)
        payload = delayed_payload(klass, args, queue_short_name(queue))
    except (TypeError, ValueError) as e:
        return defer.fail(e)
    conn = _connection(redis_url)
    return _bounded(conn, [push(conn, timestamp, payload)], timeout)


def enqueue_in(
    seconds: float,
    queue: str,
    klass: str,
    *args: Any,
    redis_url: str | None = None,
    timeout: float | None = None,
) -> defer.Deferred:
    """
    `enqueue_at` ``seconds`` from now (this process's clock, as Ruby's
    ``Resque.enqueue_in`` uses its own).
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        return defer.fail(TypeError(f"seconds must be a number, not {seconds!r}"))
    if not math.isfinite(seconds) or seconds < 0:
        return defer.fail(ValueError(f"seconds must be a finite number >= 0, not {seconds!r}"))
    import time

    return enqueue_at(
        time.time() + seconds, queue, klass, *args, redis_url=redis_url, timeout=timeout
    )


def push(conn: Any, timestamp: int, payload: str, ack: tuple | None = None) -> defer.Deferred:
    """
    Write ``payload`` into the schedule at ``timestamp`` as delayed_push
    does, in one step. With ``ack`` (processing list, counters, raw payload)
    the failed attempt that this retries is acknowledged in the same step.
    Fires with the timestamp (or 0 if ``ack`` found nothing to acknowledge).
    """
    script_keys = [
        keys.delayed_schedule(),
        keys.delayed_list(timestamp),
        keys.delayed_timestamps(payload),
    ]
    args: list = [timestamp, payload]
    if ack is not None:
        processing, processed, worker_processed, raw = ack
        script_keys += [processing, processed, worker_processed]
        args.append(raw)
    d = lua.DELAYED_PUSH(conn, script_keys, args)
    return d.addCallback(lambda done: timestamp if int(done) else 0)


def timestamp_of(when: float | datetime) -> int:
    """
    The whole-second timestamp of ``when``, rounded up.
    """
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(
                f"{when!r} is a naive datetime: give it a timezone "
                "(datetime.now(timezone.utc), or .astimezone()) or pass a UNIX time"
            )
        when = when.timestamp()
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(f"when must be a UNIX time or an aware datetime, not {when!r}")
    if not math.isfinite(when) or when < 0:
        raise ValueError(f"when must be a finite UNIX time, not {when!r}")
    return math.ceil(when)


def queue_short_name(queue: str) -> str:
    """
    The name a delayed payload carries: resque-scheduler pushes due jobs
    onto ``resque:queue:<name>``, so only such queues can be scheduled into.
    """
    short = resque_short_name(expand_queue_name(queue))
    if short is None:
        raise ValueError(
            f"{queue!r} is not a Resque queue (resque:queue:<name>): "
            "delayed jobs can only go to Resque queues"
        )
    return short


def resque_short_name(key: str) -> str | None:
    """
    The short name of an expanded queue key under ``resque:queue:``, or
    None for a queue that is a whole key of its own.
    """
    prefix = namespaced("resque:queue:")
    return key[len(prefix) :] if key.startswith(prefix) and len(key) > len(prefix) else None


def delayed_payload(klass: str, args: Any, queue: str, extra: dict | None = None) -> str:
    """
    ``{"class":...,"args":[...],"queue":...}`` as Ruby's JSON writes it (the
    string Ruby searches for); ``extra`` keys go before ``queue``, which the
    mover expects last.
    """
    if not isinstance(klass, str) or not klass:
        raise TypeError(f"a job class must be a non-empty string, not {klass!r}")
    job: dict = {"class": klass, "args": list(args)}
    if extra:
        job.update(extra)
    job["queue"] = queue
    return ruby_json(job)


def ruby_json(value: Any) -> str:
    """
    Compact JSON as Ruby's json gem writes it: UTF-8 unescaped, "/" as it
    is, floats as Ruby's ``Float#to_s`` (``1.0e+20``). NaN and infinities
    are refused, as Ruby refuses them.
    """
    parts: list[str] = []
    _write(value, parts.append, 0)
    return "".join(parts)


def _write(value: Any, out: Any, depth: int) -> None:
    if depth > 100:
        raise ValueError("job arguments are nested more than 100 levels deep")
    if isinstance(value, str):
        out(encode_basestring(value))
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif isinstance(value, int):
        out(str(int(value)))
    elif isinstance(value, float):
        out(ruby_float(value))
    elif isinstance(value, (list, tuple)):
        out("[")
        for i, item in enumerate(value):
            if i:
                out(",")
            _write(item, out, depth + 1)
        out("]")
    elif isinstance(value, dict):
        out("{")
        for i, (k, item) in enumerate(value.items()):
            if i:
                out(",")
            if not isinstance(k, str):
                if isinstance(k, bool) or not isinstance(k, (int, float)) and k is not None:
                    raise TypeError(f"a JSON object key must be a string, not {k!r}")
                k = "" if k is None else (ruby_float(k) if isinstance(k, float) else str(k))
            out(encode_basestring(k))
            out(":")
            _write(item, out, depth + 1)
        out("}")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def ruby_float(x: float) -> str:
    """
    ``Float#to_s``: the shortest digits that read back as ``x``, written
    plainly for 1e-4 <= |x| < 1e15, else as ``d.ddde+XX``.
    """
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not valid in JSON (Ruby refuses it too)")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0.0"
    t = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    point = len(digits) + int(t.exponent)  # digits before the decimal point
    # Ruby writes 16 integer digits plainly only when a fraction follows.
    if -4 < point and (point <= 15 or point == 16 and len(digits) > 16):
        if point <= 0:
            text = "0." + "0" * -point + digits
        elif point >= len(digits):
            text = digits + "0" * (point - len(digits)) + ".0"
        else:
            text = digits[:point] + "." + digits[point:]
    else:
        exp = point - 1
        text = f"{digits[0]}.{digits[1:] or '0'}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    return sign + text


def _connection(redis_url: str | None) -> Any:
    # The same kept connection as pace.enqueue (and pace.disconnect).
    from pace.enqueue import _connection as connection

    return connection(redis_url)


def queue_body(raw: str) -> tuple[str, str] | None:
    """
    (queue, Resque payload) of a schedule entry, as the mover's script
    makes them: the entry without its trailing ``"queue"`` key, byte for
    byte; the entry as it is when "queue" is elsewhere; None if malformed.
    """
    import json

    try:
        job = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(job, dict):
        return None
    queue, klass, args = job.get("queue"), job.get("class"), job.get("args", [])
    if not (isinstance(queue, str) and queue and isinstance(klass, str) and klass):
        return None
    if not isinstance(args, (list, dict)):
        return None
    at = raw.rfind(',"queue":')
    if at >= 0:
        body = raw[:at] + "}"
        try:
            rest, left = json.loads("{" + raw[at + 1 :]), json.loads(body)
        except ValueError:
            return queue, raw
        if rest == {"queue": queue} and isinstance(left, dict) and "queue" not in left:
            return queue, body
    return queue, raw
