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

# KEYS: a shared limit's schedule key. ARGV: microseconds between slots, how
# many slots, milliseconds the key outlives its last slot. GCRA on the
# server's clock: the key holds the next free slot time; the caller gets its
# slots from there on, one interval apart, and waits for them locally. The server clock is
# the only one, so every process shares one schedule, start-up included.
# Returns the server's time and the first slot's, in microseconds.
RESERVE = Script("""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt < now then nxt = now end
local last = nxt + interval * tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', last),
           'PX', math.floor((last - now) / 1000) + tonumber(ARGV[3]))
return {now, nxt}
""")

# -- Time: resque-scheduler's delayed jobs (pace.schedule, pace.mover) -------

# KEYS: the schedule, the timestamp's list, the payload's timestamps set, then
# optionally a processing list and the processed counters (global, worker).
# ARGV: timestamp, payload, and the acknowledged payload when KEYS has a
# processing list. Pushes a delayed job as resque-scheduler's delayed_push
# does; for a retry, acknowledges the failed attempt in the same step, so a
# crash can neither lose the retry nor run the attempt twice.
DELAYED_PUSH = Script("""
if #KEYS > 3 then
  if redis.call('LREM', KEYS[4], -1, ARGV[3]) == 0 then return 0 end
  redis.call('INCR', KEYS[5])
  redis.call('INCR', KEYS[6])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], 'delayed:' .. ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
return 1
""")

# KEYS: the schedule, the malformed list, Resque's queues set.
# ARGV: now (UNIX seconds), how many entries at most, the "resque:" prefix.
# Moves what is due onto its queues, as resque-scheduler's
# enqueue_delayed_items_for_timestamp does, but in one atomic step so any
# number of workers can run it. A payload leaves the schedule without its
# "queue" key (Resque's own payload); entries that are not jobs go to the
# malformed list. Returns {jobs moved, entries looked at, malformed list head}.
MOVE_DUE = Script("""
local now, budget, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local function body_of(raw)
  local ok, job = pcall(cjson.decode, raw)
  if not ok or type(job) ~= 'table' then return nil end
  local q, c, a = job['queue'], job['class'], job['args']
  if type(q) ~= 'string' or q == '' or type(c) ~= 'string' or c == '' then return nil end
  if a ~= nil and type(a) ~= 'table' then return nil end
  -- "queue" is the last key as Ruby and Pace write it: cut it out as text,
  -- so the rest keeps its bytes (cjson would rewrite numbers and escapes).
  local at, from = nil, 1
  while true do
    local s = string.find(raw, ',"queue":', from, true)
    if not s then break end
    at, from = s, s + 1
  end
  if at then
    local body = string.sub(raw, 1, at - 1) .. '}'
    local ok1, rest = pcall(cjson.decode, '{' .. string.sub(raw, at + 1))
    local ok2, left = pcall(cjson.decode, body)
    if ok1 and ok2 and type(rest) == 'table' and type(left) == 'table'
        and next(rest) == 'queue' and next(rest, 'queue') == nil
        and rest['queue'] == q and left['queue'] == nil then
      return q, body
    end
  end
  -- Another key order: the payload goes as it is; Resque ignores "queue".
  return q, raw
end
local moved, seen = 0, 0
while seen < budget do
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)[1]
  if not due then break end
  local member = 'delayed:' .. due
  local list = prefix .. member
  local jobs = redis.call('LRANGE', list, 0, budget - seen - 1)
  for _, raw in ipairs(jobs) do
    redis.call('SREM', prefix .. 'timestamps:' .. raw, member)
    local q, body = body_of(raw)
    if q then
      redis.call('RPUSH', prefix .. 'queue:' .. q, body)
      redis.call('SADD', KEYS[3], q)
      moved = moved + 1
    else
      redis.call('RPUSH', KEYS[2], raw)
    end
  end
  seen = seen + math.max(#jobs, 1)
  if #jobs > 0 then redis.call('LTRIM', list, #jobs, -1) end
  if redis.call('EXISTS', list) == 0 then redis.call('ZREM', KEYS[1], due) end
end
return {moved, seen, redis.call('LRANGE', KEYS[2], 0, 99)}
""")

# KEYS: the malformed list, Resque's failed list, the failed counter.
# ARGV: pairs of (malformed entry, its failure record). Each record is
# written once, however many movers saw the entry.
RECORD_MALFORMED = Script("""
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    n = n + 1
  end
end
if n > 0 then redis.call('INCRBY', KEYS[3], n) end
return n
""")

# KEYS: the schedule, the timestamp's list, the payload's timestamps set, and
# for run-now the queue and Resque's queues set. ARGV: timestamp, payload,
# and for run-now the queue payload and the queue's short name. Takes one
# delayed job out of the schedule (and pushes it onto its queue); 0 when the
# job was no longer there (moved or removed meanwhile).
UNSCHEDULE = Script("""
if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return 0 end
if redis.call('LPOS', KEYS[2], ARGV[2]) == false then
  redis.call('SREM', KEYS[3], 'delayed:' .. ARGV[1])
end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
if #KEYS > 3 then
  redis.call('RPUSH', KEYS[4], ARGV[3])
  redis.call('SADD', KEYS[5], ARGV[4])
end
return 1
""")
