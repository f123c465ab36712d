"""
Every Lua script Pace runs, in one place: the steps that must be atomic on
the server (batched pops and moves into processing lists, requeues,
acknowledgements with counters and failure records, pruning dead workers),
and a small EVALSHA runner that sends a script in full only once.
"""

from __future__ import annotations

import hashlib
from typing import Any

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
        from pace.connection import error_code

        if error_code(failure) != "NOSCRIPT":
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

# KEYS: processed counter, failed counter, failed list, this worker's
# processed and failed counters, processing lists...
# ARGV: processed, failed, number of records, records..., then for each
# processing list with jobs to acknowledge: its number, how many, payloads.
SETTLE = Script("""
local processed = tonumber(ARGV[1])
local failed = tonumber(ARGV[2])
local nrec = tonumber(ARGV[3])
if processed > 0 then
  redis.call('INCRBY', KEYS[1], processed)
  redis.call('INCRBY', KEYS[4], processed)
end
if failed > 0 then
  redis.call('INCRBY', KEYS[2], failed)
  redis.call('INCRBY', KEYS[5], failed)
end
if nrec > 0 then redis.call('RPUSH', KEYS[3], unpack(ARGV, 4, 3 + nrec)) end
local i = 4 + nrec
while i <= #ARGV do
  local list = KEYS[5 + tonumber(ARGV[i])]
  local last = i + 1 + tonumber(ARGV[i + 1])
  for j = i + 2, last do redis.call('LREM', list, 1, ARGV[j]) end
  i = last + 1
end
return 1
""")

# KEYS: Pace's registry hash, the worker's heartbeat key, Resque's workers
# set, Resque's heartbeat hash, the worker's :started key, its busy key, its
# processed and failed stats, then pairs of (queue, processing list).
# ARGV: the worker's token, its Resque id, and whether to check that it is
# dead (1) or to deregister it on a clean stop (0).
UNREGISTER = Script("""
local dead = ARGV[3] == '1'
if dead and redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if dead and redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return -1 end
local moved = 0
for i = 9, #KEYS, 2 do
  if not dead and redis.call('LLEN', KEYS[i + 1]) > 0 then return -1 end
  while dead do
    local job = redis.call('RPOP', KEYS[i + 1])
    if not job then break end
    redis.call('LPUSH', KEYS[i], job)
    moved = moved + 1
  end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[5], KEYS[6], KEYS[7], KEYS[8])
redis.call('SREM', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[2])
return moved
""")
