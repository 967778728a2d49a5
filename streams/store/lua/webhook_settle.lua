-- One alert's outcome for one subscriber and its cursor move, as one atomic step. The cursor
-- never moves back, so a stalled former dispatcher cannot make the current one send again.
-- KEYS: the subscriber's cursor, delivered set, dead list and withheld set (streams.store.keys).
-- ARGV: the outbox sequence settled, the alert id ('' for none: only the cursor moves), what
-- became of it ('delivered', 'dead' or 'withheld'), the dead-letter entry JSON ('' unless
-- dead). Returns 1.
local cursor_key, delivered_key, dead_key, withheld_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local sequence, alert_id, outcome, dead_entry = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
if alert_id ~= '' then
  if outcome == 'dead' then
    redis.call('RPUSH', dead_key, dead_entry)
  elseif outcome == 'withheld' then
    redis.call('SADD', withheld_key, alert_id)
  elseif outcome == 'delivered' then
    redis.call('SADD', delivered_key, alert_id)
  else
    return redis.error_reply('unknown webhook outcome: ' .. outcome)
  end
end
local current = tonumber(redis.call('GET', cursor_key) or '0')
if sequence > current then
  redis.call('SET', cursor_key, sequence)
end
return 1
