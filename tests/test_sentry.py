"""
Tests for pace.sentry: what sentry-sdk really sends, over HTTP, to a local
Sentry endpoint (a twisted.web Site in the test) when jobs fail: the
exception, the job's class and queue as tags and context, arguments only
with send_default_pii, one event per job with nothing leaking between jobs,
unhandled errors tagged as such, and a flush that waits for delivery.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from typing import Any

import redis
import sentry_sdk
from twisted.internet import defer, reactor, task
from twisted.internet.threads import deferToThread
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

import pace.sentry
from pace.config import parse_redis_url
from pace.redisserver import RedisServer
from tests.support import RedisTestCase, payload, twistd_pace, until

try:
    import brotli
except ImportError:  # sentry-sdk then compresses with gzip
    brotli = None

FILTERED = "[Filtered: set send_default_pii=True to send job arguments]"
SECRET = "4111-1111-1111-1111"


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br" and brotli is not None:
        return brotli.decompress(body)
    raise ValueError(f"cannot decode a body in {encoding!r}")


def envelope_items(body: bytes) -> list[tuple[dict, bytes]]:
    """
    The items of a Sentry envelope: a header line, then for each item a
    header line and its payload (C{length} bytes when given, else one line).
    """
    _, _, rest = body.partition(b"\n")
    items = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        header = json.loads(line)
        length = header.get("length")
        if length is None:
            data, _, rest = rest.partition(b"\n")
        else:
            data, rest = rest[:length], rest[length:]
            if rest.startswith(b"\n"):
                rest = rest[1:]
        items.append((header, data))
    return items


class SentryEndpoint(Resource):
    """
    Records what reaches it: each request's path, auth header and decoded
    body, and the events inside. With C{hold}, it answers only on
    L{release}.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, str, bytes]] = []
        self.events: list[dict] = []
        self.hold = False
        self._held: list[Any] = []

    def render_POST(self, request: Any) -> Any:
        body = decompress(request.content.read(), request.getHeader("content-encoding") or "")
        self.requests.append((request.path, request.getHeader("x-sentry-auth") or "", body))
        for header, data in envelope_items(body):
            if header.get("type") == "event":
                self.events.append(json.loads(data))
        request.setHeader(b"content-type", b"application/json")
        if self.hold:
            self._held.append(request)
            return NOT_DONE_YET
        return b"{}"

    def release(self) -> None:
        self.hold = False
        held, self._held = self._held, []
        for request in held:
            if not request.finished and not request._disconnected:
                request.write(b"{}")
                request.finish()

    def job_events(self) -> list[dict]:
        return [e for e in self.events if "exception" in e]


def exception_of(event: dict) -> tuple[str, str]:
    last = event["exception"]["values"][-1]
    return last["type"], last["value"]


class SentryTestCase(RedisTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.endpoint = SentryEndpoint()
        factory = WrappingFactory(Site(self.endpoint))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self._stop_server, port, factory)
        self.dsn = f"http://publickey@127.0.0.1:{port.getHost().port}/42"
        # Cleanups run last-added first: Sentry is shut down before the
        # server, so its last deliveries still get an answer.
        self.addCleanup(self._stop_sentry, sentry_sdk.get_global_scope().client)

    def hook(self, **options: Any) -> pace.sentry.SentryHook:
        # default_integrations=False: the default integrations patch the
        # threading and logging modules and http.client for the whole process,
        # for good; the hook calls capture_exception itself and needs none of
        # them. http_proxy="": a proxy in the environment must not get the
        # requests meant for the local endpoint.
        options.setdefault("default_integrations", False)
        options.setdefault("http_proxy", "")
        return pace.sentry.hook(self.dsn, **options)

    @defer.inlineCallbacks
    def _stop_sentry(self, previous: Any) -> Any:
        self.endpoint.release()
        client = sentry_sdk.get_global_scope().client
        if client is not previous:
            transport = client.transport
            # close() flushes, and what it flushes is answered by the reactor:
            # it must not block the reactor thread.
            yield deferToThread(client.close, 2.0)
            pool = getattr(transport, "_pool", None)
            if pool is not None:
                pool.clear()
        # Back to the client from before (no-op when the SDK was never set
        # up); sentry_sdk.init() would set up the default integrations.
        sentry_sdk.get_global_scope().set_client(previous)

    @defer.inlineCallbacks
    def _stop_server(self, port: Any, factory: WrappingFactory) -> Any:
        yield port.stopListening()
        for protocol in list(factory.protocols):
            protocol.transport.abortConnection()
        yield until(lambda: not factory.protocols)

    @defer.inlineCallbacks
    def run_failing_jobs(self, queue: str, payloads: list[str], handler: Any, **options: Any):
        """
        Run C{payloads} through a worker on C{queue} with the Sentry hook
        until each has an event; return the events.
        """
        hook = self.hook(**options)
        w = self.worker(queue, concurrency=1)
        w.add_hook("error", hook)
        self.push(queue, *payloads)
        self.started(w, handler)
        yield until(lambda: len(self.endpoint.job_events()) >= len(payloads))
        yield hook.flush()
        yield w.shutdown()
        return self.endpoint.job_events()


def fail_with(exc: Exception) -> Any:
    def handler(job: dict) -> None:
        raise exc

    return handler


class ReportTests(SentryTestCase):
    @defer.inlineCallbacks
    def test_job_error_arrives_with_class_and_queue(self):
        events = yield self.run_failing_jobs(
            "mail", [payload("SendMail", "a@example.com")], fail_with(ValueError("smtp said no"))
        )
        self.assertEqual(len(events), 1)
        (event,) = events
        self.assertEqual(exception_of(event), ("ValueError", "smtp said no"))
        frames = event["exception"]["values"][-1]["stacktrace"]["frames"]
        self.assertEqual(frames[-1]["function"], "handler")
        self.assertEqual(event["tags"]["job.class"], "SendMail")
        self.assertEqual(event["tags"]["job.queue"], "mail")
        self.assertEqual(event["tags"]["pace.source"], "job")
        self.assertEqual(
            event["contexts"]["job"], {"class": "SendMail", "queue": "mail", "args": FILTERED}
        )
        path, auth, _ = self.endpoint.requests[0]
        self.assertEqual(path, b"/api/42/envelope/")
        self.assertIn("sentry_key=publickey", auth)

    @defer.inlineCallbacks
    def test_args_are_filtered_without_pii(self):
        events = yield self.run_failing_jobs(
            "q", [payload("Charge", SECRET, 7)], fail_with(RuntimeError("declined"))
        )
        self.assertEqual(events[0]["contexts"]["job"]["args"], FILTERED)
        # Nowhere in what was sent: not in the context, nor anywhere else.
        for _, _, body in self.endpoint.requests:
            self.assertNotIn(SECRET.encode(), body)

    @defer.inlineCallbacks
    def test_args_are_sent_with_pii(self):
        events = yield self.run_failing_jobs(
            "q",
            [payload("Charge", SECRET, 7)],
            fail_with(RuntimeError("declined")),
            send_default_pii=True,
        )
        self.assertEqual(events[0]["contexts"]["job"]["args"], [SECRET, 7])
        self.assertEqual(events[0]["tags"]["job.class"], "Charge")

    @defer.inlineCallbacks
    def test_one_event_per_job_and_no_context_leaks(self):
        def handler(job: dict) -> Any:
            if job["class"] == "Resize":
                raise KeyError("width")
            # The other one fails later, from a Deferred.
            return task.deferLater(reactor, 0, fail_with(OSError("disk full")), job)

        events = yield self.run_failing_jobs(
            "q",
            [payload("Resize", 1), "{not json", payload("Upload", 2)],
            handler,
            send_default_pii=True,
        )
        self.assertEqual(len(events), 3)
        by_source = {}
        for event in events:
            by_source[event["tags"].get("job.class")] = event
        self.assertEqual(set(by_source), {"Resize", "Upload", None})
        self.assertEqual(exception_of(by_source["Resize"]), ("KeyError", "'width'"))
        self.assertEqual(
            by_source["Resize"]["contexts"]["job"], {"class": "Resize", "queue": "q", "args": [1]}
        )
        self.assertEqual(exception_of(by_source["Upload"]), ("OSError", "disk full"))
        self.assertEqual(
            by_source["Upload"]["contexts"]["job"], {"class": "Upload", "queue": "q", "args": [2]}
        )
        # The malformed one ran between the two, and carries neither's class.
        malformed = by_source[None]
        self.assertEqual(exception_of(malformed)[0], "MalformedJob")
        self.assertEqual(malformed["tags"]["job.queue"], "q")
        self.assertEqual(malformed["contexts"]["job"], {"payload": "{not json", "queue": "q"})

        # Nor do they stay on the scope for what is reported afterwards.
        sentry_sdk.capture_message("after the jobs")
        yield until(lambda: len(self.endpoint.events) == 4)
        after = self.endpoint.events[-1]
        self.assertEqual(after["message"], "after the jobs")
        self.assertFalse({"job.class", "job.queue", "pace.source"} & set(after.get("tags", {})))
        self.assertNotIn("job", after.get("contexts", {}))
        self.assertEqual(len(self.endpoint.job_events()), 3)

    @defer.inlineCallbacks
    def test_unhandled_error_is_reported_as_unhandled(self):
        hook = self.hook()
        w = self.worker()
        w.add_hook("error", hook)
        self.started(w, lambda job: None)
        yield until(lambda: w.fetching)
        reactor.callLater(0, lambda: 1 / 0)
        yield until(lambda: self.endpoint.events)
        yield hook.flush()
        yield w.shutdown()
        self.assertEqual(len(self.endpoint.events), 1)
        (event,) = self.endpoint.events
        self.assertEqual(exception_of(event), ("ZeroDivisionError", "division by zero"))
        self.assertEqual(event["tags"]["pace.source"], "unhandled")
        self.assertNotIn("job.class", event["tags"])
        self.assertNotIn("job", event.get("contexts", {}))
        self.flushLoggedErrors(ZeroDivisionError)


class RetryTests(SentryTestCase):
    @defer.inlineCallbacks
    def test_only_the_last_attempt_is_reported_by_default(self):
        from twisted.internet import task

        clock = task.Clock()
        clock.advance(reactor.seconds())
        runs = []

        def flaky(job: dict) -> None:
            runs.append(job)
            raise ConnectionError(f"attempt {len(runs)}")

        hook = self.hook()
        every = self.hook()
        every.every_attempt = True
        w = self.worker(
            concurrency=1, clock=clock, retry=pace.Retry(attempts=3, base=1, jitter=False)
        )
        w.add_hook("error", hook)
        self.push("q", payload("Flaky"))
        self.started(w, flaky)

        def advanced() -> bool:
            clock.advance(0.6)
            return self.redis.llen("resque:failed") == 1

        yield until(advanced)
        yield until(lambda: len(self.endpoint.job_events()) >= 1)
        yield hook.flush()
        yield w.shutdown()
        self.assertEqual(len(runs), 3)
        self.assertEqual(
            [exception_of(e) for e in self.endpoint.job_events()],
            [("ConnectionError", "attempt 3")],
        )
        # every_attempt=True reports each one.
        failure = Failure(ConnectionError("x"))
        failure.pace_last_attempt = False
        every(payload("Flaky"), failure)
        yield until(lambda: len(self.endpoint.job_events()) == 2)


class FlushTests(SentryTestCase):
    @defer.inlineCallbacks
    def test_flush_fires_once_the_events_are_delivered(self):
        hook = self.hook()
        self.endpoint.hold = True
        try:
            raise LookupError("no such thing")
        except LookupError:
            hook(payload("Find", 1), Failure())
        released = []
        d = hook.flush()
        self.assertIsInstance(d, defer.Deferred)
        fired = []
        d.addCallback(lambda _: fired.append(bool(released)))
        yield until(lambda: self.endpoint.requests)
        released.append(True)
        self.endpoint.release()
        yield d
        self.assertEqual(fired, [True])
        self.assertEqual(exception_of(self.endpoint.events[0]), ("LookupError", "no such thing"))


PASSWORD = "S3CRETpassw0rd"


class NoSecretTests(SentryTestCase):
    """
    A real `twistd -n pace` whose command line carries the Redis password,
    with sentry-sdk's default integrations (sys.argv among them), failing
    jobs whose errors quote the password in every form: nothing it sends
    holds the password, in any request.
    """

    @defer.inlineCallbacks
    def test_no_password_anywhere_in_what_a_daemon_sends(self):
        own = RedisServer(None, None, "--requirepass", PASSWORD)
        own.start()
        self.addCleanup(own.cleanup)
        client = redis.Redis(port=own.port, password=PASSWORD, decode_responses=True)
        self.addCleanup(client.close)
        url = f"redis://:{PASSWORD}@127.0.0.1:{own.port}/0"
        client.rpush("resque:queue:work", *[payload("Leak", i) for i in range(8)], "{not json")
        log = os.path.abspath(self.mktemp())
        proc = self.spawn(
            twistd_pace(
                log,
                "--queue",
                "work",
                "--handler",
                "tests.daemon_handlers.leaky",
                "--redis-url",
                url,
                "--sentry-dsn",
                self.dsn,
            )
        )
        # 8 job errors, 1 malformed payload, 1 unhandled error.
        yield until(lambda: len(self.endpoint.job_events()) >= 10, timeout=30)
        proc.terminate()
        yield until(lambda: proc.poll() is not None, timeout=30)
        self.assertEqual(client.llen("resque:failed"), 9)
        bodies = b"".join(body for _, _, body in self.endpoint.requests)
        self.assertNotIn(PASSWORD.encode(), bodies)
        messages = [exception_of(e)[1] for e in self.endpoint.job_events()]
        # The messages still say what happened, with the password masked.
        self.assertIn(f"could not reach redis://:***@127.0.0.1:{own.port}/0", messages)
        self.assertIn("could not reach redis://127.0.0.1:1/0?db=0&password=***", messages)
        self.assertIn("AUTH *** was refused", messages)
        self.assertIn("sentinels redis+sentinel://:***@s1:26379,s2:26380/mymaster", messages)
        self.assertIn(f"unhandled, for redis://:***@127.0.0.1:{own.port}/0", messages)
        for event in self.endpoint.events:
            self.assertNotIn("sys.argv", event.get("extra", {}))
        # Pace's own log lines neither (Twisted's report of the unhandled
        # error, before Pace hears of it, is Twisted's).
        with open(log) as f:
            ours = [line for line in f if "[pace." in line]
        self.assertTrue(any("failed: RuntimeError: AUTH *** was refused" in x for x in ours))
        self.assertFalse([line for line in ours if PASSWORD in line])


class ScrubTests(SentryTestCase):
    @defer.inlineCallbacks
    def test_scrubbed_after_the_users_own_before_send(self):
        seen = []

        def before_send(event, hint):
            # A user's own processor adding what it should not.
            seen.append(True)
            event.setdefault("extra", {})["dsn"] = f"redis://u:{PASSWORD}@h/0"
            return event

        hook = self.hook(before_send=before_send, send_default_pii=True)
        try:
            raise ValueError(f"redis://h/0?password={PASSWORD} and rediss://{PASSWORD}@h")
        except ValueError:
            hook(payload("J", PASSWORD), Failure())
        yield hook.flush()
        yield until(lambda: self.endpoint.events)
        self.assertEqual(seen, [True])
        (event,) = self.endpoint.events
        self.assertEqual(event["extra"]["dsn"], "redis://u:***@h/0")
        self.assertEqual(exception_of(event)[1], "redis://h/0?password=*** and rediss://***@h")
        # Arguments are sent (send_default_pii), but a known Redis password is
        # not, not even outside a URL, once Pace has parsed a URL holding it.
        parse_redis_url(f"redis://:{PASSWORD}@h")
        hook(payload("J", PASSWORD), Failure(ValueError("again")))
        yield hook.flush()
        yield until(lambda: len(self.endpoint.events) == 2)
        self.assertEqual(self.endpoint.events[1]["contexts"]["job"]["args"], ["***"])
