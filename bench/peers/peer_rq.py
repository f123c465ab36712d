"""
rq in bench/compare.py, run with bench/.venvs/rq: the queue filled with
Queue.enqueue_many (1,000 jobs a pipeline; rq's default
result_ttl, faster than result_ttl=0, which deletes each job when done), then one worker in
this process, ``work(burst=True)``: rq's default Worker, which forks a work
horse for every job (variant "fork"), or SimpleWorker, which runs jobs in
the worker process itself (variant "simple"). Jobs run one at a time either
way: no-op counts, latency does time.sleep(0.005) first. The jobs run in
the work horses, so they count in Redis (peerlib.RedisTally): one pipeline
per job, the same for both variants.
"""

from __future__ import annotations

import logging
import time

from peerlib import (
    LATENCY,
    QUEUE,
    RedisTally,
    Run,
    finish,
    give_up_later,
    parse_args,
    signal_self,
    version,
)

CHUNK = 1000


def _record(started: float) -> None:
    from rq import get_current_job

    job = get_current_job()
    assert job is not None
    RedisTally.record(job.connection, started, int(job.meta["total"]))


def noop() -> None:
    _record(time.monotonic())


def latency() -> None:
    started = time.monotonic()
    time.sleep(LATENCY)
    _record(started)


def main() -> None:
    args = parse_args(["fork", "simple"])
    import redis
    from rq import Queue, SimpleWorker, Worker

    logging.basicConfig(level=logging.WARNING)
    client = redis.Redis(port=args.redis_port)
    tally = RedisTally(client, args.jobs)
    worker_class = Worker if args.variant == "fork" else SimpleWorker
    settings = f"one {worker_class.__name__}, work(burst=True), sync jobs"
    name = "rq" if args.variant == "fork" else "rq (SimpleWorker)"
    run = Run(args, name, version("rq", "redis"), settings, tally)
    queue = Queue(QUEUE, connection=client)
    func = f"peer_rq.{args.workload}"
    began = time.monotonic()
    for first in range(0, args.jobs, CHUNK):
        count = min(CHUNK, args.jobs - first)
        data = [Queue.prepare_data(func, meta={"total": args.jobs}) for _ in range(count)]
        with client.pipeline() as pipe:
            queue.enqueue_many(data, pipeline=pipe)
            pipe.execute()
    run.filled(time.monotonic() - began)

    worker = worker_class([queue], connection=client)
    # rq's own SIGTERM handler: a warm shutdown once the current job is done.
    run.watch(signal_self())
    give_up_later(run)
    try:
        worker.work(burst=True, logging_level="WARNING")
    except BaseException as e:  # noqa: BLE001 - reported in the result
        run.trouble("worker", e)
    finish(run)


if __name__ == "__main__":
    main()
