#!lua flags=no-writes
--[[
  The row keys in one parent index (G4): the fields of its hash, or the members of a set
  written before parent indexes were hashes. A read command: it answers when Redis is out of
  memory, and on a replica.

  KEYS[1]  the parent index

  Returns the row keys.
]]
if redis.call('TYPE', KEYS[1]).ok == 'set' then
  return redis.call('SMEMBERS', KEYS[1])
end
return redis.call('HKEYS', KEYS[1])
