"""
Pace in bench/compare.py, run with Pace's own .venv: the queue filled with
redis-py RPUSH of Resque payloads (as bench/run.py does), then
pace.Worker(concurrency=100, reliable=True or False) in this process's
reactor. no-op: the handler counts; latency: it returns
task.deferLater(reactor, 0.005, count).
"""

from __future__ import annotations

import time
from typing import Any

from peerlib import (
    CONCURRENCY,
    LATENCY,
    QUEUE,
    Run,
    Tally,
    finish,
    give_up_later,
    parse_args,
    version,
)

QUEUE_KEY = f"resque:queue:{QUEUE}"
CHUNK = 1000


def fill(client: Any, jobs: int) -> None:
    pipe = client.pipeline(transaction=False)
    for first in range(0, jobs, CHUNK):
        last = min(first + CHUNK, jobs)
        pipe.rpush(QUEUE_KEY, *[f'{{"class":"Noop","args":[{i}]}}' for i in range(first, last)])
    pipe.execute()


def main() -> None:
    args = parse_args(["reliable", "at-most-once"])
    import redis
    from twisted.internet import reactor, task

    import pace

    reliable = args.variant == "reliable"
    tally = Tally(args.jobs)
    settings = f"pace.Worker(concurrency={CONCURRENCY}, reliable={reliable})"
    run = Run(args, f"pace ({args.variant})", version("txpace", "twisted"), settings, tally)
    client = redis.Redis(port=args.redis_port)
    began = time.monotonic()
    fill(client, args.jobs)
    run.filled(time.monotonic() - began)
    client.close()

    begin, hit = tally.begin, tally.hit
    if args.workload == "noop":

        def handler(job: dict) -> None:
            begin()
            hit()

    else:

        def handler(job: dict) -> Any:
            begin()
            return task.deferLater(reactor, LATENCY, hit)

    worker = pace.Worker(
        QUEUE,
        concurrency=CONCURRENCY,
        reliable=reliable,
        redis_url=f"redis://127.0.0.1:{args.redis_port}/0",
    )

    def started() -> None:
        run.watch(lambda: reactor.callFromThread(worker.shutdown))
        done = worker.start(handler)
        done.addErrback(lambda f: run.error(f"worker: {f.getErrorMessage()}"))
        done.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(started)
    give_up_later(run)
    reactor.run()
    finish(run)


if __name__ == "__main__":
    main()
