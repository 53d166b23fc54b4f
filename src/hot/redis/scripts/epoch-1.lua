--[[ epoch: the value naming this Redis dataset's lifetime; written when absent.
KEYS[1] global epoch key   ARGV[1] a fresh random value
Returns the stored value, or ARGV[1] after storing it when the key was missing (first start,
restart without persistence, FLUSHALL): instances that saw another value know the data was lost.
]]
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
