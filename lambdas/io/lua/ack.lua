#!lua flags=allow-oom
--[[
  Settle changesets the database has committed, or file them as dead letters (G1, G4). Allowed
  when Redis is out of memory: settling is what frees memory, so it must never be refused (G5).
  The drainer calls it in bounded chunks: first chunks that only clear overlay layers, then one
  that takes the changesets off the backlog. A crash between chunks leaves changesets that are
  committed but still pending: they are redelivered, and their row versions make that harmless.

  KEYS[1]  the backlog stream (`{p}:log`)
  KEYS[2]  the backlog change counter (changes)
  KEYS[3]  the backlog byte counter
  KEYS[4]  the dead-letter hash (id -> JSON)
  KEYS[5]  the dead-letter index (sorted set, all scores 0, members ordered by original version)
  KEYS[6..] overlay hashes whose layers go

  ARGV[1]  consumer group
  ARGV[2]  number m of changesets to take off the backlog
  then m triples: stream id, changes it holds, its charge in bytes
  then d, the number of dead letters (0 for a commit), and d triples: id, index member, JSON
  then, per overlay key in order: the stream id of the layer to remove

  Only changesets still in the backlog stream are taken off the counters, so a stale drainer settling what a
  newer one already settled changes nothing.
  Returns the number of changesets taken off the backlog.
]]
local m = tonumber(ARGV[2])
local settled, changes, bytes = 0, 0, 0
local a = 3
for i = 1, m do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[a])
  if redis.call('XDEL', KEYS[1], ARGV[a]) == 1 then
    settled = settled + 1
    changes = changes + tonumber(ARGV[a + 1])
    bytes = bytes + tonumber(ARGV[a + 2])
  end
  a = a + 3
end

local function take(counter, amount)
  if amount > 0 and redis.call('DECRBY', counter, amount) < 0 then redis.call('SET', counter, 0) end
end
take(KEYS[2], changes)
take(KEYS[3], bytes)

local d = tonumber(ARGV[a])
a = a + 1
for i = 1, d do
  redis.call('HSET', KEYS[4], ARGV[a], ARGV[a + 2])
  redis.call('ZADD', KEYS[5], 0, ARGV[a + 1])
  a = a + 3
end

for k = 6, #KEYS do
  redis.call('HDEL', KEYS[k], ARGV[a])
  a = a + 1
end
return settled
