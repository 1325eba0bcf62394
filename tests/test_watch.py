"""The alarm watch raises and logs the alarms every tick with no screen open, builds the status once for
every dashboard of its tick, and lives through a Redis it cannot reach."""

from __future__ import annotations

import os
import threading
import time

import pytest

from callbacks import status
from callbacks.deck import Deck
from callbacks.watch import AlarmWatch
from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keys import Keys

pytestmark = pytest.mark.redis


def surge(client, settings, demo_city, now_ms: int) -> str:
    """Write urgent complaints enough for a surge in one community, as a phone app would; return it."""
    from simulators.complaints import TEXTS
    from tests.events import raw_event

    spot = demo_city.communities.iloc[7]
    point = spot.geometry.representative_point()
    text = TEXTS["public_safety"][0].format(road="Shennan Avenue", community="here")
    stream = Keys(settings.key_prefix).stream("complaints")
    for k in range(settings.alarm_urgent_complaints):
        client.xadd(stream, raw_event(
            "complaint", seq=k, ts=now_ms - (k + 1) * 1000, complaint_id=f"U-{k}", text=text, category="public_safety",
            lon=point.x, lat=point.y,
        ))  # fmt: skip
    return spot.community_id


def test_with_no_screen_open_the_watch_raises_and_logs_the_alarm_and_every_dashboard_of_its_tick_reads_it(
    client, settings, city_map, demo_city, monkeypatch
):
    from app import create_app

    now = time.time()
    community = surge(client, settings, demo_city, int(now * 1000))
    worker = Aggregator(client, settings, city_map, name="w", sources=("complaints",))
    worker.ensure_groups()
    worker.drain()
    worker.close()
    builds = []
    build = status.status_snapshot
    monkeypatch.setattr(status, "status_snapshot", lambda *a, **k: builds.append(1) or build(*a, **k))

    watch = AlarmWatch(Deck(settings, client, lambda: demo_city, clock=lambda: now))
    watched = watch.step()
    key = f"complaints:{community}"
    assert [a["key"] for a in watched["alarms"] if a["kind"] == "complaints"] == [key]
    book = watch.deck.alarms
    assert [(e["event"], e["key"]) for e in book.log()] == [("raised", key)]
    assert builds == [1]

    # A dashboard opened in the same tick shows the watch's status: not built again, the same alarms.
    app = create_app(settings, clock=lambda: now)
    deck = app.server.extensions["citydeck"]
    with app.server.app_context():
        shown = status.status_of(deck)
    assert builds == [1] and shown["alarms"] == watched["alarms"]


def test_a_fault_in_one_tick_is_logged_and_costs_that_tick_alone(client, settings, demo_city, monkeypatch, caplog):
    build = status.status_snapshot
    calls = []

    def faulty_once(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a field the build did not expect")
        return build(*a, **k)

    monkeypatch.setattr(status, "status_snapshot", faulty_once)
    now = [time.time()]
    watch = AlarmWatch(Deck(settings, client, lambda: demo_city, clock=lambda: now[0]))
    with caplog.at_level("ERROR", logger="citydeck.watch"):
        assert watch.step() is None
    (record,) = caplog.records
    assert record.exc_info and "a field the build did not expect" in caplog.text
    now[0] += settings.refresh_ms / 1000  # the next tick
    assert watch.step() is not None and (watch.built, watch.failed) == (1, 1)


def test_a_redis_the_watch_cannot_reach_costs_it_the_tick_not_its_life(settings, demo_city):
    # Nothing listens on port 1 of the loopback: every read fails at once.
    dead = client_from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5, socket_timeout=0.5)
    fast = type(settings)(**{**settings.__dict__, "refresh_ms": 200})
    watch = AlarmWatch(Deck(fast, dead, lambda: demo_city))
    stop, waits = threading.Event(), []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        if len(waits) == 3:
            stop.set()
        return stop.is_set()

    watch.run(stop, sleep=wait)
    assert (watch.built, watch.failed) == (0, 3)
    assert all(0 <= s <= 0.2 + 0.2 for s in waits)  # to the next tick, just after it begins


def test_the_health_page_says_whether_the_watch_runs_and_forgets_one_that_died(client, settings, demo_city):
    from data.read import CityReader
    from layouts import render
    from views.snapshots import health_snapshot

    short = type(settings)(**{**settings.__dict__, "worker_timeout_s": 1.0})
    reader = CityReader(client, short)
    page = str(render.health(health_snapshot(reader, time.time())))
    assert "Alarm watch: not running. Alarms are raised and logged only while a screen is open" in page

    watch = AlarmWatch(Deck(short, client, lambda: demo_city))
    watch.step()
    health = health_snapshot(reader, time.time())
    assert health["watch"]["pid"] == os.getpid() and (health["watch"]["ticks"], health["watch"]["failed"]) == (1, 0)
    assert f"Alarm watch: pid {os.getpid()}, last tick" in str(render.health(health))
    # A watch that stops beating is gone from the page once the workers' timeout has passed.
    deadline = time.monotonic() + 30
    while reader.watch() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Alarm watch: not running" in str(render.health(health_snapshot(reader, time.time())))
