--[[ confirm: after a writer journaled turns it was given ids for, decides whether those ids
still hold its turns (then it may acknowledge) or not (then it voids its records and retries).
docs/consistency.md, "Acknowledging a turn".
KEYS[1] shard epoch hash  KEYS[2] session turns hash   KEYS[3] session idempotency hash
KEYS[4] session void set
ARGV[1] the epoch the ids were assigned in   ARGV[2] void window (ms)
ARGV[3..] turnId, key pairs
Returns one 1 (confirmed) or 0 (voided) per pair. A pair is confirmed when the epoch is
unchanged (the hot tier lost nothing since the assignment), or when the turn held at that id
carries the writer's key (a re-seed after a loss took it from the journal), or when the
client idempotency key maps to that id. Otherwise "key#id#epoch" joins the void set, atomically, so a
re-seed running after this call leaves the journaled record out (seed checks the set).
]]
local same = shardEpoch(KEYS[1]) == ARGV[1]
local out = {}
for i = 3, #ARGV, 2 do
  local id, key = ARGV[i], ARGV[i + 1]
  local ok = same
  if not ok then
    local v = redis.call('HGET', KEYS[2], id)
    if v and string.find(string.sub(v, 1, 1), '%u') then
      local s, e, klen = string.find(v, '^.[0-9a-z]+,[0-9a-z]*,[0-9a-z.]*,([0-9a-z]+),')
      if s and string.sub(v, e + 1, e + tonumber(klen, 36)) == key then ok = true end
    end
  end
  if not ok then
    -- A client append key is "<entry>/<batch size>"; the idempotency hash is keyed by the entry.
    local known = redis.call('HGET', KEYS[3], string.match(key, '^(k:.*)/%d+$') or key)
    if known and string.sub(known, 1, string.find(known, ':', 1, true) - 1) == id then ok = true end
  end
  if ok then
    out[#out + 1] = 1
  else
    redis.call('SADD', KEYS[4], key .. '#' .. id .. '#' .. ARGV[1])
    redis.call('PEXPIRE', KEYS[4], ARGV[2])
    out[#out + 1] = 0
  end
end
return out
