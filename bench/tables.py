"""
Plain-text tables for the benchmark scripts' output.
"""

from __future__ import annotations


def text_table(rows: list[tuple[str, ...]], left: set[int]) -> str:
    """
    ``rows`` (the header first) in aligned columns, a rule under the header;
    columns in ``left`` are left-aligned, the others right-aligned.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_model() -> str:
    """
    The processor's model name, for the machine line of a result.
    """
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu
