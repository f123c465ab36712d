"""
Pace: Resque jobs processed inside a Twisted reactor, thousands of I/O-bound
jobs a second from one process.
"""

from pace.circuit import Circuit, CircuitOpen
from pace.config import expand_queue_name, resolve_redis_url
from pace.enqueue import EnqueueError, disconnect, enqueue, enqueue_many
from pace.payload import MalformedJob
from pace.queuepause import pause_queue, resume_queue
from pace.retry import NoRetry, Retry
from pace.router import JobRouter, UnknownJobClass
from pace.schedule import enqueue_at, enqueue_in
from pace.service import PaceService
from pace.sharedlimit import SharedLimit
from pace.worker import Worker, pause, resume, running_workers

#: The Redis server, when no URL is passed explicitly; see resolve_redis_url.
redis_url: str | None = None
#: A Redis::Namespace-style prefix for every key Pace uses.
namespace: str | None = None

__version__ = "0.1.0.dev0"

__all__ = [
    "Circuit",
    "CircuitOpen",
    "EnqueueError",
    "JobRouter",
    "MalformedJob",
    "NoRetry",
    "PaceService",
    "Retry",
    "Worker",
    "disconnect",
    "enqueue",
    "enqueue_many",
    "enqueue_at",
    "enqueue_in",
    "expand_queue_name",
    "namespace",
    "pause",
    "pause_queue",
    "redis_url",
    "resolve_redis_url",
    "resume",
    "resume_queue",
    "running_workers",
    "SharedLimit",
    "UnknownJobClass",
]
