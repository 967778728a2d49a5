-- Gives a lease up only while it is still ours: after our TTL ran out it is someone else's.
-- KEYS: the lease. ARGV: our token. Returns 1 if released, else 0.
local lease_key = KEYS[1]
if redis.call('GET', lease_key) == ARGV[1] then return redis.call('DEL', lease_key) end
return 0
