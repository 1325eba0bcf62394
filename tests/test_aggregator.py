"""Aggregator workers against a real Redis: counting, dead letters, redelivery, lateness, claims."""

from __future__ import annotations

import time

import pytest

from data import fold
from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader, Window, cover
from data.read.foot import latest_readings
from tests.events import LAT, LON, raw_event

pytestmark = pytest.mark.redis


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def worker(client, settings, city_map):
    w = Aggregator(client, settings, city_map, name="test-worker")
    w.ensure_groups()
    return w


def write(client, settings, source: str, events) -> list[bytes]:
    keys = Keys(settings.key_prefix)
    return [client.xadd(keys.stream(source), e) for e in events]


def drain(worker: Aggregator) -> int:
    total = 0
    while handled := worker.step():
        total += handled
    worker.flush()  # the last batch's commit may still be on its way
    return total


def test_valid_readings_are_counted_per_community_cell_and_sensor(client, settings, worker, city_map):
    t = now_ms()
    write(client, settings, "foot", [raw_event("reading", seq=i, ts=t - i * 1000, people=10 + i) for i in range(20)])
    settings_fast = worker.settings
    assert drain(worker) == 20
    reader = CityReader(client, settings_fast)
    window = Window.last(3600)
    community = city_map.community_labels[int(city_map.placer.place([LON], [LAT])[0])]
    by_community = reader.counts("foot", "people.community", window)
    assert by_community == {community: sum(10 + i for i in range(20))}
    assert reader.counts("foot", "people.sensor", window) == {"S-1": 390}
    assert reader.counts("foot", "fever.sensor", window) == {"S-1": 40}
    assert sum(reader.counts("foot", "people.h3", window).values()) == 390
    assert reader.freshness()["foot"]["events"] == 20
    sensors = latest_readings(reader)
    assert sensors["S-1"]["people"] == 10 and sensors["S-1"]["community_id"] == community


def test_a_sensors_latest_reading_reads_back_whole_whatever_its_place_id_holds(client, settings, worker):
    t = now_ms()
    odd = 'Gate "3", \\ 北门 · ü, 50%'
    events = [
        raw_event("reading", seq=1, ts=t, place_id=odd, people=7, capacity=500),
        # The one character an id may not hold, the separator of a counter's dimensions: refused, with its reason.
        raw_event("reading", seq=2, ts=t, place_id="Gate|3", people=9, capacity=500),
    ]
    write(client, settings, "foot", events)
    assert drain(worker) == 2
    reader = CityReader(client, worker.settings)
    (latest,) = latest_readings(reader).values()
    assert (latest["place_id"], latest["people"], latest["capacity"], latest["ts"]) == (odd, 7, 500, t)
    assert reader.dead_letter_counts()["foot"] == {"bad_type": 1}
    (letter,) = reader.dead_letters("foot")
    assert letter["dead_reason"] == "bad_type:place_id"


def test_every_event_type_is_counted_by_type(client, settings, worker):
    from data.schema import EVENT_TYPES

    t = now_ms()
    for i, et in enumerate(EVENT_TYPES):
        write(client, settings, et.source, [raw_event(et.name, seq=i, ts=t)])
    drain(worker)
    reader = CityReader(client, settings)
    for et in EVENT_TYPES:
        assert reader.counts(et.source, "events.type", Window.last(600)).get(et.name) == 1, et.name
    assert reader.dead_letter_counts() == {s: {} for s in ("cases", "foot", "services", "complaints")}


def test_every_kind_of_malformed_event_goes_to_the_dead_letter_stream_with_its_reason(client, settings, worker):
    t = now_ms()
    good = raw_event("complaint", seq=1, ts=t)
    bad = {
        "missing_field": {k: v for k, v in raw_event("complaint", seq=2, ts=t).items() if k != "complaint_id"},
        "bad_type": raw_event("complaint", seq=3, ts=t) | {"seq": "three"},
        "bad_coordinates": raw_event("complaint", seq=4, ts=t) | {"lat": "NaN"},
        "out_of_range_coordinates": raw_event("complaint", seq=5, ts=t) | {"lon": "-361"},
        "unknown_enum": raw_event("complaint", seq=6, ts=t) | {"channel": "carrier-pigeon"},
        "unknown_version": raw_event("complaint", seq=7, ts=t) | {"v": "42"},
        "text_too_long": raw_event("complaint", seq=8, ts=t) | {"text": "noise " * 1000},
        "duplicate": raw_event("complaint", seq=1, ts=t),  # same src:seq as the good one
        "future_time": raw_event("complaint", seq=9, ts=t + 24 * 3600 * 1000),
        "unknown_type": raw_event("complaint", seq=10, ts=t) | {"type": "compliment"},
        "null_island": raw_event("complaint", seq=12, ts=t, lon=0, lat=0),
        "outside_city": raw_event("complaint", seq=13, ts=t, lon=-73.92, lat=40.63),  # New York, not the demo city
    }
    write(client, settings, "complaints", [good, *bad.values(), raw_event("complaint", seq=11, ts=t)])
    assert drain(worker) == 14

    reader = CityReader(client, settings)
    counts = reader.dead_letter_counts()["complaints"]
    assert counts == {
        "missing_field": 1, "bad_type": 1, "bad_coordinates": 2, "unknown_enum": 1, "unknown_version": 1,
        "text_too_long": 1, "duplicate": 1, "future_time": 1, "unknown_type": 1, "null_island": 1, "outside_city": 1,
    }  # fmt: skip
    assert reader.freshness()["complaints"]["events"] == 2
    letters = reader.dead_letters("complaints", count=20)
    assert len(letters) == 12
    pigeon = next(d for d in letters if d["dead_reason"] == "unknown_enum:channel")
    assert pigeon["channel"] == "carrier-pigeon" and pigeon["complaint_id"] == "k-1" and pigeon["dead_entry_id"]
    assert CityReader(client, settings).consumer_lag()["complaints"]["pending"] == 0


def test_a_duplicate_in_a_later_batch_is_caught_by_its_idempotency_key(client, settings, worker):
    t = now_ms()
    write(client, settings, "foot", [raw_event("reading", seq=i, ts=t) for i in range(5)])
    drain(worker)
    write(client, settings, "foot", [raw_event("reading", seq=3, ts=t), raw_event("reading", seq=5, ts=t)])
    drain(worker)
    reader = CityReader(client, settings)
    assert reader.freshness()["foot"]["events"] == 6
    assert reader.dead_letter_counts()["foot"] == {"duplicate": 1}


def test_a_refused_batch_in_flight_with_another_source_is_redone_without_mixing_their_replies(client, settings, worker):
    t = now_ms()
    write(client, settings, "foot", [raw_event("reading", seq=i, ts=t) for i in range(5)])
    write(client, settings, "complaints", [raw_event("complaint", seq=100 + i, ts=t) for i in range(5)])
    worker.drain()
    # Both streams get a repeat in their next batch: two commits in flight, both refused once.
    write(client, settings, "foot", [raw_event("reading", seq=2, ts=t), raw_event("reading", seq=9, ts=t)])
    write(
        client, settings, "complaints", [raw_event("complaint", seq=102, ts=t), raw_event("complaint", seq=109, ts=t)]
    )
    worker.drain()
    reader = CityReader(client, settings)
    fresh = reader.freshness()
    assert fresh["foot"]["events"] == 6 and fresh["complaints"]["events"] == 6
    dead = reader.dead_letter_counts()
    assert dead["foot"] == {"duplicate": 1} and dead["complaints"] == {"duplicate": 1}
    assert all(lag["pending"] == 0 and lag["lag"] == 0 for lag in reader.consumer_lag().values())


def test_a_redelivered_entry_is_acknowledged_but_not_counted_again(client, settings, worker):
    t = now_ms()
    ids = write(client, settings, "foot", [raw_event("reading", seq=i, ts=t) for i in range(4)])
    entries = client.xrange(Keys(settings.key_prefix).stream("foot"))
    drain(worker)
    result = worker.process("foot", entries)  # as if a second worker had claimed them late
    assert result.counted == 0 and result.redelivered == 4 and not result.dead
    reader = CityReader(client, settings)
    assert reader.freshness()["foot"]["events"] == 4
    assert reader.counts("foot", "people.sensor", Window.last(600)) == {"S-1": 480}
    assert len(ids) == 4


def test_late_events_within_the_allowed_lateness_go_to_their_own_bucket_later_ones_are_counted_as_late(
    client, settings, worker
):
    t = now_ms()
    lateness = settings.lateness_seconds * 1000
    write(client, settings, "foot", [raw_event("reading", seq=0, ts=t)])
    worker.drain()  # and closes the minutes more than the lateness behind the newest event
    slightly = t - lateness // 2
    write(
        client,
        settings,
        "foot",
        [raw_event("reading", seq=1, ts=slightly), raw_event("reading", seq=2, ts=t - lateness - 60_000)],
    )
    drain(worker)
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["foot"] == {"late": 1}
    bucket = (slightly // 1000) - (slightly // 1000) % settings.bucket_seconds
    own = Window(bucket, bucket + settings.bucket_seconds)
    assert reader.counts("foot", "readings.sensor", own) == {"S-1": 1}


def test_a_batch_is_not_late_because_another_worker_committed_newer_events_first(client, settings, worker):
    t = now_ms()
    keys = Keys(settings.key_prefix)
    write(client, settings, "foot", [raw_event("reading", seq=i, ts=t - 60_000) for i in range(3)])
    inflight = [(source, entries, worker._prepare(source, entries, {})) for source, entries in worker._read(">", None)]
    # Another worker commits events far newer meanwhile: this batch's events are folded all the same.
    client.hset(keys.meta("foot"), "newest_ms", t + 2 * settings.lateness_seconds * 1000)
    for batch in inflight:
        worker._send(batch[2])
    worker._inflight = inflight
    worker._receive_all()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["foot"] == {}
    assert reader.counts("foot", "readings.sensor", Window.last(600, t / 1000)) == {"S-1": 3}
    # Until a roll-up closes their minutes: from then on, such events are late.
    worker.roll_up()
    write(client, settings, "foot", [raw_event("reading", seq=9, ts=t - 60_000)])
    drain(worker)
    assert reader.dead_letter_counts()["foot"] == {"late": 1}


def test_each_refused_commit_is_redone_while_others_are_in_flight(client, settings, worker):
    t = now_ms()
    keys = Keys(settings.key_prefix)
    write(client, settings, "foot", [raw_event("reading", seq=i, ts=t) for i in range(3)])
    write(client, settings, "services", [raw_event("application", seq=i, ts=t) for i in range(2)])
    inflight = [(source, entries, worker._prepare(source, entries, {})) for source, entries in worker._read(">", None)]
    # Another worker's roll-up closes both sources' minutes meanwhile: both commits are refused, and
    # redone with their events late.
    for source in ("foot", "services"):
        client.hset(keys.meta(source), "closed_ms", t + 60_000)
    for batch in inflight:
        worker._send(batch[2])
    worker._inflight = inflight
    worker._receive_all()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["foot"] == {"late": 3}
    assert reader.dead_letter_counts()["services"] == {"late": 2}
    lag = reader.consumer_lag()
    assert lag["foot"]["pending"] == 0 and lag["services"]["pending"] == 0


def test_a_second_worker_claims_the_entries_a_dead_worker_left_pending(client, settings, city_map):
    keys = Keys(settings.key_prefix)
    first = Aggregator(client, settings, city_map, name="doomed")
    first.ensure_groups()
    t = now_ms()
    write(client, settings, "services", [raw_event("application", seq=i, ts=t) for i in range(7)])
    # The doomed worker reads and dies before committing: its entries stay pending.
    client.xreadgroup(settings.consumer_group, "doomed", {keys.stream("services"): ">"}, count=100)
    reader = CityReader(client, settings)
    assert reader.consumer_lag()["services"]["pending"] == 7

    patient = type(settings)(**{**settings.__dict__, "claim_idle_ms": 0})
    heir = Aggregator(client, patient, city_map, name="heir")
    heir.ensure_groups()
    drain(heir)
    assert reader.freshness()["services"]["events"] == 7
    assert reader.consumer_lag()["services"] == {
        "lag": 0,
        "pending": 0,
        "consumers": 2,
        "capped": False,
        "lag_share": 0.0,
    }


def test_consumer_lag_counts_entries_no_worker_has_read(client, settings, worker):
    write(client, settings, "cases", [raw_event("checkin", seq=i, ts=now_ms()) for i in range(9)])
    lag = CityReader(client, settings).consumer_lag()
    assert lag["cases"]["lag"] == 9 and lag["foot"]["lag"] == 0
    assert CityReader(client, settings).stream_lengths()["cases"] == 9


def test_window_cover_uses_rolled_up_hours_inside_and_fine_buckets_elsewhere():
    w = Window(7200 - 120, 3 * 3600 + 180)
    assert all(width == "m" for width, _ in cover(w, 60))
    buckets = cover(w, 60, rolled={7200, 10800})
    assert buckets[:2] == [("m", 7080), ("m", 7140)]
    assert ("h", 7200) in buckets and ("m", 10800) in buckets and buckets[-1] == ("m", 10920)
    spans = sorted((s, s + (3600 if width == "h" else 60)) for width, s in buckets)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert spans[0][0] <= w.start and spans[-1][1] >= w.end


def test_processing_times_fall_into_histogram_bins():
    import numpy as np

    dim = fold.processing_bins(np.array([0.2, 0.9, 1.0, 3.0, 10 * 86_400.0]))
    assert dim.labels_of(dim.codes) == ["le0.5", "le1", "le1", "le5", "leinf"]


def test_a_closed_hour_is_rolled_up_and_reads_the_same_as_its_fine_buckets(client, settings, worker):
    hour = (int(time.time()) // 3600 - 3) * 3600
    start_ms = hour * 1000
    events = [raw_event("complaint", seq=i, ts=start_ms + i * 97_000) for i in range(40)]  # over ~65 minutes
    write(client, settings, "complaints", events)
    drain(worker)
    reader = CityReader(client, settings)
    window = Window(hour - 600, hour + 2 * 3600)
    before = reader.counts("complaints", "complaints.channel", window)
    assert worker.roll_up() == 0  # the newest event is barely past the hour: it may still get late events

    write(client, settings, "complaints", [raw_event("complaint", seq=99, ts=int(time.time() * 1000))])
    drain(worker)
    assert worker.roll_up() == 2  # the two hours the old events fell in
    keys = Keys(settings.key_prefix)
    assert client.hgetall(keys.bucket("complaints", "complaints.channel", "h", hour)) == {b"hotline": b"38"}
    assert reader.counts("complaints", "complaints.channel", window) == before == {"hotline": 40}

    # A straggler for the rolled-up hour is refused as late instead of silently missing from it.
    write(client, settings, "complaints", [raw_event("complaint", seq=100, ts=start_ms + 5)])
    worker.closed_ms.clear()  # as a freshly started worker that has not heard of the roll-up
    drain(worker)
    assert reader.dead_letter_counts()["complaints"] == {"late": 1}
    assert reader.counts("complaints", "complaints.channel", window) == {"hotline": 40}


def test_a_refused_entry_committed_twice_has_one_dead_letter(client, settings, worker):
    t = now_ms()
    write(client, settings, "foot", [raw_event("reading", seq=1, ts=t) | {"lat": "NaN"}])
    entries = client.xrange(Keys(settings.key_prefix).stream("foot"))
    drain(worker)
    worker.process("foot", entries)  # as if a second worker had claimed it from a slow first one
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["foot"] == {"bad_coordinates": 1}
    assert len(reader.dead_letters("foot", count=10)) == 1
