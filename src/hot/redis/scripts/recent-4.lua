--[[ recent: the last N held turns of a session, and a touch of its last access.
KEYS[1] session meta hash   KEYS[2] session turns hash   KEYS[3] shard lru zset
KEYS[4] shard epoch hash
ARGV[1] session member   ARGV[2] count (0..10000)   ARGV[3] now (ms)
ARGV[4] 'ids' when the caller reads the turns itself if they are dense, or ''
Returns a flat array {id, encoded, id, encoded, ...} in DESCENDING id order (the caller
reverses it), empty when the session is unknown (an unknown session is not touched) or its shard is
broken (its state may have lost writes: nothing is read from it until it is wiped and re-seeded).
With ARGV[4] = 'ids' and a session without holes, it returns {'ids', lo, hi} instead: turns lo..hi
are the answer, and the caller reads them with a plain HMGET. Every turn value that passes through
Lua costs the server a copy into a Lua string and one back (~1.7 us per 1.5 KB turn, ten times
the HMGET itself), so the bulk of a read stays out of the script.
Cost: one HMGET of exactly `count` ids when the session has no holes; holes left by
deleteTurns are skipped by fetching further down, never by reading the whole hash.
]]
if shardState(KEYS[4]) == 'broken' then return {} end
local m = redis.call('HMGET', KEYS[1], 'nextTurnId', 'firstTurnId', 'turnCount', 'lastAccess')
if not m[1] then return {} end
local want = tonumber(ARGV[2])
local held = tonumber(m[3])
if want > held then want = held end
local first = tonumber(m[2])
local hi = tonumber(m[1]) - 1
if tonumber(ARGV[3]) > tonumber(m[4]) then
  redis.call('HSET', KEYS[1], 'lastAccess', ARGV[3])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
if ARGV[4] == 'ids' and held == hi - first + 1 then
  return {'ids', hi - want + 1, hi}
end
local out = {}
local found = 0
while found < want and hi >= first do
  local batch = want - found
  if batch > 1000 then batch = 1000 end
  local lo = hi - batch + 1
  if lo < first then lo = first end
  local ids = {}
  for id = hi, lo, -1 do ids[#ids + 1] = string.format('%d', id) end
  local values = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do
    if values[j] then
      out[#out + 1] = ids[j]
      out[#out + 1] = values[j]
      found = found + 1
    end
  end
  hi = lo - 1
end
return out
