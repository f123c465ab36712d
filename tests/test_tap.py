"""
Tests for the twistd plugin and pace.tap: options, their errors and the
environment fallbacks, the service they make, and that twistd finds `pace`.
"""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

import pace
from pace import tap
from pace.service import PaceService
from tests.support import RedisTestCase

BIN = os.path.dirname(sys.executable)


def parse(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class PluginTests(unittest.TestCase):
    def test_twistd_finds_pace(self):
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("pace", makers)
        self.assertIs(makers["pace"].options, tap.Options)

    def test_twistd_help_lists_pace(self):
        out = subprocess.run(
            [os.path.join(BIN, "twistd"), "--help"], capture_output=True, text=True, check=True
        ).stdout
        self.assertIn("pace", out.split())


def handler(job):
    return None


not_callable = 42


class OptionsTests(RedisTestCase):
    def test_queues_repeated_and_comma_separated(self):
        o = parse("--queue", "a", "--queue", "b,c", "--handler", "tests.test_tap.handler")
        self.assertEqual(o["queue"], ["a", "b", "c"])
        self.assertIs(o["handler"], handler)

    def test_handler_with_colon(self):
        o = parse("--queue", "a", "--handler", "tests.test_tap:handler")
        self.assertIs(o["handler"], handler)

    def test_environment_fallbacks(self):
        self.set_env("PACE_QUEUE", "x,y")
        self.set_env("REDIS_URL", "redis://env:1/2")
        self.set_env("SENTRY_DSN", "http://k@127.0.0.1:1/1")
        o = parse("--handler", "tests.test_tap.handler")
        self.assertEqual(
            (o["queue"], o["redis-url"], o["sentry-dsn"]),
            (["x", "y"], "redis://env:1/2", "http://k@127.0.0.1:1/1"),
        )

    def test_numbers(self):
        o = parse(
            "--queue",
            "q",
            "--handler",
            "tests.test_tap.handler",
            "--concurrency",
            "7",
            "--grace",
            "3.5",
            "--jobs-per-second",
            "250",
            "--job-timeout",
            "9",
            "--no-reliable",
        )
        self.assertEqual(
            (
                o["concurrency"],
                o["grace"],
                o["jobs-per-second"],
                o["job-timeout"],
                o["no-reliable"],
            ),
            (7, 3.5, 250.0, 9.0, True),
        )

    def assert_usage_error(self, words, *argv):
        e = self.assertRaises(usage.UsageError, parse, *argv)
        for word in words:
            self.assertIn(word, str(e))

    def test_errors_name_the_problem(self):
        self.set_env("PACE_QUEUE", None)
        h = ("--handler", "tests.test_tap.handler")
        self.assert_usage_error(["no queue"], *h)
        self.assert_usage_error(["no handler"], "--queue", "q")
        self.assert_usage_error(
            ["cannot import", "no_such_module", "ModuleNotFoundError"],
            "--queue",
            "q",
            "--handler",
            "no_such_module.fn",
        )
        self.assert_usage_error(
            ["no attribute", "missing"], "--queue", "q", "--handler", "tests.test_tap.missing"
        )
        self.assert_usage_error(
            ["not callable"], "--queue", "q", "--handler", "tests.test_tap.not_callable"
        )
        self.assert_usage_error(
            ["--concurrency", "number"], "--queue", "q", *h, "--concurrency", "x"
        )
        self.assert_usage_error(["--concurrency", ">= 1"], "--queue", "q", *h, "--concurrency", "0")
        self.assert_usage_error(["--grace", ">= 0"], "--queue", "q", *h, "--grace", "-1")
        self.assert_usage_error(
            ["--jobs-per-second", "> 0"], "--queue", "q", *h, "--jobs-per-second", "0"
        )
        self.assert_usage_error(["scheme"], "--queue", "q", *h, "--redis-url", "http://u:pw@h")

    def test_retry_means_retries_after_the_first_run(self):
        o = parse("--queue", "q", "--handler", "tests.test_tap.handler", "--retry", "3")
        self.assertEqual(o["retry"].attempts, 4)
        self.assertEqual(tap.makeService(o).services[0].worker.retry.attempts, 4)
        o = parse("--queue", "q", "--handler", "tests.test_tap.handler", "--retry", "0")
        self.assertIsNone(o["retry"])
        self.assert_usage_error(
            ["--retry", ">= 0"],
            "--queue",
            "q",
            "--handler",
            "tests.test_tap.handler",
            "--retry",
            "-1",
        )
        self.assert_usage_error(
            ["--retry", "number"],
            "--queue",
            "q",
            "--handler",
            "tests.test_tap.handler",
            "--retry",
            "x",
        )

    def test_make_service(self):
        o = parse(
            "--queue",
            "q1,q2",
            "--handler",
            "tests.test_tap.handler",
            "--redis-url",
            self.url,
            "--namespace",
            "ns",
            "--concurrency",
            "5",
            "--grace",
            "2",
            "--no-reliable",
            "--heartbeat-ttl",
            "12",
            "--log-interval",
            "0",
            "--no-failure-records",
        )
        top = tap.makeService(o)
        self.assertTrue(IService.providedBy(top))
        [service] = list(top)
        self.assertIsInstance(service, PaceService)
        w = service.worker
        self.assertEqual(w.queues, ["ns:resque:queue:q1", "ns:resque:queue:q2"])
        self.assertEqual((w.concurrency, w.grace, w.reliable), (5, 2.0, False))
        self.assertEqual((w.heartbeat_ttl, w.log_interval, w.record_failures), (12.0, None, False))
        self.assertIs(service.handler, handler)
        self.assertEqual(pace.namespace, "ns")
        self.assertEqual(pace.redis_url, self.url)


class PackagingTests(unittest.TestCase):
    def test_wheel_ships_the_plugin_without_claiming_twisted(self):
        # A plain `pip install txpace` must put the plugin where Twisted
        # looks, and never an __init__.py that would shadow Twisted's own.
        import glob
        import zipfile

        out = os.path.abspath(self.mktemp())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, root]
        built = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(built.returncode, 0, built.stderr[-3000:])
        [wheel] = glob.glob(os.path.join(out, "txpace-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/pace_plugin.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertIn("pace/py.typed", names)
        self.assertIn("pace/worker.py", names)
