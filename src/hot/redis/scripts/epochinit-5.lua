--[[ epochinit: gives one shard the epoch `candidate`, wiping it first when it is broken.
KEYS[1] shard epoch hash   KEYS[2] shard lru zset   KEYS[3] shard backlog zset
KEYS[4] shard age zset     KEYS[5] shard bytes counter
ARGV[1] candidate epoch    ARGV[2] 'create' (may give a missing or broken shard this epoch) or
'raise' (only raises an intact shard's lower epoch)   ARGV[3] the shard's session key prefix
"<p>{<tag>}" (a session's keys are that prefix .. member .. ':m' / ':t')
Returns
  {1, epoch}  the epoch now in force on this shard: the candidate, or a higher one already there
  {0, n}      (create, broken shard) n sessions wiped, more remain: call again
  {-1, 0}     (raise) the shard has no epoch: the caller needs a fresh candidate
An intact shard only ever moves to a higher epoch and keeps its sessions: nothing was lost
there. A missing shard (FLUSHALL, restart without persistence) has nothing to wipe. A broken
shard's sessions may have lost writes, so their metadata and turns are deleted (500 sessions per
call, from its lru index, which lists every session held) before the shard gets the candidate;
every session is then re-seeded from the archive and every instance's journal. Their compaction
leases go too (the promoted replica may hold a lease whose release it never received): a
compaction still running under one is fenced, since the new epoch's fencing numbers are higher.
Idempotency keys, void markers, deletion floors and fencing counters stay: they only ever name
ids that were handed out.
The session keys are not in KEYS: they share the shard's hash tag, so they are in this slot.
]]
local state, epoch = shardState(KEYS[1])
local candidate = tonumber(ARGV[1])
if state == 'ok' then
  if tonumber(epoch) < candidate then
    redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
    return {1, candidate}
  end
  return {1, tonumber(epoch)}
end
if ARGV[2] ~= 'create' then return {-1, 0} end
if state == 'broken' then
  local members = redis.call('ZRANGE', KEYS[2], 0, 499)
  for _, member in ipairs(members) do
    local meta = ARGV[3] .. member .. ':m'
    local bytes = tonumber(redis.call('HGET', meta, 'bytes') or '0')
    redis.call('DEL', meta, ARGV[3] .. member .. ':t', ARGV[3] .. member .. ':lease')
    redis.call('ZREM', KEYS[2], member)
    redis.call('ZREM', KEYS[3], member)
    redis.call('ZREM', KEYS[4], member)
    redis.call('DECRBY', KEYS[5], bytes)
  end
  if #members == 500 then return {0, #members} end
  redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
end
local node = replicationId()
if node then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'node', node)
else
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1])
end
return {1, candidate}
