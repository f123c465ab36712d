"""
``pace queues clear QUEUE``: delete the jobs waiting in a Resque queue,
after asking (or with ``--yes``).
"""

from __future__ import annotations

import argparse

from pace.cli import Context, add_command
from pace.cli.names import nonempty, queue_key


def cmd_queues_clear(ctx: Context) -> int:
    args, r, out = ctx.args, ctx.redis, ctx.out
    key = queue_key(args.queue)
    total = r.llen(key)
    if not total:
        out.line(f"no jobs waiting in {args.queue}")
        return 0
    if not (args.yes or out.ask(f"Delete the {total:,} jobs waiting in {args.queue}?")):
        out.line("nothing deleted")
        return 1
    # Only what is there now: jobs pushed meanwhile stay.
    pipe = r.pipeline()
    pipe.ltrim(key, total, -1)
    pipe.execute()
    out.line(f"{total:,} jobs deleted from {args.queue}")
    return 0


def setup(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("clear", help="delete every job waiting in a queue")
    c.add_argument("queue", type=nonempty("the queue name"), metavar="QUEUE")
    c.add_argument("--yes", action="store_true", help="do not ask")
    c.set_defaults(fn=cmd_queues_clear)


add_command("queues", "queues", setup)
