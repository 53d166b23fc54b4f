--[[ append: assigns the next turn id of a session and stores the turn, atomically, for one or
more turns (of any sessions): a single primary sends the appends of one tick in one call (one
INFO, one script run for all), a Redis Cluster those of one shard (a script's keys share a slot).
Each turn is appended as if alone, in the order given; turns of one session get consecutive ids.
Per turn i (0-based), with k = 9 * i and a = 9 * i:
KEYS[k+1] session meta hash    KEYS[k+2] session turns hash   KEYS[k+3] shard lru zset
KEYS[k+4] shard backlog zset   KEYS[k+5] shard age zset       KEYS[k+6] shard bytes counter
KEYS[k+7] shard epoch hash     KEYS[k+8] session idempotency hash (key -> "turnId:hash")
KEYS[k+9] session idempotency zset (key -> createdAt, for expiry)
ARGV[a+1] session member (tenant:session)   ARGV[a+2] encoded turn (src/hot/encoding.ts)
ARGV[a+3] turn createdAt (ms)               ARGV[a+4] now (ms)   ARGV[a+5] userId or ''
ARGV[a+6] the epoch the caller holds, or '' (no check)   ARGV[a+7] client idempotency key or ''
ARGV[a+8] hash of the message (for the key) ARGV[a+9] idempotency window (ms)
Returns {status, turnId} per turn, flat:
  { 1, id}  appended at id
  { 2, id}  the key is known: the message was appended before at id (nothing changed)
  { 0, 0}   the session has no metadata here: the caller must seed it
  {-1, 0}   the shard's epoch is not the caller's (Redis lost data, or a failover): the caller must recover first
  {-2, id}  the key is known for a different message (nothing changed)
]]
-- A shard's state, read once per call (nothing else runs while a script does).
local epochs = {}
local function epochOf(key)
  local e = epochs[key]
  if e == nil then
    e = shardEpoch(key) or false
    epochs[key] = e
  end
  return e
end
-- The counters move in one HSET (each redis.call from Lua costs about a microsecond of its own);
-- the values are integers far below 2^53, so Lua's numbers hold them exactly ('%d': tostring
-- would write 1e+14 and up in exponent form).
local function int(n) return string.format('%d', n) end

local function appendOne(k, a)
  if ARGV[a + 6] ~= '' and epochOf(KEYS[k + 7]) ~= ARGV[a + 6] then return -1, 0 end
  if ARGV[a + 7] ~= '' then
    local known = redis.call('HGET', KEYS[k + 8], ARGV[a + 7])
    if known then
      local sep = string.find(known, ':', 1, true)
      local id = tonumber(string.sub(known, 1, sep - 1))
      if string.sub(known, sep + 1) ~= ARGV[a + 8] then return -2, id end
      return 2, id
    end
  end
  local meta = KEYS[k + 1]
  local m = redis.call('HMGET', meta, 'nextTurnId', 'turnCount', 'bytes', 'lastAccess', 'unarchivedCount')
  local nextId = m[1]
  if not nextId then return 0, 0 end
  if tonumber(m[2]) > 0 and redis.call('EXISTS', KEYS[k + 2]) == 0 then
    -- The turns hash vanished under the metadata (a maxmemory eviction policy other than
    -- noeviction): this state cannot be trusted, so drop it and make the caller re-seed.
    redis.call('DEL', meta)
    redis.call('ZREM', KEYS[k + 3], ARGV[a + 1])
    redis.call('ZREM', KEYS[k + 4], ARGV[a + 1])
    redis.call('ZREM', KEYS[k + 5], ARGV[a + 1])
    redis.call('DECRBY', KEYS[k + 6], tonumber(m[3]))
    return 0, 0
  end
  redis.call('HSET', KEYS[k + 2], nextId, ARGV[a + 2])
  local size = #nextId + #ARGV[a + 2]
  redis.call('INCRBY', KEYS[k + 6], size)
  local unarchived = tonumber(m[5] or '0') + 1
  local fields = {'nextTurnId', int(tonumber(nextId) + 1), 'turnCount', int(tonumber(m[2]) + 1),
    'bytes', int(tonumber(m[3] or '0') + size), 'unarchivedCount', int(unarchived)}
  if unarchived == 1 then
    fields[#fields + 1] = 'oldestUnarchivedAt'
    fields[#fields + 1] = ARGV[a + 3]
    redis.call('ZADD', KEYS[k + 5], ARGV[a + 3], ARGV[a + 1])
  end
  redis.call('ZADD', KEYS[k + 4], unarchived, ARGV[a + 1])
  -- Last access only moves forward, whatever the skew between instances' clocks.
  if tonumber(ARGV[a + 4]) > tonumber(m[4]) then
    fields[#fields + 1] = 'lastAccess'
    fields[#fields + 1] = ARGV[a + 4]
    redis.call('ZADD', KEYS[k + 3], ARGV[a + 4], ARGV[a + 1])
  end
  redis.call('HSET', meta, unpack(fields))
  if ARGV[a + 5] ~= '' then redis.call('HSETNX', meta, 'userId', ARGV[a + 5]) end
  if ARGV[a + 7] ~= '' then
    redis.call('HSET', KEYS[k + 8], ARGV[a + 7], nextId .. ':' .. ARGV[a + 8])
    redis.call('ZADD', KEYS[k + 9], ARGV[a + 3], ARGV[a + 7])
    -- Keys older than the window expire a few at a time; the pair expires whole when idle.
    local old = redis.call('ZRANGEBYSCORE', KEYS[k + 9], '-inf', tonumber(ARGV[a + 4]) - tonumber(ARGV[a + 9]), 'LIMIT', 0, 8)
    if #old > 0 then
      redis.call('HDEL', KEYS[k + 8], unpack(old))
      redis.call('ZREM', KEYS[k + 9], unpack(old))
    end
    redis.call('PEXPIRE', KEYS[k + 8], ARGV[a + 9])
    redis.call('PEXPIRE', KEYS[k + 9], ARGV[a + 9])
  end
  return 1, tonumber(nextId)
end

local out = {}
for i = 0, #KEYS / 9 - 1 do
  local status, id = appendOne(9 * i, 9 * i)
  out[2 * i + 1] = status
  out[2 * i + 2] = id
end
return out
