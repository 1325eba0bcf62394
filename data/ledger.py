"""The digest of what aggregator workers left under a prefix: every key they wrote with its whole content,
less what says how the work was done rather than what it found. Two runs that folded the same events
leave equal digests however many workers shared the work, and however they were killed or restarted.
"""

from __future__ import annotations

from data.keys import Keys

# Keys and fields that say how the work was done, not what it found: which consumer did what, how
# often a commit was redone (versions), commit numbers that let readers skip unchanged buckets, the
# stamp of the tracing picture's last rebuild and the cases a worker traced in its last minute.
HOW_NOT_WHAT = (
    ":events", ":ver", ":agg:stamps", ":state:cases:changed", ":state:cases:picture", ":state:cases:retrace",
)  # fmt: skip
META_HOW = (b"commits", b"ingested_ms", b"lost_checked_id")
LETTER_HOW = (b"dead_entry_id", b"dead_at_ms")


def digest(client, keys: Keys, leave_out: tuple[str, ...] = ()) -> dict[str, object]:
    """Every key the workers wrote under a prefix, by name without the prefix, with its whole content.

    ``leave_out`` names further key parts a test knows to depend on something other than the events.
    """
    out: dict[str, object] = {}
    for raw in client.scan_iter(match=f"{{{keys.prefix}:*", count=1000):
        name = raw.decode()
        if any(part in name for part in HOW_NOT_WHAT + leave_out):
            continue
        short = name.replace(keys.prefix, "P", 1)
        kind = client.type(raw).decode()
        if kind == "hash":
            value = client.hgetall(raw)
            if ":seen:" in name:
                # Which of two copies of a repeated event counted is the order of commits; that one did is not.
                value = set(value)
            if name.endswith(":meta"):
                value = {k: v for k, v in value.items() if k not in META_HOW}
        elif kind == "set":
            value = client.smembers(raw)
        elif kind == "zset":
            value = client.zrange(raw, 0, -1, withscores=True)
        elif kind == "string":
            value = client.get(raw)
        elif kind == "stream":  # dead letters: what was refused, and why
            value = sorted(sorted((k, v) for k, v in f.items() if k not in LETTER_HOW) for _, f in client.xrange(raw))
        else:
            raise AssertionError(f"unexpected {kind} key {name}")
        out[short] = value
    return out
