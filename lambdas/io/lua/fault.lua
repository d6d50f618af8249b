#!lua flags=allow-oom
--[[
  Record a systemic database fault that stopped the drain (G7), and hold the next drains back:
  the first wait is the breaker's cool-down, doubling with each stop up to its longest. Allowed
  when Redis is out of memory, like everything a drain needs (G5).

  KEYS[1]  the fault hash: message, sqlState, table, since (ISO-8601, first stop), attempts
  KEYS[2]  the hold key (exists, with a TTL, while drains wait)
  ARGV[1]  message, ARGV[2] SQLSTATE or '', ARGV[3] table or '', ARGV[4] now (ISO-8601)
  ARGV[5]  first wait (ms), ARGV[6] longest wait (ms)

  Returns { attempts, hold in ms }.
]]
redis.call('HSET', KEYS[1], 'message', ARGV[1], 'sqlState', ARGV[2], 'table', ARGV[3])
redis.call('HSETNX', KEYS[1], 'since', ARGV[4])
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
local hold = math.max(1, math.min(tonumber(ARGV[6]), tonumber(ARGV[5]) * math.pow(2, attempts - 1)))
redis.call('SET', KEYS[2], '1', 'PX', hold)
return { attempts, hold }
