"""Lua scripts that make a write of an entry and its index changes one atomic step.

Python computes the new entry and the index sets to add and remove from a revision it read;
the script applies them only if that revision is still current (compare-and-set), so two
writers can never leave an index pointing at the wrong entry.
"""

from __future__ import annotations

# KEYS: entry, ids, then nadd index keys to add the id to, then nrem to remove it from,
#       then extra keys: on delete, keys to drop with the entry; on create, the sorted set of
#       due probes (a new entry is due at once).
# ARGV: mode ('create'|'update'|'delete'), expected rev, id, score, nadd, nrem,
#       then field/value pairs for the hash (create/update).
# Returns 1 done, 0 conflict (exists on create, revision changed otherwise), -1 not found.
WRITE_ENTRY = """
local mode = ARGV[1]
if mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
else
  local cur = redis.call('HGET', KEYS[1], '_rev')
  if not cur then return -1 end
  if cur ~= ARGV[2] then return 0 end
end
local nadd = tonumber(ARGV[5])
local nrem = tonumber(ARGV[6])
for i = 1, nadd do redis.call('SADD', KEYS[2 + i], ARGV[3]) end
for i = 1, nrem do redis.call('SREM', KEYS[2 + nadd + i], ARGV[3]) end
if mode == 'delete' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  for i = 3 + nadd + nrem, #KEYS do redis.call('DEL', KEYS[i]) end
  return 1
end
if mode == 'update' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], unpack(ARGV, 7))
if mode == 'create' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
  for i = 3 + nadd, #KEYS do redis.call('ZADD', KEYS[i], 0, ARGV[3]) end
end
return 1
"""

# Record the probe outcomes of many registries in one call; a registry deleted meanwhile is
# cleaned up after instead. The call runs alone in Redis, so no reader sees a registry half
# recorded (the script has no failing step: it would not roll back what it already wrote).
# KEYS: due, queued, the index set of each health status (ARGV[1] of them), then per
#       registry: entry, health, history.
# ARGV: number of status sets, history length to keep, then per registry: id, state JSON,
#       history item JSON, next due time, position of its new status among the status sets.
# The due time is left alone when it is 0: the entry changed during the probe and must be
# probed again at once. Returns how many registries were recorded.
RECORD_HEALTH = """
local nstatus = tonumber(ARGV[1])
local keep = tonumber(ARGV[2]) - 1
local first = 3 + nstatus
local recorded = 0
for r = 0, (#KEYS - first + 1) / 3 - 1 do
  local k = first + 3 * r
  local a = 3 + 5 * r
  local id = ARGV[a]
  if redis.call('EXISTS', KEYS[k]) == 0 then
    redis.call('DEL', KEYS[k + 1], KEYS[k + 2])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    for i = 3, first - 1 do redis.call('SREM', KEYS[i], id) end
  else
    redis.call('SET', KEYS[k + 1], ARGV[a + 1])
    redis.call('LPUSH', KEYS[k + 2], ARGV[a + 2])
    redis.call('LTRIM', KEYS[k + 2], 0, keep)
    local cur = redis.call('ZSCORE', KEYS[1], id)
    if (not cur) or tonumber(cur) ~= 0 then redis.call('ZADD', KEYS[1], ARGV[a + 3], id) end
    redis.call('ZREM', KEYS[2], id)
    local new = 2 + tonumber(ARGV[a + 4])
    for i = 3, first - 1 do
      if i ~= new then redis.call('SREM', KEYS[i], id) end
    end
    redis.call('SADD', KEYS[new], id)
    recorded = recorded + 1
  end
end
return recorded
"""

# Scheduler leadership: take the lock if free, or extend it if it is ours. Returns 1 if leader.
# KEYS: lock. ARGV: token, ttl ms.
LEAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Give the lock up if it is still ours. KEYS: lock. ARGV: token.
RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The public JSON of entries, assembled in Redis from their JSON-encoded fields: fields whose
# name starts with '_' stay inside (secrets), except the revision. Field names are regdb's own
# identifiers, safe inside JSON quotes. KEYS: entry keys. Returns one JSON array, null for a
# missing entry.
READ_PUBLIC = """
local out = {}
for i = 1, #KEYS do
  local kv = redis.call('HGETALL', KEYS[i])
  if #kv == 0 then
    out[i] = 'null'
  else
    local parts = {}
    local rev = ''
    for j = 1, #kv, 2 do
      local f = kv[j]
      if f == '_rev' then
        rev = kv[j + 1]
      elseif string.sub(f, 1, 1) ~= '_' then
        parts[#parts + 1] = '"' .. f .. '":' .. kv[j + 1]
      end
    end
    parts[#parts + 1] = '"_rev":"' .. rev .. '"'
    out[i] = '{' .. table.concat(parts, ',') .. '}'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


# KEYS: entry, its cached health. Returns {public URL JSON, config JSON, health JSON}, each
# nil when absent: what GET /check_container_health needs, in one round trip. The config is
# the stored (redacted) one; the raw config with secrets is not read.
READ_HEALTH_BASICS = """
local v = redis.call('HMGET', KEYS[1], 'container_registry_public_url', 'container_registry_config')
return {v[1], v[2], redis.call('GET', KEYS[2])}
"""


# The /metrics scrape's read of one batch of registries, in one round trip.
# KEYS: the uptime hash. ARGV: the entry key prefix, the health key prefix (both from
# regdb/keys.py: `Keys.entry("")`, `Keys.health("")`), then the registry ids. The keys are
# built here from the prefixes rather than sent: 3x fewer arguments to pack per scrape.
# Returns per registry {name JSON, owner JSON, health JSON, uptime text}, each nil when absent
# (a registry deleted meanwhile has no name).
READ_METRICS_BATCH = """
local out = {}
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local v = redis.call(
    'HMGET', ARGV[1] .. id, 'container_registry_name', 'container_registry_owner')
  out[n + 1] = v[1]
  out[n + 2] = v[2]
  out[n + 3] = redis.call('GET', ARGV[2] .. id)
  out[n + 4] = redis.call('HGET', KEYS[1], id)
  n = n + 4
end
return out
"""
