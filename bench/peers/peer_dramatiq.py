"""
dramatiq in bench/compare.py, run with bench/.venvs/dramatiq: RedisBroker (a
redis-py pool of 200 connections) with the default middleware, an actor
with max_retries=0; the queue filled with ``actor.send()``, then
``dramatiq.Worker(broker, worker_threads=100)`` in this process: what one
process of ``dramatiq --processes 1 --threads 100`` runs, without its
supervisor. The jobs run in this process's threads, so they count in
memory. no-op counts; latency does time.sleep(0.005) first.
"""

from __future__ import annotations

import logging
import time

from peerlib import CONCURRENCY, LATENCY, Run, Tally, finish, give_up_later, parse_args, version

QUEUE = "bench"
MAX_CONNECTIONS = 2 * CONCURRENCY


def main() -> None:
    args = parse_args(["threads"])
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker

    logging.basicConfig(level=logging.WARNING)
    tally = Tally(args.jobs)
    # redis-py 6 and later pool at most 100 connections by default: 100 worker
    # threads and the consumer run out ("Too many connections", an ack
    # retried 5 s later). Room for all of them:
    broker = RedisBroker(host="127.0.0.1", port=args.redis_port, max_connections=MAX_CONNECTIONS)
    dramatiq.set_broker(broker)

    @dramatiq.actor(actor_name="noop", queue_name=QUEUE, max_retries=0)
    def noop() -> None:
        tally.begin()
        tally.hit()

    @dramatiq.actor(actor_name="latency", queue_name=QUEUE, max_retries=0)
    def latency() -> None:
        tally.begin()
        time.sleep(LATENCY)
        tally.hit()

    settings = (
        f"Worker(worker_threads={CONCURRENCY}) in 1 process, "
        f"RedisBroker(max_connections={MAX_CONNECTIONS}), max_retries=0"
    )
    run = Run(args, "dramatiq (threads)", version("dramatiq", "redis"), settings, tally)
    actor = noop if args.workload == "noop" else latency
    began = time.monotonic()
    for _ in range(args.jobs):
        actor.send()
    run.filled(time.monotonic() - began)

    worker = dramatiq.Worker(broker, worker_threads=CONCURRENCY)
    run.watch(lambda: None)
    give_up_later(run)
    try:
        worker.start()
        run.stopped.wait()
        worker.stop(timeout=10_000)
    except BaseException as e:  # noqa: BLE001 - reported in the result
        run.trouble("worker", e)
    finish(run)


if __name__ == "__main__":
    main()
