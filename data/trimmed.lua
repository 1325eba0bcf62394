-- Count what a source's stream lost before its workers folded it, and let the workers go on past it.
--
-- A stream is capped with MAXLEN ~, which ignores consumer groups: in a long outage the cap
-- overtakes entries no worker has read (trimmed unread), or read and never committed (trimmed
-- pending). Neither can be folded any more; both are counted here as lost, with their id range.
--
-- KEYS[1] stream, KEYS[2] lost hash (entries, uncounted, gaps, first_id, last_id), KEYS[3] meta
-- (lost_checked_id: the newest entry id up to which the stream's losses are counted).
-- ARGV[1] = {group, pending = {entry_id, ...}, gone = {entry_id, ...}}: entries a worker found
-- pending but deleted (acknowledged here, once), and entries Redis already dropped from the
-- pending list as deleted (XAUTOCLAIM on Redis >= 7).
-- Returns {entries counted, gaps whose size the server could not tell}.

local doc = cjson.decode(ARGV[1])
local stream, lost, meta = KEYS[1], KEYS[2], KEYS[3]
local MAX_SEQ = '18446744073709551615'

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

local function after_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == MAX_SEQ then return string.format('%d-0', tonumber(ms) + 1) end
  return ms .. '-' .. string.format('%d', tonumber(seq) + 1)
end

local function before_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if seq == '0' then return string.format('%d-', tonumber(ms) - 1) .. MAX_SEQ end
  return ms .. '-' .. string.format('%d', tonumber(seq) - 1)
end

local counted, uncounted = 0, 0

-- n is false when the server keeps no counters to tell how many entries the range held (Redis < 7).
local function note(first, last, n)
  if n then
    redis.call('HINCRBY', lost, 'entries', n)
    counted = counted + n
  else
    redis.call('HINCRBY', lost, 'uncounted', 1)
    uncounted = uncounted + 1
  end
  redis.call('HINCRBY', lost, 'gaps', 1)
  local known = redis.call('HMGET', lost, 'first_id', 'last_id')
  if not known[1] or before(first, known[1]) then redis.call('HSET', lost, 'first_id', first) end
  if not known[2] or before(known[2], last) then redis.call('HSET', lost, 'last_id', last) end
end

local function note_ids(ids)
  if #ids == 0 then return end
  local low, high = ids[1], ids[1]
  for _, id in ipairs(ids) do
    if before(id, low) then low = id end
    if before(high, id) then high = id end
  end
  note(low, high, #ids)
end

-- Read but trimmed before its commit: acknowledged and counted by whoever gets here first.
local dropped = {}
for _, id in ipairs(doc.pending) do
  if #redis.call('XPENDING', stream, doc.group, id, id, 1) > 0 and #redis.call('XRANGE', stream, id, id) == 0 then
    redis.call('XACK', stream, doc.group, id)
    dropped[#dropped + 1] = id
  end
end
note_ids(dropped)
note_ids(doc.gone)

local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local h = {}
  for i = 1, #g, 2 do h[g[i]] = g[i + 1] end
  if h['name'] == doc.group then group = h end
end
if not group then return {counted, uncounted} end
local info = {}
local s = redis.call('XINFO', 'STREAM', stream)
for i = 1, #s, 2 do info[s[i]] = s[i + 1] end

local last_read = group['last-delivered-id']
-- Redis >= 7 counts entries added to the stream and entries the group was given (nil when it lost
-- track); with both, what was removed from the stream without being given is known exactly.
local added = info['entries-added']
local given = group['entries-read']
if type(given) ~= 'number' then given = nil end
local first = info['first-entry'] and info['first-entry'][1] or nil
local newest = info['last-generated-id']

local gap_end
if first and before(after_id(last_read), first) then
  gap_end = before_id(first)
elseif not first and before(last_read, newest) then
  gap_end = newest
end

if gap_end then
  -- The cap has overtaken the group: everything between what it was last given and the oldest
  -- entry left was trimmed unread.
  local n = false
  if added and (given or last_read == '0-0') then
    -- (a group created on a stream that already held entries is never given a count of its own)
    n = added - info['length'] - (given or 0)
    if n < 0 then n = false end -- entries deleted by hand (XDEL) confuse the counters
  elseif last_read == '0-0' then
    n = 0 -- a group never given anything, on a server that cannot tell whether the stream lost any
  end
  if n ~= 0 then
    note(after_id(last_read), gap_end, n)
    if added then
      redis.call('XGROUP', 'SETID', stream, doc.group, gap_end, 'ENTRIESREAD', added - info['length'])
    else
      redis.call('XGROUP', 'SETID', stream, doc.group, gap_end)
    end
    redis.call('HSET', meta, 'lost_checked_id', gap_end)
  end
elseif added and given and last_read == newest then
  -- Caught up: every entry added was either given to the group or trimmed unread before a read
  -- reached it (the cap overtook a group that was reading, between two of these checks).
  local n = added - given
  if n > 0 then
    note(after_id(redis.call('HGET', meta, 'lost_checked_id') or '0-0'), last_read, n)
    redis.call('XGROUP', 'SETID', stream, doc.group, last_read, 'ENTRIESREAD', added)
  end
  if last_read ~= '0-0' then redis.call('HSET', meta, 'lost_checked_id', last_read) end
end
return {counted, uncounted}
