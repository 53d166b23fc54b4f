--[[ Prepended to every script (scripts.ts): the state of the session's shard.
A shard's epoch hash (`<p>{<tag>}epoch`) holds `epoch`, the number of the dataset the shard
belongs to, and `node`, the replication id (INFO master_replid) of the primary that stored it.
A primary with another replication id is not the one that stored the shard's state: a replica
was promoted (the writes it had not received yet are lost) or the server restarted from a
snapshot (which may be older). The shard is then marked `broken`: its epoch is gone, so every
epoch-checked script refuses and reads answer nothing, until initEpoch (epochinit-5) has wiped
the shard's sessions and given it a new epoch. A FLUSHALL removes the hash: the shard is
`missing`. docs/redis-keys.md, "Shards and epochs".
]]
-- Read once per script call (a script that checks several shards asks INFO once); a plain
-- find is about 1 µs cheaper than a pattern match over the INFO text.
local knownReplicationId
local function replicationId()
  if knownReplicationId ~= nil then return knownReplicationId end
  knownReplicationId = false
  local info = redis.pcall('INFO', 'replication')
  if type(info) ~= 'string' then return false end
  local at = string.find(info, 'master_replid:', 1, true)
  if not at then return false end
  local stop = string.find(info, '\r', at, true) or (#info + 1)
  local id = string.sub(info, at + 14, stop - 1)
  if id ~= '' then knownReplicationId = id end
  return knownReplicationId
end

-- Returns 'ok' and the epoch, 'missing' or 'broken'.
local function shardState(key)
  local s = redis.call('HMGET', key, 'epoch', 'node', 'broken')
  if s[3] then return 'broken', false end
  if not s[1] then return 'missing', false end
  if s[2] then
    local node = replicationId()
    if node and node ~= s[2] then
      redis.call('HDEL', key, 'epoch', 'node')
      redis.call('HSET', key, 'broken', '1')
      return 'broken', false
    end
  end
  return 'ok', s[1]
end

local function shardEpoch(key)
  local _, epoch = shardState(key)
  return epoch
end
