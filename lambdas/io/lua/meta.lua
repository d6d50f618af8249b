#!lua flags=allow-oom
--[[
  The buffer's meta hash, created when missing. Its `epoch` names the cache's data: a cache that
  lost its data (a new node, a failover to an empty replica, FLUSHALL) has no meta hash, so the
  next writer or drainer creates one with a new epoch, and the drainer, comparing it with the
  epoch the database last saw, knows that data was lost (G1, G2). `since` is the stream id the
  epoch began at: every version of the epoch is at least that.

  KEYS[1]  the meta hash
  ARGV[1]  a fresh epoch id, used only when the hash is missing

  Returns the hash's fields and values (HGETALL).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'since', t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '-0')
end
return redis.call('HGETALL', KEYS[1])
