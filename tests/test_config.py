"""
Tests for pace.config: queue names, namespaces and Redis URL resolution,
with passwords kept out of every string a user may see.
"""

from __future__ import annotations

from twisted.trial import unittest

import pace
from pace.config import InvalidRedisURL, parse_redis_url, resque_queue_key, short_queue_name
from tests.support import RedisTestCase


class QueueNameTests(unittest.TestCase):
    def setUp(self):
        self.addCleanup(setattr, pace, "namespace", pace.namespace)

    def test_expand(self):
        pace.namespace = None
        self.assertEqual(pace.expand_queue_name("normal"), "resque:queue:normal")
        self.assertEqual(pace.expand_queue_name("my:special:queue"), "my:special:queue")

    def test_namespace(self):
        pace.namespace = "test"
        self.assertEqual(pace.expand_queue_name("normal"), "test:resque:queue:normal")
        self.assertEqual(pace.expand_queue_name("special:queue"), "test:special:queue")

    def test_bad_names(self):
        for name in ("", None, 3):
            self.assertRaises(ValueError, pace.expand_queue_name, name)
            self.assertRaises(ValueError, resque_queue_key, name)

    def test_resque_queue_names_with_colons(self):
        # A Resque queue "foo:bar": its key, read from Resque's data, and the
        # whole-key spelling a worker names it by; back to "foo:bar".
        for ns, prefix in ((None, ""), ("test", "test:")):
            pace.namespace = ns
            key = resque_queue_key("foo:bar")
            self.assertEqual(key, prefix + "resque:queue:foo:bar")
            self.assertEqual(pace.expand_queue_name("resque:queue:foo:bar"), key)
            self.assertEqual(short_queue_name(key), "foo:bar")


class RedisURLTests(RedisTestCase):
    def test_precedence(self):
        self.set_env("REDIS_URL", "redis://env-host:1/1")
        pace.redis_url = None
        self.assertEqual(pace.resolve_redis_url().host, "env-host")
        pace.redis_url = "redis://module-host:2/2"
        self.assertEqual(pace.resolve_redis_url().host, "module-host")
        self.assertEqual(pace.resolve_redis_url("redis://explicit:3/3").host, "explicit")

    def test_default(self):
        self.set_env("REDIS_URL", None)
        pace.redis_url = None
        url = pace.resolve_redis_url()
        self.assertEqual((url.scheme, url.host, url.port, url.db), ("redis", "127.0.0.1", 6379, 0))

    def test_full_tcp_url(self):
        url = parse_redis_url("redis://user:p%40ss@example.com:6380/3")
        self.assertEqual(
            (url.host, url.port, url.db, url.username, url.password),
            ("example.com", 6380, 3, "user", "p@ss"),
        )
        self.assertFalse(url.tls)

    def test_password_only(self):
        url = parse_redis_url("redis://:secret@h")
        self.assertEqual((url.username, url.password, url.port, url.db), (None, "secret", 6379, 0))

    def test_tls_verifies_unless_told_not_to(self):
        self.assertTrue(parse_redis_url("rediss://h:6380").verify)
        self.assertTrue(parse_redis_url("rediss://h:6380").tls)
        self.assertFalse(parse_redis_url("rediss://h:6380/0?ssl_cert_reqs=none").verify)

    def test_unix(self):
        url = parse_redis_url("unix:///var/run/redis.sock?db=2")
        self.assertEqual((url.scheme, url.path, url.db), ("unix", "/var/run/redis.sock", 2))

    def test_sentinel(self):
        url = parse_redis_url("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/4")
        self.assertEqual(url.sentinels, (("s1", 26379), ("s2", 26380)))
        self.assertEqual((url.master, url.db, url.password), ("mymaster", 4, "pw"))

    def test_passwords_never_shown(self):
        for raw in (
            "redis://user:hunter2@h:1/0",
            "rediss://:hunter2@h",
            "unix://:hunter2@/tmp/s.sock",
            "redis+sentinel://:hunter2@s1:1/m",
        ):
            url = parse_redis_url(raw)
            for shown in (str(url), repr(url), url.redacted()):
                self.assertNotIn("hunter2", shown)
                self.assertIn("***", shown)

    def test_errors_name_the_problem_without_the_password(self):
        for raw, words in (
            ("http://u:hunter2@h", "scheme"),
            ("redis://u:hunter2@h:port", "Redis URL"),
            ("redis://u:hunter2@h/x", "database"),
            ("redis+sentinel://u:hunter2@s1:1", "master"),
            ("unix://", "socket path"),
        ):
            e = self.assertRaises(InvalidRedisURL, parse_redis_url, raw)
            self.assertIn(words, str(e))
            self.assertNotIn("hunter2", str(e))
