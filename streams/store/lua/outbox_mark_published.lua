-- Moves the published cursor forward only: a slow old leader must not undo a newer one.
-- KEYS: the published cursor. ARGV: the outbox sequence now on Kafka. Returns 1.
local published_key = KEYS[1]
local c = tonumber(redis.call('GET', published_key) or '0')
if tonumber(ARGV[1]) > c then redis.call('SET', published_key, ARGV[1]) end
return 1
