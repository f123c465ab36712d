"""
The `twistd pace` command: options (from the command line, else from the
environment where users expect it) and the service they make. Every
mistake found at start-up (a handler that does not import, a port out of
range or in use, a missing extra, a bad DSN) ends twistd with one line that
says what to do and a non-zero status, never a traceback.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

import pace
from pace.config import InvalidRedisURL, resolve_redis_url
from pace.handlers import HandlerNotFound, load_handler
from pace.payload import MAX_PAYLOAD_BYTES
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


# -- fleet control options (issue 13) -----------------------------------------

_FLEET_FLAGS = [
    ["burst", None, "process what is queued, then exit 0 once every job settled"],
]
_FLEET_PARAMETERS = [
    ["shared-limit", None, None, "a rate shared by every process naming it: NAME=RATE"],
    ["circuit-failures", None, None, "open the circuit after N failed jobs (default 10)"],
    ["circuit-window", None, None, "... within this many seconds (default 5)"],
    ["circuit-cool-off", None, None, "seconds the circuit stays open (default 30)"],
]


def _fleet_options(options: Any) -> None:
    text = options["shared-limit"]
    if text is not None:
        name, sep, rate = text.partition("=")
        if not sep or not name.strip():
            raise usage.UsageError(f"--shared-limit takes NAME=RATE, not {text!r}")
        options["shared-limit"] = (name.strip(), _number("shared-limit", rate, strict=True))
    circuit = {
        "failures": _number("circuit-failures", options["circuit-failures"], int, 1),
        "window": _number("circuit-window", options["circuit-window"], strict=True),
        "cool_off": _number("circuit-cool-off", options["circuit-cool-off"], strict=True),
    }
    options["circuit"] = {k: v for k, v in circuit.items() if v is not None} or None


def _fleet_worker_args(options: Any) -> dict[str, Any]:
    from pace.circuit import Circuit
    from pace.sharedlimit import SharedLimit

    args: dict[str, Any] = {"burst": bool(options["burst"])}
    if options["shared-limit"] is not None:
        name, rate = options["shared-limit"]
        args["shared_limit"] = SharedLimit(name, rate, redis_url=options["redis-url"])
    if options["circuit"] is not None:
        args["circuit"] = Circuit(**options["circuit"])
    return args


# ------------------------------------------------------------------------------
#: --log-level's choices, quietest last.
LEVELS = ("debug", "info", "warn", "error", "critical")


def _fail(message: str, status: int = 1) -> Any:
    # twistd would print the error after its whole option help, or a
    # traceback: one line is what an operator needs.
    sys.stderr.write(f"twistd pace: error: {message}\n")
    raise SystemExit(status)


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise usage.UsageError(f"--metrics-port must be between 0 and 65535, not {port}")
    if port == 0:
        return
    with socket.socket() as s:
        # As a listening Twisted port binds (SO_REUSEADDR): fails only when
        # someone listens there.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise usage.UsageError(
                f"--metrics-port {port}: {(e.strerror or str(e)).lower()} (another process listens "
                "there?): choose another port"
            ) from None


def _check_extra(module: str, option: str, extra: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise usage.UsageError(
            f"{option} needs {module.replace('_', '-')}: pip install 'txpace[{extra}]'"
        ) from None


def _check_dsn(dsn: str) -> None:
    _check_extra("sentry_sdk", "--sentry-dsn", "sentry")
    from sentry_sdk.utils import BadDsn, Dsn

    try:
        Dsn(dsn)
    except BadDsn:
        # The DSN itself holds a key: not repeated.
        raise usage.UsageError(
            "--sentry-dsn (or $SENTRY_DSN) is not a Sentry DSN: copy it from the project's "
            "settings, as https://KEY@HOST/PROJECT_ID"
        ) from None


def _cwd_on_path() -> None:
    # As rq and Celery do: `--handler mypkg.jobs.handle` run from the
    # project's directory finds mypkg.
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.insert(0, cwd)


#: What `log_observer` filters: set by --log-level under twistd.
_log_level: dict[str, Any] = {}


def log_observer() -> Any:
    """
    twistd's ``--logger`` factory for ``--log-level``: the observer twistd
    would make from its own options (file, stdout, syslog), keeping events
    of that level and up.
    """
    from twisted.logger import (
        FilteringLogObserver,
        ILogObserver,
        LegacyLogObserverWrapper,
        LogLevel,
        LogLevelFilterPredicate,
    )

    if os.name == "posix":
        from twisted.scripts._twistd_unix import UnixAppLogger as AppLogger
    else:  # pragma: no cover
        from twisted.application.app import AppLogger  # type: ignore[assignment]
    options = dict(_log_level["options"])
    options["logger"] = None
    base = AppLogger(options)._getLogObserver()
    if not ILogObserver.providedBy(base):
        base = LegacyLogObserverWrapper(base)
    level = LogLevel.levelWithName(_log_level["level"])
    return FilteringLogObserver(base, [LogLevelFilterPredicate(level)])


class Options(usage.Options):
    synopsis = "--queue QUEUE --handler package.module.function [options]"
    longdesc = (
        "Run a Pace worker: process Resque jobs from Redis inside this reactor. "
        "REDIS_URL, PACE_QUEUE and SENTRY_DSN are read when the options are not given."
    )
    optFlags = [
        ["no-reliable", None, "plain pops: at most once, a little faster"],
        ["no-failure-records", None, "do not write failed jobs to resque:failed"],
        *_FLEET_FLAGS,
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
        [
            "max-payload-bytes",
            None,
            str(MAX_PAYLOAD_BYTES),
            "fail a job whose payload is longer than this without decoding it",
        ],
        ["log-interval", None, "60", "seconds between throughput log lines (0: none)"],
        *_FLEET_PARAMETERS,
        ["log-level", None, None, "log only events at this level or above: " + ", ".join(LEVELS)],
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

    def opt_version(self) -> None:
        """print Pace's version and exit"""
        from twisted import version as twisted_version

        print(f"Pace {pace.__version__} (txpace), Twisted {twisted_version.short()}")
        raise SystemExit(0)

    def parseOptions(self, options: Any = None) -> None:
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if self.parent is None:  # called from Python: the caller handles it
                raise
            _fail(f"{e} (see twistd pace --help)", 2)

    parent: Any = None

    def postOptions(self) -> None:
        if not self["queue"]:
            env = os.environ.get("PACE_QUEUE", "")
            self["queue"] = [n.strip() for n in env.split(",") if n.strip()]
        if not self["queue"]:
            raise usage.UsageError("no queue: give --queue NAME (or set $PACE_QUEUE)")
        if not self["handler"]:
            raise usage.UsageError("no handler: give --handler package.module.function")
        _cwd_on_path()
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
        self["max-payload-bytes"] = _number("max-payload-bytes", self["max-payload-bytes"], int, 1)
        self["log-interval"] = _number("log-interval", self["log-interval"]) or None
        _fleet_options(self)
        if self["metrics-port"] is not None:
            _check_port(self["metrics-port"])
            _check_extra("prometheus_client", "--metrics-port", "metrics")
        if self["sentry-dsn"]:
            _check_dsn(self["sentry-dsn"])
        level = self["log-level"]
        if level is not None:
            if level.lower() not in LEVELS:
                raise usage.UsageError(f"--log-level is one of {', '.join(LEVELS)}, not {level!r}")
            self["log-level"] = level.lower()
            if self.parent is not None:  # under twistd: filter what it logs
                _log_level.update(options=self.parent, level=self["log-level"])
                self.parent["logger"] = "pace.tap.log_observer"
        # Retries (issue 14): N retries after the first run.
        retries = _number("retry", self["retry"], int, 0)
        self["retry"] = pace.Retry(attempts=retries + 1) if retries else None


def makeService(options: Options) -> IService:
    try:
        return _make_service(options)
    except (ValueError, TypeError, ImportError) as e:
        # The worker refusing its configuration: a mistake, not a crash.
        return _fail(str(e))


def _make_service(options: Options) -> IService:
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
        max_payload_bytes=options["max-payload-bytes"],
        log_interval=options["log-interval"],
        retry=options["retry"],
        **_fleet_worker_args(options),
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
