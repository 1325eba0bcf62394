"""Workers that come and go: the dead leave the health view after the timeout, and a lock is released only
by whoever holds it."""

from __future__ import annotations

import time

import pytest

from data.aggregator import Aggregator
from data.keepers import cases as case_keeper
from data.keys import Keys
from data.read import CityReader
from engines.tracing import TracingParams
from views import snapshots

pytestmark = [pytest.mark.redis]


def test_a_worker_silent_past_the_timeout_leaves_the_health_view(client, settings, city_map):
    s = type(settings)(**{**settings.__dict__, "worker_timeout_s": 60.0})
    now = time.time()
    killed = Aggregator(client, s, city_map, name="killed", clock=lambda: now - 61)
    killed.heartbeat()  # its last word, 61 s ago
    quiet = Aggregator(client, s, city_map, name="quiet", clock=lambda: now - 59)
    quiet.heartbeat()
    reader = CityReader(client, s)
    assert [w["name"] for w in snapshots.health_snapshot(reader, now)["workers"]] == ["quiet"]

    alive = Aggregator(client, s, city_map, name="alive", clock=lambda: now)
    alive.heartbeat()
    # The living forget the dead, so restarts under new names do not pile up.
    assert sorted(reader.workers()) == ["alive", "quiet"]
    assert [w["name"] for w in snapshots.health_snapshot(reader, now)["workers"]] == ["alive", "quiet"]


def test_a_tracing_picture_builder_slower_than_its_lock_leaves_the_next_holders_lock(client, settings, monkeypatch):
    keys = Keys(settings.key_prefix)
    lock = f"{keys.state('cases', case_keeper.PICTURE)}:lock"
    confirmed = case_keeper._confirmed_cases

    def stalled(*args, **kwargs):
        # The builder stalls past its lock's expiry, and another worker takes the lock meanwhile.
        client.pexpire(lock, 1)
        deadline = time.monotonic() + 10
        while client.exists(lock) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert client.set(lock, "the next holder", nx=True, px=30_000)
        return confirmed(*args, **kwargs)

    monkeypatch.setattr(case_keeper, "_confirmed_cases", stalled)
    assert case_keeper.publish_picture(client, keys, int(time.time() * 1000), TracingParams())
    assert client.get(lock) == b"the next holder"
    assert client.pttl(lock) > 0
