#!lua flags=allow-oom
--[[
  Drop the whole read cache, to give its memory to writes (G5): `write` calls it when Redis
  refuses a changeset for lack of memory, then tries once more. Allowed when Redis is out of
  memory. DEL, not UNLINK: the memory must be free when the write is tried again. Every fill
  begun before is refused afterwards (its place is gone).

  KEYS[1..3]  the read cache, its age index, its byte counter (as `read-cache-place.lua`)

  Returns the number of places dropped.
]]
local dropped = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return dropped
