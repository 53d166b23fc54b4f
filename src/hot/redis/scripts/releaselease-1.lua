--[[ releaseLease: compare-and-delete, so a holder whose lease expired and was taken over never
deletes the new holder's lease.
KEYS[1] session lease key   ARGV[1] token
Returns 1 when deleted, 0 when the key held another token or nothing.
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
