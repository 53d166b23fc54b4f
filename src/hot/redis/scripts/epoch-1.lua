--[[ epoch: the number naming this Redis dataset's lifetime (docs/consistency.md).
KEYS[1] global epoch key   ARGV[1] a freshly allocated epoch number, or '' to only read
Returns the stored value; when the key is missing (first start, restart without persistence,
FLUSHALL) it stores ARGV[1] and returns it, or returns false when ARGV[1] is ''. Epoch numbers
are allocated durably outside Redis (the data directory), so a later dataset has a larger number.
]]
local v = redis.call('GET', KEYS[1])
if v then return v end
if ARGV[1] == '' then return false end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
