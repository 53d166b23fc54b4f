--[[ deleteTurns: removes the given turns if held; metadata (next id) is kept. Atomic.
KEYS[1] session meta hash   KEYS[2] session turns hash   KEYS[3] shard backlog zset
KEYS[4] shard age zset      KEYS[5] shard bytes counter   KEYS[6] shard epoch hash
ARGV[1] session member   ARGV[2..] turn ids (decimal)
Returns how many turns were removed (0 for an unknown session or a broken shard, which is wiped
and re-seeded from the journals: the caller deletes from the archive and journal as well).
]]
if shardState(KEYS[6]) == 'broken' then return 0 end
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'nextTurnId', 'archivedUpTo', 'firstTurnId', 'unarchivedCount', 'oldestUnarchivedAt')
if not m[1] then return 0 end
local archivedUpTo = tonumber(m[2])
local removed = 0
local freed = 0
local unarchivedRemoved = 0
for i = 2, #ARGV do
  local v = redis.call('HGET', KEYS[2], ARGV[i])
  if v then
    redis.call('HDEL', KEYS[2], ARGV[i])
    removed = removed + 1
    freed = freed + #ARGV[i] + #v
    if tonumber(ARGV[i]) > archivedUpTo then unarchivedRemoved = unarchivedRemoved + 1 end
  end
end
if removed == 0 then return 0 end
redis.call('HINCRBY', meta, 'turnCount', -removed)
redis.call('HINCRBY', meta, 'bytes', -freed)
redis.call('DECRBY', KEYS[5], freed)
if unarchivedRemoved > 0 then
  local unarchived = tonumber(m[4]) - unarchivedRemoved
  local oldest = ''
  if unarchived > 0 then
    -- The oldest unarchived turn may have been deleted: find the first one still held.
    local id = archivedUpTo + 1
    if id < tonumber(m[3]) then id = tonumber(m[3]) end
    local nextId = tonumber(m[1])
    while oldest == '' and id < nextId do
      local v = redis.call('HGET', KEYS[2], string.format('%d', id))
      if v then oldest = string.format('%d', tonumber(string.match(v, '^.([0-9a-z]+),'), 36)) end
      id = id + 1
    end
  end
  redis.call('HSET', meta, 'unarchivedCount', unarchived, 'oldestUnarchivedAt', oldest)
  if unarchived > 0 then
    redis.call('ZADD', KEYS[3], unarchived, ARGV[1])
    redis.call('ZADD', KEYS[4], oldest, ARGV[1])
  else
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('ZREM', KEYS[4], ARGV[1])
  end
end
return removed
