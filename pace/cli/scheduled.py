"""
``pace scheduled list|remove|run-now``: resque-scheduler's delayed schedule
as an operator sees it. A job is named ``TIMESTAMP:INDEX`` (its place in
its timestamp's list), as ``list`` shows; ``remove`` and ``run-now`` take
each job out in one atomic step that checks it is still there, so a job the
movers took meanwhile is never removed or run twice.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pace import keys, lua
from pace.cli import Context, add_command
from pace.cli.output import CommandError, iso_utc, shown
from pace.schedule import queue_body

#: Characters of the args shown in a list.
LIST_LIMIT = 120


def _rows(r: Any, count: int) -> tuple[list[tuple[str, int, str]], int]:
    stamps = r.zrange(keys.delayed_schedule(), 0, -1)
    rows: list[tuple[str, int, str]] = []
    for ts in stamps:
        if len(rows) >= count:
            break
        for i, raw in enumerate(r.lrange(keys.delayed_list(ts), 0, count - len(rows) - 1)):
            rows.append((ts, i, raw))
    if len(rows) < count:
        return rows, len(rows)
    return rows, sum(r.llen(keys.delayed_list(ts)) for ts in stamps)


def _due(ts: str) -> str:
    # Ruby writes whole seconds; anything else is shown as it is.
    return iso_utc(int(ts)) if ts.isdigit() else shown(ts)


def _summary(ts: str, i: int, raw: str) -> dict:
    try:
        job = json.loads(raw)
    except (ValueError, RecursionError):
        job = None
    if not isinstance(job, dict):
        return {"id": f"{ts}:{i}", "due": _due(ts), "payload": raw, "malformed": True}
    return {
        "id": f"{ts}:{i}",
        "due": _due(ts),
        "queue": job.get("queue"),
        "class": job.get("class"),
        "args": job.get("args"),
        "attempt": job.get("pace_attempt", 1),
    }


def cmd_list(ctx: Context) -> int:
    args, out = ctx.args, ctx.out
    rows, total = _rows(ctx.redis, args.count)
    summaries = [_summary(*row) for row in rows]
    if args.json:
        out.json({"total": total, "jobs": summaries})
        return 0
    out.table(
        f"Delayed jobs ({total:,})",
        ["id", "due (UTC)", "queue", "class", "args", "attempt"],
        [
            [
                s["id"],
                s["due"],
                s.get("queue", "?"),
                s.get("class", "(malformed)"),
                shown(json.dumps(s["args"]) if "args" in s else s["payload"], LIST_LIMIT),
                str(s.get("attempt", "")),
            ]
            for s in summaries
        ],
        [5],
    )
    return 0


def _find(r: Any, ident: str) -> tuple[str, str]:
    ts, sep, index = ident.partition(":")
    if not (sep and ts.isdigit() and index.isdigit()):
        raise CommandError(f"{ident!r} is not TIMESTAMP:INDEX (see pace scheduled list)")
    raw = r.lindex(keys.delayed_list(ts), int(index))
    if raw is None:
        raise CommandError(f"no delayed job {ident} (moved already? see pace scheduled list)")
    return ts, raw


def _take(r: Any, ident: str, ts: str, raw: str, run: bool) -> None:
    script_keys = [keys.delayed_schedule(), keys.delayed_list(ts), keys.delayed_timestamps(raw)]
    argv = [ts, raw]
    if run:
        found = queue_body(raw)
        if found is None:
            raise CommandError(f"delayed job {ident} is malformed: remove it instead")
        queue, body = found
        script_keys += [keys.namespaced_queue(queue), keys.queues_set()]
        argv += [body, queue]
    if not r.eval(lua.UNSCHEDULE.source, len(script_keys), *script_keys, *argv):
        raise CommandError(f"delayed job {ident} was moved or removed meanwhile")


def _each(ctx: Context, run: bool, done: str) -> int:
    r, out = ctx.redis, ctx.out
    status = 0
    found = []
    # Every id is read before any is taken: taking one shifts the indexes
    # of the others at its timestamp.
    for ident in ctx.args.ids:
        try:
            found.append((ident, *_find(r, ident)))
        except CommandError as e:
            out.error(str(e))
            status = 1
    for ident, ts, raw in found:
        try:
            _take(r, ident, ts, raw, run)
        except CommandError as e:
            out.error(str(e))
            status = 1
            continue
        out.line(f"{done} {ident}: {shown(raw, LIST_LIMIT)}")
    return status


def cmd_remove(ctx: Context) -> int:
    return _each(ctx, False, "removed")


def cmd_run_now(ctx: Context) -> int:
    return _each(ctx, True, "enqueued")


def setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="delayed jobs, the next due first")
    ls.add_argument("--count", type=int, default=50, help="at most this many (default 50)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(fn=cmd_list)
    for name, fn, text in (
        ("remove", cmd_remove, "take delayed jobs out of the schedule"),
        ("run-now", cmd_run_now, "push delayed jobs onto their queues now"),
    ):
        a = sub.add_parser(name, help=text)
        a.add_argument("ids", nargs="+", metavar="TIMESTAMP:INDEX", help="as scheduled list shows")
        a.set_defaults(fn=fn)


add_command("scheduled", "delayed jobs (resque-scheduler's schedule)", setup)
