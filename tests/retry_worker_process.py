"""
A worker with retries as a whole program, for tests that kill it:
python -m tests.retry_worker_process HEARTBEAT_TTL, with $REDIS_URL. Each
job records its run (args[0], attempt) on the "runs" queue, then fails on
its first two attempts.
"""

import sys

from twisted.internet import reactor, task

import pace


def flaky(job: dict):
    attempt = job.get("pace_attempt", 1)
    d = task.deferLater(reactor, 0.01, lambda: None)
    d.addCallback(lambda _: pace.enqueue("runs", "Run", job["args"][0], attempt))

    def outcome(_):
        if attempt < 3:
            raise ConnectionError(f"attempt {attempt} failed")

    return d.addCallback(outcome)


if __name__ == "__main__":
    policy = pace.Retry(attempts=5, base=0.2, factor=1.0, jitter=False)
    pace.Worker("work", concurrency=20, heartbeat_ttl=float(sys.argv[1]), retry=policy).run(flaky)
