#!lua flags=allow-oom
--[[
  Take rows out of the parent indexes once nothing is pending for them: after settling or
  dead-lettering, a row whose overlay hash is empty is no longer a pending child of anything.
  Allowed when Redis is out of memory, like everything a drain needs (G5).

  KEYS     pairs: a parent index (set), then the row's overlay hash
  ARGV     per pair: the row key (the member)

  Returns the number of members removed.
]]
local removed = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    removed = removed + redis.call('SREM', KEYS[i], ARGV[(i + 1) / 2])
  end
end
return removed
