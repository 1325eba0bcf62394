"""Benchmarks that print ratios measured in one run."""

from __future__ import annotations

import tempfile

from data.connection import EmbeddedRedis


def redis_for(redis_url: str | None, name: str) -> tuple[str, EmbeddedRedis | None]:
    """The Redis a benchmark uses: ``redis_url`` when set, else an embedded server it must stop."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(tempfile.mkdtemp(prefix=f"citydeck-{name}-"))
    server.start()
    return server.url, server
