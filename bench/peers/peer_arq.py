"""
arq in bench/compare.py, run with bench/.venvs/arq: the queue filled with
ArqRedis.enqueue_job (100 at a time with asyncio.gather), then
arq.worker.Worker(max_jobs=100, poll_delay=POLL_DELAY, keep_result=0,
handle_signals=False) in this process's event loop. no-op: an ``async def``
that counts; latency: ``await asyncio.sleep(0.005)``, then counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from peerlib import CONCURRENCY, LATENCY, Run, Tally, finish, give_up_later, parse_args, version

#: arq's default is 0.5 s between polls of the queue, which alone limits it
#: to max_jobs per half second; the benchmark polls as fast as Pace fetches.
POLL_DELAY = 0.01
FILL_AT_ONCE = 100

tally: Tally


async def noop(ctx: dict) -> None:
    tally.begin()
    tally.hit()


async def latency(ctx: dict) -> None:
    tally.begin()
    await asyncio.sleep(LATENCY)
    tally.hit()


async def fill(pool: Any, name: str, jobs: int) -> None:
    for first in range(0, jobs, FILL_AT_ONCE):
        last = min(first + FILL_AT_ONCE, jobs)
        await asyncio.gather(*[pool.enqueue_job(name) for _ in range(first, last)])


async def amain(run: Run) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.worker import Worker

    args = run.args
    settings = RedisSettings(host="127.0.0.1", port=args.redis_port)
    pool = await create_pool(settings)
    began = time.monotonic()
    await fill(pool, args.workload, args.jobs)
    run.filled(time.monotonic() - began)
    await pool.aclose()

    worker = Worker(
        functions=[noop, latency],
        redis_settings=settings,
        max_jobs=CONCURRENCY,
        poll_delay=POLL_DELAY,
        keep_result=0,
        handle_signals=False,
        log_results=False,
    )
    loop = asyncio.get_running_loop()
    main_task: asyncio.Task = loop.create_task(worker.async_run())
    run.watch(lambda: loop.call_soon_threadsafe(main_task.cancel))
    try:
        await main_task
    except asyncio.CancelledError:
        pass
    except Exception as e:  # noqa: BLE001 - reported in the result
        run.trouble("worker", e)
    # As arq's own signal handler does: cancel what still runs, then close.
    for job in worker.tasks.values():
        job.cancel()
    try:
        await asyncio.wait_for(worker.close(), 10)
    except asyncio.CancelledError:
        pass  # the jobs just cancelled, gathered by close()
    except Exception as e:  # noqa: BLE001 - reported in the result
        run.trouble("closing the worker", e)


def main() -> None:
    global tally
    args = parse_args(["default"])
    logging.basicConfig(level=logging.WARNING)
    tally = Tally(args.jobs)
    settings = (
        f"Worker(max_jobs={CONCURRENCY}, poll_delay={POLL_DELAY}, keep_result=0), async def jobs"
    )
    run = Run(args, "arq", version("arq", "redis"), settings, tally)
    give_up_later(run)
    try:
        asyncio.run(amain(run))
    except BaseException as e:  # noqa: BLE001 - reported in the result
        run.trouble("arq", e)
    finish(run)


if __name__ == "__main__":
    main()
