#!lua flags=allow-oom
--[[
  Create the drainers' consumer group on the backlog stream (and the stream, when missing), also
  when Redis is out of memory: the first drain after a long outage may find a full cache and no
  group yet (G5).

  KEYS[1]  the backlog stream (`{p}:log`)
  ARGV[1]  consumer group

  Returns 1 when it created the group, 0 when it existed.
]]
local reply = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(reply) == 'table' and reply.err then
  if string.find(reply.err, 'BUSYGROUP', 1, true) then return 0 end
  return reply
end
return 1
