"""The Lua scripts the adapter runs on the server, each one atomic.

Every script reads the server's clock (``TIME``), so due times and idle times are the
server's and a client's clock skew cannot deliver anything early. Keys of one destination
share the hash tag ``{destination}`` with the stream key ``destination`` (whose whole
name is its own tag), so they live in one slot.

Keys, for destination ``D`` and group ``G``:

* ``D``: the stream;
* ``{D}:delayed``: a stream of messages sent with a delay, and ``{D}:delayed:due`` a
  sorted set of their entry ids scored by due time (milliseconds);
* ``{D}:parked:G``: a sorted set of entry ids of ``G``'s pending-entries list that are
  parked (nacked, or extended), scored by the time they become deliverable again;
* ``{D}:dedup`` (sorted set of dedup ids by expiry) and ``{D}:dedup:ids`` (hash of dedup
  id to the message id the first send returned).
"""

from __future__ import annotations

PARKED_CONSUMER = "messaging:parked"
"""The consumer that owns parked entries: no member's visibility timeout applies to them,
only their due time in ``{D}:parked:G``."""

_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

ADD_MANY = """
-- Plain entries of one batch, an XADD each, in one call: for small messages the
-- client's cost of one command per entry is most of the send (_streams.py,
-- SCRIPTED_BODY_BYTES).
-- KEYS: stream
-- ARGV: number of trim arguments, trim arguments..., then per entry: its number of
--       field arguments, its fields (name, value, ...)
-- Returns per entry its id, false when there is no stream (NOMKSTREAM), or the error of
-- its XADD (each entry is added or refused on its own, as in a pipeline).
local ntrim = tonumber(ARGV[1])
local args = {'XADD', KEYS[1], 'NOMKSTREAM'}
for i = 1, ntrim do args[#args + 1] = ARGV[1 + i] end
args[#args + 1] = '*'
local base = #args
local out = {}
local i = 2 + ntrim
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  for j = 1, count do args[base + j] = ARGV[i + j] end
  out[#out + 1] = redis.pcall(unpack(args, 1, base + count))
  i = i + count + 1
end
return out
"""

SEND = _NOW + """
-- A send with a delay and/or a dedup id.
-- KEYS: stream, delayed stream, delayed due, dedup zset, dedup ids
-- ARGV: delay ms (0: none), dedup id ('': none), dedup window ms, message id of a delayed
--       message, number of trim arguments, trim arguments..., field, value, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, ''} end
local dedup = ARGV[2]
if dedup ~= '' then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
  if #expired > 0 then
    redis.call('ZREM', KEYS[4], unpack(expired))
    redis.call('HDEL', KEYS[5], unpack(expired))
  end
  local until_ms = redis.call('ZSCORE', KEYS[4], dedup)
  if until_ms and tonumber(until_ms) > now then
    return {2, redis.call('HGET', KEYS[5], dedup)}
  end
end
local ntrim = tonumber(ARGV[5])
local delay = tonumber(ARGV[1])
local args
local id
if delay > 0 then
  args = {'XADD', KEYS[2], '*'}
else
  args = {'XADD', KEYS[1]}
  for i = 1, ntrim do args[#args + 1] = ARGV[5 + i] end
  args[#args + 1] = '*'
end
for i = 6 + ntrim, #ARGV do args[#args + 1] = ARGV[i] end
local entry = redis.call(unpack(args))
if delay > 0 then
  redis.call('ZADD', KEYS[3], now + delay, entry)
  id = ARGV[4]
else
  id = entry
end
if dedup ~= '' then
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), dedup)
  redis.call('HSET', KEYS[5], dedup, id)
end
return {1, id}
"""

COLLECT = _NOW + """
-- What a member does besides reading new entries: promote due delayed messages into the
-- stream, claim parked entries that are due, and claim entries whose holder let its
-- visibility timeout pass (the holder's own, from the "~v<ms>" end of its consumer name).
-- Consumers with nothing pending and idle for long are removed (XREADGROUP recreates a
-- consumer that comes back, so nothing is lost).
-- KEYS: stream, parked zset of the group, delayed stream, delayed due
-- ARGV: group, consumer, count, default idle ms, parked consumer, sweep idle ms,
--       number of trim arguments, trim arguments...
-- Returns {{{id, {field, value, ...}, delivery count}, ...}, next due ms or -1, now ms}
local group, me, parked_name = ARGV[1], ARGV[2], ARGV[5]
local count = tonumber(ARGV[3])
local default_idle = tonumber(ARGV[4])
local sweep_idle = tonumber(ARGV[6])
local ntrim = tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 then
  return redis.error_reply("NOGROUP No such key '" .. KEYS[1] .. "' or consumer group '"
    .. group .. "'")
end

-- Due ids in stream order: ids of one batch share a due time (a delay, a give-back), and
-- a sorted set orders equal scores as strings ('1-10' before '1-2').
local function earlier(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-(%d+)$')
  if a_ms ~= b_ms then return tonumber(a_ms) < tonumber(b_ms) end
  return tonumber(a_seq) < tonumber(b_seq)
end

local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
table.sort(due, earlier)
for _, id in ipairs(due) do
  local found = redis.call('XRANGE', KEYS[3], id, id)
  if #found > 0 then
    local args = {'XADD', KEYS[1]}
    for i = 1, ntrim do args[#args + 1] = ARGV[7 + i] end
    args[#args + 1] = '*'
    for _, part in ipairs(found[1][2]) do args[#args + 1] = part end
    redis.call(unpack(args))
    redis.call('XDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[4], id)
end

local out = {}
local function claim(ids, min_idle)
  local got = redis.call('XCLAIM', KEYS[1], group, me, min_idle, unpack(ids))
  for _, entry in ipairs(got) do
    if entry then
      local pending = redis.call('XPENDING', KEYS[1], group, entry[1], entry[1], 1)
      out[#out + 1] = {entry[1], entry[2], pending[1][4]}
    end
  end
end

local parked = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, count)
if #parked > 0 then
  redis.call('ZREM', KEYS[2], unpack(parked))
  table.sort(parked, earlier)
  claim(parked, 0)
end

for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], group)) do
  local info = {}
  for i = 1, #consumer, 2 do info[consumer[i]] = consumer[i + 1] end
  local name = info['name']
  if name ~= parked_name then
    if info['pending'] > 0 then
      if #out < count then
        local idle = tonumber(string.match(name, '~v(%d+)$')) or default_idle
        local stale = redis.call('XPENDING', KEYS[1], group, 'IDLE', idle, '-', '+',
                                 count - #out, name)
        if #stale > 0 then
          local ids = {}
          for i, entry in ipairs(stale) do ids[i] = entry[1] end
          claim(ids, idle)
        end
      end
    elseif name ~= me and info['idle'] >= sweep_idle then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], group, name)
    end
  end
end

local next_due = -1
for _, key in ipairs({KEYS[2], KEYS[4]}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if #first > 0 and (next_due < 0 or tonumber(first[2]) < next_due) then
    next_due = tonumber(first[2])
  end
end
return {out, next_due, now}
"""

PARK = _NOW + """
-- Nack (with or without delay) and extend: give the entries to the parked consumer until
-- their due time, if the delivery is still the one the caller received (same delivery
-- count); a settlement of a delivery that was reclaimed meanwhile is moot. With ARGV[4]
-- '1' the entries were read ahead and never handed out: their delivery count goes back
-- by one, so the delivery that follows carries the attempt this one would have; and a
-- stream or group deleted meanwhile took them along, so there is nothing to give back
-- (as when a member leaves, LEAVE below).
-- KEYS: stream, parked zset of the group
-- ARGV: group, parked consumer, delay ms, unread ('1' or '0'), id, delivery count, ...
-- Returns the ids of the entries parked.
local due = now + tonumber(ARGV[3])
local unread = ARGV[4] == '1'
if unread then
  if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
  local probe = redis.pcall('XPENDING', KEYS[1], ARGV[1])
  if probe['err'] then
    if string.sub(probe['err'], 1, 7) == 'NOGROUP' then return {} end
    return probe
  end
end
local parked = {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending > 0 and pending[1][4] == count then
    if unread then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', count - 1,
                 'JUSTID')
    else
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'JUSTID')
    end
    redis.call('ZADD', KEYS[2], due, id)
    parked[#parked + 1] = id
  end
end
return parked
"""

LEAVE = """
-- Remove the consumer from its group if it holds nothing (its name would otherwise stay
-- listed forever); a consumer still holding entries stays, so they can be reclaimed.
-- KEYS: stream. ARGV: group, consumer. Returns 1 when removed.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if pending['err'] then
  if string.sub(pending['err'], 1, 7) == 'NOGROUP' then return 0 end
  return pending
end
if #pending > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

CREATE = """
-- Create the stream (when ARGV[1] is '1') and the groups, at the stream's end; both
-- idempotent. KEYS: stream. ARGV: make stream ('1' or '0'), group, group, ...
-- Returns 0 when the stream does not exist and was not to be made, else 1.
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then
  if ARGV[1] ~= '1' then return 0 end
  redis.call('XGROUP', 'CREATE', KEYS[1], 'messaging:init', '$', 'MKSTREAM')
  redis.call('XGROUP', 'DESTROY', KEYS[1], 'messaging:init')
elseif kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE the key ' .. KEYS[1] .. ' holds a ' .. kind
    .. ', not a stream')
end
for i = 2, #ARGV do
  local made = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[i], '$')
  if type(made) == 'table' and made['err'] and string.sub(made['err'], 1, 9) ~= 'BUSYGROUP' then
    return made
  end
end
return 1
"""

DELETE = """
-- Delete the stream, its groups' parked sets, delayed messages and dedup records.
-- KEYS: stream, delayed stream, delayed due, dedup zset, dedup ids.
-- ARGV: prefix of the parked sets ('{D}:parked:').
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'stream' then
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    redis.call('DEL', ARGV[1] .. group[2])
  end
  redis.call('DEL', KEYS[1])
elseif kind ~= 'none' then
  return redis.error_reply('WRONGTYPE the key ' .. KEYS[1] .. ' holds a ' .. kind
    .. ', not a stream')
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
return 1
"""

DEPTH = """
-- Entries the group has not acked: pending (in flight and parked) plus not yet read,
-- plus delayed messages not yet in the stream. -1: no stream; -2: no such group.
-- KEYS: stream, delayed due. ARGV: group.
if redis.call('TYPE', KEYS[1])['ok'] ~= 'stream' then return -1 end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
  if info['name'] == ARGV[1] then
    local lag = info['lag']
    if not lag then
      -- Redis cannot tell the lag after a seek or a deletion inside the range: count.
      lag = 0
      local start = '(' .. info['last-delivered-id']
      while true do
        local batch = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', 1000)
        lag = lag + #batch
        if #batch < 1000 then break end
        start = '(' .. batch[#batch][1]
      end
    end
    return info['pending'] + lag + redis.call('ZCARD', KEYS[2])
  end
end
return -2
"""
