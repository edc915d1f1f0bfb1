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

# Record one probe outcome, unless the entry was deleted meanwhile (then clean up after it).
# KEYS: entry, health, history, due, queued, then one index key per health status (the last
#       one is the new status's).
# ARGV: id, state JSON, history item JSON, history length to keep, next due time.
# The due time is left alone when it is 0: the entry changed during the probe and must be
# probed again at once.
RECORD_HEALTH = """
local id = ARGV[1]
local nstatus = #KEYS - 5
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZREM', KEYS[5], id)
  for i = 6, #KEYS do redis.call('SREM', KEYS[i], id) end
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[4]) - 1)
local cur = redis.call('ZSCORE', KEYS[4], id)
if (not cur) or tonumber(cur) ~= 0 then redis.call('ZADD', KEYS[4], ARGV[5], id) end
redis.call('ZREM', KEYS[5], id)
for i = 6, #KEYS - 1 do redis.call('SREM', KEYS[i], id) end
redis.call('SADD', KEYS[#KEYS], id)
return 1
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
