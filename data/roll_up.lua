-- Close a source's past and roll up one of its closed hours, atomically.
--
-- KEYS[1] meta, KEYS[2] open hours, KEYS[3] rolled hours, KEYS[4] the hour's facet set (or the
-- source's stream when only the horizon moves), then per facet of the hour: its hourly bucket and
-- its fine buckets.
-- ARGV[1] = {closed_ms, hour, facets = {facet, ...}, buckets = fine buckets per hour,
--            expire_at, forget_before}, or {closed_ms, group, bucket_ms, pending_limit} to move the
--            horizon only
--
-- The closed horizon only grows: the commit script refuses any event older than it, so the fine
-- buckets of an hour behind it change no more and its hourly bucket can be summed once. The sum
-- and the commits exclude each other (one script each), so no commit lands between reading the
-- fine buckets and writing the hour. Returns '' when done, 'facets' when a commit added a facet to
-- the hour since the caller listed them (it lists them again).

local doc = cjson.decode(ARGV[1])
local meta = KEYS[1]

local closed = tonumber(redis.call('HGET', meta, 'closed_ms') or '0')
if doc.group then
  -- Entries read and not committed yet, whose worker may have died and whose claim may come long
  -- after, are folded as if that worker had lived: the horizon stays at the minute of the oldest.
  local pending = redis.call('XPENDING', KEYS[4], doc.group, '-', '+', doc.pending_limit)
  for _, p in ipairs(pending) do
    local entry = redis.call('XRANGE', KEYS[4], p[1], p[1])[1]
    if entry then
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == 'ts' then
          local ts = tonumber(fields[i + 1])
          if ts then doc.closed_ms = math.min(doc.closed_ms, ts - ts % doc.bucket_ms) end
        end
      end
    end
  end
end
if doc.closed_ms > closed then
  redis.call('HSET', meta, 'closed_ms', string.format('%d', doc.closed_ms))
end
if not doc.hour then return '' end

if redis.call('SCARD', KEYS[4]) ~= #doc.facets then return 'facets' end

local k = 5
for _, facet in ipairs(doc.facets) do
  local hourly = KEYS[k]
  k = k + 1
  local total, names = {}, {}
  for _ = 1, doc.buckets do
    local flat = redis.call('HGETALL', KEYS[k])
    k = k + 1
    for i = 1, #flat, 2 do
      local name = flat[i]
      if total[name] == nil then
        names[#names + 1] = name
        total[name] = 0
      end
      total[name] = total[name] + tonumber(flat[i + 1])
    end
  end
  redis.call('DEL', hourly)
  if #names > 0 then
    for i = 1, #names, 500 do
      local out = {}
      for j = i, math.min(i + 499, #names) do
        out[#out + 1] = names[j]
        out[#out + 1] = string.format('%d', total[names[j]])
      end
      redis.call('HSET', hourly, unpack(out))
    end
    redis.call('EXPIREAT', hourly, doc.expire_at)
  end
end
redis.call('ZADD', KEYS[3], doc.hour, doc.hour)
redis.call('ZREM', KEYS[2], doc.hour)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', doc.forget_before)
return ''
