"""
The Lua scripts that make Pace's multi-key steps atomic (batched pops,
moves into processing lists, requeues, acknowledgements), and a small
EVALSHA runner that loads a script once per connection.
"""

from __future__ import annotations

import hashlib
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred


class Script:
    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, conn: Any, keys: list, args: list) -> Deferred:
        """
        Run on ``conn`` (a `pace.connection.RedisConnection`); the script is
        sent in full only when the server does not know it yet.
        """
        d = conn.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        d.addErrback(self._load_and_retry, conn, keys, args)
        return d

    def _load_and_retry(self, failure: Any, conn: Any, keys: list, args: list) -> Deferred:
        failure.trap(txredisapi.ResponseError)
        if "NOSCRIPT" not in str(failure.value):
            return failure
        return conn.execute("EVAL", self.source, len(keys), *keys, *args)


# KEYS: queues in priority order. ARGV: how many jobs at most.
# Returns one list of payloads per queue.
POP = Script("""
local n = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  local got = false
  if n > 0 then got = redis.call('LPOP', key, n) end
  if got then
    out[i] = got
    n = n - #got
  else
    out[i] = {}
  end
end
return out
""")

# KEYS: queues in priority order, then their processing lists in the same
# order. ARGV: how many jobs at most. Like POP, and each job is pushed onto
# its queue's processing list in the same step.
POP_RELIABLE = Script("""
local n = tonumber(ARGV[1])
local q = #KEYS / 2
local out = {}
for i = 1, q do
  local got = false
  if n > 0 then got = redis.call('LPOP', KEYS[i], n) end
  if got then
    redis.call('RPUSH', KEYS[q + i], unpack(got))
    out[i] = got
    n = n - #got
  else
    out[i] = {}
  end
end
return out
""")

# KEYS: a queue and its processing list (or only the queue). ARGV: payloads,
# last first. Puts them back at the head of the queue in their original
# order, taking them out of the processing list in the same step.
REQUEUE = Script("""
if #KEYS > 1 then
  for i = 1, #ARGV do redis.call('LREM', KEYS[2], -1, ARGV[i]) end
end
return redis.call('LPUSH', KEYS[1], unpack(ARGV))
""")
