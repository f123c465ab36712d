"""
A mover as a whole program, for tests that kill it while it moves:
python -m tests.mover_process BATCH, with $REDIS_URL. Prints "ready" once
started.
"""

import sys

from twisted.internet import reactor

from pace.config import resolve_redis_url
from pace.connection import RedisConnection
from pace.mover import Mover

if __name__ == "__main__":
    conn = RedisConnection(resolve_redis_url(), "mover")
    mover = Mover(conn, reactor, batch=int(sys.argv[1]))
    mover.start()
    reactor.callWhenRunning(lambda: print("ready", flush=True))
    reactor.run()
