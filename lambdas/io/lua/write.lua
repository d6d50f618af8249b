#!lua
--[[
  Append one changeset to the backlog and add its layers to the read overlay, atomically
  (G1, G4, G5). Declared with a shebang and no flags, so Redis refuses the whole script up front
  when it is out of memory: a write is never half done.

  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the backlog change counter (pending changes)
  KEYS[3]  the backlog byte counter (what pending changesets cost Redis, estimated)
  KEYS[4]  the buffer's meta hash (epoch, since: created here when the cache has none)
  KEYS[5..4+n] one overlay hash per row the changeset touches
  KEYS[5+n..] parent indexes (sets) the changeset's rows belong in

  ARGV[1]  backlog limit in changes
  ARGV[2]  backlog limit in bytes
  ARGV[3]  number of changes in this changeset
  ARGV[4]  what the changeset costs, in bytes (its charge; settled with it)
  ARGV[5]  the changeset payload (JSON, opaque here)
  ARGV[6]  the original version for a replayed dead letter, or '' for a new write
  ARGV[7]  a fresh epoch id, used only when the meta hash is missing (a new or emptied cache)
  ARGV[8]  n, the number of overlay keys
  then, per overlay key in order: the row's layer (JSON, opaque here)
  then, per parent index in order: the row key to add to it

  Each overlay hash holds one field per pending changeset that touched the row: the field is the
  changeset's stream id, the value '<replayed version>|<layer>' ('' before the bar for a new
  write). Settling or dead-lettering a changeset removes its fields.

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

local id
if ARGV[6] ~= '' then
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[5], 'b', charge, 'v', ARGV[6])
else
  id = redis.call('XADD', KEYS[1], '*', 'cs', ARGV[5], 'b', charge)
end
redis.call('INCRBY', KEYS[2], count)
redis.call('INCRBY', KEYS[3], charge)

local n = tonumber(ARGV[8])
for k = 5, 4 + n do
  redis.call('HSET', KEYS[k], id, ARGV[6] .. '|' .. ARGV[k + 4])
end
for k = 5 + n, #KEYS do
  redis.call('SADD', KEYS[k], ARGV[k + 4])
end
return id
