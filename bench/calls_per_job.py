"""
Python function calls per job on the hot path: a burst worker with a no-op
handler drains N jobs from a private redis-server under cProfile. Unlike
jobs/s, the count is the same from run to run on a busy machine, so it shows
what a change to the fetch loop or the job path costs.

    python bench/calls_per_job.py [--jobs N] [--mode reliable|at-most-once]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--mode", choices=("reliable", "at-most-once"), default="reliable")
    args = p.parse_args()

    import redis
    from twisted.internet import reactor

    import pace
    from pace.redisserver import RedisServer

    server = RedisServer().start()
    try:
        client = redis.Redis(port=server.port)
        jobs = [json.dumps({"class": "J", "args": [i]}) for i in range(args.jobs)]
        client.rpush("resque:queue:q", *jobs)
        worker = pace.Worker(
            "q",
            redis_url=server.url,
            burst=True,
            reliable=args.mode == "reliable",
            log_interval=None,
        )
        profile = cProfile.Profile()

        def go() -> None:
            profile.enable()
            done = worker.start(lambda job: None)
            done.addBoth(lambda _: (profile.disable(), reactor.stop()))

        reactor.callWhenRunning(go)
        reactor.run()
        calls = pstats.Stats(profile).total_calls
        processed = int(client.get("resque:stat:processed") or 0)
        print(f"{args.mode}: {calls / args.jobs:.2f} calls per job ({processed:,} processed)")
        return 0 if processed == args.jobs else 1
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
