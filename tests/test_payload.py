"""
Tests for pace.payload and for malformed payloads in a running worker: each
kind (deep nesting, invalid UTF-8, huge sizes, memory exhaustion included)
raises MalformedJob and nothing else, goes to the error hooks with its raw
text and to the failed list, and the worker goes on with the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.internet import defer
from twisted.trial import unittest

from pace.failures import RECORD_PAYLOAD_PREFIX
from pace.payload import MALFORMED_CLASS, MAX_PAYLOAD_BYTES, MalformedJob, decode, encode
from tests.support import RedisTestCase, payload, until

MALFORMED = {
    "not JSON": (b"{not json", "not JSON"),
    "invalid UTF-8": (b'{"class": "\xff", "args": []}', "UTF-8"),
    "array": (b"[1, 2]", "array"),
    "number": (b"42", "number"),
    "string": (b'"Job"', "string"),
    "null": (b"null", "null"),
    "no class": (b'{"args": []}', 'no "class"'),
    "class not a string": (b'{"class": 3, "args": []}', '"class" is a number'),
    "empty class": (b'{"class": "", "args": []}', '"class"'),
    "no args": (b'{"class": "Job"}', 'no "args"'),
    "args not a list": (b'{"class": "Job", "args": {"a": 1}}', '"args" is a object'),
    "empty string": (b"", "not JSON"),
    "nested 200,000 deep": (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    "nested 100,000 deep": (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, "nested too deeply"),
    "nested inside args": (
        b'{"class": "J", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "nested too deeply",
    ),
    "over the size limit": (b"x" * (MAX_PAYLOAD_BYTES + 1), "over the limit of 4,194,304"),
    "requeued malformed record": (
        json.dumps({"class": MALFORMED_CLASS, "args": ["{not json", {"bytes": 9}]}).encode(),
        "failed again without running",
    ),
}

#: Decodes a payload under an address-space limit that it cannot fit in: the
#: decoder runs out of memory for real.
_OUT_OF_MEMORY = """
import json, resource, sys
from pace.payload import MalformedJob, decode
raw = ("[" + ",".join(['"abcdefgh"'] * 1_000_000) + "]").encode()
raw = b'{"class": "J", "args": ' + raw + b"}"
with open("/proc/self/status") as f:
    size = next(int(l.split()[1]) for l in f if l.startswith("VmSize:")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (size + 16 * 1024 * 1024, resource.RLIM_INFINITY))
try:
    decode(raw, max_bytes=None)
except MalformedJob as e:
    print("MalformedJob:", e)
"""


class DecodeTests(unittest.TestCase):
    def test_round_trip(self):
        raw = encode("SendEmail", ["a@example.com", 3, {"x": None}])
        self.assertEqual(
            json.loads(raw), {"class": "SendEmail", "args": ["a@example.com", 3, {"x": None}]}
        )
        self.assertEqual(decode(raw.encode()), json.loads(raw))

    def test_extra_keys_are_kept(self):
        job = decode(b'{"class": "J", "args": [], "id": "abc"}')
        self.assertEqual(job["id"], "abc")

    def test_malformed(self):
        for name, (raw, message) in MALFORMED.items():
            e = self.assertRaises(MalformedJob, decode, raw)
            self.assertIn(message, str(e), name)

    def test_nothing_but_malformed_job_escapes(self):
        # 800 deep is a job everywhere. How deep the interpreter's decoder
        # goes depends on the Python (3.13 takes 5,000 levels, 3.11 fewer
        # than 1,000); past that, a MalformedJob however deep.
        self.assertEqual(
            decode(b'{"class": "J", "args": ' + b"[" * 800 + b"]" * 800 + b"}")["class"], "J"
        )
        for depth in (100_000, 1_000_000):
            for raw in (b"[" * depth, b"[" * depth + b"]" * depth, b'{"":' * depth):
                self.assertRaises(MalformedJob, decode, raw, max_bytes=None)

    def test_size_limit(self):
        job = encode("Big", ["x" * 1000]).encode()
        self.assertEqual(decode(job, max_bytes=len(job))["class"], "Big")
        e = self.assertRaises(MalformedJob, decode, job, max_bytes=len(job) - 1)
        self.assertIn(f"payload is {len(job):,} bytes, over the limit of {len(job) - 1:,}", str(e))
        big = encode("Big", ["x" * MAX_PAYLOAD_BYTES]).encode()
        self.assertRaises(MalformedJob, decode, big)
        self.assertEqual(decode(big, max_bytes=None)["class"], "Big")
        self.assertEqual(MAX_PAYLOAD_BYTES, 4 * 1024 * 1024)

    def test_huge_invalid_utf8_within_a_raised_limit(self):
        raw = b'{"class": "J", "args": ["' + b"\xff" * (20 * 1024 * 1024) + b'"]}'
        e = self.assertRaises(MalformedJob, decode, raw, max_bytes=None)
        self.assertIn("not valid UTF-8", str(e))
        self.assertLess(len(str(e)), 200)

    def test_out_of_memory_is_malformed(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
        out = subprocess.run(
            [sys.executable, "-c", _OUT_OF_MEMORY],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("MalformedJob: payload of", out.stdout)
        self.assertIn("too large to decode", out.stdout)

    def test_a_requeued_malformed_record_says_what_it_is(self):
        wrapper = {
            "class": MALFORMED_CLASS,
            "args": ["{not json", {"bytes": 9, "truncated": False}],
        }
        e = self.assertRaises(MalformedJob, decode, json.dumps(wrapper).encode())
        self.assertEqual(e.requeued, wrapper)
        # A job of any other class is a job.
        self.assertEqual(decode(b'{"class": "Pace::Other", "args": []}')["class"], "Pace::Other")

    def test_encode_rejects_bad_class(self):
        self.assertRaises(TypeError, encode, "", [])
        self.assertRaises(TypeError, encode, None, [])


class MalformedInWorkerTests(RedisTestCase):
    @defer.inlineCallbacks
    def test_each_malformed_payload_fails_alone(self):
        errors = []
        handled = []
        raws = [raw for raw, _ in MALFORMED.values()] + [b"x" * (10 * 1024 * 1024)]
        for raw in raws:
            self.redis.rpush("resque:queue:q", raw)
            self.redis.rpush("resque:queue:q", payload("Good", len(handled)))
            handled.append(None)
        w = self.worker()
        w.add_hook("error", lambda json, failure: errors.append((json, failure)))
        good = []
        self.started(w, good.append)
        yield until(lambda: len(errors) == len(raws) and len(good) == len(raws))
        yield w.shutdown()
        for (json_text, failure), raw in zip(errors, raws, strict=True):
            self.assertIsInstance(json_text, str)
            # Hooks see what the record keeps: all of it, or for a huge one
            # its first 16 KiB (so that reporting it costs milliseconds).
            shown = raw[:RECORD_PAYLOAD_PREFIX]
            self.assertEqual(json_text, shown.decode("utf-8", "backslashreplace"))
            self.assertTrue(failure.check(MalformedJob))
        self.assertEqual(self.redis.llen("resque:failed"), len(raws))
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)

    @defer.inlineCallbacks
    def test_the_size_limit_is_the_workers(self):
        big = payload("Big", "x" * 300)
        self.redis.rpush("resque:queue:q", payload("Small", 1), big, payload("Small", 2))
        errors, good = [], []
        w = self.worker(max_payload_bytes=200)
        w.add_hook("error", lambda json, failure: errors.append(failure))
        self.started(w, lambda job: good.append(job["args"]))
        yield until(lambda: len(errors) == 1 and len(good) == 2)
        yield w.shutdown()
        self.assertEqual(good, [[1], [2]])
        self.assertTrue(errors[0].check(MalformedJob))
        self.assertIn("200", str(errors[0].value))
        record = json.loads(self.redis.lindex("resque:failed", 0))
        self.assertEqual(record["payload"]["args"][0], big)

    def test_the_size_limit_is_checked(self):
        for bad in (0, -1, 1.5, "10"):
            self.assertRaises(ValueError, self.worker, max_payload_bytes=bad)


class DecoderAgreementTests(unittest.TestCase):
    def test_fast_path_and_json_loads_agree(self):
        from pace import payload as module

        samples = [raw for raw, _ in MALFORMED.values()] + [
            b'{"class": "J", "args": [1, 2.5, "x", null, true, {"a": [1]}]}',
            b'{"class": "J", "args": [123456789012345678901234567890]}',
            b'  {"class": "J", "args": []}  \n',
            b'{"class": "J", "args": []} trailing',
            '{"class": "Caf\u00e9", "args": ["\u00e9"]}'.encode(),
            b'{"class": "J", "args": [], "class": "K"}',
            b'{"class": "J", "args": [NaN]}',
            b'{"class": "J", "args": [' + b"[" * 900 + b"]" * 900 + b"]}",
        ]
        for raw in samples:
            fast = _outcome(lambda r: module.decode(r, max_bytes=None), raw)
            slow = _outcome(module._decode_slowly, raw)
            self.assertEqual(fast, slow, raw)
        self.assertEqual(
            decode(b'{"class": "J", "args": [123456789012345678901234567890]}')["args"],
            [123456789012345678901234567890],
        )


def _outcome(decode, raw):
    try:
        return decode(raw)
    except MalformedJob as e:
        return ("malformed", str(e))
