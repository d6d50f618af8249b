#!lua flags=no-writes
--[[
  What the tombstone floor is computed from, in one atomic look, so that a replay cannot slip
  between the looks (`RedisBuffer.tombstoneFloor`). A read command: it answers when Redis is
  out of memory.

  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the dead-letter index
  KEYS[3]  the buffer's meta hash

  Returns { the backlog's length, the oldest dead letter's index member or '', the server's
  time (seconds), its microseconds, the epoch's version offset or '' }.
]]
local first = redis.call('ZRANGEBYLEX', KEYS[2], '-', '+', 'LIMIT', 0, 1)[1] or ''
local t = redis.call('TIME')
return { redis.call('XLEN', KEYS[1]), first, t[1], t[2], redis.call('HGET', KEYS[3], 'offset') or '' }
