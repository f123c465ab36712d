"""
``pace failed list|show|retry|retry-all|remove|clear``: Resque's failed
list, read as stored whatever it holds (records that are not JSON, not
UTF-8, lone surrogates, records of hundreds of megabytes), printed escaped
and cut to a readable size unless ``--full``; retried and removed as
Resque's own ``Resque::Failure`` does.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

from pace import keys
from pace.cli import Context, add_command
from pace.cli.names import queue_key
from pace.cli.output import CommandError, decode, iso_utc, shown

#: Characters of each value shown unless --full: a screen, not a dump.
LIST_LIMIT = 120
SHOW_LIMIT = 2000
#: Records read per round trip when listing (a record may be huge).
CHUNK = 10


class Record:
    """
    One entry of the failed list: its text (bytes that are not UTF-8 kept
    as surrogates) and, when it is a JSON object, its fields.
    """

    def __init__(self, index: int, raw: bytes):
        self.index = index
        self.size = len(raw)
        self.text = decode(raw)
        try:
            data = json.loads(self.text)
        except (ValueError, RecursionError):
            data = None
        self.data: dict | None = data if isinstance(data, dict) else None

    def get(self, name: str) -> Any:
        return self.data.get(name) if self.data is not None else None

    @property
    def klass(self) -> Any:
        payload = self.get("payload")
        if isinstance(payload, dict):
            return payload.get("class")
        return "(malformed)" if self.data is not None else None

    def summary(self, limit: int | None) -> dict:
        if self.data is None:
            return {"index": self.index, "record": shown(self.text, limit), "bytes": self.size}
        return {
            "index": self.index,
            "failed_at": iso_utc(self.get("failed_at")),
            "queue": shown(self.get("queue"), limit),
            "class": shown(self.klass, limit),
            "exception": shown(self.get("exception"), limit),
            "error": shown(self.get("error"), limit),
            "worker": shown(self.get("worker"), limit),
            "retried_at": iso_utc(self.get("retried_at")) if self.get("retried_at") else None,
            "bytes": self.size,
        }


def _encode(value: Any) -> bytes:
    # Bytes that were not UTF-8 go back as they came; a lone surrogate
    # (valid JSON, not valid UTF-8) stays a JSON escape.
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")


def _records(r: Any, start: int, count: int) -> Iterator[Record]:
    for first in range(start, start + count, CHUNK):
        last = min(first + CHUNK, start + count) - 1
        raws = r.lrange(keys.failed_list(), first, last)
        for i, raw in enumerate(raws, first):
            yield Record(i, raw)
        if len(raws) < last - first + 1:
            return


def _record(r: Any, index: int) -> Record:
    raw = r.lindex(keys.failed_list(), index)
    if raw is None:
        total = r.llen(keys.failed_list())
        if not total:
            raise CommandError("the failed list is empty")
        raise CommandError(f"no failed job number {index}: they are numbered 0 to {total - 1}")
    return Record(index, raw)


def cmd_list(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    limit = None if args.full else LIST_LIMIT
    total = ctx.raw.llen(keys.failed_list())
    rows = [rec.summary(limit) for rec in _records(ctx.raw, args.start, args.count)]
    if args.json:
        out.json({"total": total, "start": args.start, "records": rows})
        return 0
    out.table(
        f"Failed jobs ({total:,})",
        ["#", "failed at", "queue", "class", "exception", "error", "retried at"],
        [
            [
                f"{row['index']:,}",
                row.get("failed_at", "-"),
                row.get("queue", "-"),
                row.get("class", "-"),
                row.get("exception", "(not a JSON record)"),
                row.get("error", row.get("record")),
                row.get("retried_at") or "",
            ]
            for row in rows
        ],
        [0],
    )
    return 0


def cmd_show(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    rec = _record(ctx.raw, args.index)
    if args.json:
        # Machines get the record whole, as stored.
        out.json(rec.data if rec.data is not None else {"record": rec.text})
        return 0
    limit = None if args.full else SHOW_LIMIT
    out.line(f"failed job {rec.index} ({rec.size:,} bytes)")
    if rec.data is None:
        out.line(f"  not a JSON record: {shown(rec.text, limit)}")
        return 0
    for name, value in rec.data.items():
        if name in ("failed_at", "retried_at"):
            text = iso_utc(value)
        elif name == "backtrace" and isinstance(value, list):
            out.line("  backtrace:")
            for frame in value[: None if args.full else 50]:
                out.line(f"    {shown(frame, limit)}")
            if not args.full and len(value) > 50:
                out.line(f"    … ({len(value) - 50:,} more lines)")
            continue
        elif isinstance(value, str):
            text = shown(value, limit)
        else:
            text = shown(json.dumps(value), limit)
        out.line(f"  {name}: {text}")
    if not args.full and rec.size > SHOW_LIMIT:
        out.line("(long values are cut: --full shows them whole, --json as JSON)")
    return 0


def _retry(r: Any, index: int) -> str:
    # As Resque::Failure::Redis.requeue: mark the record retried, push its
    # payload back onto its queue. WATCH: if the list changes under us
    # (a removal shifts the numbers), read again rather than mark another.
    import redis

    for _ in range(10):
        with r.pipeline() as pipe:
            try:
                pipe.watch(keys.failed_list())
                rec = _record(pipe, index)
                payload, queue = rec.get("payload"), rec.get("queue")
                if not isinstance(payload, dict) or not isinstance(queue, str) or not queue:
                    raise CommandError(f"failed job {index} has no job to retry")
                assert rec.data is not None  # its payload is a dict
                rec.data["retried_at"] = time.strftime("%Y/%m/%d %H:%M:%S UTC", time.gmtime())
                pipe.multi()
                pipe.lset(keys.failed_list(), index, _encode(rec.data))
                pipe.sadd(keys.queues_set(), queue)
                pipe.rpush(queue_key(queue), _encode(payload))
                pipe.execute()
                return queue
            except redis.WatchError:
                continue
    raise CommandError(f"the failed list kept changing: failed job {index} not retried")


def cmd_retry(ctx: Context) -> int:
    queue = _retry(ctx.raw, ctx.args.index)
    ctx.out.line(f"failed job {ctx.args.index} enqueued again on {shown(queue)}")
    return 0


def cmd_retry_all(ctx: Context) -> int:
    total = ctx.raw.llen(keys.failed_list())
    retried = skipped = 0
    for i in range(total):
        try:
            _retry(ctx.raw, i)
            retried += 1
        except CommandError:
            skipped += 1
    ctx.out.line(
        f"{retried:,} failed jobs enqueued again" + (f", {skipped:,} skipped" if skipped else "")
    )
    return 0


def cmd_remove(ctx: Context) -> int:
    r, index = ctx.raw, ctx.args.index
    _record(r, index)
    # As Resque does: mark the entry, then remove the mark (indexes shift).
    mark = f"__pace_remove_{time.time_ns()}__"
    pipe = r.pipeline()
    pipe.lset(keys.failed_list(), index, mark)
    pipe.lrem(keys.failed_list(), 1, mark)
    pipe.execute()
    ctx.out.line(f"failed job {index} removed")
    return 0


def cmd_clear(ctx: Context) -> int:
    r, out = ctx.raw, ctx.out
    total = r.llen(keys.failed_list())
    if not total:
        out.line("the failed list is already empty")
        return 0
    if not (ctx.args.yes or out.ask(f"Delete all {total:,} failed jobs?")):
        out.line("nothing deleted")
        return 1
    r.delete(keys.failed_list())
    out.line(f"{total:,} failed jobs deleted")
    return 0


def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"a record number is 0 or more, not {text!r}")
    return value


def setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="list failed jobs")
    ls.add_argument("--start", type=_index, default=0, help="first record (0, the oldest)")
    ls.add_argument("--count", type=_index, default=50, help="records to list (50)")
    show = sub.add_parser("show", help="show one failed job")
    show.add_argument("index", type=_index, metavar="N")
    for a, fn in ((ls, cmd_list), (show, cmd_show)):
        a.add_argument("--json", action="store_true", help="print JSON")
        a.add_argument("--full", action="store_true", help="long values whole, not cut")
        a.set_defaults(fn=fn)
    for name, fn, text in (
        ("retry", cmd_retry, "enqueue a failed job again (marked retried)"),
        ("remove", cmd_remove, "remove one failed job"),
    ):
        a = sub.add_parser(name, help=text)
        a.add_argument("index", type=_index, metavar="N")
        a.set_defaults(fn=fn)
    sub.add_parser("retry-all", help="enqueue every failed job again").set_defaults(
        fn=cmd_retry_all
    )
    c = sub.add_parser("clear", help="delete every failed job")
    c.add_argument("--yes", action="store_true", help="do not ask")
    c.set_defaults(fn=cmd_clear)


add_command("failed", "Resque's failed list", setup)
