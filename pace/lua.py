"""
Every Lua script Pace runs, in one place: the steps that must be atomic on
the server (batched pops and moves into processing lists, requeues,
acknowledgements with counters and failure records, the registry:
heartbeats, sweeps of dead workers, deregistration),
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

# The registry. Time is the server's (TIME), never a worker's: a worker's
# clock may step, and Resque judges its heartbeats by the server's clock too.
# Deadlines live in one sorted set scored by server milliseconds, so a sweep
# looks only at the entries that are due, whatever the size of the fleet.

# Ruby's Time#iso8601 in UTC, from server milliseconds (Lua in Redis has no
# os.date). Days to civil date: Howard Hinnant's algorithm.
_ISO8601 = """
local function iso8601(ms)
  local s = math.floor(ms / 1000)
  local z = math.floor(s / 86400) + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  local r = s % 86400
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d+00:00', y, m, d,
    math.floor(r / 3600), math.floor(r % 3600 / 60), r % 60)
end
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: Pace's registry hash, the deadlines sorted set, the fleet hash, the
# worker's heartbeat key, Resque's workers set, Resque's heartbeat hash, the
# worker's :started key. ARGV: token, registration record (JSON), Resque id,
# TTL (ms), grace after an outage (ms), :started text.
# Registers the worker (again, if it had been taken for dead) with a
# deadline of now + TTL. When no worker of the fleet could beat for a whole
# TTL (Redis unreachable, or its clock jumped ahead), nobody is judged dead
# until the grace has passed: the others may not have reconnected yet.
# Returns {server ms, 0 new / 1 registered / 2 had been pruned, outage 0/1}.
BEAT = Script(
    _ISO8601
    + """
local now = server_ms()
local ttl = tonumber(ARGV[4])
local last = tonumber(redis.call('HGET', KEYS[3], 'last') or '0')
local outage = 0
if last > 0 and now - last > ttl then
  redis.call('HSET', KEYS[3], 'quiet_until', now + tonumber(ARGV[5]))
  outage = 1
end
if now > last then redis.call('HSET', KEYS[3], 'last', now) end
local old = redis.call('HGET', KEYS[1], ARGV[1])
local state = 0
if old then state = string.find(old, '"pruned"', 1, true) and 2 or 1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
redis.call('SET', KEYS[4], '1', 'PX', ttl)
redis.call('SADD', KEYS[5], ARGV[3])
redis.call('HSET', KEYS[6], ARGV[3], iso8601(now))
redis.call('SET', KEYS[7], ARGV[6], 'NX')
return {now, state, outage}
"""
)

# KEYS: the deadlines sorted set, Pace's registry hash, the fleet hash,
# Resque's workers set, Resque's heartbeat hash. ARGV: the namespaced
# "resque:" prefix, how many due entries at most, when to look again at a
# pruned worker's lists (ms), how long to keep watching them (ms).
# For every worker past its deadline: its processing lists go back to the
# head of their queues, in order; it leaves Resque's registry; its record
# stays, marked pruned, and is looked at again, so that jobs a worker that
# was only slow pushes after this still go back. Forgotten once its lists
# stayed empty for the whole watch. Returns {jobs moved, entries looked at,
# ms of quiet left (0 if none), then token, Resque id, jobs for each worker
# newly pruned or with jobs put back}.
SWEEP = Script(
    _ISO8601
    + """
local now = server_ms()
local quiet = tonumber(redis.call('HGET', KEYS[3], 'quiet_until') or '0')
if now < quiet then return {0, 0, quiet - now} end
local p = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {0, #due, 0}
for _, token in ipairs(due) do
  local raw = redis.call('HGET', KEYS[2], token)
  local ok, rec = false, nil
  if raw then ok, rec = pcall(cjson.decode, raw) end
  local beat = redis.call('PTTL', p .. 'pace:heartbeat:' .. token)
  if not ok or type(rec) ~= 'table' then
    redis.call('ZREM', KEYS[1], token)
  elseif beat > 0 and not rec.pruned then
    -- Beating by the older rule (a heartbeat key with a TTL): alive.
    redis.call('ZADD', KEYS[1], now + beat, token)
  else
    local n = 0
    if type(rec.lists) == 'table' then
      for _, pair in ipairs(rec.lists) do
        while redis.call('RPOPLPUSH', pair[2], pair[1]) do n = n + 1 end
      end
    end
    local fresh = not rec.pruned
    if fresh then
      rec.pruned = now
      redis.call('HSET', KEYS[2], token, cjson.encode(rec))
      local id = tostring(rec.resque_id)
      redis.call('SREM', KEYS[4], id)
      redis.call('HDEL', KEYS[5], id)
      redis.call('DEL', p .. 'worker:' .. id, p .. 'worker:' .. id .. ':started',
        p .. 'stat:processed:' .. id, p .. 'stat:failed:' .. id,
        p .. 'pace:heartbeat:' .. token)
    end
    if not fresh and n == 0 and now - tonumber(rec.pruned) > tonumber(ARGV[4]) then
      redis.call('HDEL', KEYS[2], token)
      redis.call('ZREM', KEYS[1], token)
    else
      redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), token)
    end
    if fresh or n > 0 then
      out[1] = out[1] + n
      table.insert(out, token)
      table.insert(out, tostring(rec.resque_id))
      table.insert(out, n)
    end
  end
end
return out
"""
)

# KEYS: Pace's registry hash, the deadlines sorted set, the fleet hash.
# Once per Redis: workers registered before deadlines existed get one that
# is due now (SWEEP still spares those whose heartbeat key lives).
ADOPT_LEGACY = Script("""
if redis.call('HSETNX', KEYS[3], 'adopted', '1') == 1 then
  for _, token in ipairs(redis.call('HKEYS', KEYS[1])) do
    redis.call('ZADD', KEYS[2], 'NX', 0, token)
  end
end
return 1
""")

# KEYS: Pace's registry hash, the deadlines sorted set, the worker's
# heartbeat key, Resque's workers set, Resque's heartbeat hash, its :started
# key, its working key, its processed and failed stats, then its processing
# lists. ARGV: token, Resque id.
# A clean stop: the process leaves Resque's registry in any case; Pace's
# record goes only if its processing lists are empty, else it stays with its
# deadline so that a sweeper puts the jobs back. Returns the jobs left.
DEREGISTER = Script("""
redis.call('DEL', KEYS[3], KEYS[6], KEYS[7], KEYS[8], KEYS[9])
redis.call('SREM', KEYS[4], ARGV[2])
redis.call('HDEL', KEYS[5], ARGV[2])
local left = 0
for i = 10, #KEYS do left = left + redis.call('LLEN', KEYS[i]) end
if left == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return left
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
