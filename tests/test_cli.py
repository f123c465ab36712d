"""
Tests for the ``pace`` command's plumbing (pace/cli/__init__.py): global
options anywhere, --version, one line for every mistake, the console
script, and confirmations read from a real pseudo-terminal (Ctrl-C,
Ctrl-D, y) while the suite itself never reads one.
"""

from __future__ import annotations

import argparse
import io
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pace
from pace import cli
from pace.cli.output import Output
from pace.redisserver import RedisServer
from tests.cli_support import CLITestCase
from tests.support import payload

BIN = os.path.dirname(sys.executable)


def run(*argv: str) -> tuple[int, str]:
    buffer = io.StringIO()
    return cli.main(list(argv), Output(buffer)), buffer.getvalue()


class PlumbingTests(CLITestCase):
    def test_version(self):
        code, out = run("--version")
        self.assertEqual((code, out), (0, f"pace {pace.__version__}\n"))

    def test_global_options_before_or_after_the_command(self):
        self.set_env("REDIS_URL", "redis://127.0.0.1:1/0")  # wrong: must not be used
        self.redis.set("ns:resque:stat:processed", "7")
        for argv in (
            ["--redis-url", self.url, "--namespace", "ns", "stats", "--json"],
            ["stats", "--redis-url", self.url, "--namespace", "ns", "--json"],
            ["--namespace", "ns", "stats", "--json", "--redis-url", self.url],
        ):
            pace.namespace = None
            code, out = run(*argv)
            self.assertEqual(code, 0, (argv, out))
            self.assertIn('"processed": 7', out)
        code, out = run("failed", "list", "--redis-url", self.url)
        self.assertEqual(code, 0, out)

    def test_every_mistake_is_one_line(self):
        mistakes = [
            ([], "choose a command"),
            (["nope"], "invalid choice"),
            (["enqueue", "", "Job"], "the queue name cannot be empty"),
            (["enqueue", "q", " "], "the job class cannot be empty"),
            (["queues", "clear", ""], "the queue name cannot be empty"),
            (["failed"], "required"),
            (["failed", "show", "x"], "a record number"),
            (["failed", "show", "-1"], "a record number"),
            (["stats", "--watch", "0"], "more than 0"),
            (["stats", "--bogus"], "unrecognized"),
            (["--redis-url", "http://u:hunter2@h/", "stats"], "unsupported Redis URL scheme"),
            (["--namespace", "", "stats"], "--namespace cannot be empty"),
        ]
        for argv, words in mistakes:
            code, out = self.pace(*argv) if "--redis-url" not in argv else run(*argv)
            self.assertIn(code, (1, 2), argv)
            self.assertEqual(out.count("\n"), 1, (argv, out))
            self.assertIn(words, out, argv)
            self.assertTrue(out.startswith("pace: error: "), out)
            self.assertNotIn("hunter2", out)

    def test_unreachable_redis_one_line_without_password(self):
        code, out = run("--redis-url", "redis://:hunter2@127.0.0.1:1/0", "stats")
        self.assertEqual(code, 1)
        self.assertIn("cannot reach Redis at redis://:***@127.0.0.1:1/0", out)
        self.assertEqual(out.count("\n"), 1, out)
        self.assertNotIn("hunter2", out)

    def test_missing_password_is_explained(self):
        own = RedisServer(None, None, "--requirepass", "s3cret").start()
        self.addCleanup(own.cleanup)
        code, out = run("--redis-url", own.url, "stats")
        self.assertEqual(code, 1)
        self.assertIn("wants a password: put it in --redis-url or $REDIS_URL", out)
        self.assertEqual(out.count("\n"), 1, out)
        code, out = run("--redis-url", f"redis://:wrong@127.0.0.1:{own.port}/0", "stats")
        self.assertEqual(code, 1)
        self.assertIn("refused the user name or password", out)
        self.assertNotIn(":wrong@", out)
        code, out = run("--redis-url", f"redis://:s3cret@127.0.0.1:{own.port}/0", "stats")
        self.assertEqual(code, 0, out)

    def test_redis_refusing_says_what_to_check(self):
        self.redis.set("resque:failed", "not a list")
        code, out = self.pace("failed", "list")
        self.assertEqual(code, 1)
        self.assertIn("WRONGTYPE", out)
        self.assertIn("--namespace", out)

    def test_add_command(self):
        # The way other modules add `pace NAME`: setup() gets the parser.
        def setup(p: argparse.ArgumentParser) -> None:
            p.add_argument("word")
            p.set_defaults(fn=lambda ctx: ctx.out.line(f"hello {ctx.args.word}") or 3)

        cli.add_command("hello", "say hello", setup)
        self.addCleanup(cli._commands.pop, "hello")
        self.assertEqual(run("hello", "you", "--redis-url", self.url), (3, "hello you\n"))

    def test_confirmation_answers_without_a_terminal(self):
        self.push("q", payload("J"))
        code, out = self.pace("queues", "clear", "q", stdin=io.StringIO(""))  # Ctrl-D
        self.assertEqual((code, self.redis.llen("resque:queue:q")), (1, 1))
        self.assertIn("nothing deleted", out)
        code, out = self.pace("queues", "clear", "q", stdin=io.StringIO("n\n"))
        self.assertEqual((code, self.redis.llen("resque:queue:q")), (1, 1))
        code, out = self.pace("queues", "clear", "q", stdin=io.StringIO("y\n"))
        self.assertEqual((code, self.redis.llen("resque:queue:q")), (0, 0), out)

    def test_no_terminal_never_asks(self):
        # Output() without stdin is what tests and pipes get: refuse, never read.
        self.push("q", payload("J"))
        code, out = self.pace("queues", "clear", "q")
        self.assertEqual(code, 1)
        self.assertIn("add --yes", out)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)


class ConsoleScriptTests(CLITestCase):
    def test_console_script(self):
        pace_bin = os.path.join(BIN, "pace")
        out = subprocess.run(
            [pace_bin, "enqueue", "q", "Job", "1", "--redis-url", self.url],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(self.redis.llen("resque:queue:q"), 1)
        usage = subprocess.run([pace_bin], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(usage.returncode, 2)
        self.assertEqual(usage.stderr.count("\n"), 1, usage.stderr)

    def in_pty(self, *argv: str) -> tuple[int, int]:
        """
        Start ``pace ARGV`` on a pseudo-terminal of its own; returns (pid, fd).
        """
        env = dict(os.environ, REDIS_URL=self.url, TERM="dumb")
        pid, fd = pty.fork()
        if pid == 0:  # the child: becomes `pace` on the pty
            # As a shell gives it: a suite started in the background (CI,
            # `cmd &`) has SIGINT ignored, and exec would pass that on.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execve(os.path.join(BIN, "pace"), ["pace", *argv], env)
        self.addCleanup(self._reap, pid, fd)
        return pid, fd

    def _reap(self, pid: int, fd: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)

    def read_until(self, fd: int, text: str, timeout: float = 15.0) -> str:
        seen = b""
        deadline = time.monotonic() + timeout
        while text.encode() not in seen:
            left = deadline - time.monotonic()
            self.assertGreater(left, 0, f"no {text!r} from pace in {timeout}s: {seen!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
        return seen.decode(errors="replace")

    def finish(self, pid: int, fd: int) -> tuple[int, str]:
        rest = self.read_until(fd, "\x00never\x00")
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), rest

    def test_terminal_confirmation_yes_ctrl_d_ctrl_c(self):
        self.push("q", payload("J"), payload("J"))
        for keys, status, words in (
            (b"\x04", 1, "nothing deleted"),  # Ctrl-D
            (b"\x03", 130, "interrupted"),  # Ctrl-C
            (b"y\n", 0, "2 jobs deleted"),
        ):
            pid, fd = self.in_pty("queues", "clear", "q")
            self.read_until(fd, "[y/N]")
            os.write(fd, keys)
            code, rest = self.finish(pid, fd)
            self.assertEqual(code, status, rest)
            self.assertIn(words, rest)
            self.assertNotIn("Traceback", rest)
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)
