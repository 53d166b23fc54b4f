--[[ markArchived: records that every turn <= upTo is archived and trims archived turns beyond
the last `keepRecent` held ones, atomically. Monotonic.
KEYS[1] session meta hash   KEYS[2] session turns hash   KEYS[3] shard backlog zset
KEYS[4] shard age zset      KEYS[5] shard bytes counter   KEYS[6] session lease key
KEYS[7] shard epoch hash
ARGV[1] session member   ARGV[2] upTo   ARGV[3] keepRecent
ARGV[4] lease token of the compaction that archived the turns, or '' (no lease: single process)
Returns the number of turns trimmed; 0 and no change for an unknown session (dropped or
deleted while it was being compacted), for a broken shard (it is wiped and re-seeded), or when upTo
is below the current archivedUpTo.
Error reply STRATA_UPTO_BEYOND_LAST when upTo names a turn that was never appended.
Error reply STRATA_FENCED, and no change, when the lease is no longer held by ARGV[4]: a holder
whose lease expired (paused process) must not trim turns that the new holder is responsible for.
]]
if ARGV[4] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[4] then
  return redis.error_reply('STRATA_FENCED the compaction lease is no longer held by this token')
end
if shardState(KEYS[7]) == 'broken' then return 0 end
local meta = KEYS[1]
local m = redis.call('HMGET', meta, 'nextTurnId', 'archivedUpTo', 'firstTurnId', 'bytes')
if not m[1] then return 0 end
local nextId = tonumber(m[1])
local upTo = tonumber(ARGV[2])
if upTo >= nextId then
  return redis.error_reply('STRATA_UPTO_BEYOND_LAST upTo ' .. ARGV[2] .. ' is beyond the last turn ' .. (nextId - 1))
end
if upTo < tonumber(m[2]) then return 0 end
local first = tonumber(m[3])

-- Find the cut: walk down from upTo until keepRecent held turns are counted (holes do not count).
local keep = tonumber(ARGV[3])
local cut = upTo + 1
local kept = 0
while kept < keep and cut > first do
  local batch = keep - kept
  if batch > 1000 then batch = 1000 end
  local lo = cut - batch
  if lo < first then lo = first end
  local ids = {}
  for id = cut - 1, lo, -1 do ids[#ids + 1] = string.format('%d', id) end
  local present = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do
    if present[j] then
      kept = kept + 1
      if kept == keep then cut = tonumber(ids[j]) break end
    end
  end
  if kept < keep then cut = lo end
end

-- Trim held turns in [first, cut), counting their bytes.
local removed = 0
local freed = 0
local id = first
while id < cut do
  local top = id + 999
  if top > cut - 1 then top = cut - 1 end
  local ids = {}
  for i = id, top do ids[#ids + 1] = string.format('%d', i) end
  local values = redis.call('HMGET', KEYS[2], unpack(ids))
  local gone = {}
  for j = 1, #ids do
    if values[j] then
      gone[#gone + 1] = ids[j]
      freed = freed + #ids[j] + #values[j]
    end
  end
  if #gone > 0 then
    redis.call('HDEL', KEYS[2], unpack(gone))
    removed = removed + #gone
  end
  id = top + 1
end
if cut > first then first = cut end

-- Recount what stays unarchived (usually the few turns appended during compaction).
local unarchived = 0
local oldest = ''
id = upTo + 1
if id < first then id = first end
while id < nextId do
  local top = id + 999
  if top > nextId - 1 then top = nextId - 1 end
  local ids = {}
  for i = id, top do ids[#ids + 1] = string.format('%d', i) end
  local values = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do
    if values[j] then
      unarchived = unarchived + 1
      if oldest == '' then oldest = string.format('%d', tonumber(string.match(values[j], '^.([0-9a-z]+),'), 36)) end
    end
  end
  id = top + 1
end

redis.call('HSET', meta, 'archivedUpTo', ARGV[2], 'firstTurnId', string.format('%d', first),
  'unarchivedCount', unarchived, 'oldestUnarchivedAt', oldest)
if removed > 0 then
  redis.call('HINCRBY', meta, 'turnCount', -removed)
  redis.call('HINCRBY', meta, 'bytes', -freed)
  redis.call('DECRBY', KEYS[5], freed)
end
if unarchived > 0 then
  redis.call('ZADD', KEYS[3], unarchived, ARGV[1])
  redis.call('ZADD', KEYS[4], oldest, ARGV[1])
else
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return removed
