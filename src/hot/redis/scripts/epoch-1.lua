--[[ epoch: the epoch number of one shard's dataset (docs/consistency.md), read only.
KEYS[1] shard epoch hash
Returns the shard's epoch, or false when it has none: first start, restart without persistence,
FLUSHALL of its node (`missing`), or a failover or restart of its primary detected by
shard-lib.lua (`broken`). RedisHotStore.epoch() reads every shard: one epoch only when all agree.
]]
return shardEpoch(KEYS[1])
