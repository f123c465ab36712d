"""
The throttle's cost: CPU seconds a real throttled worker (pace.Worker with
jobs_per_second, a no-op handler, against a private redis-server) spends
per 1,000 jobs at 100 jobs/s, and whether it held the rate. Issue 10's
target is at most 0.25 CPU-s per 1,000 jobs (the Ruby original used 0.16).
Runs on its own and prints one JSON line:

    .venv/bin/python bench/throttle_cpu.py [--jobs 1000] [--rate 100]

``--throttle-from FILE`` runs the same worker with the ``Throttle`` class
of another implementation (``git show REV:pace/throttle.py > FILE``), for
before/after figures. `measure` is what a bench/run.py case would call.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

QUEUE = "bench-throttle"


def max_in_window(times: list[float], width: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def measure(jobs: int = 1000, rate: float = 100.0, url: str | None = None) -> dict[str, Any]:
    """
    Run ``jobs`` jobs through a worker throttled at ``rate`` in this
    process's reactor (which must not be running yet) and return the
    figures: CPU seconds per 1,000 jobs from the first start to the last,
    the rate reached, and the most starts in any one second.
    """
    import redis
    from twisted.internet import reactor

    import pace
    from pace.redisserver import RedisServer

    server = None
    if url is None:
        server = RedisServer().start()
        url = server.url
    client = redis.Redis.from_url(url)
    key = pace.expand_queue_name(QUEUE)
    client.delete(key)
    job = pace.payload.encode("Bench", [1])
    client.rpush(key, *[job] * jobs)
    starts: list[float] = []
    cpu: list[float] = []
    worker = pace.Worker(QUEUE, jobs_per_second=rate, redis_url=url, concurrency=100)

    def handler(_: dict) -> None:
        starts.append(time.monotonic())
        if len(starts) == 1 or len(starts) == jobs:
            cpu.append(time.process_time())
        if len(starts) == jobs:
            reactor.callLater(0, worker.shutdown)

    done = worker.start(handler)
    done.addBoth(lambda _: reactor.stop())
    # A deadline, so a stuck run ends: twice the time the jobs should take.
    reactor.callLater(2 * jobs / rate + 30, worker.shutdown)
    reactor.run()
    client.close()
    if server is not None:
        server.cleanup()
    if len(starts) < 2:
        return {"error": f"only {len(starts)} of {jobs} jobs ran"}
    span = starts[-1] - starts[0]
    return {
        "jobs": len(starts),
        "rate": rate,
        "cpu_s_per_1000_jobs": round((cpu[-1] - cpu[0]) / (len(starts) - 1) * 1000, 3),
        "jobs_per_s": round((len(starts) - 1) / span, 2),
        "share_of_rate": round((len(starts) - 1) / span / rate, 4),
        "max_in_1s": max_in_window(starts, 1.0),
        "max_in_100ms": max_in_window(starts, 0.1),
    }


def _use_throttle_from(path: str) -> None:
    spec = importlib.util.spec_from_file_location("_other_throttle", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    import pace.worker

    pace.worker.Throttle = module.Throttle  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--redis-url", default=None, help="default: a private redis-server")
    parser.add_argument("--throttle-from", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    if args.throttle_from:
        _use_throttle_from(args.throttle_from)
    result = measure(args.jobs, args.rate, args.redis_url)
    if args.throttle_from:
        result["throttle_from"] = args.throttle_from
    print(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
