-- Queues changes' outputs atomically, in the order the changes were logged. The cursor check
-- makes a second announcer (or a retry after a crash) a no-op: if any change given is at or
-- below the cursor, nothing is written and the reply says so (the caller's memory of the night
-- is stale). A change sequence of 0 carries outputs of no change (national moments told as the
-- watermark passes them): queued by id only. The id set keeps an alert id from ever being
-- queued twice. What was told of each national moment is recorded in the same step, so a
-- publisher taking over knows what the alerts topic says.
--
-- KEYS (streams.store.keys): the announced cursor, the moments told, the queued ids, the
-- outbox sequence, the outbox stream.
-- ARGV: the number M of moment records, M pairs (moment, what was told; '' to forget it),
-- then per change its sequence, its number of outputs, then output id, topic, key and value
-- of each.
-- Returns 1 if nothing was written because the cursor had passed a change (else 0), then each
-- output's outbox sequence, 0 for one not queued.
local cursor_key, moments_key, ids_key = KEYS[1], KEYS[2], KEYS[3]
local sequence_key, outbox_key = KEYS[4], KEYS[5]
local announced = tonumber(redis.call('GET', cursor_key) or '0')
local moments = tonumber(ARGV[1])
local first = 2 + 2 * moments
local i = first
while i <= #ARGV do
  local change_seq, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if change_seq ~= 0 and change_seq <= announced then return {1} end
  i = i + 2 + count * 4
end
for j = 0, moments - 1 do
  local moment, told = ARGV[2 + 2 * j], ARGV[3 + 2 * j]
  if told == '' then
    redis.call('HDEL', moments_key, moment)
  else
    redis.call('HSET', moments_key, moment, told)
  end
end
local start = announced
local queued = {0}
i = first
while i <= #ARGV do
  local change_seq, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for j = 0, count - 1 do
    local at = i + j * 4
    local n = 0
    if redis.call('SADD', ids_key, ARGV[at]) == 1 then
      n = redis.call('INCR', sequence_key)
      redis.call('XADD', outbox_key, n .. '-0', 'output_id', ARGV[at], 'topic', ARGV[at + 1],
        'key', ARGV[at + 2], 'value', ARGV[at + 3])
    end
    queued[#queued + 1] = n
  end
  if change_seq > announced then announced = change_seq end
  i = i + count * 4
end
if announced > start then
  redis.call('SET', cursor_key, announced)
end
return queued
