"""
The ``pace`` command for operators: queue and worker stats, enqueueing, and
Resque's failed list, on any Redis that Resque, pyres or Pace use.

This module is the plumbing: the parser, global options, and turning every
mistake into one line. Each command lives in a module of its own that
registers itself with `add_command`; to add one (``pace pause``, say), write
``pace/cli/<name>.py`` calling `add_command` at import time and list the
module in `COMMAND_MODULES`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

import pace
from pace.cli.output import CommandError, Output

#: The modules whose import registers the built-in commands, in help order.
COMMAND_MODULES = [
    "pace.cli.stats",
    "pace.cli.enqueue",
    "pace.cli.failed",
    "pace.cli.queues",
    "pace.cli.fleet",
    "pace.cli.scheduled",
]

#: A command's function: ``fn(ctx) -> exit status``; see `Context`.
Command = Callable[["Context"], int]

_commands: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def add_command(name: str, help: str, setup: Callable[[argparse.ArgumentParser], None]) -> None:
    """
    Register ``pace NAME``. ``setup(parser)`` adds the command's arguments
    (or sub-commands, with ``parser.add_subparsers``) and sets the function
    to run with ``parser.set_defaults(fn=...)``; that function is called as
    ``fn(ctx)`` with a `Context` and returns the exit status. ``--redis-url``
    and ``--namespace`` are added to every (sub-)command by the plumbing.
    """
    _commands[name] = (help, setup)


class Context:
    """
    What a command gets: its parsed ``args``, the ``out`` to print to, and
    Redis clients made on first use (``redis`` decodes replies as UTF-8,
    ``raw`` gives bytes, for data that may not be text).
    """

    def __init__(self, args: argparse.Namespace, out: Output):
        self.args = args
        self.out = out
        self._clients: dict[bool, Any] = {}

    def client(self, decode: bool) -> Any:
        from pace.cli.connect import client

        if decode not in self._clients:
            self._clients[decode] = client(self.args.redis_url, decode)
        return self._clients[decode]

    @property
    def redis(self) -> Any:
        return self.client(True)

    @property
    def raw(self) -> Any:
        return self.client(False)

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


class _Exit(Exception):
    def __init__(self, status: int, message: str = ""):
        self.status, self.message = status, message


class _Parser(argparse.ArgumentParser):
    # Usage errors and --help/--version go through Output, never straight to
    # sys.stdout/stderr, and a usage error is one line, not the whole usage.
    out: Output | None = None

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and _Parser.out is not None:
            _Parser.out.write(message if message.endswith("\n") else message + "\n")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise _Exit(status, message or "")

    def error(self, message: str) -> Any:
        raise _Exit(2, f"{message} (see {self.prog} --help)")


_GLOBALS: list[tuple[str, dict]] = [
    ("--redis-url", {"help": "default: $REDIS_URL, else redis://127.0.0.1:6379/0"}),
    ("--namespace", {"help": "key prefix (Redis::Namespace style)"}),
]


def _add_globals(p: argparse.ArgumentParser, top: bool) -> None:
    for flag, kw in _GLOBALS:
        # Given after a sub-command, the option must not be reset to None
        # by the parsers it did not appear in: only the top level has a default.
        options: dict[str, Any] = dict(kw)
        if not top:
            options["default"] = argparse.SUPPRESS
        p.add_argument(flag, **options)


def _spread_globals(p: argparse.ArgumentParser) -> None:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--redis-url" in a.option_strings for a in child._actions):
                    _add_globals(child, top=False)
                _spread_globals(child)


def parser() -> argparse.ArgumentParser:
    for name in COMMAND_MODULES:
        importlib.import_module(name)
    p = _Parser(prog="pace", description="Look after Resque queues and failed jobs.")
    p.add_argument("--version", action="version", version=f"pace {pace.__version__}")
    _add_globals(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, setup) in _commands.items():
        setup(sub.add_parser(name, help=text, description=text))
    _spread_globals(p)
    return p


def main(argv: list[str] | None = None, out: Output | None = None) -> int:
    """
    Run the ``pace`` command; returns its exit status. Tests pass an
    `Output` writing to a buffer: it never reads a terminal.
    """
    out = out or Output.terminal()
    _Parser.out = out
    try:
        args = parser().parse_args(argv)
    except _Exit as e:
        if e.message:
            out.error(e.message.strip())
        return e.status
    if getattr(args, "fn", None) is None:
        out.error(f"choose a command: {', '.join(_commands)} (see pace --help)")
        return 2
    if args.namespace is not None:
        if not args.namespace.strip():
            out.error("--namespace cannot be empty: leave it out for no namespace")
            return 2
        pace.namespace = args.namespace
    ctx = Context(args, out)
    try:
        return args.fn(ctx)
    except CommandError as e:
        out.error(str(e))
        return 1
    except KeyboardInterrupt:
        if out.tty:
            out.line()  # off the line that ^C was echoed on
        out.error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as e:
        from pace.cli.connect import explain

        message = explain(e, args.redis_url)
        if message is None:
            raise
        out.error(message)
        return 1
    finally:
        ctx.close()
