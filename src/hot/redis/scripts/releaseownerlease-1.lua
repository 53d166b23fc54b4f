--[[ releaseOwnerLease: deletes the lease when its token was issued to `owner` (token
"<owner>:<random>"). Used at start-up: the journal lock guarantees that no other live process has
this owner name, so such a lease was left by this instance's previous (killed) run.
KEYS[1] session lease key   ARGV[1] owner
Returns 1 when deleted, 0 otherwise.
]]
local token = redis.call('GET', KEYS[1])
if token and string.sub(token, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':' then
  return redis.call('DEL', KEYS[1])
end
return 0
