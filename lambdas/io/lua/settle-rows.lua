#!lua flags=allow-oom
--[[
  Settle the rows of committed (or dead-lettered) changesets, each row whole and in this order
  (G4): take it out of the read cache, so that a reader sees either its layers or the
  database's new row, never a cached row older than it, and a fill begun before
  (`read-cache-place.lua` fill) is refused; remove the settled changesets' layers from its
  overlay; and once nothing is pending for it (its overlay is gone), take it out of the parent
  indexes its changes named. The drainer calls it in bounded chunks of rows, then takes the
  changesets off the backlog (`ack.lua`). Allowed when Redis is out of memory, like everything a
  drain needs (G5); it only frees memory.

  KEYS[1..3]  the read cache, its age index, its byte counter (as `read-cache-place.lua`)
  then per row: its overlay hash, then the p parent indexes it names (hashes, or sets written
           before they were hashes)
  ARGV     groups of rows that name as many parent indexes: p, the group's row count, then per
           row: its read cache field ('<table>:<rowKey>'), the stream ids of its layers that
           go (joined by ','), then, when p > 0, its row key (the parent indexes' field or
           member). Rows are grouped so that the usual row costs three strings (its key and
           two arguments), which is most of what a call costs Redis and the drainer.

  Returns the number of read cache places removed.
]]
-- What a cache entry costs Redis (estimated, like a changeset's charge): its field twice (hash
-- and age index), its value with the allocator's size classes, and the entries' overhead; the
-- same formula as `read-cache-place.lua`'s, which charges them.
local function charge(f, v) return 2 * #f + math.ceil(#v * 1.25) + 128 end
local cached = redis.call('EXISTS', KEYS[1]) == 1
local sets = {}
local removed, bytes = 0, 0
local k, a = 4, 1
while a <= #ARGV do
  local p, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  for _ = 1, n do
    local field, ids = ARGV[a], ARGV[a + 1]
    a = a + 2
    if cached then
      local value = redis.call('HGET', KEYS[1], field)
      if value then
        redis.call('HDEL', KEYS[1], field)
        redis.call('ZREM', KEYS[2], field)
        removed = removed + 1
        bytes = bytes + charge(field, value)
      end
    end
    local overlay = KEYS[k]
    if string.find(ids, ',', 1, true) then
      for id in string.gmatch(ids, '[^,]+') do redis.call('HDEL', overlay, id) end
    else
      redis.call('HDEL', overlay, ids)
    end
    if p > 0 then
      local member = ARGV[a]
      a = a + 1
      if redis.call('EXISTS', overlay) == 0 then
        for i = k + 1, k + p do
          local index = KEYS[i]
          if sets[index] == nil then sets[index] = redis.call('TYPE', index).ok == 'set' end
          if sets[index] then
            redis.call('SREM', index, member)
          else
            redis.call('HDEL', index, member)
          end
        end
      end
    end
    k = k + 1 + p
  end
end
if bytes > 0 and redis.call('DECRBY', KEYS[3], bytes) < 0 then redis.call('SET', KEYS[3], 0) end
return removed
