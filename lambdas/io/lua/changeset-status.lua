#!lua flags=no-writes
--[[
  Where changesets stand, in one atomic look (`RedisBuffer.changesetStatus`). A read command:
  it answers when Redis is out of memory, and on a replica.

  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the buffer's meta hash
  KEYS[3]  the dead-letter index

  ARGV     per changeset: its version (a stream id), then its version zero-padded as in the
           dead-letter index's members

  Returns { the epoch's `since` or '', the stream's last generated id or '0-0', then per
  changeset: 1 while the backlog holds it (else 0), and its dead-letter index member or '' }.
]]
local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
local reply = { redis.call('HGET', KEYS[2], 'since') or '', last }
for i = 1, #ARGV, 2 do
  reply[#reply + 1] = #redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i], 'COUNT', 1)
  local dead = redis.call('ZRANGEBYLEX', KEYS[3], '[' .. ARGV[i + 1] .. ':', '[' .. ARGV[i + 1] .. ';', 'LIMIT', 0, 1)
  reply[#reply + 1] = dead[1] or ''
end
return reply
