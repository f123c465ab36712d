"""
The benchmark's results (bench/run.py): figures per case, the table, the
details, the targets met or missed and the rows for bench/RESULTS.md.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from cases import (
    BY_NAME,
    CONCURRENCY,
    SOAK_SAMPLE_SECONDS,
    THROTTLE_RATE,
    Case,
)
from tables import text_table

#: The soak's memory counts as flat if its last RSS sample is within this
#: of its first (the first is taken after a second of running).
FLAT_MB = 2.0


def rate(result: dict[str, Any] | None) -> float | None:
    seconds = result and result.get("seconds")
    if not seconds or result is None or result.get("done") != result["jobs"]:
        return None
    return result["jobs"] / seconds


def per_thousand(seconds: float | None, jobs: int) -> str:
    return "-" if seconds is None else f"{seconds * 1000 / jobs:.4f}"


def micros(result: dict[str, Any] | None) -> float | None:
    if not result or result.get("cpu_seconds") is None:
        return None
    return result["cpu_seconds"] * 1e6 / result["jobs"]


class Results:
    def __init__(self) -> None:
        self.items: list[tuple[Case, dict[str, Any]]] = []

    def add(self, case: Case, result: dict[str, Any]) -> None:
        self.items.append((case, result))

    def get(self, name: str) -> dict[str, Any] | None:
        return next((r for c, r in self.items if c.name == name), None)

    def rate(self, name: str) -> float | None:
        return rate(self.get(name))

    def baseline(self, case: Case) -> tuple[float | None, str]:
        """
        What the ratio column compares C{case} to: a rate and its name.
        """
        if case.ceiling is not None:
            what = "limit" if case.name == "throttle" else "ceiling"
            return case.ceiling, f"{what} {case.ceiling:,.0f}/s"
        if case.base is not None:
            return self.rate(case.base), BY_NAME[case.base].label
        return None, ""

    def table(self) -> str:
        header = (
            "case",
            "jobs",
            "jobs/s",
            "CPU s/1k",
            "peak RSS MB",
            "ratio",
            "of",
            "stop s",
            "redis CPU s/1k",
        )
        rows = [header]
        for case, r in self.items:
            jobs_s = rate(r)
            base, base_label = self.baseline(case)
            ratio = "-"
            if jobs_s is not None and base:
                ratio = f"{jobs_s / base:.2f}x"
            stop = r.get("stop_seconds")
            redis_cpu = r.get("redis_cpu_seconds") if case.kind != "http" else None
            rows.append(
                (
                    case.label,
                    f"{r['jobs']:,}",
                    "failed" if jobs_s is None else f"{jobs_s:,.0f}",
                    per_thousand(r.get("cpu_seconds"), r["jobs"]),
                    f"{r['peak_rss_mb']:.1f}" if "peak_rss_mb" in r else "-",
                    ratio,
                    base_label if ratio != "-" else "",
                    "-" if stop is None else f"{stop:.3f}",
                    per_thousand(redis_cpu, r["jobs"]),
                )
            )
        return text_table(rows, left={0, 6})

    # -- details ------------------------------------------------------------

    def http_details(self, server: str) -> list[str]:
        names = ("http-treq", "http-agent", "http-fast", "pace-treq", "pace-fast")
        us = {name: micros(self.get(name)) for name in names}
        if not any(us.values()):
            return []
        lines = [
            f"HTTP: {server}, {CONCURRENCY} requests in flight, persistent pool; "
            "client CPU per request:",
            "  " + ", ".join(f"{BY_NAME[n].label} {us[n]:.0f} us" for n in names if us[n]),
        ]
        for case, base in (
            ("pace-treq", "http-treq"),
            ("pace-fast", "http-agent"),
            ("http-treq", "http-agent"),
            ("http-fast", "http-agent"),
        ):
            a, b = self.rate(case), self.rate(base)
            ua, ub = us[case], us[base]
            if a and b and ua and ub:
                lines.append(
                    f"  {BY_NAME[case].label} / {BY_NAME[base].label}: "
                    f"{a / b:.2f} of the jobs/s, {ua / ub:.2f}x the CPU per request"
                )
        return lines

    def latency_details(self) -> list[str]:
        latency = self.rate("latency")
        if latency is None:
            return []
        ceiling = BY_NAME["latency"].ceiling or 1
        return [
            f"latency case: {latency / ceiling:.2f} of its own ceiling of {ceiling:,.0f} "
            f"jobs/s (concurrency / latency)"
        ]

    def throttle_details(self) -> list[str]:
        r = self.get("throttle")
        if not r or "max_1s" not in r:
            return []
        return [
            f"throttle: jobs_per_second={THROTTLE_RATE:,}, {r['jobs']:,} jobs started over "
            f"{r['span']:.2f}s, {r['first_1s']:,} in the first second;",
            f"  most jobs started in any 1 s window: {r['max_1s']:,} (limit {THROTTLE_RATE:,}); "
            f"in any 10 ms window: {r['max_10ms']:,} (evenly spread: {THROTTLE_RATE / 100:g})",
        ]

    def soak(self) -> dict[str, Any] | None:
        r = self.get("soak")
        samples = (r or {}).get("rss_samples") or []
        if r is None or not samples:
            return None
        first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
        return {
            "jobs": r["jobs"],
            "samples": len(samples),
            "first": first,
            "middle": middle,
            "last": last,
            "max": max(sample[2] for sample in samples),
            "growth": last[2] - first[2],
            "start": r.get("start_rss_mb"),
            "max_queued": r.get("max_queued"),
            "max_redis_mb": r.get("max_redis_mb"),
        }

    def soak_details(self) -> list[str]:
        s = self.soak()
        if s is None:
            return []

        def at(sample: list) -> str:
            return f"{sample[2]:.1f} MB after {sample[0]:.0f}s ({sample[1]:,} jobs)"

        return [
            f"soak: {s['jobs']:,} no-op jobs, RSS sampled every {SOAK_SAMPLE_SECONDS:g}s "
            f"and at the end ({s['samples']} samples; {s['start']:.1f} MB before the start):",
            f"  first {at(s['first'])}, middle {at(s['middle'])},",
            f"  last {at(s['last'])}; max {s['max']:.1f} MB; last - first {s['growth']:+.1f} MB",
            f"  Redis held at most {s['max_queued']:,} queued jobs, "
            f"{s['max_redis_mb']:.1f} MB used_memory",
        ]

    def scaling_details(self) -> list[str]:
        one, two = self.get("scale-1"), self.get("scale-2")
        one_s, two_s = rate(one), rate(two)
        if one is None or two is None or one_s is None or two_s is None:
            return []

        def busy(r: dict[str, Any]) -> str:
            workers = r["cpu_seconds"] / r["seconds"]
            redis = r.get("redis_cpu_seconds", 0) / r["seconds"]
            return f"workers {workers:.2f} + redis-server {redis:.2f}"

        return [
            f"scaling: 1 process {one_s:,.0f} jobs/s, 2 processes {two_s:,.0f} jobs/s "
            f"together ({two_s / one_s:.2f}x; jobs each {two.get('per_process')}).",
            f"  Cores busy: {busy(one)} with 1 process, {busy(two)} with 2, of the "
            f"{os.cpu_count()} this machine has:",
            "  redis-server shares the cores with the workers, so two workers cannot double "
            "one's rate here.",
        ]

    def targets(self) -> list[tuple[str, bool]]:
        def ratio(a: str, b: str) -> float | None:
            x, y = self.rate(a), self.rate(b)
            return x / y if x is not None and y else None

        out: list[tuple[str, bool]] = []

        def check(text: str, value: float | None, goal: float) -> None:
            if value is not None:  # else a case was not run, or failed
                out.append((f"{text} >= {goal:.2f}: {value:.2f}", value >= goal))

        check("at-most-once no-op / bare LPOP 100", ratio("at-most-once", "bare"), 0.60)
        check("reliable no-op / bare LPOP 100", ratio("reliable", "bare"), 0.40)
        check("pace + treq / bare treq", ratio("pace-treq", "http-treq"), 0.90)
        check("pace + fast_http / bare Agent", ratio("pace-fast", "http-agent"), 0.90)
        s = self.soak()
        if s is not None:
            flat = s["growth"] <= FLAT_MB
            out.append(
                (f"soak memory flat (last - first <= {FLAT_MB:g} MB): {s['growth']:+.1f} MB", flat)
            )
        r = self.get("throttle")
        if r and "max_1s" in r:
            out.append(
                (
                    f"throttle never above {THROTTLE_RATE:,} in any 1 s: {r['max_1s']:,}",
                    r["max_1s"] <= THROTTLE_RATE,
                )
            )
        return out

    def rows(self, jobs: int, change: str, about: str, server: str) -> list[str]:
        def fig(name: str) -> str:
            value = self.rate(name)
            return "-" if value is None else f"{value:,.0f}"

        today = datetime.date.today()
        first = " | ".join(fig(n) for n in ("bare", "reliable", "at-most-once", "latency"))
        http = " | ".join(
            fig(n)
            for n in ("blpop", "http-treq", "http-agent", "http-fast", "pace-treq", "pace-fast")
        )
        throttle = self.get("throttle") or {}
        limit = f"{throttle['max_1s']:,} / {throttle['max_10ms']}" if "max_1s" in throttle else "-"
        s = self.soak()
        soak = "-"
        if s is not None:
            soak = f"{s['jobs']:,}: {s['first'][2]:.1f} → {s['last'][2]:.1f} (max {s['max']:.1f})"
        return [
            "rows for bench/RESULTS.md (first table, then second):",
            f"| {today} | {change} | {jobs:,} | {first} | {about} |",
            f"| {today} | {change} | {jobs:,} | {http} | {server} | {limit} | {soak} | "
            f"{fig('scale-1')} | {fig('scale-2')} | {about} |",
        ]
