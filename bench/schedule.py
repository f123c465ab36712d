"""
Delayed jobs: how late the movers push due jobs onto their queues, under
load, and what the mover costs an idle worker, against a private
redis-server (never the one on 6379).

- ``idle``: ``--workers`` Pace workers with nothing scheduled and nothing
  queued, for ``--seconds``; Redis's own command counters (INFO
  commandstats) say how many commands the workers sent a second, all of
  them (the mover's EVALSHA, the blocking fetch, heartbeats), and the
  mover's share.
- ``lateness``: ``--jobs`` delayed jobs spread over the next ``--seconds``
  (at whole seconds), while the same workers chew through a backlog of
  at least ``--load`` no-op jobs on another queue in the same reactor; a job's
  lateness is when its handler started minus its timestamp (its queue has
  no backlog, so that is the mover's lateness plus one fetch).

    .venv/bin/python bench/schedule.py [--workers 4] [--jobs 5000] [--load 50000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402
from twisted.internet import defer, reactor, task  # noqa: E402

import pace  # noqa: E402
from pace.redisserver import RedisServer  # noqa: E402


def commandstats(r: redis.Redis) -> dict[str, int]:
    return {name: int(v["calls"]) for name, v in r.info("commandstats").items()}


@defer.inlineCallbacks
def run(args: argparse.Namespace, url: str, r: redis.Redis) -> defer.Generator:
    late: list[float] = []

    def probe(job: dict) -> None:
        late.append(time.time() - job["args"][0])

    def noop(job: dict) -> None:
        return None

    workers = []
    for _ in range(args.workers):
        # The probe queue first: its lateness is the mover's plus one fetch,
        # not a wait behind the load.
        w = pace.Worker(["probe", "load"], redis_url=url, log_interval=None)
        workers.append(w)
        w.start(lambda job: probe(job) if job["class"] == "Probe" else noop(job))
    yield task.deferLater(reactor, 2, lambda: None)

    before = commandstats(r)
    t0 = time.time()
    yield task.deferLater(reactor, args.seconds, lambda: None)
    span = time.time() - t0
    after = commandstats(r)
    diff = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    diff = {k: v for k, v in diff.items() if v and k != "cmdstat_info"}
    total = sum(diff.values())
    # Each mover call runs one ZRANGEBYSCORE when nothing is due.
    mover = diff.get("cmdstat_zrangebyscore", 0)
    idle = {
        "workers": args.workers,
        "seconds": round(span, 1),
        "commands_per_s_all_workers": round(total / span, 2),
        "commands_per_s_per_worker": round(total / span / args.workers, 2),
        "mover_calls_per_s_per_worker": round(mover / span / args.workers, 2),
        "by_command": diff,
    }

    # Lateness under load: a backlog on "load" kept topped up (the reactor
    # stays busy), delayed probes spread over the next seconds.
    noops = ['{"class":"Noop","args":[]}'] * 10000
    loaded = [0]

    def top_up() -> None:
        while r.llen("resque:queue:load") < args.load:
            r.rpush("resque:queue:load", *noops)
            loaded[0] += len(noops)

    feeder = task.LoopingCall(top_up)
    feeder.start(0.25)
    start = int(time.time()) + 2
    per_second = max(1, args.jobs // args.seconds)
    pipe = r.pipeline()
    n = 0
    for s in range(args.seconds):
        ts = start + s
        for _ in range(per_second):
            payload = json.dumps(
                {"class": "Probe", "args": [ts], "queue": "probe"}, separators=(",", ":")
            )
            pipe.rpush(f"resque:delayed:{ts}", payload)
            pipe.sadd(f"resque:timestamps:{payload}", f"delayed:{ts}")
            n += 1
        pipe.zadd("resque:delayed_queue_schedule", {str(ts): ts})
    pipe.execute()
    deadline = time.time() + args.seconds + 60
    while len(late) < n and time.time() < deadline:
        yield task.deferLater(reactor, 0.2, lambda: None)
    feeder.stop()
    processed = int(r.get("resque:stat:processed") or 0)
    yield defer.gatherResults([w.shutdown() for w in workers])
    late.sort()
    lateness = {
        "jobs": n,
        "ran": len(late),
        "load_backlog_kept_at": args.load,
        "jobs_processed_meanwhile": processed,
        "median_s": round(statistics.median(late), 3),
        "p99_s": round(late[int(len(late) * 0.99) - 1], 3),
        "worst_s": round(late[-1], 3),
        "earliest_s": round(late[0], 3),
    }
    return {"idle": idle, "lateness": lateness}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--jobs", type=int, default=5000)
    p.add_argument("--load", type=int, default=50000)
    p.add_argument("--seconds", type=int, default=10)
    args = p.parse_args()
    server = RedisServer().start()
    result: dict = {}
    try:
        r = redis.Redis(port=server.port, decode_responses=True)

        def done(value: dict) -> None:
            result.update(value)
            reactor.stop()

        def failed(f) -> None:
            f.printTraceback()
            reactor.stop()

        reactor.callWhenRunning(lambda: run(args, server.url, r).addCallbacks(done, failed))
        reactor.run()
    finally:
        server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
