--[[
  Settle changesets the database has committed, or move them to the dead-letter store (G1, G4).

  KEYS[1]  the log stream
  KEYS[2]  the backlog counter
  KEYS[3]  the dead-letter hash (id -> JSON)
  KEYS[4]  the dead-letter index (sorted set, all scores 0, members ordered by original version)
  KEYS[5..] overlay hashes touched by these changesets

  ARGV[1]  consumer group
  ARGV[2]  number m of changesets
  then m pairs: stream id, number of changes it holds
  then d, the number of dead letters (0 for a commit), and d triples: id, index member, JSON
  then, per overlay key in order: the stream id that last wrote it in these changesets

  Only changesets still in the log are taken off the backlog counter, so a stale drainer settling
  what a newer one already settled changes nothing.
  An overlay entry is cleared only when no newer write arrived meanwhile (its _seq is unchanged).
  Returns the number of overlay entries cleared.
]]
local m = tonumber(ARGV[2])
local settled = 0
local a = 3
for i = 1, m do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[a])
  if redis.call('XDEL', KEYS[1], ARGV[a]) == 1 then
    settled = settled + tonumber(ARGV[a + 1])
  end
  a = a + 2
end

if settled > 0 then
  local left = redis.call('DECRBY', KEYS[2], settled)
  if left < 0 then redis.call('SET', KEYS[2], 0) end
end

local d = tonumber(ARGV[a])
a = a + 1
for i = 1, d do
  redis.call('HSET', KEYS[3], ARGV[a], ARGV[a + 2])
  redis.call('ZADD', KEYS[4], 0, ARGV[a + 1])
  a = a + 3
end

local cleared = 0
for k = 5, #KEYS do
  if redis.call('HGET', KEYS[k], '_seq') == ARGV[a] then
    redis.call('DEL', KEYS[k])
    cleared = cleared + 1
  end
  a = a + 1
end
return cleared
