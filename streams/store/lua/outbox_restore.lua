-- Puts back a run of outputs found on Kafka after a rebuild emptied the outbox, each at its
-- own sequence, in one step: for the first run of a restore, under the cursors set in the
-- same step, so no publisher finds a restored entry past its published cursor and sends it
-- again. One script per run instead of a command per entry: a night has hundreds of
-- thousands, and the commands' round of encoding and replies was most of a restore.
-- KEYS: the outbox stream, its epoch, its last sequence given out, the published cursor.
-- ARGV: '1' to set the cursors (the first run) or '0', the epoch, the newest sequence of the
-- whole restore, then per output: sequence, output id, topic, key, value. Returns the entries
-- added.
local outbox_key, epoch_key, seq_key, published_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if ARGV[1] == '1' then
  redis.call('SET', epoch_key, ARGV[2])
  redis.call('SET', seq_key, ARGV[3])
  redis.call('SET', published_key, ARGV[3])
end
local added = 0
for i = 4, #ARGV, 5 do
  redis.call('XADD', outbox_key, ARGV[i] .. '-0', 'output_id', ARGV[i + 1], 'topic', ARGV[i + 2],
    'key', ARGV[i + 3], 'value', ARGV[i + 4])
  added = added + 1
end
return added
