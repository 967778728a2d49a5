-- One alert's outcome for one subscriber and its cursor move, as one atomic step. The cursor
-- never moves back, so a stalled former dispatcher cannot make the current one send again.
-- KEYS: the subscriber's cursor, delivered set and dead list (streams.store.keys).
-- ARGV: the outbox sequence settled, the alert id ('' for none: only the cursor moves), the
-- dead-letter entry JSON ('' when delivered). Returns 1.
local cursor_key, delivered_key, dead_key = KEYS[1], KEYS[2], KEYS[3]
local sequence, alert_id, dead_entry = tonumber(ARGV[1]), ARGV[2], ARGV[3]
if alert_id ~= '' then
  if dead_entry ~= '' then
    redis.call('RPUSH', dead_key, dead_entry)
  else
    redis.call('SADD', delivered_key, alert_id)
  end
end
local current = tonumber(redis.call('GET', cursor_key) or '0')
if sequence > current then
  redis.call('SET', cursor_key, sequence)
end
return 1
