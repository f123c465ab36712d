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


def shared_limit(name: str) -> str:
    """
    String: the next free slot (server microseconds) of a pace.SharedLimit.
    """
    return namespaced(f"resque:pace:limit:{name}")


def queue_paused(queue_key: str) -> str:
    """
    String set while a queue is paused for the fleet (a TTL when timed); the
    value says who paused it.
    """
    return namespaced(f"resque:pace:paused:{short_queue_name(queue_key)}")


def pause_all_workers() -> str:
    """
    Resque's own switch: Resque::Worker#paused? is true while it is "true".
    """
    return namespaced("resque:pause-all-workers")


# resque-scheduler's delayed jobs (see pace.schedule): the members of a
# timestamps set are the un-namespaced "delayed:<ts>" strings Ruby writes.


def delayed_schedule() -> str:
    return namespaced("resque:delayed_queue_schedule")


def delayed_list(timestamp: int | str) -> str:
    return namespaced(f"resque:delayed:{timestamp}")


def delayed_timestamps(payload: str) -> str:
    return namespaced(f"resque:timestamps:{payload}")


def namespaced_queue(short_name: str) -> str:
    """
    The queue resque-scheduler pushes a due job with ``"queue": short_name``
    onto.
    """
    return namespaced(f"resque:queue:{short_name}")


def schedule_malformed() -> str:
    """
    List: entries taken off the schedule as malformed, until their failure
    records are written (so a crash in between loses none).
    """
    return namespaced("resque:pace:schedule:malformed")
