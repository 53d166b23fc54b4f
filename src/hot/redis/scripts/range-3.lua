--[[ range: held turns of a session with ids in [from, to], ascending, at most `limit`.
KEYS[1] session meta hash   KEYS[2] session turns hash   KEYS[3] shard epoch hash
ARGV[1] from   ARGV[2] to   ARGV[3] limit (0..10000)
ARGV[4] 'unarchived' to start after archivedUpTo instead of at ARGV[1], or ''
ARGV[5] 'ids' when the caller reads the turns itself if they are dense, or ''
Returns a flat array {id, encoded, ...} ascending; empty for an unknown session or a broken shard.
With ARGV[5] = 'ids' and a session without holes, {'ids', lo, hi} instead: the caller reads turns
lo..hi with plain HMGETs (recent-4.lua says why), or nothing when lo > hi.
Read-only (except marking a shard broken, shard-lib.lua). Ids are clamped to what the session can hold (firstTurnId .. nextTurnId - 1) and
fetched in bounded HMGET batches, so a wide range never means one unbounded read.
]]
if shardState(KEYS[3]) == 'broken' then return {} end
local m = redis.call('HMGET', KEYS[1], 'nextTurnId', 'firstTurnId', 'archivedUpTo', 'turnCount')
if not m[1] then return {} end
local lo = tonumber(ARGV[1])
if ARGV[4] == 'unarchived' then lo = tonumber(m[3]) + 1 end
if lo < tonumber(m[2]) then lo = tonumber(m[2]) end
local hi = tonumber(ARGV[2])
if hi > tonumber(m[1]) - 1 then hi = tonumber(m[1]) - 1 end
local limit = tonumber(ARGV[3])
if ARGV[5] == 'ids' and tonumber(m[4]) == tonumber(m[1]) - tonumber(m[2]) then
  if lo > hi then return {} end
  if hi > lo + limit - 1 then hi = lo + limit - 1 end
  return {'ids', lo, hi}
end
local out = {}
local found = 0
while found < limit and lo <= hi do
  local batch = limit - found
  if batch > 1000 then batch = 1000 end
  local top = lo + batch - 1
  if top > hi then top = hi end
  local ids = {}
  for id = lo, top do ids[#ids + 1] = string.format('%d', id) end
  local values = redis.call('HMGET', KEYS[2], unpack(ids))
  for j = 1, #ids do
    if values[j] then
      out[#out + 1] = ids[j]
      out[#out + 1] = values[j]
      found = found + 1
    end
  end
  lo = top + 1
end
return out
