"""
``pace stats``: the queues with their lengths, the workers (started, last
beat, in flight, paused, their counters) and the totals; once, as JSON, or
refreshed every few seconds with ``--watch``.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from pace import keys
from pace.cli import Context, add_command
from pace.cli.names import queue_key, seconds
from pace.cli.output import iso_utc


def _in_flight(busy: str | None) -> int:
    # What a worker's Resque "working on" record says: a Pace worker's holds
    # its oldest running job and how many run ("in_flight"); a Ruby
    # worker's is its one job.
    if not busy:
        return 0
    try:
        return int(json.loads(busy).get("in_flight", 1))
    except (ValueError, TypeError, AttributeError):
        return 1


def _number(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def snapshot(r: Any) -> dict:
    """
    Everything ``pace stats`` shows, as plain data (what ``--json`` prints).
    """
    names = sorted(r.smembers(keys.queues_set()))
    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.llen(queue_key(name))
    lengths = pipe.execute()
    workers = sorted(r.smembers(keys.resque_workers()))
    beats = r.hgetall(keys.resque_heartbeats())
    pipe = r.pipeline(transaction=False)
    for w in workers:
        pipe.get(keys.worker_started(w))
        pipe.get(keys.worker_busy(w))
        pipe.get(keys.stat(f"processed:{w}"))
        pipe.get(keys.stat(f"failed:{w}"))
    per_worker = pipe.execute()
    pipe = r.pipeline(transaction=False)
    pipe.get(keys.stat("processed"))
    pipe.get(keys.stat("failed"))
    pipe.llen(keys.failed_list())
    processed, failed, failed_list = pipe.execute()
    rows = []
    for i, w in enumerate(workers):
        started, busy, done, failures = per_worker[4 * i : 4 * i + 4]
        rows.append(
            {
                "worker": w,
                "started": iso_utc(started),
                "last_beat": iso_utc(beats.get(w)),
                "in_flight": _in_flight(busy),
                # Workers do not publish their paused state (yet): unknown.
                "paused": None,
                "processed": _number(done),
                "failed": _number(failures),
            }
        )
    return {
        "queues": [{"queue": n, "jobs": length} for n, length in zip(names, lengths, strict=True)],
        "workers": rows,
        "processed": _number(processed),
        "failed": _number(failed),
        "failed_list": failed_list,
        **_fleet_pauses(r, names),
        "held": _held(r),
    }


def _held(r: Any) -> list[dict]:
    # Jobs Pace workers hold in their processing lists: in no queue until
    # they settle, or, for a dead worker, until a sweep puts them back.
    from pace.registry import fleet

    return [
        {"worker": w["resque_id"], "state": w["state"], "queue": q, "jobs": n}
        for w in fleet(r)
        for q, _, n in w["held"]
        if n
    ]


def _fleet_pauses(r: Any, names: list[str]) -> dict:
    # Fleet pauses (pace pause, a shared circuit): queue -> seconds left, or
    # None for "until resumed"; and Resque's pause-all-workers switch.
    from pace.queuepause import is_pause_all

    pipe = r.pipeline(transaction=False)
    for name in names:
        pipe.pttl(keys.queue_paused(queue_key(name)))
    pipe.get(keys.pause_all_workers())
    *ttls, everyone = pipe.execute()
    paused = {n: None if t == -1 else t / 1000 for n, t in zip(names, ttls, strict=True) if t != -2}
    return {"paused_queues": paused, "pause_all_workers": is_pause_all(everyone)}


def _show(ctx: Context, data: dict) -> None:
    out = ctx.out
    if ctx.args.json:
        out.json(data)
        return
    out.table(
        "Queues", ["queue", "jobs"], [[q["queue"], f"{q['jobs']:,}"] for q in data["queues"]], [1]
    )
    if data["paused_queues"]:
        out.line(
            "paused for the fleet: "
            + ", ".join(
                f"{n} ({'until resumed' if t is None else f'{t:.0f}s more'})"
                for n, t in sorted(data["paused_queues"].items())
            )
        )
    if data["pause_all_workers"]:
        out.line("Resque's pause-all-workers is set: every worker is paused")
    out.line()
    paused = {None: "-", True: "yes", False: "no"}
    out.table(
        "Workers",
        ["worker", "started", "last beat", "in flight", "paused", "processed", "failed"],
        [
            [
                w["worker"],
                w["started"],
                w["last_beat"],
                f"{w['in_flight']:,}",
                paused[w["paused"]],
                f"{w['processed']:,}",
                f"{w['failed']:,}",
            ]
            for w in data["workers"]
        ],
        [3, 5, 6],
    )
    if data["held"]:
        out.line()
        out.table(
            "Jobs held by Pace workers (back in their queues when a dead worker is swept)",
            ["worker", "state", "queue", "jobs"],
            [[h["worker"], h["state"], h["queue"], f"{h['jobs']:,}"] for h in data["held"]],
            [3],
        )
    out.line()
    out.line(
        f"processed {data['processed']:,}   failed {data['failed']:,}   "
        f"in the failed list {data['failed_list']:,}"
    )


def cmd_stats(ctx: Context) -> int:
    args = ctx.args
    if args.watch is None:
        _show(ctx, snapshot(ctx.redis))
        return 0
    shown = 0
    while args.count is None or shown < args.count:
        if shown:
            time.sleep(args.watch)
        data = snapshot(ctx.redis)
        if ctx.out.tty:
            ctx.out.clear()
        elif shown and not args.json:
            ctx.out.line()
        if not args.json:
            ctx.out.line(f"pace stats at {iso_utc(time.time())} (every {args.watch:g}s)")
        _show(ctx, data)
        shown += 1
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return value


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=seconds,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C",
    )
    p.add_argument("--count", type=_count, help="with --watch: stop after this many refreshes")
    p.set_defaults(fn=cmd_stats)


add_command("stats", "queues, workers and counters", setup)
