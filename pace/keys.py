"""
Every Redis key Pace reads or writes, in one place. Resque's own keys keep
Resque's names so that its tools see Pace's work; Pace's additions live
under ``resque:pace:``. All of them get ``pace.namespace`` in front.
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
    return namespaced(f"resque:pace:processing:{worker_id}:{queue_key}")


def pace_workers() -> str:
    """
    Hash: Pace worker id -> JSON list of [queue key, processing list] pairs.
    """
    return namespaced("resque:pace:workers")


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


def resque_prefix() -> str:
    """
    ``resque:`` with the namespace in front, for scripts that build keys.
    """
    return namespaced("resque:")


def schedule_malformed() -> str:
    """
    List: entries taken off the schedule as malformed, until their failure
    records are written (so a crash in between loses none).
    """
    return namespaced("resque:pace:schedule:malformed")
