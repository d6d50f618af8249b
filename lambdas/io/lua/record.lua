#!lua flags=allow-oom
--[[
  Set fields of one of the buffer's small bookkeeping hashes (meta, drain status), also when Redis
  is out of memory: a drain must be able to say what it did (G8).

  KEYS[1]  the hash
  ARGV     field, value pairs; a field whose value is '' is removed

  Returns the hash's fields and values after the change (HGETALL).
]]
for i = 1, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('HGETALL', KEYS[1])
