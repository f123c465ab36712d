"""
The process title that tells Ruby Resque a Pace worker is alive. Resque's
``prune_dead_workers`` unregisters every worker of its own host whose pid is
not in ``ps -A -o pid,command | grep -E "[r]esque:work|[r]esque:\\sStarting|
[r]esque-[0-9]"`` (lib/resque/worker.rb); while a worker runs, the process's
title says ``pace (resque-2 compatible): ...``, which that pattern matches, and
the title it had before comes back once the last worker of the process stops.
"""

from __future__ import annotations

from twisted.logger import Logger

log = Logger()

#: Matched by Resque 2.x's ``[r]esque-[0-9]``; never contains "resque-web",
#: which Resque's pattern excludes.
MARK = "resque-2 compatible"

_running: dict[object, str] = {}
_original: list[str] = []


def _module():
    try:
        import setproctitle
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return setproctitle


def title() -> str | None:
    """
    The title ``ps`` shows for this process now (None without setproctitle).
    """
    module = _module()
    return module.getproctitle() if module is not None else None


def worker_started(owner: object, description: str) -> None:
    """
    Say in the title that ``owner`` (a worker's registry) runs, described
    as e.g. ``host:pid:normal``.
    """
    module = _module()
    if module is None:
        log.warn(
            "pace: setproctitle is missing: Ruby Resque workers on this host will take "
            "this worker for dead; install txpace's dependencies"
        )
        return
    if not _running:
        _original[:] = [module.getproctitle()]
    _running[owner] = description
    module.setproctitle(f"pace ({MARK}): " + " ".join(_running.values()))


def worker_stopped(owner: object) -> None:
    """
    ``owner`` stopped; the last one to stop gives the process its old title
    back.
    """
    module = _module()
    if module is None or _running.pop(owner, None) is None:
        return
    if _running:
        module.setproctitle(f"pace ({MARK}): " + " ".join(_running.values()))
    elif _original:
        module.setproctitle(_original.pop())
