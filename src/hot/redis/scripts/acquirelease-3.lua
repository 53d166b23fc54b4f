--[[ acquireLease: takes a session's compaction lease and issues its fencing number.
KEYS[1] session lease key   KEYS[2] session fencing counter   KEYS[3] shard epoch hash
ARGV[1] token "<owner>:<random>"   ARGV[2] ttl (ms)
Returns {1, counter, epoch} when taken, {0} when another token holds it. The fencing number is
epoch * 2^32 + counter: it grows with every lease, also across a loss of Redis's data (a new
dataset has a larger epoch), so the archive can refuse a commit from an older lease. Without an
epoch (the shard lost data and nobody recovered yet) the epoch counts as 0: such a lease's commits
are refused wherever a later one already committed.
]]
local epoch = shardEpoch(KEYS[3]) or '0'
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {0} end
return {1, redis.call('INCR', KEYS[2]), tonumber(epoch)}
