"""
Tests for pace.payload and for malformed payloads in a running worker: each
kind goes to the error hooks with its raw text and to the failed list, and
the worker goes on.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.trial import unittest

from pace.payload import MalformedJob, decode, encode
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
}


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
            self.assertEqual(json_text, raw.decode("utf-8", "backslashreplace"))
            self.assertTrue(failure.check(MalformedJob))
        self.assertEqual(self.redis.llen("resque:failed"), len(raws))
        self.assertEqual(self.redis.llen("resque:queue:q"), 0)


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
        ]
        for raw in samples:
            fast = _outcome(module.decode, raw)
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
