"""
The systems bench/compare.py runs (Pace and its peers: arq, rq, Celery,
dramatiq), how each is started, and the virtualenv of its own that each
gets under bench/.venvs/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
VENVS = os.path.join(HERE, ".venvs")
PIP_TIMEOUT = 900
WORKLOADS = {"noop": "no-op", "latency": "latency 5 ms"}


@dataclass(frozen=True)
class System:
    key: str
    label: str
    script: str
    variant: str
    #: bench/.venvs/<venv>, or None for Pace's own interpreter.
    venv: str | None = None
    #: Requirement groups, each one ``pip install`` into the venv.
    needs: tuple[tuple[str, ...], ...] = ()
    #: One line about how it runs the latency job.
    latency: str = ""


SYSTEMS = [
    System(
        "pace-reliable",
        "pace (reliable)",
        "peer_pace.py",
        "reliable",
        latency="task.deferLater, 100 at a time",
    ),
    System(
        "pace-at-most-once",
        "pace (at-most-once)",
        "peer_pace.py",
        "at-most-once",
        latency="task.deferLater, 100 at a time",
    ),
    System(
        "arq",
        "arq",
        "peer_arq.py",
        "default",
        "arq",
        (("arq",),),
        latency="await asyncio.sleep, 100 at a time",
    ),
    System(
        "rq",
        "rq (fork)",
        "peer_rq.py",
        "fork",
        "rq",
        (("rq",),),
        latency="time.sleep, one job at a time: cannot overlap",
    ),
    System(
        "rq-simple",
        "rq (SimpleWorker)",
        "peer_rq.py",
        "simple",
        "rq",
        (("rq",),),
        latency="time.sleep, one job at a time: cannot overlap",
    ),
    System(
        "celery-threads",
        "celery (threads)",
        "peer_celery.py",
        "threads",
        "celery",
        (("celery[redis]",),),
        latency="time.sleep in 100 threads",
    ),
    System(
        "celery-gevent",
        "celery (gevent)",
        "peer_celery.py",
        "gevent",
        "celery",
        (("celery[redis]",), ("gevent",)),
        latency="time.sleep, monkey-patched, 100 greenlets",
    ),
    System(
        "dramatiq",
        "dramatiq (threads)",
        "peer_dramatiq.py",
        "threads",
        "dramatiq",
        (("dramatiq[redis]",),),
        latency="time.sleep in 100 threads",
    ),
]
BY_KEY = {s.key: s for s in SYSTEMS}
BASELINE = "pace-reliable"


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- virtual environments ----------------------------------------------------


class Venvs:
    """
    Makes bench/.venvs/<name> and pip-installs requirement groups into it,
    once: a stamp file per group remembers what was installed. What failed
    is kept, with the reason, so that the systems needing it are reported
    as failed without being run.
    """

    def __init__(self, upgrade: bool) -> None:
        self.upgrade = upgrade
        self.failed: dict[tuple[str, tuple[str, ...]], str] = {}
        self.done: set[tuple[str, tuple[str, ...]]] = set()

    def python(self, name: str) -> str:
        return os.path.join(VENVS, name, "bin", "python")

    def ensure(self, name: str, group: tuple[str, ...]) -> str | None:
        """
        Make sure the venv has C{group}; return why not, or None.
        """
        key = (name, group)
        if key in self.failed or key in self.done:
            return self.failed.get(key)
        why = self._ensure(name, group)
        if why:
            self.failed[key] = why
            note(f"    ! {why}")
        else:
            self.done.add(key)
        return why

    def _ensure(self, name: str, group: tuple[str, ...]) -> str | None:
        path = os.path.join(VENVS, name)
        python = self.python(name)
        if not os.access(python, os.X_OK):
            note(f"  creating {os.path.relpath(path, ROOT)} (python -m venv)")
            began = time.monotonic()
            made = subprocess.run(
                [sys.executable, "-m", "venv", "--clear", path],
                capture_output=True,
                text=True,
            )
            if made.returncode:
                return f"python -m venv {name} failed: {last_line(made.stderr)}"
            note(f"    done in {time.monotonic() - began:.0f}s")
        stamp = os.path.join(path, ".installed-" + "+".join(group).replace("/", "_"))
        if os.path.exists(stamp) and not self.upgrade:
            return None
        what = " ".join(group)
        note(f"  pip install {'-U ' if self.upgrade else ''}{what} into {name} ...")
        began = time.monotonic()
        cmd = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        cmd += (["-U"] if self.upgrade else []) + list(group)
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return f"pip install {what} took over {PIP_TIMEOUT}s"
        if done.returncode:
            return f"pip install {what} failed: {last_line(done.stderr or done.stdout)}"
        note(f"    done in {time.monotonic() - began:.0f}s")
        with open(stamp, "w") as f:
            f.write(what + "\n")
        return None

    def for_system(self, system: System) -> tuple[str | None, str | None]:
        """
        (the Python to run C{system} with, or None, and why not).
        """
        if system.venv is None:
            return sys.executable, None
        for group in system.needs:
            why = self.ensure(system.venv, group)
            if why:
                return None, why
        return self.python(system.venv), None


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def versions_in(python: str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try:\n"
        "        out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    try:
        got = subprocess.run([python, "-c", code, *names], capture_output=True, text=True)
        return json.loads(got.stdout)
    except (OSError, ValueError):
        return {}
