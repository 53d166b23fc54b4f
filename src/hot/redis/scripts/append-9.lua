--[[ append: assigns the next turn id of a session and stores the turn, atomically.
KEYS[1] session meta hash      KEYS[2] session turns hash   KEYS[3] shard lru zset
KEYS[4] shard backlog zset     KEYS[5] shard age zset       KEYS[6] shard bytes counter
KEYS[7] shard epoch hash          KEYS[8] session idempotency hash (key -> "turnId:hash")
KEYS[9] session idempotency zset (key -> createdAt, for expiry)
ARGV[1] session member (tenant:session)   ARGV[2] encoded turn (src/hot/encoding.ts)
ARGV[3] turn createdAt (ms)               ARGV[4] now (ms)   ARGV[5] userId or ''
ARGV[6] the epoch the caller holds, or '' (no check)   ARGV[7] client idempotency key or ''
ARGV[8] hash of the message (for the key) ARGV[9] idempotency window (ms)
Returns {status, turnId}:
  { 1, id}  appended at id
  { 2, id}  the key is known: the message was appended before at id (nothing changed)
  { 0, 0}   the session has no metadata here: the caller must seed it
  {-1, 0}   the shard's epoch is not the caller's (Redis lost data, or a failover): the caller must recover first
  {-2, id}  the key is known for a different message (nothing changed)
]]
if ARGV[6] ~= '' and shardEpoch(KEYS[7]) ~= ARGV[6] then return {-1, 0} end
if ARGV[7] ~= '' then
  local known = redis.call('HGET', KEYS[8], ARGV[7])
  if known then
    local sep = string.find(known, ':', 1, true)
    local id = tonumber(string.sub(known, 1, sep - 1))
    if string.sub(known, sep + 1) ~= ARGV[8] then return {-2, id} end
    return {2, id}
  end
end
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'nextTurnId', 'turnCount', 'bytes', 'lastAccess', 'unarchivedCount')
local nextId = m[1]
if not nextId then return {0, 0} end
if tonumber(m[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  -- The turns hash vanished under the metadata (a maxmemory eviction policy other than
  -- noeviction): this state cannot be trusted, so drop it and make the caller re-seed.
  redis.call('DEL', meta)
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('DECRBY', KEYS[6], tonumber(m[3]))
  return {0, 0}
end
redis.call('HSET', KEYS[2], nextId, ARGV[2])
local size = #nextId + #ARGV[2]
redis.call('INCRBY', KEYS[6], size)
-- The counters move in one HSET (each redis.call from Lua costs about a microsecond of its own);
-- the values are integers far below 2^53, so Lua's numbers hold them exactly ('%d': tostring
-- would write 1e+14 and up in exponent form).
local function int(n) return string.format('%d', n) end
local unarchived = tonumber(m[5] or '0') + 1
local fields = {'nextTurnId', int(tonumber(nextId) + 1), 'turnCount', int(tonumber(m[2]) + 1),
  'bytes', int(tonumber(m[3] or '0') + size), 'unarchivedCount', int(unarchived)}
if unarchived == 1 then
  fields[#fields + 1] = 'oldestUnarchivedAt'
  fields[#fields + 1] = ARGV[3]
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[4], unarchived, ARGV[1])
-- Last access only moves forward, whatever the skew between instances' clocks.
if tonumber(ARGV[4]) > tonumber(m[4]) then
  fields[#fields + 1] = 'lastAccess'
  fields[#fields + 1] = ARGV[4]
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
redis.call('HSET', meta, unpack(fields))
if ARGV[5] ~= '' then redis.call('HSETNX', meta, 'userId', ARGV[5]) end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[8], ARGV[7], nextId .. ':' .. ARGV[8])
  redis.call('ZADD', KEYS[9], ARGV[3], ARGV[7])
  -- Keys older than the window expire a few at a time; the pair expires whole when idle.
  local old = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[9]), 'LIMIT', 0, 8)
  if #old > 0 then
    redis.call('HDEL', KEYS[8], unpack(old))
    redis.call('ZREM', KEYS[9], unpack(old))
  end
  redis.call('PEXPIRE', KEYS[8], ARGV[9])
  redis.call('PEXPIRE', KEYS[9], ARGV[9])
end
return {1, tonumber(nextId)}
