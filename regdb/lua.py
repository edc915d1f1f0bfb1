"""Every Lua script regdb runs, one per operation, each with its KEYS/ARGV contract.

Writes: Python computes the new entry and the index sets to add and remove from a revision it
read; the script applies them only if that revision is still current (compare-and-set), so two
writers can never leave an index pointing at the wrong entry. Index sets hold document numbers
(``_n`` in the entry hash, ``docids`` maps them back to ids), small integers that Redis stores
as intsets. Document numbers grow with creation time (CREATE_ENTRY refuses a stamp that is not
later than the newest entry's), so ordering a set of them is ordering by creation.

An entry's public JSON lives in the `docs` hash under its document number (codec.py): a query
page needs no script at all, it is one HMGET of `docs` (regdb/query/execute.py).
No script has a failing step after its first write: Redis would not roll back what it wrote.
Every write script appends its audit records (regdb/audit.py) in the same call.
"""

from __future__ import annotations

# Shared by the write scripts: append audit records (regdb/audit.py) to the audit stream,
# trimmed to about `keep` records. `records` is a JSON list of flat field/value lists (`[]`:
# none). Each script calls it after its checks and before its other writes, so a write is
# recorded exactly when it is applied.
_AUDIT = """
local function audit(stream, keep, records)
  for _, fields in ipairs(cjson.decode(records)) do
    redis.call('XADD', stream, 'MAXLEN', '~', keep, '*', unpack(fields))
  end
end
"""

# KEYS: entry, ids, docseq, docids, docs, due, audit, then every index set the entry belongs in.
# ARGV: id, creation score (µs since the epoch), public JSON, audit keep, audit records, then
# the entry hash's field/value pairs.
# Returns {1, document number} created; {0} when the id exists; {-1, newest creation score}
# when the score is not later than the newest entry's (stamp a later time and call again).
CREATE_ENTRY = (
    _AUDIT
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local newest = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2]
if newest and tonumber(newest) >= tonumber(ARGV[2]) then return {-1, newest} end
audit(KEYS[7], ARGV[4], ARGV[5])
local n = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], '_n', n, unpack(ARGV, 6))
redis.call('HSET', KEYS[4], n, ARGV[1])
redis.call('HSET', KEYS[5], n, ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[6], 0, ARGV[1])
for i = 8, #KEYS do redis.call('SADD', KEYS[i], n) end
return {1, n}
"""
)

# KEYS: entry, docs, audit, then the index sets to add it to (ARGV[2] of them), then those to
# remove it from.
# ARGV: expected revision, number of sets to add to, new public JSON, audit keep, audit records,
# then the entry hash's new field/value pairs.
# Returns 1 updated, 0 conflict (the revision changed), -1 not found.
UPDATE_ENTRY = (
    _AUDIT
    + """
local cur = redis.call('HGET', KEYS[1], '_rev')
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
audit(KEYS[3], ARGV[4], ARGV[5])
local n = redis.call('HGET', KEYS[1], '_n')
local nadd = tonumber(ARGV[2])
for i = 4, 3 + nadd do redis.call('SADD', KEYS[i], n) end
for i = 4 + nadd, #KEYS do redis.call('SREM', KEYS[i], n) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_n', n, unpack(ARGV, 6))
redis.call('HSET', KEYS[2], n, ARGV[3])
return 1
"""
)

# KEYS: entry, ids, docids, docs, due, queued, health, recent results, hourly rollups, daily
# rollups, audit, then the index sets to remove it from.
# ARGV: expected revision, id, audit keep, audit records.
# Returns 1 deleted, 0 conflict (the revision changed), -1 not found.
DELETE_ENTRY = (
    _AUDIT
    + """
local cur = redis.call('HGET', KEYS[1], '_rev')
if not cur then return -1 end
if cur ~= ARGV[1] then return 0 end
audit(KEYS[11], ARGV[3], ARGV[4])
local n = redis.call('HGET', KEYS[1], '_n')
for i = 12, #KEYS do redis.call('SREM', KEYS[i], n) end
redis.call('DEL', KEYS[1], KEYS[7], KEYS[8], KEYS[9], KEYS[10])
redis.call('HDEL', KEYS[3], n)
redis.call('HDEL', KEYS[4], n)
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
redis.call('ZREM', KEYS[6], ARGV[2])
return 1
"""
)

# Store an alert hook (regdb/alerts/store.py) and list its id.
# KEYS: hook, hooks, audit. ARGV: hook JSON, id, mode (`new`: only if absent, `existing`: only
# if present, `any`), audit keep, audit records.
# Returns 1 stored, 0 refused by the mode.
SAVE_HOOK = (
    _AUDIT
    + """
local exists = redis.call('EXISTS', KEYS[1]) == 1
if (ARGV[3] == 'new' and exists) or (ARGV[3] == 'existing' and not exists) then return 0 end
audit(KEYS[3], ARGV[4], ARGV[5])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
return 1
"""
)

# Remove an alert hook, its id from the set and its delivery log.
# KEYS: hook, hooks, deliveries, audit. ARGV: id, audit keep, audit records.
# Returns 1 deleted, 0 not found.
DELETE_HOOK = (
    _AUDIT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
audit(KEYS[4], ARGV[2], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[3])
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""
)

# Record the probe outcomes of many registries in one call; a registry deleted meanwhile is
# cleaned up after instead. The call runs alone in Redis, so no reader sees a registry half
# recorded.
# KEYS: due, queued, the index set of each health status (ARGV[1] of them, any number), then
#       per registry: entry, health, recent results, hourly rollups, daily rollups.
# ARGV: number of status sets, recent results to keep, hourly buckets to keep, daily buckets to
#       keep, then per registry: id, state JSON, recent result (compact text), next due time,
#       position (1-based) of its new status among the sets, SHA-1 of the health record the
#       probe started from ('' for none), probe time (epoch s), verdict (1 worked, 0 failed,
#       -1 tells nothing), latency bin of a working probe (-1 none).
# A record is written only over the one it was computed from: when another probe of the same
# registry recorded first (two schedulers leading for a moment, a stuck job enqueued again),
# this outcome is superseded and dropped, so a status transition is applied, and alerted,
# once. The due time is left alone when it is 0: the entry changed during the probe and must
# be probed again at once. Returns per registry 1 recorded, 0 deleted meanwhile (cleaned up),
# -1 superseded.
# Rollups (regdb/monitor/rollups.py): the probe is added to the newest hourly and daily bucket
# when its hour (day) is that bucket's or earlier (a worker's clock a little behind another's:
# counted in the newest bucket), else a new bucket is pushed and the list trimmed. A malformed
# newest bucket is left behind (it ages out), never an error: no step fails after a write.
RECORD_HEALTH = """
local function bump(key, size, t, verdict, bin, keep)
  local slot = math.floor(t / size)
  local head = redis.call('LINDEX', key, 0)
  local b
  if head then
    local ok, v = pcall(cmsgpack.unpack, head)
    if ok and type(v) == 'table' and #v >= 4 and #v ~= 5 and type(v[1]) == 'number'
        and v[1] >= slot then
      b = v
    end
  end
  local fresh = not b
  if fresh then b = {slot, 0, 0, 0} end
  b[2] = b[2] + 1
  if verdict >= 0 then
    b[3] = b[3] + 1
    if verdict == 0 then b[4] = b[4] + 1 end
  end
  if bin >= 0 then
    local lo = b[5]
    if not lo then
      b[5] = bin
      b[6] = 1
    elseif bin < lo then
      local shift = lo - bin
      for i = #b, 6, -1 do b[i + shift] = b[i] end
      for i = 7, 5 + shift do b[i] = 0 end
      b[5] = bin
      b[6] = 1
    elseif bin > lo + #b - 6 then
      for i = #b + 1, 5 + bin - lo do b[i] = 0 end
      b[6 + bin - lo] = 1
    else
      b[6 + bin - lo] = b[6 + bin - lo] + 1
    end
  end
  if fresh then
    redis.call('LPUSH', key, cmsgpack.pack(b))
    redis.call('LTRIM', key, 0, keep - 1)
  else
    redis.call('LSET', key, 0, cmsgpack.pack(b))
  end
end

local nstatus = tonumber(ARGV[1])
local keep = tonumber(ARGV[2]) - 1
local hours, days = tonumber(ARGV[3]), tonumber(ARGV[4])
local first = 3 + nstatus
local out = {}
for r = 0, (#KEYS - first + 1) / 5 - 1 do
  local k = first + 5 * r
  local a = 5 + 9 * r
  local id = ARGV[a]
  local n = redis.call('HGET', KEYS[k], '_n')
  local cur = redis.call('GET', KEYS[k + 1])
  if not n then
    redis.call('DEL', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    out[r + 1] = 0
  elseif (cur and redis.sha1hex(cur) or '') ~= ARGV[a + 5] then
    out[r + 1] = -1
  else
    redis.call('SET', KEYS[k + 1], ARGV[a + 1])
    redis.call('LPUSH', KEYS[k + 2], ARGV[a + 2])
    redis.call('LTRIM', KEYS[k + 2], 0, keep)
    local t, verdict, bin = tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7]), tonumber(ARGV[a + 8])
    bump(KEYS[k + 3], 3600, t, verdict, bin, hours)
    bump(KEYS[k + 4], 86400, t, verdict, bin, days)
    local due = redis.call('ZSCORE', KEYS[1], id)
    if (not due) or tonumber(due) ~= 0 then redis.call('ZADD', KEYS[1], ARGV[a + 3], id) end
    redis.call('ZREM', KEYS[2], id)
    local new = 2 + tonumber(ARGV[a + 4])
    for i = 3, first - 1 do
      if i ~= new then redis.call('SREM', KEYS[i], n) end
    end
    redis.call('SADD', KEYS[new], n)
    out[r + 1] = 1
  end
end
return out
"""

# Clear the alerts a record kept pending once their deliveries are queued, if the record is
# still the one written with them. KEYS: health. ARGV: SHA-1 of that record, the record
# without them. Returns 1 cleared, 0 the record changed since (its writer sends them).
CLEAR_ALERTS_PENDING = """
local cur = redis.call('GET', KEYS[1])
if cur and redis.sha1hex(cur) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Claim due registries for probing: those not queued, or queued before the stuck limit, are
# marked queued (and due now) in one step, so two schedulers that both believe they lead (the
# lock is best effort across a failover) never enqueue the same registry twice.
# KEYS: queued, due. ARGV: now, stuck limit (a queued mark older than this is lost), then ids.
# Returns the ids claimed, in order.
CLAIM_DUE = """
local claimed = {}
for i = 3, #ARGV do
  local q = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if (not q) or tonumber(q) < tonumber(ARGV[2]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    redis.call('ZADD', KEYS[2], 'XX', ARGV[1], ARGV[i])
    claimed[#claimed + 1] = ARGV[i]
  end
end
return claimed
"""

# Scheduler leadership: take the lock if free, or extend it if it is ours.
# KEYS: lock. ARGV: token, ttl ms. Returns 1 leader, 0 someone else leads.
LEAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Give the lock up if it is still ours. KEYS: lock. ARGV: token. Returns 1 released, 0 not ours.
RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# An entry as clients see it. KEYS: entry, docs.
# Returns {public JSON, revision}, both nil when there is no such entry.
READ_ENTRY = """
local v = redis.call('HMGET', KEYS[1], '_n', '_rev')
if not v[1] then return {false, false} end
return {redis.call('HGET', KEYS[2], v[1]), v[2]}
"""

# An entry with its secrets, for the prober and the update path. KEYS: entry, docs.
# Returns {public JSON, full config JSON (nil when it has no secrets), revision}, all nil when
# there is no such entry.
READ_ENTRY_PRIVATE = """
local v = redis.call('HMGET', KEYS[1], '_n', '_secret_config', '_rev')
if not v[1] then return {false, false, false} end
return {redis.call('HGET', KEYS[2], v[1]), v[2], v[3]}
"""

# The public JSON of entries by key. KEYS: docs, then entry keys.
# Returns one JSON array of the entries in KEYS order, null for a missing one.
READ_PUBLIC = """
local out = {}
for i = 2, #KEYS do
  local n = redis.call('HGET', KEYS[i], '_n')
  out[i - 1] = n and redis.call('HGET', KEYS[1], n) or 'null'
end
return '[' .. table.concat(out, ',') .. ']'
"""

# What GET /check_container_health needs, in one round trip.
# KEYS: entry, its cached health, docs. Returns {public entry JSON, health JSON}, each nil when
# absent (the public JSON carries the redacted config: no secret is read).
READ_HEALTH_BASICS = """
local n = redis.call('HGET', KEYS[1], '_n')
return {n and redis.call('HGET', KEYS[3], n), redis.call('GET', KEYS[2])}
"""


# The /metrics scrape's read of one batch of registries, in one round trip.
# KEYS: the uptime hash, docs. ARGV: the entry key prefix, the health key prefix (both from
# regdb/keys.py: `Keys.entry("")`, `Keys.health("")`), then the registry ids. The keys are
# built here from the prefixes rather than sent: fewer arguments to pack per scrape.
# Returns per registry {public JSON, health JSON, uptime text}, each nil when absent (a
# registry deleted meanwhile has no public JSON).
READ_METRICS_BATCH = """
local out = {}
local k = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local n = redis.call('HGET', ARGV[1] .. id, '_n')
  out[k + 1] = n and redis.call('HGET', KEYS[2], n)
  out[k + 2] = redis.call('GET', ARGV[2] .. id)
  out[k + 3] = redis.call('HGET', KEYS[1], id)
  k = k + 3
end
return out
"""


# One request against a token bucket (regdb/ratelimit.py `take` is the same math in Python).
# KEYS: the bucket (hash: tokens, at). ARGV: capacity, refill per ms, cost, now in ms ('' for
# Redis's own clock, shared by every API process).
# Returns {1 allowed | 0 refused, whole tokens left, ms until the cost fits (0 when allowed)}.
# The bucket expires once it would be full again: an idle caller costs no memory.
TAKE_TOKEN = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or cap
local at = tonumber(b[2]) or now
if now > at then
  tokens = math.min(cap, tokens + (now - at) * rate)
  at = now
end
local allowed, wait = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = math.ceil((cost - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', at)
redis.call('PEXPIRE', KEYS[1], math.ceil((cap - tokens) / rate) + 1000)
return {allowed, math.floor(tokens), wait}
"""


# The record of the token with a digest, in one call (the lookup of every authenticated
# request). KEYS: the digest's key. ARGV: the prefix of token record keys (Keys.token(''),
# so the names stay in regdb/keys.py). Returns the record's fields and values (HGETALL), empty
# when no token has that digest or its record is gone.
FIND_TOKEN = """
local id = redis.call('GET', KEYS[1])
if not id then return {} end
return redis.call('HGETALL', ARGV[1] .. id)
"""


# The next numbers of a page of one index set, in page order, when Redis keeps the set as an
# intset: only those numbers leave Redis, not the thousands a set can hold. KEYS: the set, the
# document-number counter (docseq: the highest number handed out). ARGV: direction (1
# ascending, -1 descending), the number to start after (0: from the first), how many.
# Returns {1, numbers...} for an intset; {0} otherwise (the caller reads every member).
#
# Two ways to the same answer, whichever reads less. A small set is read whole (its members
# come out of an intset in ascending order) and cut by binary search: Lua pays for every
# member, ~0.2 us each, 15 ms a page for a tag on 72,000 of 100,000 entries. A large set is
# probed instead: the numbers after the cursor, a chunk at a time, asked with SMISMEMBER (a
# binary search each inside Redis), about want * top / card numbers for a page. Probing stops
# once it has looked at as many numbers as the set holds (members bunched far from the cursor)
# and the whole read takes over from there. No counter (0): read whole. Probed numbers come back
# as integers, read ones as Redis keeps them: the caller hands either back to HMGET.
INDEX_WINDOW = """
if redis.call('OBJECT', 'ENCODING', KEYS[1]) ~= 'intset' then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {1} end
  return {0}
end
local dir, after, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {1}
local card = redis.call('SCARD', KEYS[1])
local top = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if top > 0 and card * card > 4 * want * top then
  local budget = card
  local n
  if dir > 0 then n = after + 1 elseif after > 0 then n = after - 1 else n = top end
  local chunk = math.min(4000, math.max(128, math.ceil(1.5 * want * top / card)))
  while #out <= want do
    if (dir > 0 and n > top) or (dir < 0 and n < 1) then return out end
    if budget <= 0 then break end
    local last
    if dir > 0 then last = math.min(top, n + chunk - 1) else last = math.max(1, n - chunk + 1) end
    local cand = {}
    for i = n, last, dir do cand[#cand + 1] = i end
    local hit = redis.call('SMISMEMBER', KEYS[1], unpack(cand))
    for i = 1, #cand do
      if hit[i] == 1 then
        out[#out + 1] = cand[i]
        if #out > want then return out end
      end
    end
    budget = budget - #cand
    n = last + dir
  end
  -- read whole from here: after the last number probed
  want = want - (#out - 1)
  after = n - dir
end
local m = redis.call('SMEMBERS', KEYS[1])
local lo, hi = 1, #m
if dir > 0 then
  -- the first position whose number is above `after`
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(m[mid]) > after then hi = mid - 1 else lo = mid + 1 end
  end
  for i = lo, math.min(#m, lo + want - 1) do out[#out + 1] = m[i] end
else
  -- the last position whose number is below `after` (0: the last of all)
  local last = #m
  if after > 0 then
    while lo <= hi do
      local mid = math.floor((lo + hi) / 2)
      if tonumber(m[mid]) < after then lo = mid + 1 else hi = mid - 1 end
    end
    last = hi
  end
  for i = last, math.max(1, last - want + 1), -1 do out[#out + 1] = m[i] end
end
return out
"""
