#!lua flags=allow-oom
--[[
  The circuit breaker every drainer shares (G7). Time comes from the Redis server, so drainers
  on different clocks agree. Allowed when Redis is out of memory, like everything a drain needs.

  KEYS[1]  the breaker hash: state, failures, opens, openUntil (ms), since (ms: first opening
           of this run of failures, for health)
  ARGV[1]  'check' | 'success' | 'failure'
  ARGV[2]  consecutive failures that open the breaker
  ARGV[3]  first cool-down (ms); it doubles with each re-opening
  ARGV[4]  longest cool-down (ms)

  Returns { state, failures, ms until a trial is allowed (0 unless open) }.
  'check' on an open breaker whose cool-down has passed moves it to 'half-open': one trial batch.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local opens = tonumber(redis.call('HGET', KEYS[1], 'opens') or '0')
local openUntil = tonumber(redis.call('HGET', KEYS[1], 'openUntil') or '0')
local action = ARGV[1]

if action == 'success' then
  redis.call('DEL', KEYS[1])
  return { 'closed', 0, 0 }
end

if action == 'failure' then
  failures = failures + 1
  if state == 'half-open' or failures >= tonumber(ARGV[2]) then
    if opens == 0 then redis.call('HSET', KEYS[1], 'since', now) end
    opens = opens + 1
    local cooldown = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * math.pow(2, opens - 1))
    state = 'open'
    openUntil = now + cooldown
  end
  redis.call('HSET', KEYS[1], 'state', state, 'failures', failures, 'opens', opens, 'openUntil', openUntil)
end

if state == 'open' and now >= openUntil and action == 'check' then
  state = 'half-open'
  redis.call('HSET', KEYS[1], 'state', state)
end

local wait = 0
if state == 'open' then wait = openUntil - now end
return { state, failures, wait }
