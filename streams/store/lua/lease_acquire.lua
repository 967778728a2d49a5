-- Takes a lease that is free, or extends it while it is ours, in one step: the publisher asks
-- on every tick, so taking and keeping cost one round trip, not two.
-- KEYS: the lease. ARGV: our token, the TTL in ms. Returns 1 while the lease is ours, else 0.
local lease_key = KEYS[1]
local holder = redis.call('GET', lease_key)
if holder == false then
  redis.call('SET', lease_key, ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', lease_key, ARGV[2])
  return 1
end
return 0
