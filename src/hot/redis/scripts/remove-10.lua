--[[ remove: drops a session's hot state, atomically.
KEYS[1] session meta hash      KEYS[2] session turns hash   KEYS[3] shard lru zset
KEYS[4] shard backlog zset     KEYS[5] shard age zset       KEYS[6] shard bytes counter
KEYS[7] session deletion floor KEYS[8] session idempotency hash  KEYS[9] session idempotency zset
KEYS[10] shard epoch hash
ARGV[1] session member
ARGV[2] 'ifArchived' (dropIfArchived: refuse while any turn is unarchived) or 'always' (deleteSession)
ARGV[3] the epoch the caller recovered in, or '' (no check)
ARGV[4] (always) the lowest floor the caller needs: ids it knows from journals and the archive
Returns {removed (1|0), number of turns that were held, the deletion floor now in force},
or {-1, 0, 0} and no change when the epoch is not the caller's: a deleter must know every
journaled turn of the session (recover first) to raise the floor above all of them.
'always' also raises the deletion floor to that last id: ids at or below the floor are never
handed out again, and a seed never brings them back. Idempotency keys stay: a late retry of a
deleted message answers its old id and stores nothing (it must not bring the message back).
]]
local state, epoch = shardState(KEYS[10])
if ARGV[3] ~= '' and epoch ~= ARGV[3] then return {-1, 0, 0} end
-- A broken shard's state may have lost writes: nothing is dropped from it by 'ifArchived'.
if state == 'broken' and ARGV[2] == 'ifArchived' then return {0, 0, 0} end
local m = redis.call('HMGET', KEYS[1], 'unarchivedCount', 'bytes', 'nextTurnId')
local floor = tonumber(redis.call('GET', KEYS[7]) or '0')
if not m[1] then
  -- No metadata: clear any leftover turns (partial eviction) but report nothing held.
  redis.call('DEL', KEYS[2])
  if ARGV[2] == 'always' then
    local wanted = tonumber(ARGV[4] or '0') or 0
    if wanted > floor then
      floor = wanted
      redis.call('SET', KEYS[7], floor)
    end
  end
  return {0, 0, floor}
end
if ARGV[2] == 'ifArchived' and tonumber(m[1]) > 0 then return {0, 0, 0} end
local held = redis.call('HLEN', KEYS[2])
local last = tonumber(m[3]) - 1
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('DECRBY', KEYS[6], tonumber(m[2]))
if ARGV[2] == 'always' then
  if last > floor then floor = last end
  local wanted = tonumber(ARGV[4] or '0') or 0
  if wanted > floor then floor = wanted end
  redis.call('SET', KEYS[7], floor)
  return {1, held, floor}
end
return {1, held, last}
