"""An aggregator worker rides out a Redis crash and restart, and still counts every event once."""

from __future__ import annotations

import threading
import time

import pytest

from data.aggregator import Aggregator
from data.connection import EmbeddedRedis
from data.keys import Keys
from data.read import CityReader
from settings import Settings
from tests.events import raw_event

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_worker_survives_a_redis_restart_and_counts_every_event_exactly_once(tmp_path, city_map, redis_binary):
    server = EmbeddedRedis(tmp_path / "redis", binary=redis_binary)
    server.start()
    settings = Settings.from_env({}, redis_url=server.url, key_prefix="restart", block_ms=200, claim_idle_ms=500)
    keys = Keys(settings.key_prefix)
    writer = server.client()
    now = int(time.time() * 1000)

    def write(first: int, n: int) -> None:
        pipe = writer.pipeline(transaction=False)
        for seq in range(first, first + n):
            pipe.xadd(keys.stream("complaints"), raw_event("complaint", seq=seq, ts=now + seq))
        pipe.execute()

    worker = Aggregator(server.client(socket_timeout=2), settings, city_map, name="survivor")
    thread = threading.Thread(target=worker.run)
    write(0, 3000)
    thread.start()
    reader = lambda: CityReader(server.client(), settings)  # noqa: E731  (a new client after each restart)
    try:
        assert wait_for(lambda: reader().freshness()["complaints"]["events"] > 0)
        write(3000, 3000)
        time.sleep(1.5)  # appendfsync everysec: let the writes reach the append-only file
        server.kill()
        time.sleep(0.5)
        server.start()
        writer = server.client()
        write(6000, 2000)
        assert wait_for(lambda: reader().freshness()["complaints"]["events"] >= 8000, timeout=60)
        assert wait_for(
            lambda: (
                reader().consumer_lag()["complaints"]
                == {"lag": 0, "pending": 0, "consumers": 1, "capped": False, "lag_share": 0.0}
            )
        )
    finally:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive()
    final = reader()
    assert final.freshness()["complaints"]["events"] == 8000
    assert final.dead_letter_counts()["complaints"] == {}
    server.stop()
