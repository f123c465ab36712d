"""
The `twistd pace` command: options (from the command line, else from the
environment where users expect it) and the service they make.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

import pace
from pace.config import InvalidRedisURL, resolve_redis_url
from pace.handlers import HandlerNotFound, load_handler
from pace.service import PaceService
from pace.worker import Worker


def _number(name: str, text: Any, kind: type = float, minimum: float = 0, strict: bool = False):
    if text is None:
        return None
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise usage.UsageError(f"--{name} must be a number, not {text!r}") from None
    if value < minimum or (strict and value == minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise usage.UsageError(f"--{name} must be {bound}, not {text}")
    return value


class Options(usage.Options):
    synopsis = "--queue QUEUE --handler package.module.function [options]"
    longdesc = (
        "Run a Pace worker: process Resque jobs from Redis inside this reactor. "
        "REDIS_URL, PACE_QUEUE and SENTRY_DSN are read when the options are not given."
    )
    optFlags = [
        ["no-reliable", None, "plain pops: at most once, a little faster"],
        ["no-failure-records", None, "do not write failed jobs to resque:failed"],
    ]
    optParameters = [
        [
            "handler",
            None,
            None,
            "the job handler, as package.module.function or package.module:function",
        ],
        [
            "redis-url",
            None,
            None,
            "redis://, rediss://, unix:// or redis+sentinel:// URL [$REDIS_URL]",
        ],
        ["namespace", None, None, "prefix for every Redis key (Redis::Namespace style)"],
        ["jobs-per-second", None, None, "throttle: start at most this many jobs a second"],
        ["concurrency", None, "100", "jobs in flight at most"],
        ["grace", None, "25", "seconds jobs in flight get at shutdown"],
        ["job-timeout", None, None, "cancel and fail a job still running after this many seconds"],
        ["sentry-dsn", None, None, "report job errors to Sentry [$SENTRY_DSN]"],
        ["metrics-port", None, None, "serve Prometheus metrics on this port"],
        ["heartbeat-ttl", None, "30", "seconds without a heartbeat before a worker counts as dead"],
        ["log-interval", None, "60", "seconds between throughput log lines (0: none)"],
        # Retries (issue 14).
        ["retry", None, None, "retry a failed job N times after its first run (jittered backoff)"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["queue"] = []

    def opt_queue(self, value: str) -> None:
        """a queue to work on; repeat it or use commas, highest priority first [$PACE_QUEUE]"""
        self["queue"].extend(n.strip() for n in value.split(",") if n.strip())

    opt_q = opt_queue

    def postOptions(self) -> None:
        if not self["queue"]:
            env = os.environ.get("PACE_QUEUE", "")
            self["queue"] = [n.strip() for n in env.split(",") if n.strip()]
        if not self["queue"]:
            raise usage.UsageError("no queue: give --queue NAME (or set $PACE_QUEUE)")
        if not self["handler"]:
            raise usage.UsageError("no handler: give --handler package.module.function")
        try:
            self["handler"] = load_handler(self["handler"])
        except HandlerNotFound as e:
            raise usage.UsageError(str(e)) from None
        self["redis-url"] = self["redis-url"] or os.environ.get("REDIS_URL") or None
        try:
            resolve_redis_url(self["redis-url"])
        except InvalidRedisURL as e:
            raise usage.UsageError(str(e)) from None
        self["sentry-dsn"] = self["sentry-dsn"] or os.environ.get("SENTRY_DSN") or None
        self["concurrency"] = _number("concurrency", self["concurrency"], int, 1)
        self["grace"] = _number("grace", self["grace"])
        self["jobs-per-second"] = _number("jobs-per-second", self["jobs-per-second"], strict=True)
        self["job-timeout"] = _number("job-timeout", self["job-timeout"], strict=True)
        self["metrics-port"] = _number("metrics-port", self["metrics-port"], int, 0)
        self["heartbeat-ttl"] = _number("heartbeat-ttl", self["heartbeat-ttl"], strict=True)
        self["log-interval"] = _number("log-interval", self["log-interval"]) or None
        # Retries (issue 14): N retries after the first run.
        retries = _number("retry", self["retry"], int, 0)
        self["retry"] = pace.Retry(attempts=retries + 1) if retries else None


def makeService(options: Options) -> IService:
    # Handlers that enqueue follow-up jobs reach the worker's own Redis.
    if options["namespace"]:
        pace.namespace = options["namespace"]
    if options["redis-url"]:
        pace.redis_url = options["redis-url"]
    worker = Worker(
        options["queue"],
        jobs_per_second=options["jobs-per-second"],
        concurrency=options["concurrency"],
        redis_url=options["redis-url"],
        grace=options["grace"],
        reliable=not options["no-reliable"],
        job_timeout=options["job-timeout"],
        record_failures=not options["no-failure-records"],
        heartbeat_ttl=options["heartbeat-ttl"],
        log_interval=options["log-interval"],
        retry=options["retry"],
    )
    top = MultiService()
    PaceService(worker, options["handler"]).setServiceParent(top)
    if options["sentry-dsn"]:
        from pace import sentry

        reporter = sentry.hook(options["sentry-dsn"])
        worker.add_hook("error", reporter)
        worker.add_hook("shutdown", reporter.flush)
    if options["metrics-port"] is not None:
        from pace import metrics

        metrics.service(worker, options["metrics-port"]).setServiceParent(top)
    return top
