#!lua
--[[
  Append one changeset to the backlog, point the read overlay at its changes and enter its rows
  in the parent indexes, atomically (G1, G4, G5). Declared with a shebang and no flags, so Redis
  refuses the whole script up front when it is out of memory: a write is never half done.

  KEYS (the backlog and its bookkeeping):
  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the backlog change counter (pending changes)
  KEYS[3]  the backlog byte counter (what pending changesets cost Redis, estimated)
  KEYS[4]  the buffer's meta hash (epoch, since: created here when the cache has none)
  KEYS (the read overlay, n of them):
  KEYS[5..4+n] one overlay hash per row the changeset touches
  KEYS (the parent indexes, the rest):
  KEYS[5+n..] parent indexes the changeset's rows belong in

  ARGV (the backlog entry and the limits):
  ARGV[1]  backlog limit in changes
  ARGV[2]  backlog limit in bytes
  ARGV[3]  number of changes in this changeset
  ARGV[4]  what the changeset costs, in bytes (its charge; settled with it)
  ARGV[5]  the changeset payload (JSON, opaque here)
  ARGV[6]  the original version for a replayed dead letter, or '' for a new write
  ARGV[7]  a fresh epoch id, used only when the meta hash is missing (a new or emptied cache)
  ARGV[8]  n, the number of overlay keys
  ARGV (the read overlay): per overlay key in order, where that row's changes sit in the payload:
           '<byte offset>:<byte length>' per change, joined by ','
  ARGV (the parent indexes): per parent index in order, the row key to enter in it

  Each overlay hash holds one field per pending changeset that touched the row: the field is the
  changeset's stream id, the value where the row's changes sit in that entry's payload (read
  back by `overlay-read.lua`; a replay's version is the entry's field `v`). Settling or
  dead-lettering a changeset removes its fields.
  A parent index is a hash whose fields are row keys (the value is unused: a small hash stays a
  compact listpack); one created before that is a set, and keeps being one until it empties.

  Returns the stream id of the new entry, or an error reply 'BACKPRESSURE <changes> <bytes>'.
]]
local count = tonumber(ARGV[3])
local charge = tonumber(ARGV[4])
local backlog = tonumber(redis.call('GET', KEYS[2]) or '0')
local bytes = tonumber(redis.call('GET', KEYS[3]) or '0')

-- An empty backlog always takes one changeset, so a limit below the changeset size cannot wedge writes.
if backlog > 0 and (backlog + count > tonumber(ARGV[1]) or bytes + charge > tonumber(ARGV[2])) then
  return redis.error_reply('BACKPRESSURE ' .. backlog .. ' ' .. bytes)
end

if redis.call('EXISTS', KEYS[4]) == 0 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[4], 'epoch', ARGV[7], 'since', t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '-0')
end

-- The backlog entry.
local id
if ARGV[6] ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[5], 'b', charge, 'v', ARGV[6])
else
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[5], 'b', charge)
end
redis.call('INCRBY', KEYS[2], count)
redis.call('INCRBY', KEYS[3], charge)

-- The read overlay: references into the entry.
local n = tonumber(ARGV[8])
for k = 5, 4 + n do
  redis.call('HSET', KEYS[k], id, ARGV[k + 4])
end

-- The parent indexes.
for k = 5 + n, #KEYS do
  if redis.call('TYPE', KEYS[k]).ok == 'set' then
    redis.call('SADD', KEYS[k], ARGV[k + 4])
  else
    redis.call('HSET', KEYS[k], ARGV[k + 4], '')
  end
end
return id
