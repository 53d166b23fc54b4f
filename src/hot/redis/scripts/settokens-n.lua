--[[ settokens: records the token count of turns stored without one (an append stores its turn
uncounted; the count runs on a worker thread after the append was acknowledged), for one or
more turns (of any sessions): a single primary takes those of one tick in one call, a Redis
Cluster those of one shard. Per turn i (0-based), with k = 3 * i and a = 3 * i:
KEYS[k+1] session meta hash   KEYS[k+2] session turns hash   KEYS[k+3] shard bytes counter
ARGV[a+1] turn id             ARGV[a+2] the turn's append key
ARGV[a+3] its token count in base 36 (src/hot/encoding.ts)
A turn changes only while it is held with that append key and without a count: a turn
deleted, replaced or counted meanwhile is left alone. The count goes into the encoded turn's
header (`<role><createdAt>,<tokens>,…`); the session's and the shard's byte totals grow by its
length. Returns 1 per turn changed, 0 per turn left alone.
]]
local out = {}
for i = 0, #KEYS / 3 - 1 do
  local k, a = 3 * i, 3 * i
  local turns = KEYS[k + 2]
  out[i + 1] = 0
  local v = redis.call('HGET', turns, ARGV[a + 1])
  if v then
    local c1 = string.find(v, ',', 2, true)
    local c2 = c1 and string.find(v, ',', c1 + 1, true)
    local c3 = c2 and string.find(v, ',', c2 + 1, true)
    local c4 = c3 and string.find(v, ',', c3 + 1, true)
    local first = string.byte(v, 1)
    -- Only keyed turns (upper-case role) carry an append key to compare; uncounted: c2 == c1 + 1.
    if c4 and c2 == c1 + 1 and first >= 65 and first <= 90 then
      local keyLen = tonumber(string.sub(v, c3 + 1, c4 - 1), 36)
      if keyLen and string.sub(v, c4 + 1, c4 + keyLen) == ARGV[a + 2] and redis.call('HEXISTS', KEYS[k + 1], 'nextTurnId') == 1 then
        local tokens = ARGV[a + 3]
        redis.call('HSET', turns, ARGV[a + 1], string.sub(v, 1, c1) .. tokens .. string.sub(v, c1 + 1))
        redis.call('HINCRBY', KEYS[k + 1], 'bytes', #tokens)
        redis.call('INCRBY', KEYS[k + 3], #tokens)
        out[i + 1] = 1
      end
    end
  end
end
return out
