"""
The bar chart of bench/compare.py, run with bench/.venvs/plot (matplotlib is
not one of Pace's dependencies): ``plot_compare.py RESULTS.json OUT.png``.
RESULTS.json holds {"title": ..., "footnote": ..., "workloads": [[key,
label], ...], "systems": [label, ...], "versions": {system: version},
"rates": {system: {workload: jobs/s or null}}, "capped": {system: {workload:
bool}}}.
"""

from __future__ import annotations

import json
import sys


def short(rate: float) -> str:
    if rate >= 10_000:
        return f"{rate / 1000:,.0f}k"
    if rate >= 1000:
        return f"{rate / 1000:.1f}k"
    return f"{rate:,.0f}"


def main() -> None:
    source, target = sys.argv[1:3]
    with open(source) as f:
        data = json.load(f)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = data["systems"]
    workloads = data["workloads"]
    rates, capped = data["rates"], data["capped"]
    colors = ["#3b6ea8", "#e0883a", "#5a9e5a", "#a05aa0"]
    width = 0.8 / len(workloads)
    fig, ax = plt.subplots(figsize=(12, 6.2), dpi=110)
    present = [r for s in systems for r in rates[s].values() if r]
    floor = min(present) / 3 if present else 1
    for w, (key, label) in enumerate(workloads):
        xs, heights = [], []
        for i, system in enumerate(systems):
            xs.append(i + (w - (len(workloads) - 1) / 2) * width)
            heights.append(rates[system].get(key) or 0)
        bars = ax.bar(xs, heights, width * 0.95, label=label, color=colors[w % len(colors)])
        for bar, system, height in zip(bars, systems, heights, strict=True):
            x = bar.get_x() + bar.get_width() / 2
            if height:
                text = short(height) + ("*" if capped[system].get(key) else "")
                ax.text(x, height * 1.08, text, ha="center", va="bottom", fontsize=9)
            else:
                ax.text(x, floor * 1.1, "failed", ha="center", va="bottom", rotation=90, fontsize=9)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor, top=max(present, default=10) * 4)
    ax.set_xticks(range(len(systems)))
    versions = data.get("versions", {})
    labels = [s.replace(" (", "\n(") + "\n" + versions.get(s, "") for s in systems]
    ax.set_xticklabels([label.rstrip() for label in labels], fontsize=10)
    ax.set_ylabel("jobs/s (log scale)", fontsize=11)
    ax.set_title(data["title"], fontsize=12)
    ax.grid(axis="y", which="major", alpha=0.35)
    ax.legend(loc="upper right", fontsize=10)
    fig.text(0.01, 0.01, data["footnote"], fontsize=8.5, ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(target)


if __name__ == "__main__":
    main()
