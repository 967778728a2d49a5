-- A batch of consumed messages in one script, in the order Kafka delivered them; each
-- message is its own all-or-nothing step. The offset check makes a redelivery after a crash
-- a no-op; the revision check makes duplicates and stale revisions no-ops, and refuses one
-- too far ahead of the seat's (a revision_jump, recorded but not applied); an applied
-- revision takes out the seat's old contribution, adds the new, and logs the change (with
-- both contributions, so the publisher follows the totals without reading them all) for the
-- publisher. Outcome counters, validation's included, live here too, so every offset is
-- counted exactly once, across crashes. Redis keeps the writes of a script that fails
-- halfway, so everything in a step that can fail (decoding, splicing) comes before its first
-- write and a failure is returned, not raised: the failed step records nothing, not even its
-- offset, and the later steps of its partition are held back (else their offsets would mark
-- the failed one as applied and its redelivery would be skipped); other partitions go on.
--
-- The batch's counters, offsets, clocks, "as of" time, sequence, totals and seat set are
-- kept in tables and written once, at the end. Readers, the append-only file and replicas
-- see a script's writes all at once, so this changes nothing anyone can see, and it spares
-- most of a step's Redis calls (16 of them a declaration were counter increments).
--
-- Several sources may report a seat (streams.rules.sources): revisions, duplicates and
-- jumps are judged per source, every source's latest view of the seat is kept beside it, and
-- the seat counts the figures of the highest source in PRECEDENCE that has reported. A
-- revision of a lower source is recorded and logged (so the publisher can tell the desk
-- where sources disagree) but changes no number: 'outranked'.
--
-- KEYS (streams.store.keys): totals, offsets, changes, seats, counters, exit-poll, clocks,
-- as-of, then the seat hash of each seat the batch declares.
-- ARGV: FIELDS (the values per message), MAX_JUMP (how far past a seat's revision, 0 for a
-- seat not yet declared, a declaration may go), PRECEDENCE (source names, first counts
-- first, joined by commas), then FIELDS values per message:
--   'd' (declaration): topic:partition, offset, revision, content hash, kind, contribution
--       JSON, result JSON before its sequence value, result JSON after it, ONS id, event key,
--       Kafka timestamp in ms, the index in KEYS of the seat's hash, source name (letters,
--       digits, - and _ only), the source's view JSON
--   'e' (exit poll): topic:partition, offset, exit poll JSON, unused, event key, Kafka timestamp
--   'r' (rejected): topic:partition, offset, reason, then unused
-- The event key (streams.rules.event_time.key_text, starting with the time in ms) is the
-- partition's clock once the message is recorded: the publisher's watermark reads it.
-- Returns name, sequence (or error text; for 'revision_jump' the seat's revision) per message.
local totals_key, offsets_key, changes_key = KEYS[1], KEYS[2], KEYS[3]
local seats_key, counters_key, exit_poll_key = KEYS[4], KEYS[5], KEYS[6]
local clocks_key, as_of_key = KEYS[7], KEYS[8]
local FIELDS, MAX_JUMP = tonumber(ARGV[1]), tonumber(ARGV[2])
local replies = {}
local last_of, held = {}, {}
-- The deferred writes (see above); sequence and as_of are read on first use.
local counts, offsets, clocks, deltas, new_seats = {}, {}, {}, {}, {}
local sequence, first_sequence, as_of, first_as_of
-- Ranks as streams.rules.sources.source_rank: listed names by place, then the rest by name.
local UNLISTED = 1000
local rank_of, listed = {}, 0
for name in string.gmatch(ARGV[3], '[^,]+') do
  if rank_of[name] == nil then rank_of[name] = listed end
  listed = listed + 1
end
local function precedes(a, b)
  local rank_a, rank_b = rank_of[a] or UNLISTED, rank_of[b] or UNLISTED
  if rank_a ~= rank_b then return rank_a < rank_b end
  return a < b
end

local function count(name)
  counts[name] = (counts[name] or 0) + 1
end

local function record(field, offset, clock)
  offsets[field] = offset
  if clock ~= '' then clocks[field] = clock end
  last_of[field] = offset
end

local function next_sequence()
  if sequence == nil then
    sequence = tonumber(redis.call('HGET', totals_key, 'meta:sequence') or '0')
    first_sequence = sequence
  end
  sequence = sequence + 1
  return sequence
end

local function declaration(i, field, offset)
  local revision, content_hash, kind = tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5]
  local head, tail, ons_id, clock = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9], ARGV[i + 10]
  local seat_key = KEYS[tonumber(ARGV[i + 12])]
  local source, view = ARGV[i + 13], ARGV[i + 14]
  -- The source's own view comes along: most revisions are of a seat only it has reported.
  local current = redis.call('HMGET', seat_key, 'rev:' .. source, 'hash:' .. source,
    'contribution', 'result', 'source', 'sources', 'view:' .. source)
  local current_revision = tonumber(current[1] or '0')
  local name
  if current_revision > revision then name = 'superseded'
  elseif current_revision == revision and current[2] == content_hash then name = 'duplicate'
  elseif current_revision == revision then name = 'conflict'
  -- Revisions only go up: one far ahead would make every genuine correction after it
  -- superseded, the seat frozen by one bad message. It is not applied, and the agent
  -- dead-letters it with the seat's revision, returned in place of a sequence.
  elseif revision > current_revision + MAX_JUMP then name = 'revision_jump' end
  if name then
    record(field, offset, clock)
    count('validation:accepted')
    count('tally:' .. name)
    if name == 'revision_jump' then return name, current_revision end
    return name, 0
  end

  -- Every source's view before this one, as one JSON object, for the change log.
  local known = current[6] or ''
  local others, fields, is_known = {}, {}, false
  for other in string.gmatch(known, '[^,]+') do
    if other == source then is_known = true else fields[#fields + 1] = 'view:' .. other end
    others[#others + 1] = other
  end
  local views_before = '{}'
  if #others > 0 then
    local texts = {}
    if #fields > 0 then texts = redis.call('HMGET', seat_key, unpack(fields)) end
    local parts, n_other = {}, 0
    for n, other in ipairs(others) do
      local text = current[7]
      if other ~= source then
        n_other = n_other + 1
        text = texts[n_other]
      end
      parts[n] = '"' .. other .. '":' .. text
    end
    views_before = '{' .. table.concat(parts, ',') .. '}'
  end
  if not is_known then
    if known == '' then known = source else known = known .. ',' .. source end
  end
  local counted = current[5]
  if counted and counted ~= source and not precedes(source, counted) then
    record(field, offset, clock)
    redis.call('HSET', seat_key, 'rev:' .. source, revision, 'hash:' .. source, content_hash,
      'view:' .. source, view, 'sources', known)
    local seq = next_sequence()
    redis.call('XADD', changes_key, seq .. '-0', 'seat', ons_id, 'source', source,
      'view', view, 'views', views_before, 'counted', counted, 'sent', ARGV[i + 11])
    count('validation:accepted')
    count('tally:outranked')
    return 'outranked', seq
  end

  local old_text = current[3] or '{}'
  local new_text = old_text
  if kind ~= 'recount' then new_text = ARGV[i + 6] end
  local decoded_old, old = pcall(cjson.decode, old_text)
  local decoded_new, new = pcall(cjson.decode, new_text)
  if not (decoded_old and decoded_new) then
    return nil, 'contribution of ' .. ons_id .. ' cannot be read'
  end

  local previous = current[4]
  if kind == 'recount' and previous then
    -- The figures announced before stand, marked, until the recount's result replaces them:
    -- this notice's header (ids, kind, revision, time, sequence), then the previous result
    -- from figures_pending on, with recount set.
    local pending_at = string.find(previous, ',"figures_pending":', 1, true)
    local recount_at = pending_at and string.find(previous, ',"recount":', pending_at, true)
    local winning_at = recount_at and string.find(previous, ',"winning_party":', recount_at, true)
    if not winning_at then
      return nil, 'stored result of ' .. ons_id .. ' cannot be marked for a recount'
    end
    tail = string.sub(previous, pending_at, recount_at - 1) .. ',"recount":true' ..
      string.sub(previous, winning_at)
  end

  record(field, offset, clock)
  -- The "as of" time only moves forward: a correction dated earlier leaves it where it is.
  local at = tonumber(string.match(clock, '^%d+'))
  if as_of == nil then
    as_of = tonumber(redis.call('GET', as_of_key) or '-1')
    first_as_of = as_of
  end
  if at > as_of then as_of = at end
  for name, value in pairs(old) do deltas[name] = (deltas[name] or 0) - value end
  for name, value in pairs(new) do deltas[name] = (deltas[name] or 0) + value end
  local seq = next_sequence()
  local result = head .. seq .. tail
  local recount = '0'
  if kind == 'recount' then recount = '1' end
  redis.call('HSET', seat_key, 'revision', revision, 'content_hash', content_hash, 'kind', kind,
    'contribution', new_text, 'result', result, 'recount', recount,
    'applied_offset', field .. ':' .. ARGV[i + 2], 'source', source, 'sources', known,
    'rev:' .. source, revision, 'hash:' .. source, content_hash, 'view:' .. source, view)
  new_seats[#new_seats + 1] = ons_id
  redis.call('XADD', changes_key, seq .. '-0', 'seat', ons_id, 'result', result,
    'previous', previous or '', 'old', old_text, 'new', new_text, 'sent', ARGV[i + 11],
    'source', source, 'view', view, 'views', views_before)
  count('validation:accepted')
  count('tally:applied')
  return 'applied', seq
end

local function exit_poll(i, field, offset)
  record(field, offset, ARGV[i + 10])
  count('validation:accepted')
  if redis.call('EXISTS', exit_poll_key) == 1 then
    count('tally:exit_poll_duplicate')
    return 'exit_poll_duplicate', 0
  end
  redis.call('SET', exit_poll_key, ARGV[i + 3])
  local seq = next_sequence()
  redis.call('XADD', changes_key, seq .. '-0', 'exit_poll', ARGV[i + 3], 'sent', ARGV[i + 11])
  count('tally:exit_poll_applied')
  return 'exit_poll_applied', seq
end

local function rejected(i, field, offset)
  record(field, offset, '')
  count('validation:rejected:' .. ARGV[i + 3])
  return 'rejected', 0
end

local steps = {d = declaration, e = exit_poll, r = rejected}
for i = 4, #ARGV, FIELDS do
  local field, offset = ARGV[i + 1], tonumber(ARGV[i + 2])
  local name, seq
  if held[field] then
    name, seq = 'error', 'held back: a message before it on ' .. field .. ' was not applied'
  else
    local last = last_of[field]
    if last == nil then
      last = tonumber(redis.call('HGET', offsets_key, field) or '-1')
      last_of[field] = last
    end
    if last >= offset then
      count('kafka:redelivered')
      name, seq = 'redelivered', 0
    else
      local step = steps[ARGV[i]]
      if step == nil then
        name, seq = nil, 'unknown step ' .. tostring(ARGV[i])
      else
        name, seq = step(i, field, offset)
      end
      if name == nil then
        held[field] = true
        name = 'error'
      end
    end
  end
  replies[#replies + 1] = name
  replies[#replies + 1] = seq
end

-- The deferred writes. unpack takes a few thousand values at most: long lists go in slices.
local SLICE = 2000
local function slice(values, from)
  return unpack(values, from, math.min(from + SLICE - 1, #values))
end
local function pairs_of(map)
  local flat = {}
  for name, value in pairs(map) do
    flat[#flat + 1] = name
    flat[#flat + 1] = value
  end
  return flat
end
local flat_offsets, flat_clocks = pairs_of(offsets), pairs_of(clocks)
for from = 1, #flat_offsets, SLICE do
  redis.call('HSET', offsets_key, slice(flat_offsets, from))
end
for from = 1, #flat_clocks, SLICE do redis.call('HSET', clocks_key, slice(flat_clocks, from)) end
for from = 1, #new_seats, SLICE do redis.call('SADD', seats_key, slice(new_seats, from)) end
for name, n in pairs(counts) do redis.call('HINCRBY', counters_key, name, n) end
-- The net change per counter, so a counter no seat contributes to is removed, not left at
-- 0: the totals are then exactly the sum of the seats' contributions, however reached.
for name, change in pairs(deltas) do
  if change ~= 0 and redis.call('HINCRBY', totals_key, name, change) == 0 then
    redis.call('HDEL', totals_key, name)
  end
end
if sequence ~= first_sequence then redis.call('HSET', totals_key, 'meta:sequence', sequence) end
if as_of ~= first_as_of then redis.call('SET', as_of_key, as_of) end
return replies
