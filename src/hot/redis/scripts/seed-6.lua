--[[ seed: creates the hot state of a session if it has none, atomically.
KEYS[1] session meta hash      KEYS[2] session turns hash   KEYS[3] global lru zset
KEYS[4] global backlog zset    KEYS[5] global age zset      KEYS[6] global bytes counter
ARGV[1] session member   ARGV[2] now   ARGV[3] nextTurnId   ARGV[4] archivedUpTo
ARGV[5] userId or ''     ARGV[6] firstTurnId   ARGV[7] unarchivedCount
ARGV[8] oldestUnarchivedAt or ''   ARGV[9] bytes   ARGV[10..] turn id, encoded turn, ... (ascending)
The caller (RedisHotStore.seed) validated the seed and derived ARGV[6..9] from it.
Returns 1 when created, 0 when the session already had metadata (nothing changed).
]]
local meta = KEYS[1]
if redis.call('EXISTS', meta) == 1 then return 0 end
-- Leftover turns without metadata (partial eviction) must not mix with the seeded ones.
redis.call('DEL', KEYS[2])
local fields = {}
local turnCount = 0
for i = 10, #ARGV, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  turnCount = turnCount + 1
  -- Bounded batches keep unpack() far below Lua's C stack limit.
  if #fields >= 1000 then
    redis.call('HSET', KEYS[2], unpack(fields))
    fields = {}
  end
end
if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
redis.call('HSET', meta,
  'nextTurnId', ARGV[3], 'archivedUpTo', ARGV[4], 'firstTurnId', ARGV[6],
  'turnCount', turnCount, 'unarchivedCount', ARGV[7], 'oldestUnarchivedAt', ARGV[8],
  'bytes', ARGV[9], 'lastAccess', ARGV[2], 'createdAt', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', meta, 'userId', ARGV[5]) end
redis.call('INCRBY', KEYS[6], ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if tonumber(ARGV[7]) > 0 then
  redis.call('ZADD', KEYS[4], ARGV[7], ARGV[1])
  redis.call('ZADD', KEYS[5], ARGV[8], ARGV[1])
end
return 1
