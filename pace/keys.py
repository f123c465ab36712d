"""
Every Redis key Pace reads or writes, in one place. Resque's own keys keep
Resque's names so that its tools see Pace's work; Pace's additions live
under ``resque:pace:``. All of them get ``pace.namespace`` in front.

No Pace key holds ``resque:`` after its leading ``resque:``: resque-web's key
listing strips the first ``resque:`` of what Redis::Namespace gives it, so
such a key would be listed under a name that does not exist.
"""

from __future__ import annotations

from pace.config import namespaced, short_queue_name


def queues_set() -> str:
    return namespaced("resque:queues")


def failed_list() -> str:
    return namespaced("resque:failed")


def stat(name: str) -> str:
    return namespaced(f"resque:stat:{name}")


def processing_list(worker_id: str, queue_key: str) -> str:
    """
    A worker's processing list for one of its queues, named after the
    queue's Resque name (or, for a key outside ``resque:queue:``, the key).
    """
    label = short_queue_name(queue_key).replace("resque:", "resque%3A")
    return namespaced(f"resque:pace:processing:{worker_id}:{label}")


def pace_workers() -> str:
    """
    Hash: Pace worker id -> JSON list of [queue key, processing list] pairs.
    """
    return namespaced("resque:pace:workers")


def deadlines() -> str:
    """
    Sorted set: Pace worker id -> the server time (ms) by which it must beat
    again, or (once pruned) when a sweeper looks at its lists again.
    """
    return namespaced("resque:pace:deadlines")


def fleet() -> str:
    """
    Hash: ``last`` (server ms of the latest heartbeat of any Pace worker) and
    ``quiet_until`` (no worker is judged dead before it: after an outage).
    """
    return namespaced("resque:pace:fleet")


def resque_prefix() -> str:
    """
    The namespaced ``resque:`` that Lua scripts put before Resque's
    per-worker keys.
    """
    return namespaced("resque:")


def heartbeat(worker_id: str) -> str:
    return namespaced(f"resque:pace:heartbeat:{worker_id}")


def resque_workers() -> str:
    """
    Resque's set of registered workers ("host:pid:queue1,queue2").
    """
    return namespaced("resque:workers")


def resque_heartbeats() -> str:
    return namespaced("resque:workers:heartbeat")


def worker_started(resque_id: str) -> str:
    return namespaced(f"resque:worker:{resque_id}:started")


def worker_busy(resque_id: str) -> str:
    return namespaced(f"resque:worker:{resque_id}")
