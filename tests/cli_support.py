"""
What the tests of the ``pace`` command share: running it in-process against
the private Redis with its output in a buffer (never a terminal), and
failure records to list.
"""

from __future__ import annotations

import io
import json
from typing import Any

from pace import cli
from pace.cli.output import Output
from tests.support import RedisTestCase


def record(i: int, queue: str = "billing", **fields: Any) -> str:
    rec = {
        "failed_at": "2026/11/29 03:00:00 UTC",
        "payload": {"class": "Charge", "args": [i]},
        "exception": "ValueError",
        "error": f"declined {i}",
        "backtrace": [],
        "worker": "h:1:q",
        "queue": queue,
    }
    rec.update(fields)
    return json.dumps(rec)


class CLITestCase(RedisTestCase):
    def pace(self, *argv: str, stdin: Any = None, tty: bool = False) -> tuple[int, str]:
        """
        Run ``pace --redis-url <ours> ARGV...``; C{stdin}, if given, is
        what a terminal would answer.
        """
        buffer = io.StringIO()
        out = Output(buffer, tty=tty, stdin=stdin)
        code = cli.main(["--redis-url", self.url, *argv], out)
        return code, buffer.getvalue()

    def fail_jobs(self, n: int = 2, **fields: Any) -> None:
        for i in range(n):
            self.redis.rpush("resque:failed", record(i, **fields))
