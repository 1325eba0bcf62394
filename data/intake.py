"""Filing events that arrive through a front door (the Open311 API) exactly once.

A door numbers what it files itself (``src:seq`` is the event's idempotency key) and remembers each
post for a while under a digest of it: the same post again answers the number it was given and files
nothing. The remembering, the numbering and the write to the stream are one script in the source's
slot, so a post is either filed and remembered or neither, and the numbers leave no gap.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

from data.keys import Keys

# KEYS: the post's record, the door's counter, the stream. ARGV: how long the record is kept (s), the
# stream's cap, the id field, the id's prefix, then the event's fields as name, value pairs.
FILE_ONCE = """
local known = redis.call('GET', KEYS[1])
if known then return {known, 0} end
local seq = redis.call('INCR', KEYS[2])
local id = ARGV[4] .. seq
local fields = {}
for i = 5, #ARGV, 2 do
  local value = ARGV[i + 1]
  if ARGV[i] == 'seq' then value = tostring(seq) elseif ARGV[i] == ARGV[3] then value = id end
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = value
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
redis.call('SET', KEYS[1], id, 'EX', ARGV[1])
return {id, 1}
"""


def file_once(
    client: redis.Redis,
    keys: Keys,
    source: str,
    door: str,
    event: Mapping[str, str],
    *,
    post_digest: str,
    id_field: str,
    remember_s: int,
    maxlen: int,
) -> tuple[str, bool]:
    """File an encoded event (its ``seq`` and ``id_field`` are set here) unless this post was filed already.

    Returns the id it was filed under, ``door`` and its number (``open311-17``), and whether it is new.
    """
    args: list[str | int] = [int(remember_s), int(maxlen), id_field, f"{door}-"]
    for name, value in event.items():
        args += [name, value]
    names = [keys.intake(source, f"{door}:post:{post_digest}"), keys.intake(source, f"{door}:seq"), keys.stream(source)]
    found, new = client.register_script(FILE_ONCE)(keys=names, args=args)
    return (found.decode() if isinstance(found, bytes) else str(found)), bool(new)
