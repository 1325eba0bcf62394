"""Unit tests of the simulated sources: deterministic, rhythmic, schema-valid, and scenario-aware."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from data.schema import decode_batch, encode
from simulators.cases import outbreak_plan
from simulators.clock import SimulatedClock, run_start_ms
from simulators.generate import MODELS, generate, source_model
from simulators.rhythm import Calendar
from simulators.world import World

SHENZHEN = ZoneInfo("Asia/Shanghai")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def local_ms(year: int, month: int, day: int, hour: float = 0) -> int:
    """Return the event time of a local Shenzhen moment."""
    return int(datetime(year, month, day, int(hour), int(hour % 1 * 60), tzinfo=SHENZHEN).timestamp() * 1000)


MONDAY = (2024, 5, 6)
SATURDAY = (2024, 5, 11)


@pytest.fixture(scope="module")
def city(demo_city):
    return demo_city


@pytest.fixture(scope="module")
def small_world(city):
    return World(city, scale=0.01, seed=3)


def readings_between(world: World, start_ms: int, end_ms: int, place_kind: str) -> int:
    """Sum people counted at a kind of place in a window."""
    events = generate("foot", world, start_ms=start_ms, end_ms=end_ms, seed=3)
    return sum(e.fields["people"] for e in events if e.fields["place_kind"] == place_kind)


def test_same_seed_gives_identical_events_whatever_the_steps(small_world):
    start = local_ms(*MONDAY, 7)
    for source in MODELS:
        once = generate(source, small_world, start_ms=start, end_ms=start + HOUR_MS, seed=3)
        model = source_model(source, small_world, start_ms=start, seed=3)
        stepped = [e for k in range(1, 13) for e in model.advance(start + k * HOUR_MS // 12)]
        assert once == stepped, source
        assert once, source


def test_different_seeds_give_different_events(city):
    start = local_ms(*MONDAY, 9)
    a = generate("complaints", World(city, 0.05, seed=1), start_ms=start, end_ms=start + HOUR_MS, seed=1)
    b = generate("complaints", World(city, 0.05, seed=2), start_ms=start, end_ms=start + HOUR_MS, seed=2)
    assert a != b


def test_events_come_in_event_time_order_within_the_window(small_world):
    start = local_ms(*MONDAY, 8)
    for source in MODELS:
        events = generate(source, small_world, start_ms=start, end_ms=start + HOUR_MS, seed=3)
        times = [e.ts for e in events]
        assert times == sorted(times), source
        assert start <= times[0] and times[-1] < start + HOUR_MS, source


def test_metro_rush_hour_counts_far_more_than_3am(small_world):
    rush = readings_between(small_world, local_ms(*MONDAY, 8), local_ms(*MONDAY, 8.5), "metro_station")
    night = readings_between(small_world, local_ms(*MONDAY, 3), local_ms(*MONDAY, 3.5), "metro_station")
    assert rush > 20 * max(night, 1)


def test_weekend_mall_evening_busier_than_weekday_morning(small_world):
    weekend_evening = readings_between(small_world, local_ms(*SATURDAY, 19), local_ms(*SATURDAY, 19.5), "mall")
    weekday_morning = readings_between(small_world, local_ms(*MONDAY, 10), local_ms(*MONDAY, 10.5), "mall")
    assert weekend_evening > 2 * weekday_morning > 0


def test_counters_close_at_night_while_the_app_keeps_taking_applications(city):
    world = World(city, scale=0.2, seed=3)
    channels = Counter(
        e.fields["channel"]
        for e in generate("services", world, start_ms=local_ms(*MONDAY, 1), end_ms=local_ms(*MONDAY, 4), seed=3)
        if e.type == "application"
    )
    day = Counter(
        e.fields["channel"]
        for e in generate("services", world, start_ms=local_ms(*MONDAY, 10), end_ms=local_ms(*MONDAY, 11), seed=3)
        if e.type == "application"
    )
    assert channels["counter"] == 0
    assert channels["app"] > 50
    assert day["counter"] > 20 and day["app"] > day["web"] > day["kiosk"]


def test_some_services_are_approved_automatically_in_about_a_second(city):
    events = generate(
        "services", World(city, 0.1, seed=3), start_ms=local_ms(*MONDAY, 10), end_ms=local_ms(*MONDAY, 11), seed=3
    )
    applications = [e.fields for e in events if e.type == "application"]
    automatic = [a for a in applications if a["automatic"]]
    assert 0.2 < len(automatic) / len(applications) < 0.8
    assert all(a["processing_s"] < 5 for a in automatic)
    assert any(a["decision"] == "pending" for a in applications)


def test_every_generated_event_passes_the_schema(city):
    world = World(city, scale=0.002, seed=5)
    start = local_ms(*MONDAY, 6)
    for scenario in ("normal", "outbreak", "storm", "holiday"):
        for source in MODELS:
            end = start + (4 * DAY_MS if source == "cases" and scenario == "outbreak" else 3 * HOUR_MS)
            if source == "foot":
                end = start + 5 * 60_000
            events = generate(source, world, start_ms=start, end_ms=end, scenario=scenario, seed=5)
            entries = [
                {k.encode(): v.encode() for k, v in encode(e.type, src="test", seq=i, ts=e.ts, **e.fields).items()}
                for i, e in enumerate(events)
            ]
            _, rejected = decode_batch(
                source, entries, now_ms=10**15, future_tolerance_ms=300_000, max_text_length=2000
            )
            assert entries and not rejected, (scenario, source, rejected[:3])


def test_all_event_types_are_produced(city):
    world = World(city, scale=0.003, seed=5)
    start = local_ms(*MONDAY, 6)
    types = set()
    for source in MODELS:
        end = start + (5 * DAY_MS if source != "foot" else 10 * 60_000)
        types |= {e.type for e in generate(source, world, start_ms=start, end_ms=end, scenario="outbreak", seed=5)}
    assert types == {
        "case_report", "case_visit", "checkin", "declaration", "reading",
        "application", "appointment", "complaint", "complaint_update",
    }  # fmt: skip


def test_outbreak_yields_case_reports_and_contacts_at_the_index_venue(city):
    world = World(city, scale=0.001, seed=11)
    start = local_ms(*MONDAY, 9)
    events = generate("cases", world, start_ms=start, end_ms=start + 9 * DAY_MS, scenario="outbreak", seed=11)
    model = source_model("cases", world, start_ms=start, scenario="outbreak", seed=11)
    plan = outbreak_plan(world, start, 11, model.calendar)
    around = [
        e
        for e in events
        if e.type == "checkin"
        and e.fields["venue_id"] == plan.venue_id
        and abs(e.ts - plan.index_visit_ms) <= 2 * HOUR_MS
    ]
    assert len({e.fields["person_id"] for e in around}) >= 20
    confirmed = {e.fields["case_id"] for e in events if e.type == "case_report" and e.fields["status"] == "confirmed"}
    assert len(confirmed) >= 3  # the index case and diners who fell ill days later
    visits = [e for e in events if e.type == "case_visit" and e.fields["venue_id"] == plan.venue_id]
    assert len(visits) >= 3
    assert all(v.fields["arrive_ts"] < v.fields["leave_ts"] for v in visits)
    assert Counter(e.fields["health_code"] for e in events if e.type == "declaration")["red"] >= 100


def test_storm_brings_more_complaints_of_flooding_and_fallen_trees(city):
    world = World(city, scale=0.2, seed=4)
    start = local_ms(*MONDAY, 14)

    def complaints(scenario: str) -> list:
        events = generate("complaints", world, start_ms=start, end_ms=start + 6 * HOUR_MS, scenario=scenario, seed=4)
        return [e for e in events if e.type == "complaint"]

    normal, storm = complaints("normal"), complaints("storm")
    assert len(storm) > 2 * len(normal)
    texts = " ".join(e.fields["text"] for e in storm)
    assert "flooded" in texts.lower() and "fallen tree" in texts.lower()


def test_complaints_are_routed_up_the_hierarchy_and_closed(city):
    world = World(city, scale=0.03, seed=4)
    start = local_ms(*MONDAY, 8)
    events = generate("complaints", world, start_ms=start, end_ms=start + 8 * DAY_MS, seed=4)
    updates = [e.fields for e in events if e.type == "complaint_update"]
    actions = Counter(u["action"] for u in updates)
    assert {"assigned", "escalated", "resolved", "closed"} <= set(actions)
    assert {u["level"] for u in updates} == {"community", "neighbourhood", "district", "department"}
    filed = {e.fields["complaint_id"] for e in events if e.type == "complaint"}
    assert {u["complaint_id"] for u in updates} <= filed
    assert all(u["department"] for u in updates if u["level"] == "department")


def test_the_simulated_departments_answer_exactly_the_urgent_categories_at_once(city):
    from data.schema import COMPLAINT_CATEGORIES
    from engines.complaints import URGENT_CATEGORIES

    world = World(city, scale=0.1, seed=5)
    start = local_ms(*MONDAY, 9)
    events = generate("complaints", world, start_ms=start, end_ms=start + 12 * HOUR_MS, seed=5)
    filed = {e.fields["complaint_id"]: (e.ts, e.fields["category"]) for e in events if e.type == "complaint"}
    assigned_after_min: dict[str, list[float]] = {}
    for e in events:
        if e.type == "complaint_update" and e.fields["action"] == "assigned":
            ts, category = filed[e.fields["complaint_id"]]
            if category is not None:  # the intake desk named it
                assigned_after_min.setdefault(category, []).append((e.ts - ts) / 60_000)
    assert set(assigned_after_min) == set(COMPLAINT_CATEGORIES)
    # An urgent complaint is picked up within minutes, day or night; any other waits at least ten.
    for category, delays in assigned_after_min.items():
        assert (max(delays) < 10) if category in URGENT_CATEGORIES else (min(delays) >= 10), category


def test_a_dark_road_draws_streetlight_complaints_night_after_night(city):
    world = World(city, scale=0.05, seed=4)
    start = local_ms(*MONDAY, 12)
    model = source_model("complaints", world, start_ms=start, seed=4)
    events = model.advance(start + 4 * DAY_MS)
    cluster = [e for e in events if e.type == "complaint" and e.fields["complaint_id"].startswith("TC")]
    nights = {model.calendar.local(e.ts).date() for e in cluster if e.fields.get("category") == "streetlight"}
    assert len(nights) >= 3


def test_foot_sensors_report_fever_occupancy_and_sometimes_fall_silent(small_world):
    start = local_ms(*SATURDAY, 14)
    events = generate("foot", small_world, start_ms=start, end_ms=start + 3 * HOUR_MS, seed=3)
    infrared = [e.fields for e in events if e.fields["sensor_kind"] == "infrared"]
    assert infrared and all("fever" in f for f in infrared)
    assert any("occupancy" in e.fields and "capacity" in e.fields for e in events)
    per_sensor = Counter(e.fields["sensor_id"] for e in events)
    assert min(per_sensor.values()) < 180 == max(per_sensor.values())


def test_holiday_fills_parks_and_closes_counters(city):
    world = World(city, scale=0.2, seed=3)
    start = local_ms(*MONDAY, 10)
    end = start + HOUR_MS

    def counted(scenario: str, place_kind: str) -> int:
        events = generate("foot", world, start_ms=start, end_ms=end, scenario=scenario, seed=3)
        return sum(e.fields["people"] for e in events if e.fields["place_kind"] == place_kind)

    assert counted("holiday", "park") > 2 * counted("normal", "park")
    services = generate("services", world, start_ms=start, end_ms=end, scenario="holiday", seed=3)
    assert not [e for e in services if e.type == "application" and e.fields["channel"] == "counter"]


def test_person_tokens_are_pseudonymous_and_stable(small_world):
    token = small_world.resident_token(42)
    assert token == small_world.resident_token(42) != small_world.resident_token(43)
    assert token.startswith("p") and len(token) == 17


def test_clock_compresses_time_then_never_runs_ahead_of_the_wall():
    wall = [1_000_000.0]
    mono = [0.0]
    start = run_start_ms(int(wall[0] * 1000), speed=60, duration_s=10, backfill_hours=3)
    assert start == int(wall[0] * 1000) - 600_000
    clock = SimulatedClock(start, 60, wall=lambda: wall[0], monotonic=lambda: mono[0])
    mono[0] += 5
    wall[0] += 5
    assert clock.now_ms() == start + 300_000
    mono[0] += 20
    wall[0] += 20
    assert clock.now_ms() == int(wall[0] * 1000) and clock.caught_up()
    assert run_start_ms(0, speed=60, duration_s=None, backfill_hours=2) == -2 * HOUR_MS
    assert run_start_ms(0, speed=1, duration_s=None, backfill_hours=2) == 0


def test_offices_reopen_on_the_next_working_morning():
    calendar = Calendar()
    friday_evening = local_ms(2024, 5, 10, 19)
    reopened = calendar.local(calendar.next_working_time(friday_evening, __import__("numpy").random.default_rng(0)))
    assert reopened.weekday() == 0 and 9 <= reopened.hour < 10
