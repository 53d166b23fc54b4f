--[[ append: assigns the next turn id of a session and stores the turn, atomically.
KEYS[1] session meta hash      KEYS[2] session turns hash   KEYS[3] global lru zset
KEYS[4] global backlog zset    KEYS[5] global age zset      KEYS[6] global bytes counter
ARGV[1] session member (tenant:session)   ARGV[2] encoded turn (src/hot/encoding.ts)
ARGV[3] turn createdAt (ms)               ARGV[4] now (ms)   ARGV[5] userId or ''
Returns the new turn id (>= 1), or 0 when the session has no metadata here: the caller must
seed it (new session, or Redis lost it). Ids are never restarted at 1 silently.
]]
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'nextTurnId', 'turnCount', 'bytes', 'lastAccess')
local nextId = m[1]
if not nextId then return 0 end
if tonumber(m[2]) > 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  -- The turns hash vanished under the metadata (a maxmemory eviction policy other than
  -- noeviction): this state cannot be trusted, so drop it and make the caller re-seed.
  redis.call('DEL', meta)
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[5], ARGV[1])
  redis.call('DECRBY', KEYS[6], tonumber(m[3]))
  return 0
end
redis.call('HSET', KEYS[2], nextId, ARGV[2])
local size = #nextId + #ARGV[2]
redis.call('HINCRBY', meta, 'nextTurnId', 1)
redis.call('HINCRBY', meta, 'turnCount', 1)
redis.call('HINCRBY', meta, 'bytes', size)
redis.call('INCRBY', KEYS[6], size)
local unarchived = redis.call('HINCRBY', meta, 'unarchivedCount', 1)
if unarchived == 1 then
  redis.call('HSET', meta, 'oldestUnarchivedAt', ARGV[3])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
end
redis.call('ZADD', KEYS[4], unarchived, ARGV[1])
-- Last access only moves forward, whatever the skew between instances' clocks.
if tonumber(ARGV[4]) > tonumber(m[4]) then
  redis.call('HSET', meta, 'lastAccess', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
end
if ARGV[5] ~= '' then redis.call('HSETNX', meta, 'userId', ARGV[5]) end
return tonumber(nextId)
