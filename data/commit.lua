-- Apply one batch of a source atomically: refuse it if any event was counted before,
-- else mark its events seen, add its counters, keep newest states, write dead letters,
-- advance the source's meta and acknowledge every entry of the batch.
--
-- KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] dead-letter counts, KEYS[4] meta,
-- KEYS[5] open hours, KEYS[6] bucket stamps; further keys are referenced by index from the batch document in ARGV[1]:
--   seen    = {{key, expire_at, {idem, entry_id, ...}}, ...}
--   incr    = {{{key, ...}, {expire_at or 0 when already set, ...}, {field, n, ...}}, ...}
--   hours   = {{facets_key, hour, expire_at, {facet, ...}}, ...}
--   latest  = {{state_key, time_key, {entity, ts, state, ...}}, ...}
--   dead    = {{reason_kind, {field, value, ...}, entry_id}, ...}
--   expect  = {{versions_key, {entity, version, ...}}, ...}   (keepers' optimistic check)
--   put     = {{key, expire_at, {field, value, ...}}, ...}
--   drop    = {{key, {field, ...}}, ...}
--   zadd    = {{key, expire_at, {score, member, ...}}, ...}
--   zrem    = {{key, {member, ...}}, ...}
--   ack     = {entry_id, ...}
--   stamps  = {bucket start, ...}   (the minutes whose fine buckets this batch adds to)
--   group, oldest_ms, newest_ms, lateness_ms, now_ms, events, history_events, dead_maxlen, bucket_s
--   (events older than the fine retention come as `incr` of hourly buckets and a `zadd` of their
--   hours; they are counted in history_events, not events, and never judged late)
-- Returns '' on success. Nothing is written when it returns JSON instead: {conflicts =
-- {{idem, entry_id already recorded}, ...}}, {closed = closed_ms} when the batch holds an event
-- older than the source's closed horizon (a roll-up has closed its minute), or {stale = n} when
-- another worker changed a keeper's entity since this batch read it.
--
-- Lateness is judged against the closed horizon alone, never against the newest event another
-- worker committed meanwhile: two workers' batches are folded alike in whichever order they commit.

-- No list of the document is unpacked whole: Lua unpacks at most about 8,000 values at once, and a
-- script that fails half-way has written half a commit. Every list a batch can make long goes by
-- chunks; a dead letter's fields are bounded by the worker (at most 1,000 fields).

local doc = cjson.decode(ARGV[1])
local CHUNK = 500

local function chunked(command, key, list, step)
  for i = 1, #list, CHUNK * step do
    local last = math.min(i + CHUNK * step - 1, #list)
    redis.call(command, key, unpack(list, i, last))
  end
end

-- HMGET of any number of fields, by chunks, as one reply.
local function hmget(key, names)
  local out = {}
  for i = 1, #names, CHUNK do
    local part = redis.call('HMGET', key, unpack(names, i, math.min(i + CHUNK - 1, #names)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end

local meta = KEYS[4]
local known = redis.call('HMGET', meta, 'newest_ms', 'closed_ms')
local newest, closed = tonumber(known[1] or '0'), tonumber(known[2] or '0')
if doc.events > 0 and doc.oldest_ms < closed then
  return cjson.encode({closed = closed})
end

local conflicts = {}
for _, s in ipairs(doc.seen) do
  local key, pairs_ = KEYS[s[1]], s[3]
  for i = 1, #pairs_, 2 * CHUNK do
    local ids = {}
    for j = i, math.min(i + 2 * CHUNK - 1, #pairs_), 2 do ids[#ids + 1] = pairs_[j] end
    local prev = redis.call('HMGET', key, unpack(ids))
    for j = 1, #ids do
      if prev[j] then conflicts[#conflicts + 1] = {ids[j], prev[j]} end
    end
  end
end
if #conflicts > 0 then return cjson.encode({conflicts = conflicts}) end

-- Each entity's version is checked and then bumped with one HSET per key: the versions just
-- read are the ones bumped, and a call per entity costs more than the rest of the check.
local stale = 0
local bumped = {}
for i, e in ipairs(doc.expect) do
  local names, wanted = {}, {}
  for j = 1, #e[2], 2 do names[#names + 1] = e[2][j]; wanted[#wanted + 1] = e[2][j + 1] end
  local now = hmget(KEYS[e[1]], names)
  local out = {}
  for j = 1, #names do
    local version = tonumber(now[j]) or 0
    if version ~= wanted[j] then stale = stale + 1 end
    out[2 * j - 1] = names[j]
    out[2 * j] = version + 1
  end
  bumped[i] = out
end
if stale > 0 then return cjson.encode({stale = stale}) end
for i, e in ipairs(doc.expect) do
  chunked('HSET', KEYS[e[1]], bumped[i], 2)
end
for _, p in ipairs(doc.put) do
  chunked('HSET', KEYS[p[1]], p[3], 2)
  if p[2] > 0 then redis.call('EXPIREAT', KEYS[p[1]], p[2]) end
end
for _, d in ipairs(doc.drop) do
  chunked('HDEL', KEYS[d[1]], d[2], 1)
end
for _, z in ipairs(doc.zadd) do
  chunked('ZADD', KEYS[z[1]], z[3], 2)
  if z[2] > 0 then redis.call('EXPIREAT', KEYS[z[1]], z[2]) end
end
for _, z in ipairs(doc.zrem) do
  chunked('ZREM', KEYS[z[1]], z[2], 1)
end

for _, s in ipairs(doc.seen) do
  chunked('HSET', KEYS[s[1]], s[3], 2)
  redis.call('EXPIREAT', KEYS[s[1]], s[2])
end

-- Counters: one HMGET and one HSET per key and chunk, not a call per field, because a call
-- from a script costs far more than a field within one.
for _, g in ipairs(doc.incr) do
  local fields = g[3]
  for c = 1, #fields, 2 * CHUNK do
    local last = math.min(c + 2 * CHUNK - 1, #fields)
    local names = {}
    for j = c, last, 2 do names[#names + 1] = fields[j] end
    for k, ki in ipairs(g[1]) do
      local key = KEYS[ki]
      local old = redis.call('HMGET', key, unpack(names))
      local out = {}
      for j = 1, #names do
        out[2 * j - 1] = names[j]
        out[2 * j] = (tonumber(old[j]) or 0) + fields[c + 2 * j - 1]
      end
      redis.call('HSET', key, unpack(out))
    end
  end
  for k, ki in ipairs(g[1]) do
    if g[2][k] > 0 then redis.call('EXPIREAT', KEYS[ki], g[2][k]) end
  end
end

-- Stamp the minutes written with this commit's number: a reader that cached an open bucket
-- re-reads it only when its stamp moved. Minutes behind the closed horizon (and two buckets
-- more, for a reader that comes back late) can change no more; their stamps are trimmed.
if #doc.stamps > 0 then
  local commit = redis.call('HINCRBY', meta, 'commits', 1)
  local stamped = {}
  for i, start in ipairs(doc.stamps) do
    stamped[2 * i - 1] = start
    stamped[2 * i] = commit
  end
  chunked('HSET', KEYS[6], stamped, 2)
  if redis.call('HLEN', KEYS[6]) > 2 * (doc.lateness_ms / 1000 / doc.bucket_s) + 8 then
    local floor = closed / 1000 - 2 * doc.bucket_s
    local old = {}
    for _, start in ipairs(redis.call('HKEYS', KEYS[6])) do
      if tonumber(start) < floor then old[#old + 1] = start end
    end
    if #old > 0 then chunked('HDEL', KEYS[6], old, 1) end
  end
end

for _, h in ipairs(doc.hours) do
  chunked('SADD', KEYS[h[1]], h[4], 1)
  redis.call('EXPIREAT', KEYS[h[1]], h[3])
  redis.call('ZADD', KEYS[5], h[2], h[2])
end

for _, l in ipairs(doc.latest) do
  local states, times, rows = KEYS[l[1]], KEYS[l[2]], l[3]
  for c = 1, #rows, 3 * CHUNK do
    local last = math.min(c + 3 * CHUNK - 1, #rows)
    local names = {}
    for j = c, last, 3 do names[#names + 1] = rows[j] end
    local prev = redis.call('HMGET', times, unpack(names))
    local newer_times, newer_states = {}, {}
    for j = 1, #names do
      local r = c + 3 * (j - 1)
      if (not prev[j]) or tonumber(prev[j]) < rows[r + 1] then
        newer_times[#newer_times + 1] = names[j]
        newer_times[#newer_times + 1] = string.format('%d', rows[r + 1])
        newer_states[#newer_states + 1] = names[j]
        newer_states[#newer_states + 1] = rows[r + 2]
      end
    end
    if #newer_times > 0 then
      redis.call('HSET', times, unpack(newer_times))
      redis.call('HSET', states, unpack(newer_states))
    end
  end
end

-- An entry is dead-lettered while it is still pending: one a worker claimed from a slow one that
-- then committed it after all (or that its own worker claimed back) is acknowledged already, and
-- has its letter. Events have their idempotency keys; this is the same guard for refused entries.
for _, d in ipairs(doc.dead) do
  if #redis.call('XPENDING', KEYS[1], doc.group, d[3], d[3], 1) > 0 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', doc.dead_maxlen, '*', unpack(d[2]))
    redis.call('HINCRBY', KEYS[3], d[1], 1)
  end
end

if doc.events > 0 then
  redis.call('HINCRBY', meta, 'events', doc.events)
  if doc.newest_ms > newest then
    redis.call('HSET', meta, 'newest_ms', string.format('%d', doc.newest_ms))
  end
end
if doc.history_events > 0 then
  redis.call('HINCRBY', meta, 'history_events', doc.history_events)
end
if #doc.ack > 0 then
  redis.call('HSET', meta, 'ingested_ms', string.format('%d', doc.now_ms))
end

for i = 1, #doc.ack, CHUNK do
  redis.call('XACK', KEYS[1], doc.group, unpack(doc.ack, i, math.min(i + CHUNK - 1, #doc.ack)))
end
return ''
