"""
High availability through Redis Sentinel: a worker given a redis+sentinel://
URL finds the master, follows a failover to the promoted replica, and keeps
processing with no job lost.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import redis
from twisted.internet import defer, task
from twisted.internet import reactor as real_reactor

from pace.redisserver import RedisServer, find_redis_server, free_port
from tests.support import RedisTestCase, payload, until


class SentinelTests(RedisTestCase):
    def start_cluster(self):
        master = RedisServer().start()
        self.addCleanup(master.cleanup)
        replica = RedisServer(None, None, "--replicaof", "127.0.0.1", str(master.port)).start()
        self.addCleanup(replica.cleanup)
        folder = tempfile.mkdtemp(prefix="pace-sentinel-")
        port = free_port()
        conf = os.path.join(folder, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 3000\n"
            )
        sentinel = subprocess.Popen(
            [find_redis_server(), conf, "--sentinel"], stdout=subprocess.DEVNULL
        )

        def stop():
            sentinel.terminate()
            sentinel.wait()

        self.addCleanup(stop)
        client = redis.Redis(port=port, decode_responses=True)
        self.addCleanup(client.close)
        return master, replica, port, client

    @defer.inlineCallbacks
    def test_failover_loses_nothing(self):
        master, replica, sentinel_port, sentinel = self.start_cluster()
        yield until(lambda: _answers(sentinel), timeout=15)
        m = redis.Redis(port=master.port, decode_responses=True)
        self.addCleanup(m.close)
        n = 600
        m.rpush("resque:queue:q", *[payload("J", i) for i in range(n)])
        seen = []

        def handler(job):
            seen.append(job["args"][0])
            return task.deferLater(real_reactor, 0.005, lambda: None)

        w = self.worker(
            redis_url=f"redis+sentinel://127.0.0.1:{sentinel_port}/mymaster", concurrency=10
        )
        self.started(w, handler)
        yield until(lambda: len(seen) >= 100, timeout=30)
        # Wait for the replica to have caught up, then fail over.
        yield until(lambda: _replica_synced(replica.port), timeout=15)
        sentinel.execute_command("SENTINEL", "FAILOVER", "mymaster")
        yield until(
            lambda: int(sentinel.sentinel_get_master_addr_by_name("mymaster")[1]) == replica.port,
            timeout=30,
        )
        yield until(lambda: set(seen) >= set(range(n)), timeout=60)
        r = redis.Redis(port=replica.port, decode_responses=True)
        self.addCleanup(r.close)
        yield until(lambda: r.keys("resque:pace:processing:*") == [], timeout=30)
        yield w.shutdown()
        self.assertEqual(sorted(set(seen)), list(range(n)))
        self.flushLoggedErrors()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.sentinel_get_master_addr_by_name("mymaster"))
    except redis.RedisError:
        return False


def _replica_synced(port: int) -> bool:
    with redis.Redis(port=port, decode_responses=True) as r:
        info = r.info("replication")
        return info.get("master_link_status") == "up"
