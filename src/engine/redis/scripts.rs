//! The Lua scripts that make each Redis operation atomic. Redis runs a script to the end
//! before any other command, so "take the next id, store the event, announce it" and "leave
//! the room if this was the session's last node" each happen as one step, whatever the
//! other nodes do at the same time.
//!
//! Every script gets the key prefix as `ARGV[1]` and builds its keys from it. That is fine
//! for one Redis (or a primary with replicas); Redis Cluster wants every key declared in
//! `KEYS` and in one hash slot, which docs/SCALE.md discusses.
//!
//! Numbers that can exceed 14 digits (timestamps in µs) are passed and stored as strings:
//! Lua 5.1 prints larger numbers in exponent form.

/// The functions every script shares, prepended to each of them.
macro_rules! prelude {
    () => {
        r#"
local p = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Stores an event under the next id and announces it. `floor`: the highest id the caller
-- has seen, so ids continue above it even if Redis lost its counter. `tail`: the event's JSON
-- after `{"id":N,`. `room`: the room whose history index gets its id ('' for none).
local function append(floor, ts, kind, aud, tail, room, maxlen)
  local seq = p .. 'seq'
  if tonumber(redis.call('GET', seq) or '0') < floor then
    redis.call('SET', seq, floor)
  end
  local id = redis.call('INCR', seq)
  local sid = id .. '-0'
  local json = '{"id":' .. id .. ',' .. tail
  redis.call('XADD', p .. 'log', 'MAXLEN', '~', maxlen, sid, 't', ts, 'k', kind, 'a', aud, 'j', json)
  if room ~= '' then
    local min = id - maxlen
    if min < 1 then min = 1 end
    -- The room's history keeps only the id (a field is required; an empty one is the
    -- least): the event itself is kept once, in `log`, and HISTORY reads it from there.
    redis.call('XADD', p .. 'room:' .. room, 'MINID', '~', min .. '-0', sid, 'i', '')
    redis.call('ZADD', p .. 'room_last', id, room)
  end
  -- A room whose last message the log no longer keeps holds nothing the log keeps: drop its
  -- history (a few per append, so rooms nobody writes to any more do not pile up).
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', p .. 'room_last', '-inf', id - maxlen, 'LIMIT', 0, 8)) do
    redis.call('DEL', p .. 'room:' .. old)
    redis.call('ZREM', p .. 'room_last', old)
  end
  redis.call('PUBLISH', p .. 'events', id .. '\n' .. ts .. '\n' .. kind .. '\n' .. aud .. '\n' .. json)
  return id
end
-- A join or leave event, built here (the names are letters, digits, '_', '-', '.': JSON
-- needs no escaping beyond what cjson does).
local function presence_event(kind, room, nick, ts, floor, maxlen)
  local tail = '"ts":' .. ts .. ',"type":"' .. kind .. '","room":' .. cjson.encode(room) .. ',"nick":' .. cjson.encode(nick) .. '}'
  return append(floor, ts, kind, 'r:' .. room, tail, '', maxlen)
end
-- The session left its last node in the room: drop it from the room and say so once.
local function gone(room, sid, ts, floor, maxlen)
  local nick = redis.call('HGET', p .. 'pr:' .. room, sid)
  redis.call('HDEL', p .. 'pr:' .. room, sid)
  redis.call('SREM', p .. 'sr:' .. sid, room)
  if redis.call('HINCRBY', p .. 'rooms', room, -1) <= 0 then
    redis.call('HDEL', p .. 'rooms', room)
  end
  if nick then
    presence_event('leave', room, nick, ts, floor, maxlen)
  end
  return 1
end
-- A nick's look-alike keys, newline-separated (one, for a session made before they were).
local function keys_of(joined)
  local keys = {}
  for key in string.gmatch(joined or '', '[^\n]+') do keys[#keys + 1] = key end
  return keys
end
-- Frees the keys `joined` that session `id` holds.
local function release(id, joined)
  for _, key in ipairs(keys_of(joined)) do
    if redis.call('HGET', p .. 'nicks', key) == id then
      redis.call('HDEL', p .. 'nicks', key)
    end
  end
end
-- Ends a session: frees its nick and tells every node (channel `control`).
local function end_session(id, reason)
  local s = redis.call('HMGET', p .. 's:' .. id, 'nick', 'lower')
  if not s[1] then return false end
  redis.call('DEL', p .. 's:' .. id, p .. 'r:' .. id)
  redis.call('ZREM', p .. 'seen', id)
  release(id, s[2])
  redis.call('PUBLISH', p .. 'control', 'end ' .. id .. ' ' .. reason)
  return s[1]
end
-- The bytes a write of the budget was charged: its member is `MS:SEQ:BYTES` (0 for one
-- written as `MS:SEQ` by an older version).
local function charged(member)
  return tonumber(string.match(member, '^%d+:%d+:(%d+)$')) or 0
end
-- Charges one write of `bytes` to session `id`'s budget: at most `limit` writes and `budget`
-- bytes in any `window` ms. Returns 0 when taken; else the ms until the oldest writes of the
-- window leave enough room, and the half that is full ('events' or 'bytes'). `r:ID` holds the
-- window's writes scored by time, `rb:ID` the sum of their bytes; both expire together. A
-- refusal writes nothing. Taking it is activity (the idle clock restarts).
local function spend(id, now, limit, window, bytes, budget)
  local rk, bk = p .. 'r:' .. id, p .. 'rb:' .. id
  local since = '(' .. (now - window)
  local used = tonumber(redis.call('GET', bk) or '0')
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', rk, '-inf', now - window)) do
    used = used - charged(m)
  end
  if used < 0 then used = 0 end
  if redis.call('ZCOUNT', rk, since, '+inf') >= limit then
    local oldest = redis.call('ZRANGEBYSCORE', rk, since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    return math.max(1, tonumber(oldest[2]) + window - now), 'events'
  end
  if used + bytes > budget then
    local wait, left = window, used
    local kept = redis.call('ZRANGEBYSCORE', rk, since, '+inf', 'WITHSCORES')
    for i = 1, #kept, 2 do
      left = left - charged(kept[i])
      if left + bytes <= budget then
        wait = tonumber(kept[i + 1]) + window - now
        break
      end
    end
    return math.max(1, wait), 'bytes'
  end
  redis.call('ZREMRANGEBYSCORE', rk, '-inf', now - window)
  redis.call('ZADD', rk, now, now .. ':' .. redis.call('INCR', p .. 'rate_seq') .. ':' .. bytes)
  redis.call('PEXPIRE', rk, window)
  redis.call('SET', bk, used + bytes, 'PX', window)
  redis.call('ZADD', p .. 'seen', now, id)
  return 0
end
-- Whether session `id` is live; ends it (idle) if its last activity is `idle` ms old.
local function live(id, now, idle)
  local seen = redis.call('ZSCORE', p .. 'seen', id)
  if not seen then return false end
  if tonumber(seen) <= now - idle then
    end_session(id, 'idle')
    return false
  end
  return true
end
-- The live session other than `id` holding one of the keys `joined`, if any; a key whose
-- holder is not live is freed.
local function holder_of(joined, id, now, idle)
  for _, key in ipairs(keys_of(joined)) do
    local holder = redis.call('HGET', p .. 'nicks', key)
    if holder and holder ~= id then
      if live(holder, now, idle) then return holder end
      redis.call('HDEL', p .. 'nicks', key)
    end
  end
  return false
end
local function claim(id, joined)
  for _, key in ipairs(keys_of(joined)) do redis.call('HSET', p .. 'nicks', key, id) end
end
"#
    };
}

/// ARGV: prefix, floor, ts, kind, audience, tail, room, maxlen → the new id.
pub const APPEND: &str = concat!(
    prelude!(),
    r#"
return append(tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]))
"#
);

/// ARGV: prefix, id, nick, look-alike keys (newline-separated), max sessions, idle ms →
/// 'ok' | 'taken' | 'full' | 'dup'.
pub const SESSION_CREATE: &str = concat!(
    prelude!(),
    r#"
local id, nick, keys, max, idle = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
if holder_of(keys, id, now, idle) then return 'taken' end
if redis.call('ZCOUNT', p .. 'seen', '(' .. (now - idle), '+inf') >= max then return 'full' end
if redis.call('EXISTS', p .. 's:' .. id) == 1 then return 'dup' end
redis.call('HSET', p .. 's:' .. id, 'nick', nick, 'lower', keys)
claim(id, keys)
redis.call('ZADD', p .. 'seen', now, id)
return 'ok'
"#
);

/// ARGV: prefix, id, idle ms → the session's nick, or nil if it is not live.
pub const SESSION_GET: &str = concat!(
    prelude!(),
    r#"
if not live(ARGV[2], now_ms(), tonumber(ARGV[3])) then return false end
return redis.call('HGET', p .. 's:' .. ARGV[2], 'nick')
"#
);

/// ARGV: prefix, look-alike keys (newline-separated), idle ms → {id, nick} of the live
/// session holding a nick with one of them, or nil.
pub const SESSION_BY_NICK: &str = concat!(
    prelude!(),
    r#"
local holder = holder_of(ARGV[2], '', now_ms(), tonumber(ARGV[3]))
if not holder then return false end
return {holder, redis.call('HGET', p .. 's:' .. holder, 'nick')}
"#
);

/// ARGV: prefix, id, limit, window ms, idle ms, bytes, byte budget → {'ok'} | {'out'} |
/// {'wait', ms, 'events' | 'bytes'}.
pub const SESSION_SPEND: &str = concat!(
    prelude!(),
    r#"
local id, limit, window, idle = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
if not live(id, now, idle) then return {'out'} end
local wait, half = spend(id, now, limit, window, tonumber(ARGV[6]), tonumber(ARGV[7]))
if wait > 0 then return {'wait', tostring(wait), half} end
return {'ok'}
"#
);

/// ARGV: prefix, id, nick, look-alike keys (newline-separated), idle ms → {'ok', old nick} |
/// {'taken'} | {'out'}.
pub const SESSION_RENAME: &str = concat!(
    prelude!(),
    r#"
local id, nick, keys, idle = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local now = now_ms()
if not live(id, now, idle) then return {'out'} end
if holder_of(keys, id, now, idle) then return {'taken'} end
local old = redis.call('HMGET', p .. 's:' .. id, 'nick', 'lower')
release(id, old[2])
claim(id, keys)
redis.call('HSET', p .. 's:' .. id, 'nick', nick, 'lower', keys)
redis.call('ZADD', p .. 'seen', now, id)
for _, room in ipairs(redis.call('SMEMBERS', p .. 'sr:' .. id)) do
  if redis.call('HEXISTS', p .. 'pr:' .. room, id) == 1 then
    redis.call('HSET', p .. 'pr:' .. room, id, nick)
  end
end
return {'ok', old[1]}
"#
);

/// ARGV: prefix, id, reason → the nick of the session ended, or nil.
pub const SESSION_END: &str = concat!(
    prelude!(),
    r#"
return end_session(ARGV[2], ARGV[3])
"#
);

/// ARGV: prefix, idle ms, most to end → the ids ended (idle).
pub const SESSION_SWEEP: &str = concat!(
    prelude!(),
    r#"
local stale = redis.call('ZRANGEBYSCORE', p .. 'seen', '-inf', now_ms() - tonumber(ARGV[2]), 'LIMIT', 0, tonumber(ARGV[3]))
local ended = {}
for _, id in ipairs(stale) do
  if end_session(id, 'idle') then table.insert(ended, id) end
end
return ended
"#
);

/// ARGV: prefix, node, room, sid, nick, ts, floor, maxlen, max rooms, join budget, window ms
/// → 1 joined (a `join` was written), 0 already present through another node (or this one),
/// -1 past the session's room bound, -2 past its join budget.
pub const PRESENCE_JOIN: &str = concat!(
    prelude!(),
    r#"
local node, room, sid, nick, ts = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local floor, maxlen = tonumber(ARGV[7]), tonumber(ARGV[8])
local set = p .. 'pn:' .. room .. ':' .. sid
if redis.call('SISMEMBER', set, node) == 1 then return 0 end
if redis.call('SCARD', set) == 0 then
  if redis.call('SCARD', p .. 'sr:' .. sid) >= tonumber(ARGV[9]) then return -1 end
  local now = now_ms()
  local budget, window = tonumber(ARGV[10]), tonumber(ARGV[11])
  local jb = p .. 'jb:' .. sid
  local b = redis.call('HMGET', jb, 'tokens', 'at')
  local tokens = tonumber(b[1] or budget)
  local at = tonumber(b[2] or now)
  tokens = math.min(budget, tokens + (now - at) * budget / window)
  if tokens < 1 then return -2 end
  redis.call('HSET', jb, 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', jb, window)
  redis.call('SADD', set, node)
  redis.call('SADD', p .. 'nm:' .. node, sid .. '\t' .. room)
  redis.call('SADD', p .. 'sr:' .. sid, room)
  redis.call('HSET', p .. 'pr:' .. room, sid, nick)
  redis.call('HINCRBY', p .. 'rooms', room, 1)
  presence_event('join', room, nick, ts, floor, maxlen)
  return 1
end
redis.call('SADD', set, node)
redis.call('SADD', p .. 'nm:' .. node, sid .. '\t' .. room)
return 0
"#
);

/// ARGV: prefix, node, room, sid, ts, floor, maxlen → 1 if a `leave` was written.
pub const PRESENCE_LEAVE: &str = concat!(
    prelude!(),
    r#"
local node, room, sid = ARGV[2], ARGV[3], ARGV[4]
local set = p .. 'pn:' .. room .. ':' .. sid
if redis.call('SREM', set, node) == 0 then return 0 end
redis.call('SREM', p .. 'nm:' .. node, sid .. '\t' .. room)
if redis.call('SCARD', set) > 0 then return 0 end
return gone(room, sid, ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
"#
);

/// ARGV: prefix, node → 1 if the node was not registered (new, or reaped as dead: it must
/// state its presence again), else 0.
pub const NODE_HEARTBEAT: &str = concat!(
    prelude!(),
    r#"
local was = redis.call('ZSCORE', p .. 'nodes', ARGV[2])
redis.call('ZADD', p .. 'nodes', now_ms(), ARGV[2])
if was then return 0 end
return 1
"#
);

/// ARGV: prefix, this node, ttl ms, ts, floor, maxlen, most memberships to undo → how many
/// `leave`s were written. Every node runs it; a node silent for `ttl` is dead, and whoever
/// runs this first undoes its presence (in steps of at most the given size, so one call
/// stays short), writing each `leave` exactly once.
pub const NODE_REAP: &str = concat!(
    prelude!(),
    r#"
local me, ttl, ts, floor, maxlen, most = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local dead = redis.call('ZRANGEBYSCORE', p .. 'nodes', '-inf', now_ms() - ttl)
local left = 0
for _, node in ipairs(dead) do
  if node ~= me then
    local nm = p .. 'nm:' .. node
    for _, m in ipairs(redis.call('SPOP', nm, most)) do
      local tab = string.find(m, '\t', 1, true)
      local sid, room = string.sub(m, 1, tab - 1), string.sub(m, tab + 1)
      local set = p .. 'pn:' .. room .. ':' .. sid
      redis.call('SREM', set, node)
      if redis.call('SCARD', set) == 0 then
        left = left + gone(room, sid, ts, floor, maxlen)
      end
    end
    if redis.call('SCARD', nm) == 0 then
      redis.call('ZREM', p .. 'nodes', node)
    end
  end
end
return left
"#
);

/// ARGV: prefix, bucket name, burst, refill window ms, n → 0 if `n` tokens were taken, else
/// the ms to wait. A token bucket of `burst` tokens refilled at `burst` per window, the same
/// rule as the per-address budgets of one node (`crate::net::addresses`), kept in Redis so it holds
/// over every node; an idle bucket expires after one window (it would be full again anyway).
pub const BUCKET: &str = concat!(
    prelude!(),
    r#"
local key, burst, window, n = p .. 'bucket:' .. ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local b = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(b[1] or burst)
local at = tonumber(b[2] or now)
tokens = math.min(burst, tokens + (now - at) * burst / window)
if tokens < n then
  return math.ceil((n - tokens) * window / burst)
end
redis.call('HSET', key, 'tokens', tostring(tokens - n), 'at', now)
redis.call('PEXPIRE', key, window)
return 0
"#
);

/// A room message in one step: the session is live and still called `nick` (the message's
/// `from`, already in `tail`), its budget has room for one more write of `bytes`, then
/// [`APPEND`]'s work. One round trip and one write instead of three (lookup, budget, append).
/// ARGV: prefix, session id, nick, limit, window ms, idle ms, floor, ts, audience, tail, room,
/// maxlen, bytes, byte budget → {'ok', id} | {'out'} | {'wait', ms, 'events' | 'bytes'} |
/// {'nick', the session's nick now}.
pub const SAY: &str = concat!(
    prelude!(),
    r#"
local id, nick, limit, window, idle = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
if not live(id, now, idle) then return {'out'} end
local current = redis.call('HGET', p .. 's:' .. id, 'nick')
if current ~= nick then return {'nick', current} end
local wait, half = spend(id, now, limit, window, tonumber(ARGV[13]), tonumber(ARGV[14]))
if wait > 0 then return {'wait', tostring(wait), half} end
return {'ok', tostring(append(tonumber(ARGV[7]), ARGV[8], 'message', ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12])))}
"#
);

/// ARGV: prefix, room, last id (`ID-0`, or `+`), limit → the room's newest `limit` messages
/// up to that id, newest first, as the log's entries `{id, {field, value, …}}`. The room's
/// history holds only ids (see `append`); the log is trimmed oldest first, so the first id it
/// no longer holds ends the read: history reaches as far back as the log does.
pub const HISTORY: &str = concat!(
    prelude!(),
    r#"
local out = {}
for _, e in ipairs(redis.call('XREVRANGE', p .. 'room:' .. ARGV[2], ARGV[3], '-', 'COUNT', tonumber(ARGV[4]))) do
  local found = redis.call('XRANGE', p .. 'log', e[1], e[1])
  if not found[1] then break end
  table.insert(out, found[1])
end
return out
"#
);
