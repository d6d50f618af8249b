#!lua
--[[
  Store a row fetched from the database in its reserved place of the read cache (G4), only if
  the place still carries the reader's generation: a place that went (a change to the row was
  settled since the reservation: `read-cache-invalidate.lua`; evicted; dropped) refuses the
  fill, so that the cache never holds a row older than what the database holds. Declared
  without allow-oom, like `read-cache-reserve.lua`.

  KEYS[1..3]  the read cache, its age index, its byte counter (as `read-cache-reserve.lua`)

  ARGV[1]  the row's field ('<table>:<rowKey>')
  ARGV[2]  the generation the reader reserved
  ARGV[3]  when the row was fetched, in ms (taken before the query: the row is at least this fresh)
  ARGV[4]  the stored row (JSON, opaque here)
  ARGV[5]  the cache's byte limit
  ARGV[6]  how long an entry may be kept, in ms (the stale window); also the keys' TTL

  Returns 1 when the row was stored, 0 when the fill was refused.
]]
-- What an entry costs Redis (estimated, like a changeset's charge): its field twice (hash and
-- age index), its value with the allocator's size classes, and the entries' overhead.
local function charge(f, v) return 2 * #f + math.ceil(#v * 1.25) + 128 end
local field, at, limit, keep = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5]), tonumber(ARGV[6])

local function forget(f)
  local value = redis.call('HGET', KEYS[1], f)
  if value then
    redis.call('HDEL', KEYS[1], f)
    redis.call('DECRBY', KEYS[3], charge(f, value))
  end
  redis.call('ZREM', KEYS[2], f)
end

local before = redis.call('HGET', KEYS[1], field)
if not before or string.match(before, '^[^|]*') ~= ARGV[2] then return 0 end
local value = ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4]
redis.call('HSET', KEYS[1], field, value)
redis.call('ZADD', KEYS[2], at, field)
redis.call('INCRBY', KEYS[3], charge(field, value) - charge(field, before))

-- Bounded: entries past the stale window go (a few per call), then the oldest while over the limit.
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', at - keep, 'LIMIT', 0, 16)) do
  forget(old)
end
while tonumber(redis.call('GET', KEYS[3]) or '0') > limit do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then redis.call('SET', KEYS[3], 0) break end
  forget(oldest)
end
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], keep) end
return 1
