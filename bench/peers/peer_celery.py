"""
Celery in bench/compare.py, run with bench/.venvs/celery: a Redis broker, no
result backend (ignore_result=True); the queue filled with ``task.delay()``,
then the worker started in this process as ``celery worker`` would be:
``app.worker_main(["worker", "--pool=threads" (or gevent),
"--concurrency=100", "--without-heartbeat", "--without-gossip",
"--without-mingle"])``, default prefetch multiplier (4). The jobs run in
this process (threads or greenlets), so they count in memory. no-op counts;
latency does time.sleep(0.005) first (with gevent, monkey-patched as
``celery worker -P gevent`` does, so it yields).
"""

from __future__ import annotations

import sys

if "gevent" in sys.argv:
    # What `celery worker -P gevent` does before anything else is imported.
    from gevent import monkey

    monkey.patch_all()

import logging  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from peerlib import (  # noqa: E402
    CONCURRENCY,
    LATENCY,
    Run,
    Tally,
    finish,
    give_up_later,
    parse_args,
    signal_self,
    version,
)

QUEUE = "bench"
tally: Tally


def main() -> None:
    global tally
    args = parse_args(["threads", "gevent"])
    from celery import Celery

    logging.basicConfig(level=logging.WARNING)
    tally = Tally(args.jobs)
    app = Celery("peer_celery", broker=f"redis://127.0.0.1:{args.redis_port}/0")
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts=False,
    )

    @app.task(name="noop", ignore_result=True)
    def noop() -> None:
        tally.begin()
        tally.hit()

    @app.task(name="latency", ignore_result=True)
    def latency() -> None:
        tally.begin()
        time.sleep(LATENCY)
        tally.hit()

    # Celery warns that it runs as root (only pickle would make that unsafe;
    # the jobs are JSON), and prints a banner unless --quiet.
    warnings.filterwarnings("ignore", message=".*superuser privileges.*")
    argv = [
        "--quiet",
        "worker",
        f"--pool={args.variant}",
        f"--concurrency={CONCURRENCY}",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=WARNING",
        f"--queues={QUEUE}",
    ]
    names = ["celery", "kombu", "redis"] + (["gevent"] if args.variant == "gevent" else [])
    settings = " ".join(argv[2:-2]) + ", Redis broker, no result backend"
    run = Run(args, f"celery ({args.variant})", version(*names), settings, tally)
    task = noop if args.workload == "noop" else latency
    began = time.monotonic()
    for _ in range(args.jobs):
        task.delay()
    run.filled(time.monotonic() - began)

    # Celery's own SIGTERM handler: a warm shutdown.
    run.watch(signal_self())
    give_up_later(run)
    try:
        app.worker_main(argv)
    except BaseException as e:  # noqa: BLE001 - SystemExit too; reported in the result
        if not (isinstance(e, SystemExit) and not e.code):
            run.trouble("worker", e)
    finish(run)


if __name__ == "__main__":
    main()
