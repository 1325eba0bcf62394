"""History at its own time: events older than the fine retention are folded into hourly buckets, never
dropped, never judged late, never doubled, and read back like any rolled-up hour."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader, Window
from data.read.complaints import complaint_counts, complaint_table
from tests.events import raw_event

pytestmark = pytest.mark.redis

HOUR_S = 3600
# A Sunday in October 2019, long before any retention: an imported past year.
PAST_S = 1_570_320_000


@pytest.fixture
def worker(client, settings, city_map):
    w = Aggregator(client, settings, city_map, name="history-worker")
    w.ensure_groups()
    return w


def write(client, settings, source: str, events) -> None:
    keys = Keys(settings.key_prefix)
    for e in events:
        client.xadd(keys.stream(source), e)


def past_complaints(n: int, seq0: int = 0) -> list[tuple[int, str, dict]]:
    """n complaints spread over a past day at uneven times, with their channel: (ts ms, channel, event)."""
    out = []
    for i in range(n):
        ts = (PAST_S + (i * 7919) % (24 * HOUR_S)) * 1000 + i
        channel = ("hotline", "app", "web")[i % 3]
        out.append((ts, channel, raw_event("complaint", seq=seq0 + i, ts=ts, channel=channel, complaint_id=f"k-{i}")))
    return out


def by_hour(events: list[tuple[int, str, dict]]) -> dict[int, Counter]:
    """The plain recomputation: channel counts per hour from the events' own times."""
    hours: dict[int, Counter] = {}
    for ts, channel, _ in events:
        hour = ts // 1000 // HOUR_S * HOUR_S
        hours.setdefault(hour, Counter())[channel] += 1
    return hours


def test_a_past_year_is_folded_into_hourly_history_and_reads_back_per_hour_and_per_day(client, settings, worker):
    events = past_complaints(300)
    write(client, settings, "complaints", [e for _, _, e in events])
    assert worker.drain() == 300
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts().get("complaints", {}) == {}
    expected = by_hour(events)
    for hour, counts in expected.items():
        assert reader.counts("complaints", "complaints.channel", Window(hour, hour + HOUR_S)) == dict(counts)
    day = Window(PAST_S, PAST_S + 24 * HOUR_S)
    assert reader.counts("complaints", "complaints.channel", day) == dict(sum(expected.values(), Counter()))
    # Into an empty city, history is kept like any event (nothing was closed before it): counted as events.
    fresh = reader.freshness()["complaints"]
    assert fresh["events"] == 300 and fresh["history_events"] == 0
    assert fresh["newest_ms"] == max(ts for ts, _, _ in events)


def test_history_is_kept_history_days_from_when_it_came_and_its_keys_as_long(client, settings, worker):
    events = past_complaints(30)
    write(client, settings, "complaints", [e for _, _, e in events])
    worker.drain()
    keys = Keys(settings.key_prefix)
    hour = events[0][0] // 1000 // HOUR_S * HOUR_S
    keep_s = settings.history_days * 24 * HOUR_S
    for key in (keys.bucket("complaints", "complaints.channel", "h", hour), keys.history_hours("complaints")):
        ttl = client.ttl(key)
        assert keep_s - 120 <= ttl <= keep_s, key
    assert keep_s - 120 <= client.ttl(keys.seen("complaints", hour)) <= keep_s


def test_history_imported_into_a_live_city_is_not_late_and_a_live_straggler_still_is(client, settings, worker):
    now = int(time.time() * 1000)
    write(client, settings, "complaints", [raw_event("complaint", seq=1000, ts=now, complaint_id="live-1")])
    worker.drain()  # the horizon is now the newest event less the allowed lateness
    events = past_complaints(120)
    straggler = now - (settings.lateness_seconds + 600) * 1000  # behind the horizon, within the fine retention
    write(client, settings, "complaints", [e for _, _, e in events])
    write(client, settings, "complaints", [raw_event("complaint", seq=2000, ts=straggler, complaint_id="late-1")])
    worker.drain()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["complaints"] == {"late": 1}
    day = Window(PAST_S, PAST_S + 24 * HOUR_S)
    assert sum(reader.counts("complaints", "complaints.channel", day).values()) == 120
    fresh = reader.freshness()["complaints"]
    assert fresh["events"] == 1 and fresh["history_events"] == 120
    assert fresh["newest_ms"] == now


def test_the_same_history_imported_twice_is_counted_once(client, settings, worker):
    events = past_complaints(90)
    write(client, settings, "complaints", [e for _, _, e in events])
    worker.drain()
    write(client, settings, "complaints", [e for _, _, e in events])  # the same file, written again
    worker.drain()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["complaints"] == {"duplicate": 90}
    day = Window(PAST_S, PAST_S + 24 * HOUR_S)
    assert sum(reader.counts("complaints", "complaints.channel", day).values()) == 90


def test_two_workers_folding_one_history_count_every_event_once(client, settings, city_map):
    events = past_complaints(400)
    write(client, settings, "complaints", [e for _, _, e in events])
    small = type(settings)(**{**settings.__dict__, "batch_size": 37})  # batches of both interleave
    workers = [Aggregator(client, small, city_map, name=f"history-{i}") for i in range(2)]
    for w in workers:
        w.ensure_groups()
    while sum(w.step(block_ms=None) for w in workers):
        pass
    for w in workers:
        w.flush()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts().get("complaints", {}) == {}
    for hour, counts in by_hour(events).items():
        assert reader.counts("complaints", "complaints.channel", Window(hour, hour + HOUR_S)) == dict(counts)


def test_history_imported_into_a_live_city_changes_no_live_state_an_old_complaint_is_not_open_now(
    client, settings, worker
):
    now = int(time.time() * 1000)
    write(client, settings, "complaints", [raw_event("complaint", seq=1000, ts=now, complaint_id="live-1")])
    worker.drain()
    write(client, settings, "complaints", [e for _, _, e in past_complaints(12)])
    worker.drain()
    worker.tick_keepers()
    reader = CityReader(client, settings)
    assert complaint_counts(reader, int(time.time() * 1000))["open"] == 1
    assert [r["complaint_id"] for r in complaint_table(reader, int(time.time() * 1000))] == ["live-1"]


def test_an_old_appointment_slot_is_counted_in_its_hours_history_not_dropped(client, settings, worker):
    now = int(time.time() * 1000)
    slot = now - 5 * 24 * HOUR_S * 1000  # booked for a slot long past: its minute is no longer kept
    write(client, settings, "services", [raw_event("appointment", seq=1, ts=now, slot_ts=slot, action="booked")])
    worker.drain()
    reader = CityReader(client, settings)
    hour = slot // 1000 // HOUR_S * HOUR_S
    assert sum(reader.counts("services", "appointments.slot_center_action", Window(hour, hour + HOUR_S)).values()) == 1


def test_a_custom_window_counts_live_minutes_and_history_alike_and_says_what_history_holds(
    client, settings, worker, demo_city
):
    from views.geography import CityGeography
    from views.snapshots import complaints_snapshot
    from views.state import ViewState

    now_s = time.time()
    ages_h = (0.2, 5, 30, 47, 50, 60, 71, 73, 100)  # both sides of the fine retention (48 h) and of 72 h
    write(client, settings, "complaints", [
        raw_event("complaint", seq=i, ts=int((now_s - h * HOUR_S) * 1000), complaint_id=f"k-{i}")
        for i, h in enumerate(ages_h)
    ])  # fmt: skip
    worker.drain()
    geo = CityGeography(demo_city, 8, 25.0)
    reader = CityReader(client, settings)
    snap = complaints_snapshot(reader, geo, ViewState("3d"), now_s)
    # Whole minutes up to now: the window starts at the start of its first minute 72 h back.
    window = Window.last(72 * HOUR_S, now_s, settings.bucket_seconds)
    inside = sum(1 for h in ages_h if window.start <= now_s - h * HOUR_S < window.end)
    assert snap["headline"]["filed"] == inside == 7
    assert snap["label"].endswith("last 3 d") and snap["headline"]["hotspots"] is None
    assert not snap["hotspots_published"]  # published for the live preset windows only
    # A city keeping two days of history says so of a window longer than that.
    short = type(settings)(**{**settings.__dict__, "history_days": 2})
    longer = complaints_snapshot(CityReader(client, short), geo, ViewState("4d"), now_s)
    window = Window.last(96 * HOUR_S, now_s, settings.bucket_seconds)
    assert longer["headline"]["filed"] == sum(1 for h in ages_h if window.start <= now_s - h * HOUR_S) == 8
    assert longer["label"].endswith("last 4 d · only the last 2 d are kept")


def test_a_past_moment_within_the_minutes_kept_counts_up_to_the_moment_not_the_minute_after(
    client, settings, worker, demo_city
):
    from views.geography import CityGeography
    from views.snapshots import complaints_snapshot
    from views.state import ViewState, at_of

    moment = (int(time.time()) // 60 - 180) * 60  # three hours ago, on a minute
    before, after = moment - 30, moment + 30  # in the hour before the moment, and in the minute after it
    write(client, settings, "complaints", [
        raw_event("complaint", seq=i, ts=t * 1000, complaint_id=f"k-{i}") for i, t in enumerate((before, after))
    ])  # fmt: skip
    worker.drain()
    at = at_of(moment, settings.city_timezone)
    snap = complaints_snapshot(
        CityReader(client, settings), CityGeography(demo_city, 8, 25.0), ViewState("1h", at=at), moment
    )
    assert snap["headline"]["filed"] == 1
    assert snap["label"].endswith(at[11:16]) and "–" in snap["label"]  # the window ends at the moment it is as of
    assert snap["headline"]["open"] is None  # the queue is kept as it stands now: not shown for a past moment
