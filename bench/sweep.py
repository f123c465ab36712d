"""
The cost of one sweep for dead workers with N registered workers (default
10,000, all alive but 3): Redis commands, server CPU and this process's CPU.
python bench/sweep.py [--workers N]; starts a private redis-server.
"""

from __future__ import annotations

import argparse
import json
import time

import redis
from twisted.internet import defer, task


def populate(r: redis.Redis, n: int, dead: int) -> None:
    from pace import keys

    seconds, _ = r.time()
    pipe = r.pipeline(transaction=False)
    for i in range(n + dead):
        token = f"h:{i}:{'dead' if i >= n else 'live'}"
        plist = keys.processing_list(token, "resque:queue:q")
        record = {"resque_id": f"{token}:q", "lists": [["resque:queue:q", plist]]}
        pipe.hset(keys.pace_workers(), token, json.dumps(record))
        if i < n:
            pipe.set(keys.heartbeat(token), "1", px=600_000)
            pipe.zadd("resque:pace:deadlines", {token: seconds * 1000 + 600_000})
        else:
            pipe.zadd("resque:pace:deadlines", {token: seconds * 1000 - 60_000})
            pipe.rpush(plist, json.dumps({"class": "J", "args": [i]}))
    pipe.execute()


def counters(r: redis.Redis) -> tuple[int, float]:
    calls = sum(v["calls"] for v in r.info("commandstats").values())
    cpu = r.info("cpu")
    return calls, cpu["used_cpu_sys"] + cpu["used_cpu_user"]


@defer.inlineCallbacks
def main(reactor, n: int) -> defer.Deferred:
    from twisted.internet.task import Clock

    from pace.config import resolve_redis_url
    from pace.connection import RedisConnection
    from pace.redisserver import RedisServer
    from pace.registry import Registry

    server = RedisServer().start()
    try:
        r = redis.Redis(port=server.port, decode_responses=True)
        populate(r, n, 3)
        conn = RedisConnection(resolve_redis_url(server.url))
        sweeper = Registry(conn, "sweeper", "h:s:q", ["resque:queue:q"], [], 30, Clock())
        calls0, server0 = counters(r)
        cpu0 = time.process_time()
        moved = yield sweeper.sweep()
        cpu1 = time.process_time()
        calls1, server1 = counters(r)
        print(
            f"{n:,} workers, 3 dead, {moved} jobs moved: {calls1 - calls0 - 1} commands, "
            f"redis CPU {server1 - server0:.3f} s, sweeper CPU {cpu1 - cpu0:.3f} s"
        )
        yield conn.disconnect()
    finally:
        server.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=10_000)
    task.react(main, [parser.parse_args().workers])
