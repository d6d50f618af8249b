#!lua flags=no-writes
--[[
  Read the overlay of some rows with the changes its layers refer to, and the epoch's version
  offset, in one atomic look (G4). A read command: it answers when Redis is out of memory, and
  on a replica.

  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the buffer's meta hash
  KEYS[3..] the overlay hashes of the rows

  Returns { offset or '', then per overlay hash: its layers }, a layer being
  { stream id, 'changes', replayed version or '', the row's changes (JSON, as in the entry)... }
  or, for a value written before overlays held references ('<replayed version>|<layer>'),
  { stream id, 'layer', the value }. A reference to an entry no longer in the backlog is left
  out: settled, it has nothing to add (settling removes a changeset's layers before its entry,
  so this only guards against an entry removed by hand).
]]
local reply = { redis.call('HGET', KEYS[2], 'offset') or '' }
-- Each entry is fetched once, however many of the rows its changeset touched.
local payloads = {}
local function entry(id)
  if payloads[id] == nil then
    local found = redis.call('XRANGE', KEYS[1], id, id)[1]
    payloads[id] = false
    if found then
      local fields, cs, v = found[2], nil, ''
      for f = 1, #fields, 2 do
        if fields[f] == 'cs' then cs = fields[f + 1] elseif fields[f] == 'v' then v = fields[f + 1] end
      end
      payloads[id] = { cs, v }
    end
  end
  return payloads[id]
end

for k = 3, #KEYS do
  local hash = redis.call('HGETALL', KEYS[k])
  local layers = {}
  for i = 1, #hash, 2 do
    local id, value = hash[i], hash[i + 1]
    if string.find(value, '|', 1, true) then
      layers[#layers + 1] = { id, 'layer', value }
    else
      local found = entry(id)
      if found then
        local layer = { id, 'changes', found[2] }
        for offset, length in string.gmatch(value, '(%d+):(%d+)') do
          local from = tonumber(offset) + 1
          layer[#layer + 1] = string.sub(found[1], from, from + tonumber(length) - 1)
        end
        layers[#layers + 1] = layer
      end
    end
  end
  reply[#reply + 1] = layers
end
return reply
