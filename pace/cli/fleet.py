"""
``pace pause``, ``pace resume`` and ``pace check``: fleet control from the
shell. A queue pause is a key every Pace worker of the queue reads twice a
second; ``--all`` is Resque's own ``pause-all-workers`` switch, which Ruby
workers honour too. ``check`` is an exec probe: 0 when a live Pace worker
heartbeats for every named queue, else 1 and one line why.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pace import keys
from pace.cli import Context, add_command
from pace.cli.names import nonempty, queue_key, seconds
from pace.cli.output import CommandError


def _queue_or_all(args: argparse.Namespace, verb: str) -> None:
    if args.all == (args.queue is not None):
        raise CommandError(f"say what to {verb}: a QUEUE, or --all for every worker")


def cmd_pause(ctx: Context) -> int:
    args, r, out = ctx.args, ctx.redis, ctx.out
    _queue_or_all(args, "pause")
    if args.all:
        if args.seconds is not None:
            raise CommandError("--for works with a QUEUE; --all lasts until `pace resume --all`")
        r.set(keys.pause_all_workers(), "true")
        out.line("every Resque and Pace worker pauses (until `pace resume --all`)")
        return 0
    key = keys.queue_paused(queue_key(args.queue))
    if args.seconds is None:
        r.set(key, "operator")
        out.line(f"{args.queue} paused for every Pace worker (until `pace resume {args.queue}`)")
    else:
        r.set(key, "operator", px=max(1, int(args.seconds * 1000)))
        out.line(f"{args.queue} paused for every Pace worker for {args.seconds:g}s")
    return 0


def cmd_resume(ctx: Context) -> int:
    args, r, out = ctx.args, ctx.redis, ctx.out
    _queue_or_all(args, "resume")
    if args.all:
        r.delete(keys.pause_all_workers())
        out.line("pause-all-workers cleared: Resque and Pace workers start again")
        return 0
    if not r.delete(keys.queue_paused(queue_key(args.queue))):
        out.line(f"{args.queue} was not paused")
        return 0
    out.line(f"{args.queue} resumed")
    return 0


def live_workers(r: Any) -> dict[str, list[str]]:
    """
    Pace workers whose heartbeat key is alive: Resque id -> short queue names.
    """
    registry = r.hgetall(keys.pace_workers())
    tokens = sorted(registry)
    pipe = r.pipeline()
    for token in tokens:
        pipe.exists(keys.heartbeat(token))
    alive = pipe.execute() if tokens else []
    found: dict[str, list[str]] = {}
    for token, beating in zip(tokens, alive, strict=True):
        if not beating:
            continue
        try:
            record = json.loads(registry[token])
            resque_id = record["resque_id"]
            queues = record.get("queues")
        except (ValueError, TypeError, KeyError):
            continue
        if queues is None:
            # Resque's worker name is host:pid:queue1,queue2 (short names).
            parts = str(resque_id).split(":", 2)
            queues = parts[2].split(",") if len(parts) == 3 else []
        found[resque_id] = list(queues)
    return found


def cmd_check(ctx: Context) -> int:
    args, r, out = ctx.args, ctx.redis, ctx.out
    workers = live_workers(r)
    wanted = args.queue or []
    if not workers:
        out.error("no live Pace worker: none has a heartbeat in Redis")
        return 1
    served = {q for queues in workers.values() for q in queues}
    missing = [q for q in wanted if q not in served]
    if missing:
        out.error(f"no live Pace worker for {', '.join(missing)}")
        return 1
    n = len(workers)
    what = f" for {', '.join(wanted)}" if wanted else ""
    out.line(f"ok: {n} live Pace worker{'s' if n != 1 else ''}{what}")
    return 0


def _pause_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("queue", nargs="?", type=nonempty("the queue name"), metavar="QUEUE")
    p.add_argument("--all", action="store_true", help="set Resque's pause-all-workers")
    p.add_argument("--for", dest="seconds", type=seconds, metavar="SECONDS")
    p.set_defaults(fn=cmd_pause)


def _resume_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("queue", nargs="?", type=nonempty("the queue name"), metavar="QUEUE")
    p.add_argument("--all", action="store_true", help="delete Resque's pause-all-workers")
    p.set_defaults(fn=cmd_resume)


def _check_setup(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--queue",
        action="append",
        type=nonempty("the queue name"),
        metavar="Q",
        help="a queue that must have a live worker (repeat for more)",
    )
    p.set_defaults(fn=cmd_check)


add_command("pause", "pause a queue for every Pace worker, or --all workers", _pause_setup)
add_command("resume", "end a pause made by `pace pause`", _resume_setup)
add_command("check", "exit 0 if a live Pace worker serves each --queue (a probe)", _check_setup)
