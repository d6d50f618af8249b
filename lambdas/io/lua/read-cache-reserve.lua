#!lua
--[[
  Reserve a row's place in the read cache before its database row is fetched (G4). The place
  carries a generation, created here and kept until the place goes (settled, evicted, dropped):
  a fill (`read-cache-fill.lua`) with that generation proves that no change to the row was
  settled since the reservation, so that the fetched row is not older than the database's.
  Declared without allow-oom: a cache never takes the memory writes need, so at maxmemory this
  script is refused and the read goes on without the cache.

  KEYS[1]  the read cache (hash: field -> '<generation>|<cachedAt ms>|<stored row JSON>')
  KEYS[2]  its age index (sorted set: field -> cachedAt ms, eviction order)
  KEYS[3]  its byte counter (what the entries cost Redis, estimated)

  ARGV[1]  the row's field ('<table>:<rowKey>')
  ARGV[2]  a fresh generation, used only when the row has no place yet
  ARGV[3]  now, in ms (the reader's clock)
  ARGV[4]  the cache's byte limit
  ARGV[5]  how long an entry may be kept, in ms (the stale window); also the keys' TTL

  A place without a row is '<generation>||'. Returns the row's generation.
]]
-- What an entry costs Redis (estimated, like a changeset's charge): its field twice (hash and
-- age index), its value with the allocator's size classes, and the entries' overhead.
local function charge(f, v) return 2 * #f + math.ceil(#v * 1.25) + 128 end
local field, now, limit, keep = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])

local function forget(f)
  local value = redis.call('HGET', KEYS[1], f)
  if value then
    redis.call('HDEL', KEYS[1], f)
    redis.call('DECRBY', KEYS[3], charge(f, value))
  end
  redis.call('ZREM', KEYS[2], f)
end

local value = redis.call('HGET', KEYS[1], field)
if value then
  return string.match(value, '^[^|]*')
end
value = ARGV[2] .. '||'
redis.call('HSET', KEYS[1], field, value)
redis.call('ZADD', KEYS[2], now, field)
redis.call('INCRBY', KEYS[3], charge(field, value))

-- Bounded: entries past the stale window go (a few per call), then the oldest while over the limit.
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - keep, 'LIMIT', 0, 16)) do
  forget(old)
end
while tonumber(redis.call('GET', KEYS[3]) or '0') > limit do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest then redis.call('SET', KEYS[3], 0) break end
  forget(oldest)
end
for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], keep) end
return ARGV[2]
