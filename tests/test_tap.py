"""
Tests for the twistd plugin and pace.tap: options, their errors and the
environment fallbacks, the service they make, and that twistd finds `pace`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from twisted.application.service import IService, IServiceMaker
from twisted.internet import defer
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial import unittest

import pace
from pace import tap
from pace.service import PaceService
from tests.support import ROOT, RedisTestCase, payload, until

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
            "--max-payload-bytes",
            "1000",
        )
        top = tap.makeService(o)
        self.assertTrue(IService.providedBy(top))
        [service] = list(top)
        self.assertIsInstance(service, PaceService)
        w = service.worker
        self.assertEqual(w.queues, ["ns:resque:queue:q1", "ns:resque:queue:q2"])
        self.assertEqual((w.concurrency, w.grace, w.reliable), (5, 2.0, False))
        self.assertEqual((w.heartbeat_ttl, w.log_interval, w.record_failures), (12.0, None, False))
        self.assertEqual(w.max_payload_bytes, 1000)
        self.assertIs(service.handler, handler)
        self.assertEqual(pace.namespace, "ns")
        self.assertEqual(pace.redis_url, self.url)

    def test_fleet_options(self):
        h = ("--queue", "q", "--handler", "tests.test_tap.handler", "--redis-url", self.url)
        o = parse(
            *h,
            "--shared-limit",
            "mail-api=200",
            "--circuit-failures",
            "4",
            "--circuit-window",
            "2.5",
            "--circuit-cool-off",
            "60",
            "--burst",
        )
        [service] = list(tap.makeService(o))
        w = service.worker
        self.assertTrue(w.burst)
        limit, circuit = w._fleet.limit, w._fleet.circuit
        self.assertEqual((limit.name, limit.per_second), ("mail-api", 200.0))
        self.assertEqual((circuit.failures, circuit.window, circuit.cool_off), (4, 2.5, 60.0))
        self.assertFalse(circuit.shared)
        # One circuit option is enough; the others keep their defaults.
        [service] = list(tap.makeService(parse(*h, "--circuit-failures", "3")))
        circuit = service.worker._fleet.circuit
        self.assertEqual((circuit.failures, circuit.window, circuit.cool_off), (3, 5.0, 30.0))
        [service] = list(tap.makeService(parse(*h)))
        self.assertIsNone(service.worker._fleet.limit)
        self.assertIsNone(service.worker._fleet.circuit)
        self.assertFalse(service.worker.burst)

    def test_fleet_option_errors(self):
        h = ("--queue", "q", "--handler", "tests.test_tap.handler")
        self.assert_usage_error(["--shared-limit", "NAME=RATE"], *h, "--shared-limit", "200")
        self.assert_usage_error(["--shared-limit", "NAME=RATE"], *h, "--shared-limit", "=5")
        self.assert_usage_error(["--shared-limit", "> 0"], *h, "--shared-limit", "api=0")
        self.assert_usage_error(["--shared-limit", "number"], *h, "--shared-limit", "api=x")
        self.assert_usage_error(["--circuit-failures", ">= 1"], *h, "--circuit-failures", "0")
        self.assert_usage_error(["--circuit-window", "> 0"], *h, "--circuit-window", "0")
        self.assert_usage_error(["--circuit-cool-off", "number"], *h, "--circuit-cool-off", "x")


class PackagingTests(unittest.TestCase):
    def test_wheel_ships_the_plugin_without_claiming_twisted(self):
        # A plain `pip install txpace` must put the plugin where Twisted
        # looks, and never an __init__.py that would shadow Twisted's own.
        import glob
        import shutil
        import zipfile

        out = os.path.abspath(self.mktemp())
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        # Built from a clean copy: a build/ left in the checkout would
        # supply modules that setup.cfg forgets to list.
        clean = os.path.abspath(self.mktemp())
        shutil.copytree(
            root,
            clean,
            ignore=shutil.ignore_patterns(
                ".git", ".venv*", "build", "dist", "_trial_temp*", "*.egg-info", "_build", ".*"
            ),
        )
        cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, clean]
        built = subprocess.run(cmd, capture_output=True, text=True)
        self.assertEqual(built.returncode, 0, built.stderr[-3000:])
        [wheel] = glob.glob(os.path.join(out, "txpace-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/pace_plugin.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertIn("pace/py.typed", names)
        # Every module of the package, sub-packages (pace/cli/) included.
        for here, _, files in os.walk(os.path.join(root, "pace")):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.relpath(os.path.join(here, name), root)
                    self.assertIn(path.replace(os.sep, "/"), names)


def twistd(*argv: str, cwd: str | None = None, hide: str | None = None, **kw):
    """
    Run a real ``twistd -n pace ARGV`` to its end; with C{hide}, as where
    that module is not installed.
    """
    code = "import sys\n"
    if hide:
        code += f"sys.modules[{hide!r}] = None\n"
    code += "from twisted.scripts.twistd import run\nsys.argv[0] = 'twistd'\nrun()\n"
    return subprocess.run(
        [sys.executable, "-c", code, "-n", "--pidfile=", "pace", *argv],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        timeout=60,
        **kw,
    )


class StartupMistakeTests(RedisTestCase):
    """
    Each start-up mistake ends a real twistd at once with a short message,
    a non-zero status and no traceback.
    """

    def assert_refused(self, out, *words, status=None):
        text = out.stdout + out.stderr
        self.assertNotEqual(out.returncode, 0, text)
        if status is not None:
            self.assertEqual(out.returncode, status, text)
        self.assertNotIn("Traceback", text)
        self.assertLessEqual(len(text.strip().splitlines()), 2, text)
        for word in words:
            self.assertIn(word, text)

    def base(self) -> list[str]:
        return ["--queue", "q", "--handler", "tests.test_tap.handler", "--redis-url", self.url]

    def test_metrics_port_out_of_range(self):
        self.assert_refused(twistd(*self.base(), "--metrics-port", "99999"), "0 and 65535")

    def test_metrics_port_in_use(self):
        import socket

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        self.assert_refused(twistd(*self.base(), "--metrics-port", port), port, "another port")

    def test_prometheus_client_missing(self):
        out = twistd(*self.base(), "--metrics-port", "0", hide="prometheus_client")
        self.assert_refused(out, "pip install 'txpace[metrics]'")

    def test_sentry_sdk_missing(self):
        out = twistd(*self.base(), "--sentry-dsn", "https://k@127.0.0.1/1", hide="sentry_sdk")
        self.assert_refused(out, "pip install 'txpace[sentry]'")

    def test_bad_dsn(self):
        out = twistd(*self.base(), "--sentry-dsn", "notadsn")
        self.assert_refused(out, "not a Sentry DSN")
        self.assertNotIn("notadsn", out.stderr)

    def test_handler_not_found_without_the_option_help(self):
        out = twistd("--queue", "q", "--handler", "nope.handle")
        self.assert_refused(out, "cannot import module 'nope'", status=2)

    def test_bad_log_level_and_numbers(self):
        self.assert_refused(twistd(*self.base(), "--log-level", "loud"), "--log-level")
        self.assert_refused(twistd(*self.base(), "--concurrency", "x"), "--concurrency")
        self.assert_refused(twistd(*self.base(), "--redis-url", "http://h"), "scheme")

    def test_version_is_paces(self):
        out = twistd("--version")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(f"Pace {pace.__version__}", out.stdout)


class StartupTests(RedisTestCase):
    @defer.inlineCallbacks
    def run_until_done(self, *argv: str, cwd: str | None = None) -> Any:
        """
        Start twistd, wait for one job on "done", stop it; fires with its log.
        """
        log = os.path.abspath(self.mktemp())
        cmd = [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "-l", log, "pace", *argv]
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        yield until(
            lambda: self.redis.llen("resque:queue:done") or proc.poll() is not None, timeout=30
        )
        self.assertIsNone(proc.poll(), "twistd exited before doing the job")
        proc.send_signal(signal.SIGTERM)
        yield until(lambda: proc.poll() is not None, timeout=30)
        # twistd ends by re-raising the signal that stopped it.
        self.assertIn(proc.returncode, (0, -signal.SIGTERM))
        with open(log) as f:
            return f.read()

    @defer.inlineCallbacks
    def test_handler_found_in_the_current_directory(self):
        project = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(project, "mypkg"))
        with open(os.path.join(project, "mypkg", "__init__.py"), "w"):
            pass
        with open(os.path.join(project, "mypkg", "jobs.py"), "w") as f:
            f.write("import pace\n\ndef handle(job):\n    return pace.enqueue('done', 'Done')\n")
        self.push("q", payload("J"))
        yield self.run_until_done(
            "--queue", "q", "--handler", "mypkg.jobs.handle", "--redis-url", self.url, cwd=project
        )

    @defer.inlineCallbacks
    def test_log_level(self):
        self.push("q", payload("J"))
        args = ["--queue", "q", "--handler", "tests.daemon_handlers.slow", "--redis-url", self.url]
        log = yield self.run_until_done(*args, cwd=ROOT)
        self.assertIn("starting up", log)
        self.redis.delete("resque:queue:done")
        self.push("q", payload("J"))
        log = yield self.run_until_done(*args, "--log-level", "warn", cwd=ROOT)
        self.assertNotIn("starting up", log)
        self.assertNotIn("Server Shut Down", log)
