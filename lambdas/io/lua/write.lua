--[[
  Append one changeset to the backlog and update the read overlay, atomically (G1, G4, G5).

  KEYS[1]  the log stream
  KEYS[2]  the backlog counter (pending changes)
  KEYS[3..] one overlay hash per change, in change order (a row may repeat)

  ARGV[1]  backlog limit (pending changes)
  ARGV[2]  number of changes in this changeset
  ARGV[3]  the changeset payload (JSON, opaque here)
  ARGV[4]  the original version for a replayed dead letter, or '' for a new write
  then, per overlay key in order: op ('upsert' | 'patch' | 'delete'), column count c,
  and c pairs of column name and JSON-encoded value

  Returns the stream id of the new entry, or an error reply 'BACKPRESSURE <backlog>'.
]]
local limit = tonumber(ARGV[1])
local count = tonumber(ARGV[2])
local backlog = tonumber(redis.call('GET', KEYS[2]) or '0')

-- An empty backlog always takes one changeset, so a limit below the changeset size cannot wedge writes.
if backlog > 0 and backlog + count > limit then
  return redis.error_reply('BACKPRESSURE ' .. backlog)
end

local id
if ARGV[4] ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[3], 'n', count, 'v', ARGV[4])
else
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[3], 'n', count)
end
redis.call('INCRBY', KEYS[2], count)

local a = 5
for k = 3, #KEYS do
  local overlay = KEYS[k]
  local op = ARGV[a]
  local columns = tonumber(ARGV[a + 1])
  a = a + 2
  if op == 'upsert' or op == 'delete' then
    redis.call('DEL', overlay)
    redis.call('HSET', overlay, '_op', op)
  elseif redis.call('HGET', overlay, '_op') == false then
    redis.call('HSET', overlay, '_op', 'patch')
  end
  -- A patch over a pending delete stays a delete: the drainer dead-letters that patch (G7).
  local current = redis.call('HGET', overlay, '_op')
  for c = 1, columns do
    if current ~= 'delete' then
      redis.call('HSET', overlay, 'c:' .. ARGV[a], ARGV[a + 1])
    end
    a = a + 2
  end
  redis.call('HSET', overlay, '_seq', id)
end

return id
