#!lua flags=allow-oom
--[[
  The drain lease (one drainer at a time) and its fencing tokens. Allowed when Redis is out of
  memory, so that a full cache can always be drained (G5).

  KEYS[1]  the lease key (value: the holder's fencing token)
  KEYS[2]  the fencing-token counter
  ARGV[1]  'acquire' | 'renew' | 'release' | 'advance'
  ARGV[2]  lease length in ms (acquire, renew, advance)
  ARGV[3]  this drainer's token (renew, release, advance)
  ARGV[4]  advance: a token the database has already seen

  acquire: a new token, or false when another drainer holds the lease.
  renew, release: 1 when this drainer held the lease, 0 otherwise.
  advance: when the cache lost its counter (failover to an empty node, restore, FLUSHALL), the
    database holds a larger token than the counter hands out and would fence every drain. The
    holder of the lease moves the counter past the database's token and takes the lease with the
    new token, which it returns; false when it no longer holds the lease. A stale drainer cannot
    do this, because it no longer holds the lease.
]]
local action = ARGV[1]
if action == 'acquire' then
  local token = redis.call('INCR', KEYS[2])
  if redis.call('SET', KEYS[1], token, 'PX', ARGV[2], 'NX') then return token end
  return false
end
if redis.call('GET', KEYS[1]) ~= ARGV[3] then
  if action == 'advance' then return false end
  return 0
end
if action == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif action == 'release' then
  redis.call('DEL', KEYS[1])
else
  local token = redis.call('INCR', KEYS[2])
  local seen = tonumber(ARGV[4])
  if token <= seen then
    token = seen + 1
    redis.call('SET', KEYS[2], token)
  end
  redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
  return token
end
return 1
