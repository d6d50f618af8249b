#!lua flags=allow-oom
--[[
  Take rows out of the parent indexes once nothing is pending for them: after settling or
  dead-lettering, a row whose overlay hash is empty is no longer a pending child of anything.
  Allowed when Redis is out of memory, like everything a drain needs (G5).

  KEYS     pairs: a parent index (a hash, or a set written before they were hashes), then the
           row's overlay hash
  ARGV     per pair: the row key (the field or member)

  Returns the number of row keys removed.
]]
local removed = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    local member = ARGV[(i + 1) / 2]
    if redis.call('TYPE', KEYS[i]).ok == 'set' then
      removed = removed + redis.call('SREM', KEYS[i], member)
    else
      removed = removed + redis.call('HDEL', KEYS[i], member)
    end
  end
end
return removed
