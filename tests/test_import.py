"""
``import pace`` has no side effects: it installs no reactor (txredisapi,
which imports the global reactor, is imported on the first connection), so
a program can install the reactor it wants afterwards.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial import unittest

from tests.support import ROOT

PROGRAM = """
import sys
import pace, pace.worker, pace.service, pace.enqueue, pace.connection
assert "twisted.internet.reactor" not in sys.modules, "import pace installed a reactor"
assert "txredisapi" not in sys.modules, "import pace imported txredisapi"
from twisted.internet import asyncioreactor
asyncioreactor.install()
from twisted.internet import reactor
print(type(reactor).__name__)
"""


class ImportTests(unittest.TestCase):
    def test_import_pace_installs_no_reactor(self):
        out = subprocess.run(
            [sys.executable, "-c", PROGRAM],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "AsyncioSelectorReactor")
