--[[ renewLease: extends a lease only if the caller's token still holds it.
KEYS[1] session lease key   ARGV[1] token   ARGV[2] ttl (ms)
Returns 1 when extended, 0 when the lease was lost (expired, released, or taken by another token).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
