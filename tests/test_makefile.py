"""
Tests for the Makefile, the front door: `make help` lists the targets, and
a Python older than 3.10 is refused in one line before any virtualenv is
made (so a later run with a good Python does not reuse a broken one).
"""

from __future__ import annotations

import os
import stat
import subprocess

from twisted.trial import unittest

from tests.support import ROOT


def make(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


class MakefileTests(unittest.TestCase):
    def test_help(self):
        out = make("help")
        self.assertEqual(out.returncode, 0, out.stderr)
        for target in ("test", "demo", "lint", "docs", "dist", "bench", "clean"):
            self.assertIn(f"make {target} ", out.stdout)

    def test_old_python_refused_in_one_line_and_no_venv(self):
        # A stand-in for an old interpreter: no Python 3.9 need be installed.
        fake = os.path.abspath(self.mktemp())
        os.makedirs(fake)
        python = os.path.join(fake, "python3")
        with open(python, "w") as f:
            f.write('#!/bin/sh\n[ "$1" = -V ] && echo "Python 3.9.18" && exit 0\necho 0\n')
        os.chmod(python, stat.S_IRWXU)
        venv = os.path.join(fake, "venv")
        for goal in ("test", "demo"):
            out = make(goal, f"PYTHON={python}", f"VENV={venv}")
            self.assertNotEqual(out.returncode, 0)
            lines = (out.stdout + out.stderr).strip().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("Pace needs Python 3.10 or later", lines[0])
            self.assertIn("Python 3.9.18", lines[0])
            self.assertIn(f"make {goal} PYTHON=", lines[0])
            self.assertFalse(os.path.exists(venv))
