-- Extends a lease only while it is still ours, so a worker that stalled past its TTL cannot
-- take back a lease another has since acquired.
-- KEYS: the lease. ARGV: our token, the TTL in ms. Returns 1 if renewed, else 0.
local lease_key = KEYS[1]
if redis.call('GET', lease_key) == ARGV[1] then
  return redis.call('PEXPIRE', lease_key, ARGV[2])
end
return 0
