"""Read-side judgements through the real aggregator: now versus normal, crowding, fever, silent sensors."""

from __future__ import annotations

import json
import time

import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader
from data.read.foot import crowding_alerts, fever_alerts, now_versus_normal, silent_sensors
from tests.events import raw_event

pytestmark = pytest.mark.redis
DAY_MS, HOUR_MS, MINUTE_MS = 86_400_000, 3_600_000, 60_000


@pytest.fixture
def history(settings):
    """Settings that keep fine buckets for weeks, so history can be written and rolled up in a test."""
    return type(settings)(**{**settings.__dict__, "retention_hours": 24 * 30.0})


def run(client, settings, city_map, source: str, events) -> Aggregator:
    keys = Keys(settings.key_prefix)
    pipe = client.pipeline(transaction=False)
    for e in sorted(events, key=lambda e: int(e["ts"])):
        pipe.xadd(keys.stream(source), e)
    pipe.execute()
    worker = Aggregator(client, settings, city_map, name="insight")
    worker.ensure_groups()
    worker.drain()
    worker.roll_up()
    return worker


def test_a_sensor_is_judged_against_the_same_hour_on_comparable_days(client, history, city_map):
    hour = (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS
    events = [
        raw_event("reading", seq=2 * d + i, ts=hour - d * DAY_MS + 10 * MINUTE_MS, sensor_id=sensor, people=100 + d % 3)
        for d in range(1, 22)
        for i, sensor in enumerate(("S-calm", "S-busy"))
    ]
    events.append(raw_event("reading", seq=100, ts=hour + 10 * MINUTE_MS, sensor_id="S-calm", people=50))
    events.append(raw_event("reading", seq=101, ts=hour + 10 * MINUTE_MS, sensor_id="S-busy", people=400))
    events.append(raw_event("reading", seq=102, ts=hour + HOUR_MS + 30 * MINUTE_MS, sensor_id="S-late", people=1))
    run(client, history, city_map, "foot", events)
    judged = now_versus_normal(CityReader(client, history), (hour + 30 * MINUTE_MS) / 1000).set_index("key")
    # Half an hour in, 50 people is a normal hour of about 100; 400 is eight times it.
    assert judged.loc["S-calm", "flag"] == "normal" and judged.loc["S-calm", "history_days"] >= 3
    assert judged.loc["S-busy", "flag"] == "unusual" and judged.loc["S-busy", "ratio"] > 5


def test_a_sensor_with_no_past_says_so(client, settings, city_map):
    # Half past an hour, so the reading a minute before falls in the hour judged whenever the test runs.
    now = (int(time.time() * 1000) // HOUR_MS - 1) * HOUR_MS + 30 * MINUTE_MS
    run(client, settings, city_map, "foot", [raw_event("reading", seq=1, ts=now - MINUTE_MS, sensor_id="S-new")])
    judged = now_versus_normal(CityReader(client, settings), now / 1000).set_index("key")
    assert judged.loc["S-new", "flag"] == "no_history"


def crowded_minutes(sensor: str, minutes_ago, seq: int, now: int, occupancy: int = 950) -> list[dict]:
    """A reading a minute of one sensor at these minutes before now (capacity 1,000, no fever)."""
    return [
        raw_event(
            "reading",
            seq=seq + i,
            ts=now - m * MINUTE_MS,
            sensor_id=sensor,
            occupancy=occupancy,
            capacity=1000,
            fever=0,
        )
        for i, m in enumerate(minutes_ago)
    ]


def test_crowding_is_an_alert_only_after_the_grace_period_and_ends_when_it_eases(client, settings, city_map):
    now = int(time.time() * 1000)
    worker = run(client, settings, city_map, "foot", [
        *crowded_minutes("S-long", range(20, 0, -1), 0, now),
        *crowded_minutes("S-brief", range(2, 0, -1), 100, now),
        *crowded_minutes("S-fine", [1], 200, now, occupancy=300),
    ])  # fmt: skip
    reader = CityReader(client, settings)
    alerts = crowding_alerts(reader, now / 1000)
    assert [a["sensor_id"] for a in alerts] == ["S-long"]
    assert 19 * 60 < alerts[0]["over_s"] < 21 * 60 and alerts[0]["community_id"] != "outside"

    client.xadd(
        Keys(settings.key_prefix).stream("foot"),
        raw_event("reading", seq=500, ts=now, sensor_id="S-long", occupancy=500, capacity=1000),
    )
    worker.drain()
    assert crowding_alerts(reader, now / 1000) == []


def test_a_data_gap_breaks_a_crowded_stretch_in_one_batch_or_across_two(client, settings, city_map):
    now = int(time.time() * 1000)
    keys = Keys(settings.key_prefix)
    # Crowded for twenty minutes with eight of them unreported: two short stretches, neither past the grace.
    worker = run(client, settings, city_map, "foot", [
        *crowded_minutes("S-gap", [*range(20, 12, -1), *range(4, 0, -1)], 0, now),
        *crowded_minutes("S-gap-later", range(20, 12, -1), 100, now),
        *crowded_minutes("S-steady", range(20, 0, -1), 200, now),
        # Crowded for twenty minutes, then nothing for eight: silent, not crowded.
        *crowded_minutes("S-went-quiet", range(28, 8, -1), 300, now),
    ])  # fmt: skip
    pipe = client.pipeline(transaction=False)
    for event in crowded_minutes("S-gap-later", range(4, 0, -1), 400, now):
        pipe.xadd(keys.stream("foot"), event)
    pipe.execute()
    worker.drain()
    alerts = crowding_alerts(CityReader(client, settings), now / 1000)
    assert [a["sensor_id"] for a in alerts] == ["S-steady"]


def test_a_rise_in_fever_readings_raises_an_alert_and_steady_ones_do_not(client, settings, city_map):
    now = int(time.time() * 1000)
    events = []
    for i in range(24):  # a day of ordinary readings: many people, almost no fever
        ts = now - (i + 2) * HOUR_MS
        events += [
            raw_event("reading", seq=2 * i, ts=ts, sensor_id=s, people=2000, fever=0) for s in ("S-hot", "S-calm")
        ]
    events.append(raw_event("reading", seq=100, ts=now - 10 * MINUTE_MS, sensor_id="S-hot", people=1000, fever=12))
    events.append(raw_event("reading", seq=101, ts=now - 10 * MINUTE_MS, sensor_id="S-calm", people=1000, fever=1))
    history = type(settings)(**{**settings.__dict__, "lateness_seconds": 3 * 86_400})
    run(client, history, city_map, "foot", events)
    alerts = fever_alerts(CityReader(client, settings), now / 1000)
    assert [a["sensor_id"] for a in alerts] == ["S-hot"] and alerts[0]["p_value"] < 0.001


def test_a_sensor_that_stopped_reporting_is_silent(client, settings, city_map):
    now = int(time.time() * 1000)
    run(client, settings, city_map, "foot", [
        raw_event("reading", seq=1, ts=now - 10 * MINUTE_MS, sensor_id="S-quiet", interval_s=60),
        raw_event("reading", seq=2, ts=now - 30_000, sensor_id="S-alive", interval_s=60),
    ])  # fmt: skip
    assert [s["sensor_id"] for s in silent_sensors(CityReader(client, settings))] == ["S-quiet"]


def test_the_foot_page_colours_sensors_by_the_same_judgement(client, history, city_map, demo_city):
    from views.geography import CityGeography
    from views.snapshots import foot_snapshot
    from views.state import ViewState

    now = time.time()
    hour = int(now * 1000) // HOUR_MS * HOUR_MS
    events = [
        raw_event("reading", seq=d, ts=hour - d * DAY_MS + 5 * MINUTE_MS, sensor_id="S-busy", people=100 + d % 3)
        for d in range(1, 22)
    ]
    events.append(raw_event("reading", seq=100, ts=int(now * 1000) - 1000, sensor_id="S-busy", people=2_000))
    run(client, history, city_map, "foot", events)
    geo = CityGeography(demo_city, history.h3_resolution, history.geojson_simplify_m)
    snap = foot_snapshot(CityReader(client, history), geo, ViewState("15m"), now)
    (sensor,) = [s for s in snap["sensors"] if s["sensor"] == "S-busy"]
    judged = now_versus_normal(CityReader(client, history), now).set_index("key").loc["S-busy"]
    assert sensor["normal"] == judged["flag"] == "unusual"
    assert sensor["ratio"] == pytest.approx(judged["ratio"], rel=0.01) and snap["history_days"] >= 3


@pytest.mark.parametrize("share", [0.5, 0.9])
def test_every_consumer_of_crowded_follows_the_one_setting(client, settings, city_map, demo_city, share):
    """The keeper's stretch, the alarm, the foot page's list, its ringed markers and its words all
    change with ``CITYDECK_CROWDING_SHARE`` and nothing else."""
    from layouts.render import foot_alerts, foot_numbers
    from views.figures import sensors_map
    from views.geography import CityGeography
    from views.snapshots import alarms, foot_snapshot
    from views.state import ViewState

    settings = type(settings)(**{**settings.__dict__, "crowding_share": share})
    now = int(time.time() * 1000)
    occupancy = {"S-60": 600, "S-85": 850, "S-95": 950}  # of a capacity of 1,000
    run(client, settings, city_map, "foot", [
        e for i, (sensor, n) in enumerate(occupancy.items())
        for e in crowded_minutes(sensor, range(12, 0, -1), 100 * i, now, occupancy=n)
    ])  # fmt: skip
    expected = sorted(s for s, n in occupancy.items() if n >= share * 1000)
    reader = CityReader(client, settings)
    geo = CityGeography(demo_city, settings.h3_resolution, settings.geojson_simplify_m)

    assert sorted(a["sensor_id"] for a in crowding_alerts(reader, now / 1000)) == expected
    crowding_alarms = [a for a in alarms(reader, geo, settings, now / 1000) if a["kind"] == "crowding"]
    assert len(crowding_alarms) == len(expected)
    snap = foot_snapshot(reader, geo, ViewState("15m"), now / 1000)
    assert sorted(r["sensor"] for r in snap["crowded"]) == expected
    assert sorted(r["sensor"] for r in snap["sensors"] if r["crowded"]) == expected
    ringed = sensors_map(snap, "r")["data"][0]["text"]
    assert len(ringed) == len(expected)
    words = str(foot_numbers(snap)) + str(foot_alerts(snap))
    assert f"{share:.0%} of capacity" in words and ("80 %" in words) == (share == 0.8)


def test_two_dashboard_processes_judge_an_hour_against_the_same_normal(client, history, city_map):
    """Whichever gunicorn worker builds the tick, and whenever in the hour it first looks, a sensor's
    normal for the hour is the same: history imported later does not make two screens disagree."""
    settings = type(history)(**{**history.__dict__, "lateness_seconds": 30 * 86_400})
    hour = (int(time.time() * 1000) // HOUR_MS - 2) * HOUR_MS
    days = range(1, 22)

    def past(seq: int, people: int) -> list[dict]:
        return [
            raw_event("reading", seq=seq + d, ts=hour - d * DAY_MS + 10 * MINUTE_MS, sensor_id="S-x", people=people)
            for d in days
        ]

    now = [raw_event("reading", seq=1000, ts=hour + 2 * MINUTE_MS, sensor_id="S-x", people=30)]
    worker = run(client, settings, city_map, "foot", past(0, 100) + now)
    first = now_versus_normal(CityReader(client, settings), (hour + 5 * MINUTE_MS) / 1000).set_index("key")
    # An import doubles every past day after the first process looked; a second process looks ten minutes on.
    pipe = client.pipeline(transaction=False)
    for event in past(500, 100):
        pipe.xadd(Keys(settings.key_prefix).stream("foot"), event)
    pipe.execute()
    worker.drain()
    worker.roll_up()
    second = now_versus_normal(CityReader(client, settings), (hour + 15 * MINUTE_MS) / 1000).set_index("key")
    assert first.loc["S-x", "baseline"] == 100
    assert (
        second.loc["S-x", ["baseline", "history_days"]].tolist()
        == first.loc["S-x", ["baseline", "history_days"]].tolist()
    )


def test_no_sensor_is_silent_while_its_source_replays_the_last_hour(client, settings, city_map):
    """At start-up the simulators replay the last hour: every sensor's reading is old by the wall
    clock, yet none has fallen silent; one that stopped while the others went on has."""
    now = int(time.time() * 1000)
    replayed_to = now - 40 * MINUTE_MS  # how far the replay has come
    run(client, settings, city_map, "foot", [
        raw_event("reading", seq=i, ts=replayed_to - lag_min * MINUTE_MS, sensor_id=sensor, interval_s=60)
        for i, (sensor, lag_min) in enumerate([("S-a", 0), ("S-b", 1), ("S-c", 0), ("S-stopped", 5)])
    ])  # fmt: skip
    assert [s["sensor_id"] for s in silent_sensors(CityReader(client, settings))] == ["S-stopped"]


def test_a_source_is_stale_when_it_sends_less_than_expected_not_when_it_is_quiet(client, history, city_map, demo_city):
    """Five minutes after the last event: the busy sensors are stale, the few complaints of a quiet
    hour are not, services that were busy at this hour yesterday and sent nothing since are, and a
    source that never sent anything says so."""
    from views.geography import CityGeography
    from views.snapshots import status_snapshot

    settings = type(history)(**{**history.__dict__, "lateness_seconds": 30 * 86_400})
    now = int(time.time() * 1000)
    later = now + 5 * MINUTE_MS
    hour = later // HOUR_MS * HOUR_MS
    run(client, settings, city_map, "foot", [
        raw_event("reading", seq=i, ts=now - i * 6_000, sensor_id=f"S-{i % 20}") for i in range(600)
    ])  # fmt: skip
    run(client, settings, city_map, "complaints", [
        raw_event("complaint", seq=i, ts=now - i * 10 * MINUTE_MS, complaint_id=f"k-{i}") for i in range(6)
    ])  # fmt: skip
    run(client, settings, city_map, "services", [
        raw_event("application", seq=i, ts=hour - DAY_MS + i * 9_000, application_id=f"a-{i}") for i in range(400)
    ])  # fmt: skip
    geo = CityGeography(demo_city, settings.h3_resolution, settings.geojson_simplify_m)
    reader = CityReader(client, settings, clock=lambda: later / 1000)
    lines = {line["source"]: line for line in status_snapshot(reader, geo, settings, later / 1000)["freshness"]}
    assert {s: line["stale"] for s, line in lines.items()} == {
        "foot": True,
        "complaints": False,
        "services": True,
        "cases": True,
    }
    assert "events were expected" in lines["foot"]["message"] and "yet" in lines["cases"]["message"]


def test_a_stretch_stored_by_an_older_version_is_begun_again_not_a_crash(client, settings, city_map):
    from data.keepers.foot import OVER

    now = int(time.time() * 1000)
    keys = Keys(settings.key_prefix)
    client.hset(keys.state("foot", OVER), "S-old", f"{now - HOUR_MS}|P-1|C-1")
    run(client, settings, city_map, "foot", crowded_minutes("S-old", range(3, 0, -1), 0, now))
    assert crowding_alerts(CityReader(client, settings), now / 1000) == []  # three minutes: within the grace
    assert json.loads(client.hget(keys.state("foot", OVER), "S-old"))["since_ms"] == now - 3 * MINUTE_MS
