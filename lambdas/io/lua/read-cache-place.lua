#!lua
--[[
  A row's place in the read cache (G4), in two steps around the database query:

  reserve  before the row is fetched: the place is made with a fresh generation, kept until the
           place goes (settled: `settle-rows.lua`; evicted; dropped). Returns the
           place's generation (the existing one when the place is already there).
  fill     after: the fetched row is stored only if the place still carries the generation the
           reader reserved, which proves that no change to the row was settled in between, so the
           cache never holds a row older than what the database holds. Returns 1 when stored, 0
           when refused.

  Declared without allow-oom: a cache never takes the memory writes need, so at maxmemory this
  script is refused and the read goes on without the cache.

  KEYS[1]  the read cache (hash: field -> '<generation>|<cachedAt ms>|<stored row JSON>'; a place
           without a row is '<generation>||')
  KEYS[2]  its age index (sorted set: field -> cachedAt ms, eviction order)
  KEYS[3]  its byte counter (what the entries cost Redis, estimated)

  ARGV[1]  'reserve' or 'fill'
  ARGV[2]  the row's field ('<table>:<rowKey>')
  ARGV[3]  reserve: a fresh generation, used only when the row has no place yet;
           fill: the generation the reader reserved
  ARGV[4]  reserve: now, in ms (the reader's clock); fill: when the row was fetched, in ms
           (taken before the query: the row is at least this fresh)
  ARGV[5]  the cache's byte limit
  ARGV[6]  how long an entry may be kept, in ms (the stale window); also the keys' TTL
  ARGV[7]  fill only: the stored row (JSON, opaque here)
]]
-- What an entry costs Redis (estimated, like a changeset's charge): its field twice (hash and
-- age index), its value with the allocator's size classes, and the entries' overhead.
-- `settle-rows.lua` refunds by the same formula.
local function charge(f, v) return 2 * #f + math.ceil(#v * 1.25) + 128 end
local action, field, generation = ARGV[1], ARGV[2], ARGV[3]
local at, limit, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

local function forget(f)
  local value = redis.call('HGET', KEYS[1], f)
  if value then
    redis.call('HDEL', KEYS[1], f)
    redis.call('DECRBY', KEYS[3], charge(f, value))
  end
  redis.call('ZREM', KEYS[2], f)
end

-- Bounded: entries past the stale window go (a few per call), then the oldest while over the limit.
local function bound()
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', at - keep, 'LIMIT', 0, 16)) do
    forget(old)
  end
  while tonumber(redis.call('GET', KEYS[3]) or '0') > limit do
    local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not oldest then redis.call('SET', KEYS[3], 0) break end
    forget(oldest)
  end
  for k = 1, 3 do redis.call('PEXPIRE', KEYS[k], keep) end
end

local before = redis.call('HGET', KEYS[1], field)
if action == 'reserve' then
  if before then return string.match(before, '^[^|]*') end
  local value = generation .. '||'
  redis.call('HSET', KEYS[1], field, value)
  redis.call('ZADD', KEYS[2], at, field)
  redis.call('INCRBY', KEYS[3], charge(field, value))
  bound()
  return generation
elseif action == 'fill' then
  if not before or string.match(before, '^[^|]*') ~= generation then return 0 end
  local value = generation .. '|' .. ARGV[4] .. '|' .. ARGV[7]
  redis.call('HSET', KEYS[1], field, value)
  redis.call('ZADD', KEYS[2], at, field)
  redis.call('INCRBY', KEYS[3], charge(field, value) - charge(field, before))
  bound()
  return 1
end
return redis.error_reply('ERR read-cache-place: unknown action ' .. tostring(action))
