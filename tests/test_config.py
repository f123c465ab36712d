"""
Tests for pace.config: queue names, namespaces and Redis URL resolution,
with passwords kept out of every string a user may see.
"""

from __future__ import annotations

from twisted.trial import unittest

import pace
from pace.config import (
    InvalidRedisURL,
    known_passwords,
    parse_redis_url,
    redact,
    resque_queue_key,
    scrub,
    short_queue_name,
)
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

    def test_every_url_form_is_redacted_in_text(self):
        for text, shown in (
            ("redis://:hunter2@h", "redis://:***@h"),
            ("redis://user:hunter2@h:6379/0", "redis://user:***@h:6379/0"),
            ("rediss://hunter2@h", "rediss://***@h"),
            ("redis://h:1/0?password=hunter2&db=1", "redis://h:1/0?password=***&db=1"),
            ("redis://h?db=1&PASSWORD=hunter2", "redis://h?db=1&PASSWORD=***"),
            ("redis+sentinel://:hunter2@s1:1,s2:2/m/0", "redis+sentinel://:***@s1:1,s2:2/m/0"),
            ("redis://:hunter2@h:port", "redis://:***@h:port"),
            ("redis://u:hun@ter2@h/0", "redis://u:***@h/0"),
            ("unix://:hunter2@/tmp/s.sock?db=2", "unix://:***@/tmp/s.sock?db=2"),
            (
                "argv ['twistd', '--redis-url', 'redis://:hunter2@h'] and \"redis://:hunter2@g\"",
                "argv ['twistd', '--redis-url', 'redis://:***@h'] and \"redis://:***@g\"",
            ),
            ("no URL, no change: hunter2", "no URL, no change: hunter2"),
        ):
            self.assertEqual(redact(text), shown)

    def test_known_passwords_are_scrubbed_anywhere(self):
        parse_redis_url("redis://:longer-secret@h")
        self.assertIn("longer-secret", known_passwords())
        self.assertEqual(scrub("AUTH longer-secret failed"), "AUTH *** failed")
        self.set_env("REDIS_URL", "redis://:from-the-env@h")
        self.assertEqual(scrub("AUTH from-the-env failed"), "AUTH *** failed")

    def test_query_password_never_in_errors(self):
        for raw in (
            "redis://h/x?password=hunter2",
            "http://h/?password=hunter2",
            "redis://h:port?password=hunter2",
        ):
            e = self.assertRaises(InvalidRedisURL, parse_redis_url, raw)
            self.assertNotIn("hunter2", str(e))
            self.assertIn("password=***", str(e))
