--[[ seed: creates the hot state of a session if it has none, atomically.
KEYS[1] session meta hash      KEYS[2] session turns hash   KEYS[3] shard lru zset
KEYS[4] shard backlog zset     KEYS[5] shard age zset       KEYS[6] shard bytes counter
KEYS[7] shard epoch hash          KEYS[8] session deletion floor KEYS[9] session void set
KEYS[10] session idempotency hash  KEYS[11] session idempotency zset
ARGV[1] session member   ARGV[2] now   ARGV[3] nextTurnId   ARGV[4] archivedUpTo
ARGV[5] userId or ''     ARGV[6] firstTurnId   ARGV[7] unarchivedCount
ARGV[8] oldestUnarchivedAt or ''   ARGV[9] bytes   ARGV[10] epoch the caller recovered in, or '' (no check)
ARGV[11] idempotency window (ms)   ARGV[12] number K of idempotency entries
ARGV[13 .. 12+3K] key, "turnId:hash", createdAt   (client keys of the seeded turns)
ARGV[13+3K] number V of void candidates, then V values "key#turnId" (the seeded unarchived turns)
then turn id, encoded turn, ... (ascending)
The caller (RedisHotStore.seed) validated the seed and derived ARGV[6..9] from it.
Returns 1 when created; 0 when the session already had metadata; -1 when the epoch is not the
caller's (recover first); -2 when a seeded turn was voided or lies at or below the deletion
floor, or nextTurnId does not clear the floor (the caller re-reads both and seeds again).
Nothing changes unless 1 is returned.
]]
local meta = KEYS[1]
if ARGV[10] ~= '' and shardEpoch(KEYS[7]) ~= ARGV[10] then return -1 end
if redis.call('EXISTS', meta) == 1 then return 0 end
local floor = tonumber(redis.call('GET', KEYS[8]) or '0')
if tonumber(ARGV[3]) <= floor then return -2 end
local k = tonumber(ARGV[12])
local vpos = 13 + 3 * k
local v = tonumber(ARGV[vpos])
for i = vpos + 1, vpos + v do
  if redis.call('SISMEMBER', KEYS[9], ARGV[i]) == 1 then return -2 end
end
local tpos = vpos + v + 1
if tpos <= #ARGV and tonumber(ARGV[tpos]) <= floor then return -2 end
-- Leftover turns without metadata (partial eviction) must not mix with the seeded ones.
redis.call('DEL', KEYS[2])
local fields = {}
local turnCount = 0
for i = tpos, #ARGV, 2 do
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
for i = 13, 12 + 3 * k, 3 do
  redis.call('HSETNX', KEYS[10], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[11], 'NX', ARGV[i + 2], ARGV[i])
end
if k > 0 then
  redis.call('PEXPIRE', KEYS[10], ARGV[11])
  redis.call('PEXPIRE', KEYS[11], ARGV[11])
end
return 1
