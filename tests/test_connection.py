"""
Tests for pace.connection: Pace's faster command builder writes exactly
the bytes txredisapi's would, and connections say who they are without the
password.
"""

from __future__ import annotations

import txredisapi
from twisted.trial import unittest

from pace.config import parse_redis_url
from pace.connection import RedisConnection
from pace.txredis import Protocol as _Protocol


class CommandBuilderTests(unittest.TestCase):
    def test_same_bytes_as_txredisapi(self):
        for charset in ("utf-8", None):
            ours = _Protocol(charset, convertNumbers=False)
            theirs = txredisapi.BaseRedisProtocol(charset, convertNumbers=False)
            for args in (
                ("PING",),
                ("EVALSHA", "abc", 3, "k1", "k2", "k3", 10, 0, -7),
                ("RPUSH", "q", b'{"class":"J","args":[]}', "caf\u00e9", "", b""),
                ("SET", "k", 1.5, True, bytearray(b"x"), 2**70),
            ):
                self.assertEqual(ours._build_command(*args), theirs._build_command(*args), args)


class RedisConnectionTests(unittest.TestCase):
    def test_repr_hides_the_password(self):
        conn = RedisConnection(parse_redis_url("redis://u:hunter2@127.0.0.1:1/0"))
        self.addCleanup(conn.disconnect)
        self.assertNotIn("hunter2", repr(conn))
        self.assertIn("***", repr(conn))
