#!lua flags=allow-oom
--[[
  Remove dead letters (after replay, or on an operator's purge) from the hash and the index,
  atomically. Allowed when Redis is out of memory: it only frees memory (G5).

  KEYS[1]  the dead-letter hash (id -> JSON)
  KEYS[2]  the dead-letter index
  ARGV     pairs: changeset id, index member

  Returns how many of the dead letters existed.
]]
local removed = 0
for i = 1, #ARGV, 2 do
  removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i + 1])
end
return removed
