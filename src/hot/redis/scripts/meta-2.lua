--[[ meta: the fields of a session's meta hash, or false when the hot tier does not hold the session.
KEYS[1] session meta hash   KEYS[2] shard epoch hash
ARGV[1..] the field names
A session of a broken shard (shard-lib.lua: its primary is not the one that stored it, so it may
lack acknowledged writes) is not held: the caller seeds it, and the seed, refused under the
shard's lost epoch, makes the instance recover first (docs/consistency.md, "Shards"). A plain
HMGET would hand out the stale state, and reads would answer from it.
Read-only (except marking a shard broken, shard-lib.lua).
]]
if shardState(KEYS[2]) == 'broken' then return false end
return redis.call('HMGET', KEYS[1], unpack(ARGV))
