"""
Fleet control benchmark: real ``twistd -n pace`` processes against a private
redis-server (never the Redis on 6379).

- ``shared-limit``: N worker processes (default 4) share ``--shared-limit
  bench=RATE`` over a backlog of RATE x SECONDS no-op jobs, queued before the
  workers start (start-up included). From the start times the handlers note
  (in a file per process, not in Redis): the most starts in any one-second
  window and in any 100 ms window, the fraction of RATE reached from the
  first start to the last, each process's share; and Redis commands per job
  (``INFO commandstats`` deltas: what clients sent), next to the same fleet
  at the same rate without the shared limit (``--jobs-per-second RATE/N``
  each), so the difference is what the limit costs.
- ``pause``: three worker processes on a backlog at 50 jobs/s each; the queue
  is paused with ``pace.queuepause`` keys ROUNDS times; for each pause, the
  latest start after the pause (how long until every worker stopped), and
  for each resume, how long until every worker started again.

    .venv/bin/python bench/fleet.py                       # both cases, ~1 minute
    .venv/bin/python bench/fleet.py --cases shared-limit --rate 500 --seconds 10

Prints one table and rows for bench/RESULTS.md; writes nothing.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# -- the handler, imported by the workers as ``fleet:stamp`` -------------------

_out = None


def stamp(job: dict) -> None:
    global _out
    if _out is None:
        path = os.path.join(os.environ["FLEET_BENCH_DIR"], f"starts-{os.getpid()}")
        _out = open(path, "a", buffering=1)  # noqa: SIM115 (kept for the process)
    _out.write(f"{time.time():.6f}\n")


# -- the parent ----------------------------------------------------------------


def _redis():
    sys.path.insert(0, ROOT)
    from pace.redisserver import RedisServer

    return RedisServer().start()


def _client(server):
    import redis

    return redis.Redis(port=server.port, decode_responses=True)


def _workers(server, n: int, folder: str, *extra: str) -> list[subprocess.Popen]:
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, ROOT]), FLEET_BENCH_DIR=folder)
    procs = []
    for i in range(n):
        cmd = [twistd, "-n", "--pidfile=", "-l", os.path.join(folder, f"w{i}.log"), "pace"]
        cmd += ["--queue", "bench", "--handler", "fleet:stamp", "--redis-url", server.url]
        cmd += ["--log-interval", "0", *extra]
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL))
    return procs


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _starts(folder: str) -> dict[int, list[float]]:
    out = {}
    for path in glob.glob(os.path.join(folder, "starts-*")):
        with open(path) as f:
            out[int(path.rsplit("-", 1)[1])] = [float(line) for line in f if line.strip()]
    return out


def _calls(r, only: str | None = None) -> int:
    stats = r.info("commandstats")
    if only is not None:
        return stats.get(f"cmdstat_{only}", {}).get("calls", 0)
    return sum(v["calls"] for v in stats.values())


def _most_in(times: list[float], width: float) -> int:
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/fleet.py: timed out waiting for {what}")
        time.sleep(0.05)


def _fleet_run(server, n: int, rate: float, seconds: float, *extra: str) -> dict:
    r = _client(server)
    r.flushall()
    jobs = int(rate * seconds)
    payload = json.dumps({"class": "Noop", "args": []})
    for i in range(0, jobs, 1000):
        r.rpush("resque:queue:bench", *[payload] * min(1000, jobs - i))
    folder = tempfile.mkdtemp(prefix="pace-fleet-bench-")
    before, evalsha = _calls(r), _calls(r, "evalsha") + _calls(r, "eval")
    procs = _workers(server, n, folder, *extra)
    try:
        _wait(
            lambda: sum(map(len, _starts(folder).values())) >= jobs,
            seconds * 4 + 60,
            f"{jobs} jobs",
        )
        # Everything settled and acknowledged: the counters stop moving.
        _wait(lambda: r.get("resque:stat:processed") == str(jobs), 30, "acknowledgements")
        scripts = _calls(r, "evalsha") + _calls(r, "eval") - evalsha
        after = _calls(r) - 3  # the INFO calls above
    finally:
        _stop(procs)
    per = _starts(folder)
    shutil.rmtree(folder, ignore_errors=True)
    times = sorted(t for ts in per.values() for t in ts)
    span = times[-1] - times[0]
    return {
        "jobs": jobs,
        "max_1s": _most_in(times, 1.0),
        "max_100ms": _most_in(times, 0.1),
        "reached": (len(times) - 1) / span / rate if span > 0 else 0.0,
        "shares": sorted(len(ts) for ts in per.values()),
        "commands_per_job": (after - before) / jobs,
        "scripts_per_job": scripts / jobs,
    }


def case_shared_limit(server, args) -> list[tuple[str, str]]:
    n, rate, seconds = args.processes, args.rate, args.seconds
    limited = _fleet_run(server, n, rate, seconds, "--shared-limit", f"bench={rate:g}")
    plain = _fleet_run(server, n, rate, seconds, "--jobs-per-second", f"{rate / n:g}")
    share = 2 * rate / 10
    return [
        ("processes x rate", f"{n} x shared {rate:g}/s, {limited['jobs']:,} jobs queued first"),
        ("largest 1 s window", f"{limited['max_1s']} (limit {rate:g})"),
        ("largest 100 ms window", f"{limited['max_100ms']} (bound {share:g})"),
        ("rate reached", f"{limited['reached']:.1%}"),
        ("jobs per process", ", ".join(map(str, limited["shares"]))),
        ("Redis commands/job, shared limit", f"{limited['commands_per_job']:.2f}"),
        (
            "  of which scripts (EVALSHA: fetch, settle, reserve)",
            f"{limited['scripts_per_job']:.2f} (without the limit {plain['scripts_per_job']:.2f})",
        ),
        (
            f"Redis commands/job, --jobs-per-second {rate / n:g} each",
            f"{plain['commands_per_job']:.2f}",
        ),
        (
            "commands/job the limit adds",
            f"{limited['commands_per_job'] - plain['commands_per_job']:+.2f}",
        ),
        ("without the limit: largest 1 s window", f"{plain['max_1s']}"),
    ]


def case_pause(server, args) -> list[tuple[str, str]]:
    r = _client(server)
    r.flushall()
    payload = json.dumps({"class": "Noop", "args": []})
    r.rpush("resque:queue:bench", *[payload] * 20000)
    folder = tempfile.mkdtemp(prefix="pace-fleet-bench-")
    procs = _workers(server, 3, folder, "--jobs-per-second", "50")
    stops, starts = [], []
    try:
        _wait(lambda: len(_starts(folder)) == 3, 60, "three workers")
        for _ in range(args.rounds):
            time.sleep(1.0)
            r.set("resque:pace:paused:bench", "operator")
            paused = time.time()
            time.sleep(2.0)
            last = max(max(ts) for ts in _starts(folder).values())
            stops.append(max(0.0, last - paused))
            r.delete("resque:pace:paused:bench")
            resumed = time.time()
            _wait(
                lambda resumed=resumed: all(max(ts) > resumed for ts in _starts(folder).values()),
                10,
                "every worker to start again",
            )
            firsts = [min(t for t in ts if t > resumed) for ts in _starts(folder).values()]
            starts.append(max(firsts) - resumed)
    finally:
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)
    return [
        ("pause: last start after the pause, 3 workers", _spread(stops)),
        ("resume: until all 3 started again", _spread(starts)),
    ]


def _spread(values: list[float]) -> str:
    values = sorted(values)
    return (
        f"median {values[len(values) // 2] * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms "
        f"({len(values)} rounds)"
    )


CASES = {"shared-limit": case_shared_limit, "pause": case_pause}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    server = _redis()
    rows: list[tuple[str, str]] = []
    try:
        for name in args.cases.split(","):
            print(f"bench/fleet.py: {name} ...", file=sys.stderr)
            rows += CASES[name](server, args)
    finally:
        server.cleanup()
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")


if __name__ == "__main__":
    main()
