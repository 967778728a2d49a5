-- An editor's decision on a held alert (or the clock's, for a timed release), taken once.
-- The alert leaves the desk and its decision is kept in one step: two editors clicking at
-- once, a retry after a timeout, or a worker killed half way can never send it twice, nor
-- send one that was killed. Sending queues it on the outbox, under the id the announce step
-- would have queued it under, so the publisher drains it like any other output.
--
-- KEYS (streams.store.keys): the desk's held alerts, decisions, killed ids, actions stream,
-- version and alerts sent as decided; the outbox's queued ids, sequence and stream.
-- ARGV: alert id, decision (JSON, kept and logged as it is), 'send' or 'kill', then to send:
-- output id, topic, value (the alert as it goes out, edited or not).
-- Returns {1, outbox sequence (0 when killed)} when decided now, {0, the decision taken
-- before} if it was decided already, {-1} if the desk never held it.
local held_key, decided_key, killed_key = KEYS[1], KEYS[2], KEYS[3]
local actions_key, version_key, sent_key = KEYS[4], KEYS[5], KEYS[6]
local ids_key, sequence_key, outbox_key = KEYS[7], KEYS[8], KEYS[9]
local alert_id, decision, verb = ARGV[1], ARGV[2], ARGV[3]
local before = redis.call('HGET', decided_key, alert_id)
if before then return {0, before} end
if redis.call('HDEL', held_key, alert_id) == 0 then return {-1} end
redis.call('HSET', decided_key, alert_id, decision)
-- The desk shows recent actions; a night has a few hundred, this keeps the latest thousand.
redis.call('XADD', actions_key, 'MAXLEN', '~', 1000, '*', 'decision', decision)
redis.call('INCR', version_key)
local output_id = ARGV[4]
if verb == 'kill' then
  redis.call('SADD', killed_key, alert_id)
  -- Never queued afterwards, whichever change comes to tell it again.
  redis.call('SADD', ids_key, output_id)
  return {1, 0}
end
-- Kept as sent: should a rebuild empty the outbox before it reaches Kafka, the alert told
-- again goes out as decided (lua/outbox_announce.lua).
redis.call('HSET', sent_key, alert_id, ARGV[6])
local n = 0
if redis.call('SADD', ids_key, output_id) == 1 then
  n = redis.call('INCR', sequence_key)
  redis.call('XADD', outbox_key, n .. '-0', 'output_id', output_id, 'topic', ARGV[5],
    'key', alert_id, 'value', ARGV[6])
end
return {1, n}
