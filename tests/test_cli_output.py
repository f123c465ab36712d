"""
Tests for how the ``pace`` command prints (pace/cli/output.py): escaping,
ISO 8601 UTC dates from every form Resque, Ruby and Pace write, plain
tables with right-aligned numbers and full values, JSON that stays valid.
"""

from __future__ import annotations

import io
import json

from twisted.trial import unittest

from pace.cli.output import CommandError, Output, decode, iso_utc, shown


class ShownTests(unittest.TestCase):
    def test_plain_text_unchanged(self):
        self.assertEqual(shown("héllo wörld ✓"), "héllo wörld ✓")

    def test_escapes(self):
        self.assertEqual(shown("a\nb\tc\x1b[0m\x7f\x85"), "a\\nb\\tc\\x1b[0m\\x7f\\x85")
        self.assertEqual(shown("\ud800\u2028"), "\\ud800\\u2028")
        self.assertEqual(shown(decode(b"\xff\xc3")), "\\xff\\xc3")

    def test_limit(self):
        self.assertEqual(shown("abcdef", 2), "ab… (4 more characters)")
        self.assertEqual(shown("abc", 3), "abc")
        self.assertEqual(shown(None), "")
        self.assertEqual(shown(12), "12")


class IsoTests(unittest.TestCase):
    def test_forms(self):
        for text in (
            "2026/12/01 19:34:05 UTC",  # Resque's failed_at
            "2026-12-01 19:34:05 +0000",  # Ruby's Time#to_s
            "2026-12-01 20:34:05 +0100",
            "2026-12-01T19:34:05+00:00",  # Pace's heartbeat
            "2026-12-01T14:34:05-05:00",
            "2026-12-01T19:34:05.123Z",
            "2026/12/01 19:34:05",
        ):
            self.assertEqual(iso_utc(text), "2026-12-01T19:34:05Z", text)
        self.assertEqual(iso_utc(1764617645), "2025-12-01T19:34:05Z")

    def test_unknown_left_as_is(self):
        self.assertEqual(iso_utc("2026/12/01 19:34:05 CET"), "2026/12/01 19:34:05 CET")
        self.assertEqual(iso_utc("yesterday\n"), "yesterday")
        self.assertEqual(iso_utc(None), "-")


class OutputTests(unittest.TestCase):
    def test_plain_table(self):
        buffer = io.StringIO()
        Output(buffer).table("T", ["name", "n"], [["a" * 100, "1"], ["b", "1,000"]], [1])
        self.assertEqual(
            buffer.getvalue().splitlines(),
            ["T", "name" + " " * 96 + "      n", "a" * 100 + "      1", "b" + " " * 99 + "  1,000"],
        )

    def test_rich_table_on_a_terminal_never_reads_markup(self):
        buffer = io.StringIO()
        Output(buffer, tty=True).table("T", ["x"], [["[bold]not markup[/bold]"]])
        self.assertIn("[bold]not markup[/bold]", buffer.getvalue())

    def test_json_stays_valid_with_surrogates(self):
        buffer = io.StringIO()
        Output(buffer).json({"e": "\ud800-" + decode(b"\xff")})
        self.assertEqual(json.loads(buffer.getvalue()), {"e": "\ud800-\udcff"})

    def test_ask_without_a_terminal_refuses(self):
        e = self.assertRaises(CommandError, Output(io.StringIO()).ask, "Delete?")
        self.assertIn("add --yes", str(e))

    def test_ask(self):
        for answer, expected in (("y\n", True), ("YES\n", True), ("\n", False), ("", False)):
            out = Output(io.StringIO(), stdin=io.StringIO(answer))
            self.assertIs(out.ask("Delete?"), expected, answer)


class RichTableTests(unittest.TestCase):
    def test_dates_never_fold_long_values_do_whole(self):
        buffer = io.StringIO()
        out = Output(buffer, tty=True)
        out.console().width = 60
        date, long = "2026-12-01T19:34:05Z", "z" * 100
        out.table("T", ["when", "n", "error"], [[date, "1,234", long]], [1])
        text = buffer.getvalue()
        self.assertIn(date, text)
        self.assertIn("1,234", text)
        self.assertEqual(text.count("z"), 100)  # folded, nothing cut
        self.assertGreater(len([line for line in text.splitlines() if "z" in line]), 1)
