-- Queues changes' outputs atomically, in the order the changes were logged. The cursor check
-- makes a second announcer (or a retry after a crash) a no-op: if any change given is at or
-- below the cursor, nothing is written and the reply says so (the caller's memory of the night
-- is stale). A change sequence of 0 carries outputs of no change (national moments told as the
-- watermark passes them): queued by id only. The id set keeps an alert id from ever being
-- queued twice. What was told of each national moment is recorded in the same step, so a
-- publisher taking over knows what the alerts topic says.
--
-- An alert the desk may hold names what would hold it (streams/rules/holds.py): `seat:<id>`
-- a seat whose call an editor holds, `killed:<id>` or `held:<id>` an alert it amends that the
-- desk killed or still holds, `*` its type. The first that is true puts it on the desk (the
-- held hash, under its alert id: reason, held at, release after, the alert) instead of the
-- outbox; checked here, in the step that queues, no editor's action can slip between.
--
-- KEYS (streams.store.keys): the announced cursor, the moments told, the queued ids, the
-- outbox sequence, the outbox stream, the desk's held alerts, killed alert ids, held calls,
-- version, decisions and alerts sent as decided.
-- ARGV: the number M of moment records, M pairs (moment, what was told; '' to forget it),
-- then per change its sequence, its number of outputs, then output id, topic, key, value
-- and hold of each: '' or "<release after, ms, or ''>\n<condition> <condition>...".
-- Returns 1 if nothing was written because the cursor had passed a change (else 0), then each
-- output's outbox sequence, 0 for one not queued (-1 for one the desk now holds), or for one
-- queued as the desk sent it, {sequence, the alert as sent}.
local cursor_key, moments_key, ids_key = KEYS[1], KEYS[2], KEYS[3]
local sequence_key, outbox_key = KEYS[4], KEYS[5]
local held_key, killed_key, calls_key, version_key = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local decided_key, sent_key = KEYS[10], KEYS[11]
local FIELDS = 5

-- The first condition of `hold` that is true now, or nil.
local function holding(hold)
  local conditions = string.match(hold, '\n(.*)$')
  for condition in string.gmatch(conditions, '%S+') do
    local kind, id = string.match(condition, '^(%a+):(.+)$')
    if condition == '*'
      or (kind == 'seat' and redis.call('HEXISTS', calls_key, id) == 1)
      or (kind == 'killed' and redis.call('SISMEMBER', killed_key, id) == 1)
      or (kind == 'held' and redis.call('HEXISTS', held_key, id) == 1) then
      return condition
    end
  end
  return nil
end

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local announced = tonumber(redis.call('GET', cursor_key) or '0')
local moments = tonumber(ARGV[1])
local first = 2 + 2 * moments
local i = first
while i <= #ARGV do
  local change_seq, count = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  if change_seq ~= 0 and change_seq <= announced then return {1} end
  i = i + 2 + count * FIELDS
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
    local at = i + j * FIELDS
    local n = 0
    local hold, value = ARGV[at + 4], ARGV[at + 3]
    local condition = nil
    if hold ~= '' and redis.call('SISMEMBER', ids_key, ARGV[at]) == 0 then
      -- Told again after a rebuild emptied the outbox: what the desk decided stands. One it
      -- sent goes as it was sent (edited or not), once; one it killed, never.
      local sent = redis.call('HGET', sent_key, ARGV[at + 2])
      if sent then
        value = sent
      elseif redis.call('HEXISTS', decided_key, ARGV[at + 2]) == 1 then
        condition = 'decided'
      else
        condition = holding(hold)
      end
    end
    if condition == 'decided' then
      n = 0
    elseif condition then
      -- Held once: whatever the desk did with it since (sent, killed) stays done.
      if redis.call('HEXISTS', held_key, ARGV[at + 2]) == 0 then
        local release_after = string.match(hold, '^([^\n]*)')
        redis.call('HSET', held_key, ARGV[at + 2],
          condition .. '\n' .. now_ms .. '\n' .. release_after .. '\n' .. ARGV[at + 3])
        redis.call('INCR', version_key)
      end
      n = -1
    elseif redis.call('SADD', ids_key, ARGV[at]) == 1 then
      n = redis.call('INCR', sequence_key)
      redis.call('XADD', outbox_key, n .. '-0', 'output_id', ARGV[at], 'topic', ARGV[at + 1],
        'key', ARGV[at + 2], 'value', value)
      -- The caller sends what it gave unless told otherwise.
      if value ~= ARGV[at + 3] then n = {n, value} end
    end
    queued[#queued + 1] = n
  end
  if change_seq > announced then announced = change_seq end
  i = i + count * FIELDS
end
if announced > start then
  redis.call('SET', cursor_key, announced)
end
return queued
