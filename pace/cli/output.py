"""
How the ``pace`` command prints: rich tables on a terminal, plain aligned
columns with full values when piped (no wrapping, no truncation), JSON for
``--json``, dates as ISO 8601 UTC, numbers right-aligned, and any data from
Redis escaped so that control characters, lone surrogates and bytes that
are not UTF-8 can neither break the output nor the terminal.
"""

from __future__ import annotations

import calendar
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from typing import IO, Any


class CommandError(Exception):
    """
    An operator's mistake or a missing thing: message printed, exit 1.
    """


# Control characters (C0, DEL, C1), line separators and surrogates: shown as
# escapes. Surrogates U+DC80..U+DCFF stand for undecodable bytes (see
# `decode`) and are shown as the byte they stand for.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _escape_one(m: re.Match) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:
        return f"\\x{c - 0xDC00:02x}"
    return {0x0A: "\\n", 0x09: "\\t", 0x0D: "\\r"}.get(c) or (
        f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    )


def shown(value: Any, limit: int | None = None) -> str:
    """
    ``value`` as one safe line; with ``limit``, cut to that many characters
    with a note of how many more there were.
    """
    text = value if isinstance(value, str) else "" if value is None else str(value)
    extra = 0
    if limit is not None and len(text) > limit:
        extra, text = len(text) - limit, text[:limit]
    text = _UNSAFE.sub(_escape_one, text)
    return f"{text}… ({extra:,} more characters)" if extra else text


def decode(raw: bytes) -> str:
    """
    Bytes from Redis as text: UTF-8, with any byte that is not kept as a
    surrogate that `shown` prints as ``\\xNN``.
    """
    return raw.decode("utf-8", "surrogateescape")


_STAMP = re.compile(r"^(\d{4})[-/](\d\d)[-/](\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.\d+)?\s*(\S*)$")
_OFFSET = re.compile(r"^([+-])(\d\d):?(\d\d)$")
_UTC_NAMES = ("", "UTC", "GMT", "Z")


def iso_utc(value: Any) -> str:
    """
    A time as Resque (``2026/12/01 19:34:05 UTC``), Ruby (``2026-12-01
    19:34:05 +0000``) or Pace wrote it, or a Unix time, as ISO 8601 UTC:
    ``2026-12-01T19:34:05Z``. A zone given by a name other than UTC is not
    guessed: such a time is shown as it is. Nothing is ``-``.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, int | float):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
    text = str(value).strip()
    m = _STAMP.match(text)
    if not m:
        return shown(text)
    zone = m.group(7)
    seconds = calendar.timegm(tuple(int(g) for g in m.groups()[:6]) + (0, 0, 0))
    if zone.upper() not in _UTC_NAMES:
        offset = _OFFSET.match(zone)
        if not offset:
            return shown(text)
        sign = 1 if offset.group(1) == "+" else -1
        seconds -= sign * (int(offset.group(2)) * 3600 + int(offset.group(3)) * 60)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


#: Values up to this long are never folded in a terminal's table.
_SHORT = 24


class Output:
    """
    Where the command prints, and whether it may ask. ``tty`` says whether
    ``file`` is a terminal (tables, colours, redrawing in place);
    ``stdin``, when given, is where a confirmation is read from: only
    `terminal` passes one, and only when stdin and stdout are terminals.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        err: IO[str] | None = None,
        tty: bool = False,
        stdin: IO[str] | None = None,
    ):
        self.file = file if file is not None else sys.stdout
        self.err = err if err is not None else (file if file is not None else sys.stderr)
        self.tty = tty
        self.stdin = stdin
        self._console: Any = None

    @classmethod
    def terminal(cls) -> Output:
        tty = sys.stdout.isatty()
        asks = tty and sys.stdin is not None and sys.stdin.isatty()
        return cls(sys.stdout, sys.stderr, tty=tty, stdin=sys.stdin if asks else None)

    def write(self, text: str) -> None:
        self.file.write(text)
        self.file.flush()

    def line(self, text: str = "") -> None:
        self.write(text + "\n")

    def error(self, text: str) -> None:
        self.err.write(f"pace: error: {text}\n")
        self.err.flush()

    def json(self, value: Any) -> None:
        # ensure_ascii: lone surrogates and undecodable bytes stay valid JSON.
        self.line(json.dumps(value, indent=2 if self.tty else None, ensure_ascii=True))

    def table(
        self,
        title: str,
        headers: Sequence[str],
        rows: Iterable[Sequence[Any]],
        right: Iterable[int] = (),
    ) -> None:
        """
        A table; columns whose index is in ``right`` (numbers) are
        right-aligned. Cells are escaped here.
        """
        right = set(right)
        cells = [[shown(c) for c in row] for row in rows]
        if self.tty:
            self._rich_table(title, headers, cells, right)
            return
        widths = [len(h) for h in headers]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def fmt(row: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        self.line(title)
        self.line(fmt(headers))
        for row in cells:
            self.line(fmt(row))

    def _rich_table(self, title: str, headers: Sequence[str], cells: list, right: set) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=title, title_justify="left")
        for i, h in enumerate(headers):
            # Short values (dates, numbers, names) stay whole on one line;
            # long ones fold, so that nothing is ever cut.
            longest = max((len(row[i]) for row in cells), default=0)
            table.add_column(
                h,
                justify="right" if i in right else "left",
                overflow="fold",
                no_wrap=longest <= _SHORT,
            )
        for row in cells:
            table.add_row(*(Text(c) for c in row))  # Text: data is never markup
        self.console().print(table)

    def console(self) -> Any:
        if self._console is None:
            try:
                from rich.console import Console
            except ImportError:
                from pace.cli.connect import EXTRA_HINT

                raise CommandError(f"the pace command needs rich: {EXTRA_HINT}") from None
            self._console = Console(file=self.file, highlight=False, force_terminal=True)
        return self._console

    def clear(self) -> None:
        """
        On a terminal, go back to the top of the screen to redraw it.
        """
        if self.tty:
            self.write("\x1b[H\x1b[2J")

    def ask(self, question: str) -> bool:
        """
        A yes/no question, read from the terminal; without one, refuse.
        Ctrl-D counts as no.
        """
        if self.stdin is None:
            raise CommandError(f"{question}: refusing without a terminal to ask; add --yes")
        self.write(f"{question} [y/N] ")
        answer = self.stdin.readline()
        if not answer:
            self.line()  # Ctrl-D: end the prompt's line
            return False
        return answer.strip().lower() in ("y", "yes")
