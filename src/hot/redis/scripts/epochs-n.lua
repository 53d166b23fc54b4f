--[[ epochs: the epoch numbers of several shards, read only, in one call (a single primary only:
a Redis Cluster refuses keys of different slots in one script).
KEYS[1..n] shard epoch hashes
Returns one value per key, in order: the shard's epoch, or false (nil in the reply) as epoch-1
answers. The replication id is read once for all of them (shard-lib.lua).
]]
local out = {}
for i = 1, #KEYS do
  out[i] = shardEpoch(KEYS[i]) or false
end
return out
