-- Mark the sequence numbers of events that reached a source's stream, per producer, to find those
-- that never did: a producer numbers its events 0, 1, 2, ... (a resumed run goes on with its id and
-- numbers), so a number missing between the first and the last seen is an event lost upstream (a
-- producer's batch acknowledged by a Redis that then lost it, say, with the last second of its
-- append-only file in a power cut).
--
-- KEYS[1] the producers hash (producer -> {first, last, received}), then one bitmap per producer
-- and block of sequence numbers. ARGV[1] = {marks = {{bitmap key index, producer, {offset, ...},
-- lowest seq, highest seq}, ...}, expire_s}
--
-- Marking is idempotent (a bit is counted as received once), so a batch marked and then redone,
-- redelivered or repeated by its producer changes nothing; that is why it may run before the commit.

local doc = cjson.decode(ARGV[1])
for _, m in ipairs(doc.marks) do
  local bitmap, producer, offsets = KEYS[m[1]], m[2], m[3]
  local fresh = 0
  for _, offset in ipairs(offsets) do
    if redis.call('SETBIT', bitmap, offset, 1) == 0 then fresh = fresh + 1 end
  end
  redis.call('EXPIRE', bitmap, doc.expire_s)
  local known = redis.call('HGET', KEYS[1], producer)
  local p = known and cjson.decode(known) or {first = m[4], last = m[5], received = 0}
  p.first = math.min(p.first, m[4])
  p.last = math.max(p.last, m[5])
  p.received = p.received + fresh
  redis.call('HSET', KEYS[1], producer, cjson.encode(p))
end
return ''
