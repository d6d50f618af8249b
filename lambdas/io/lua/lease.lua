--[[
  Renew or release the drain lease, only if this drainer still holds it.

  KEYS[1]  the lease key (value: fencing token)
  ARGV[1]  'renew' | 'release'
  ARGV[2]  this drainer's token
  ARGV[3]  lease length in ms (renew)

  Returns 1 when this drainer held the lease, 0 otherwise.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
