"""
``pace enqueue QUEUE CLASS [ARG ...]``: one job, as ``Resque.enqueue_to``
writes it. Each ARG is JSON; anything that is not JSON is a string.
"""

from __future__ import annotations

import argparse
import json

from pace import keys
from pace.cli import Context, add_command
from pace.cli.names import nonempty, queue_key
from pace.payload import encode


def cmd_enqueue(ctx: Context) -> int:
    args = ctx.args
    job_args = []
    for text in args.args:
        try:
            job_args.append(json.loads(text))
        except ValueError:
            job_args.append(text)  # a bare word is a string
    r = ctx.redis
    pipe = r.pipeline()
    pipe.sadd(keys.queues_set(), args.queue)
    pipe.rpush(queue_key(args.queue), encode(args.klass, job_args))
    _, length = pipe.execute()
    ctx.out.line(
        f"enqueued {args.klass} {json.dumps(job_args)} on {args.queue} ({length:,} waiting)"
    )
    return 0


def setup(p: argparse.ArgumentParser) -> None:
    p.add_argument("queue", type=nonempty("the queue name"), metavar="QUEUE")
    p.add_argument("klass", type=nonempty("the job class"), metavar="CLASS")
    p.add_argument("args", nargs="*", metavar="ARG")
    p.set_defaults(fn=cmd_enqueue)


add_command("enqueue", "enqueue a job: ARGs are JSON (bare words are strings)", setup)
