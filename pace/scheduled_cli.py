"""
``pace scheduled list|remove|run-now``: the delayed schedule as an operator
sees it. A job is named ``TIMESTAMP:INDEX`` (its place in its timestamp's
list), as ``list`` shows; ``remove`` and ``run-now`` check the payload is
still there, so a job the mover took meanwhile is never removed or doubled.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from pace import keys, lua
from pace.schedule import queue_body


class _Error(Exception):
    pass


def add_commands(sub: Any) -> None:
    """
    Add ``scheduled`` to the ``pace`` command's subparsers.
    """
    s = sub.add_parser("scheduled", help="delayed jobs (resque-scheduler's schedule)")
    actions = s.add_subparsers(dest="action", required=True)
    sl = actions.add_parser("list", help="list delayed jobs, the next due first")
    sl.add_argument("--count", type=int, default=50, help="at most this many jobs (default 50)")
    sl.set_defaults(fn=cmd_scheduled_list)
    for name, fn, text in (
        ("remove", cmd_scheduled_remove, "take delayed jobs out of the schedule"),
        ("run-now", cmd_scheduled_run_now, "push delayed jobs onto their queues now"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument(
            "ids", nargs="+", metavar="TIMESTAMP:INDEX", help="as `scheduled list` shows"
        )
        a.set_defaults(fn=fn)


def _when(ts: str) -> str:
    try:
        return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError, OSError):
        return ts


def cmd_scheduled_list(r: Any, args: argparse.Namespace, out: Any) -> int:
    from rich.table import Table

    stamps = r.zrange(keys.delayed_schedule(), 0, -1)
    rows: list[tuple[str, int, str]] = []
    for ts in stamps:
        if len(rows) >= args.count:
            break
        for i, raw in enumerate(r.lrange(keys.delayed_list(ts), 0, args.count - len(rows) - 1)):
            rows.append((ts, i, raw))
    total = (
        sum(r.llen(keys.delayed_list(ts)) for ts in stamps)
        if len(rows) >= args.count
        else len(rows)
    )
    table = Table(title=f"Delayed jobs ({total:,})")
    for column in ("id", "due (UTC)", "queue", "class", "args", "attempt"):
        table.add_column(column, overflow="fold")
    for ts, i, raw in rows:
        try:
            job = json.loads(raw)
        except ValueError:
            job = None
        if not isinstance(job, dict):
            table.add_row(f"{ts}:{i}", _when(ts), "?", "(malformed)", raw[:80], "")
            continue
        table.add_row(
            f"{ts}:{i}",
            _when(ts),
            str(job.get("queue", "?")),
            str(job.get("class", "?")),
            json.dumps(job.get("args"))[:120],
            str(job.get("pace_attempt", 1)),
        )
    out.print(table)
    return 0


def _find(r: Any, ident: str) -> tuple[str, str]:
    ts, sep, index = ident.partition(":")
    if not (sep and ts.isdigit() and index.isdigit()):
        raise _Error(f"{ident!r} is not TIMESTAMP:INDEX (see `pace scheduled list`)")
    raw = r.lindex(keys.delayed_list(ts), int(index))
    if raw is None:
        raise _Error(f"no delayed job {ident} (moved already, or see `pace scheduled list`)")
    return ts, raw


def _take(r: Any, ident: str, ts: str, raw: str, run: bool) -> None:
    script_keys = [keys.delayed_schedule(), keys.delayed_list(ts), keys.delayed_timestamps(raw)]
    argv = [ts, raw]
    if run:
        found = queue_body(raw)
        if found is None:
            raise _Error(f"delayed job {ident} is malformed ({raw[:200]!r}); remove it instead")
        queue, body = found
        script_keys += [keys.namespaced_queue(queue), keys.queues_set()]
        argv += [body, queue]
    if not r.eval(lua.UNSCHEDULE.source, len(script_keys), *script_keys, *argv):
        raise _Error(f"delayed job {ident} was moved or removed meanwhile")


def _each(r: Any, args: argparse.Namespace, out: Any, run: bool, done: str) -> int:
    code = 0
    found = []
    # Every id is read before any is taken: taking one shifts the indexes
    # of the others at its timestamp.
    for ident in args.ids:
        try:
            found.append((ident, *_find(r, ident)))
        except _Error as e:
            out.print(f"[red]error:[/red] {e}")
            code = 1
    for ident, ts, raw in found:
        try:
            _take(r, ident, ts, raw, run)
        except _Error as e:
            out.print(f"[red]error:[/red] {e}")
            code = 1
            continue
        out.print(f"{done} {ident}: {raw[:200]}")
    return code


def cmd_scheduled_remove(r: Any, args: argparse.Namespace, out: Any) -> int:
    return _each(r, args, out, False, "removed")


def cmd_scheduled_run_now(r: Any, args: argparse.Namespace, out: Any) -> int:
    return _each(r, args, out, True, "enqueued")
