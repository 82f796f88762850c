"""The Lua scripts behind :class:`~wslab.reference.broker.RedisBroker`'s names and presence lists.

Redis runs a script atomically, so each is a step no other worker can interleave with: claiming a name,
giving it back, refreshing a worker's users, sweeping out the users of a worker that died. Times come
from Redis's own clock (``TIME``), so the workers' clocks need not agree.

Every change to a presence list takes the next number of one counter and is published *by the script*
as ``origin\\njoin|leave\\nroom\\nuser\\nnumber``. Redis delivers what it publishes in the order it runs
the scripts, so a worker sees the changes in number order, and a list a script returns (with the number
it was read at) tells the worker which changes it already includes.

Keys, in this order (see ``RedisBroker._keys``):

- ``KEYS[1]`` *expiry*, a sorted set of one room: user → when the entry expires (ms), unless refreshed;
- ``KEYS[2]`` *joined*, a sorted set: user → when they joined (ms), which orders the presence list;
- ``KEYS[3]`` *owner*, a hash: user → the connection holding the name, ``"<worker id>/<n>"``;
- ``KEYS[4]`` the set of room names with presence entries, for the sweepers;
- ``KEYS[5]`` the counter that numbers the changes.
"""

from __future__ import annotations

__all__ = ["CLAIM", "REFRESH", "RELEASE", "SWEEP"]

_COMMON = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function changed(channel, origin, kind, room, user)
  local number = redis.call('INCR', KEYS[5])
  redis.call('PUBLISH', channel, origin .. '\\n' .. kind .. '\\n' .. room .. '\\n' .. user .. '\\n' .. number)
  return number
end
local function current()
  return tonumber(redis.call('GET', KEYS[5]) or '0')
end
"""

CLAIM = _COMMON + """
-- ARGV: user, owner, ttl (ms), room, this worker's owner prefix, channel, origin.
-- Returns {granted 0/1, number, users}. A live entry held by another worker refuses the name. One held
-- by this worker is stale (the caller checked that nobody here holds it): its release is on its way.
local user, owner, prefix = ARGV[1], ARGV[2], ARGV[5]
local expires = redis.call('ZSCORE', KEYS[1], user)
if expires and tonumber(expires) > now then
  local holder = redis.call('HGET', KEYS[3], user) or ''
  if holder ~= owner and string.sub(holder, 1, #prefix) ~= prefix then
    return {0, current(), redis.call('ZRANGE', KEYS[2], 0, -1)}
  end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), user)
redis.call('ZADD', KEYS[2], now, user)
redis.call('HSET', KEYS[3], user, owner)
redis.call('SADD', KEYS[4], ARGV[4])
local number = changed(ARGV[6], ARGV[7], 'join', ARGV[4], user)
return {1, number, redis.call('ZRANGE', KEYS[2], 0, -1)}
"""

RELEASE = _COMMON + """
-- ARGV: user, owner, channel, origin, room. Only the connection holding the name frees it (a newer
-- connection may have taken it over). Returns the change's number, or 0 if there was nothing to free.
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return changed(ARGV[3], ARGV[4], 'leave', ARGV[5], ARGV[1])
"""

REFRESH = _COMMON + """
-- ARGV: ttl (ms), room, this worker's owner prefix, channel, origin, then user, owner pairs: this
-- worker's users in the room. Pushes their expiry on and puts back any entry that went missing (Redis
-- restarted, or this worker was too slow); returns {conflicts, number, users}: the users whose name a
-- live connection on another worker holds (let in there while Redis was away), and the room's list.
local ttl, room, prefix, conflicts = tonumber(ARGV[1]), ARGV[2], ARGV[3], {}
for i = 6, #ARGV, 2 do
  local user, owner = ARGV[i], ARGV[i + 1]
  local holder = redis.call('HGET', KEYS[3], user)
  local expires = redis.call('ZSCORE', KEYS[1], user)
  if holder and holder ~= owner and string.sub(holder, 1, #prefix) ~= prefix
      and expires and tonumber(expires) > now then
    table.insert(conflicts, user)
  else
    redis.call('ZADD', KEYS[1], now + ttl, user)
    redis.call('HSET', KEYS[3], user, owner)
    if redis.call('ZADD', KEYS[2], 'NX', now, user) == 1 then
      changed(ARGV[4], ARGV[5], 'join', room, user)
    end
  end
end
redis.call('SADD', KEYS[4], room)
return {conflicts, current(), redis.call('ZRANGE', KEYS[2], 0, -1)}
"""

SWEEP = _COMMON + """
-- ARGV: room, channel. Removes the entries nobody refreshed in time and announces each: whichever
-- worker's sweep removes an entry is the only one to announce it.
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, user in ipairs(gone) do
  redis.call('ZREM', KEYS[1], user)
  redis.call('ZREM', KEYS[2], user)
  redis.call('HDEL', KEYS[3], user)
  changed(ARGV[2], '-', 'leave', ARGV[1], user)
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
return #gone
"""
