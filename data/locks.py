"""Locks in Redis that only their holder releases: each holder takes the lock with a token of its own
and lets go by compare-and-delete, so a holder slower than its lock's expiry never frees the lock of
whoever took it next."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis

# Delete the lock only while it still holds this holder's token.
RELEASE_SCRIPT = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@contextmanager
def held(client: redis.Redis, key: str, ttl_ms: int) -> Iterator[bool]:
    """Take the lock for at most ``ttl_ms`` if it is free; yield whether this holder has it."""
    token = secrets.token_hex(16)
    taken = bool(client.set(key, token, nx=True, px=ttl_ms))
    try:
        yield taken
    finally:
        if taken:
            client.register_script(RELEASE_SCRIPT)(keys=[key], args=[token])
