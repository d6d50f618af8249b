#!lua flags=allow-oom
--[[
  Take rows out of the read cache, places and generations included (G4): called after their
  changes were committed and before their overlay layers are removed, so that a reader sees
  either the layers or the database's new row, never a cached row older than it, and a fill
  begun before (`read-cache-place.lua` fill) is refused. Allowed when Redis is out of memory, like
  everything a drain needs (G5); it only frees memory.

  KEYS[1..3]  the read cache, its age index, its byte counter (as `read-cache-place.lua`)
  ARGV        the rows' fields ('<table>:<rowKey>')

  Returns the number of places removed.
]]
-- What an entry costs Redis (estimated, like a changeset's charge): its field twice (hash and
-- age index), its value with the allocator's size classes, and the entries' overhead; the
-- same formula as `read-cache-place.lua`'s, which charges them.
local function charge(f, v) return 2 * #f + math.ceil(#v * 1.25) + 128 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local removed, bytes = 0, 0
for _, field in ipairs(ARGV) do
  local value = redis.call('HGET', KEYS[1], field)
  if value then
    redis.call('HDEL', KEYS[1], field)
    redis.call('ZREM', KEYS[2], field)
    removed = removed + 1
    bytes = bytes + charge(field, value)
  end
end
if bytes > 0 and redis.call('DECRBY', KEYS[3], bytes) < 0 then redis.call('SET', KEYS[3], 0) end
return removed
