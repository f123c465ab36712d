"""
A worker as a whole program (Worker.run), for tests that kill it:
python -m tests.worker_process CONCURRENCY HEARTBEAT_TTL, with $REDIS_URL.
"""

import sys

import pace
from tests.daemon_handlers import slow

if __name__ == "__main__":
    pace.Worker("work", concurrency=int(sys.argv[1]), heartbeat_ttl=float(sys.argv[2])).run(slow)
