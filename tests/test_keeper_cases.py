"""Case tracing through the aggregator, against a real Redis: contacts, health codes, exposure sites, clusters."""

from __future__ import annotations

import json
import time

import pytest

from data.aggregator import Aggregator
from data.keepers.cases import (
    ACTIVE,
    CONTACTS,
    clusters,
    derived_case_token,
    exposure_sites,
    precise_visits,
)
from data.keys import Keys
from data.read import CityReader, Window
from data.read.cases import active_codes, case_picture
from data.schema import encode
from tests.events import LAT, LON, raw_event

pytestmark = pytest.mark.redis
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
VENUE = "V-dumpling-house"


@pytest.fixture
def worker(client, settings, city_map):
    w = Aggregator(client, settings, city_map, name="tracer", sources=("cases",))
    w.ensure_groups()
    return w


class Feed:
    """Writes case-tracing events to the stream with increasing sequence numbers."""

    def __init__(self, client, settings):
        self.client, self.stream, self.seq = client, Keys(settings.key_prefix).stream("cases"), 0

    def __call__(self, type_name: str, ts: int, **fields) -> None:
        self.seq += 1
        self.client.xadd(self.stream, raw_event(type_name, seq=self.seq, ts=ts, **fields))

    def checkin(self, person: str, at: int, stay_s: int | None = None, venue: str = VENUE) -> None:
        self("checkin", at, person_id=person, venue_id=venue, stay_s=stay_s)

    def visit(self, case: str, arrive: int, leave: int, ts: int, venue: str = VENUE) -> None:
        self("case_visit", ts, case_id=case, venue_id=venue, arrive_ts=arrive, leave_ts=leave)

    def report(self, case: str, status: str, ts: int, onset: int | None = None) -> None:
        self("case_report", ts, case_id=case, status=status, onset_ts=onset)


@pytest.fixture
def feed(client, settings):
    return Feed(client, settings)


def contacts(client, settings) -> dict[str, dict]:
    raw = client.hgetall(Keys(settings.key_prefix).state("cases", CONTACTS))
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def totals(client, settings) -> dict[str, int]:
    codes = active_codes(CityReader(client, settings))
    return {colour: int(codes[colour].sum()) for colour in ("yellow", "red")}


def test_a_checkin_inside_the_window_of_a_case_visit_is_a_contact_and_one_just_outside_is_not(
    client, settings, worker, feed
):
    now = int(time.time() * 1000)
    leave = now - 2 * HOUR_MS
    feed.checkin("p-early", leave - 90 * MINUTE_MS, stay_s=20 * 60)  # left 10 minutes before the case came
    feed.checkin("p-late-inside", leave + 29 * MINUTE_MS)  # stay unknown: the 30-minute window
    feed.checkin("p-late-outside", leave + 31 * MINUTE_MS)
    feed.checkin("p-overlap", leave - 2 * HOUR_MS, stay_s=75 * 60)  # still there when the case came
    worker.drain()
    feed.report("c-1", "confirmed", now - HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-1", leave - HOUR_MS, leave, ts=now - 50 * MINUTE_MS)
    worker.drain()
    found = contacts(client, settings)
    assert sorted(found) == ["p-late-inside", "p-overlap"]
    assert found["p-overlap"]["case_ids"] == ["c-1"] and found["p-overlap"]["venue_id"] == VENUE
    assert found["p-overlap"]["community_id"] != "outside"
    new = CityReader(client, settings).counts("cases", "contacts.community", Window.last(3 * 3600))
    assert sum(new.values()) == 2 and "p-overlap" not in json.dumps(new)


def test_each_checkin_is_kept_under_its_own_day_whatever_order_a_batch_brings_them_in(client, settings, worker, feed):
    # One batch, out of order across midnight: its first and last check-ins on one day, one between on the day
    # before. Kept by day, each must be in its own day's set and no other.
    midnight = (int(time.time() * 1000) // DAY_MS) * DAY_MS
    at = {
        "p-after-1": midnight + 5 * MINUTE_MS,
        "p-before": midnight - 2 * MINUTE_MS,
        "p-after-2": midnight + MINUTE_MS,
    }
    for person, ts in at.items():
        feed.checkin(person, ts, stay_s=600)
    worker.drain()
    keys = Keys(settings.key_prefix)
    kept = {}
    for day in (midnight - DAY_MS, midnight):
        members = client.zrange(keys.state("cases", f"cases:checkins:{day // 1000}"), 0, -1)
        kept[day] = sorted(m.decode().split("\x1f")[3] for m in members)
    assert kept == {midnight - DAY_MS: ["p-before"], midnight: ["p-after-1", "p-after-2"]}


def test_contacts_are_found_whether_the_checkin_comes_before_or_after_the_visit_and_confirmation(
    client, settings, worker, feed
):
    now = int(time.time() * 1000)
    arrive, leave = now - 70 * MINUTE_MS, now - 40 * MINUTE_MS
    feed.checkin("p-before", arrive + 5 * MINUTE_MS, stay_s=600)
    worker.drain()
    feed.visit("c-2", arrive, leave, ts=now - 35 * MINUTE_MS)  # the visit comes before the confirmation
    worker.drain()
    assert contacts(client, settings) == {}
    feed.report("c-2", "confirmed", now - 30 * MINUTE_MS, onset=now - 2 * HOUR_MS)
    worker.drain()
    assert set(contacts(client, settings)) == {"p-before"}
    feed.checkin("p-after", now - 20 * MINUTE_MS)  # 20 minutes after the case left
    feed.checkin("p-much-after", now - 5 * MINUTE_MS)
    worker.drain()
    assert set(contacts(client, settings)) == {"p-before", "p-after"}
    # Checking in, confirming and visiting in one batch finds the contact too.
    feed.checkin("p-same-batch", now - 4 * MINUTE_MS, venue="V-tea")
    feed.report("c-3", "confirmed", now - 3 * MINUTE_MS)
    feed.visit("c-3", now - 10 * MINUTE_MS, now - 5 * MINUTE_MS, ts=now - 2 * MINUTE_MS, venue="V-tea")
    worker.drain()
    assert contacts(client, settings)["p-same-batch"]["case_ids"] == ["c-3"]
    assert worker.tick_keepers() == 0  # tracing recent cases again finds nothing new


def test_a_contact_one_worker_misses_while_another_stores_the_exposure_is_found_by_the_tick(
    client, settings, city_map, feed
):
    now = int(time.time() * 1000)
    tracer = Aggregator(client, settings, city_map, name="tracer", sources=("cases",))
    # This worker's clock stands still, so it keeps the list of exposure venues it read first.
    late = Aggregator(client, settings, city_map, name="late", sources=("cases",), clock=lambda: now / 1000)
    tracer.ensure_groups()
    feed.checkin("p-elsewhere", now - 3 * HOUR_MS, venue="V-elsewhere")
    late.drain()  # reads the venues with exposure sites: none yet
    feed.report("c-1", "confirmed", now - HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-1", now - 2 * HOUR_MS, now - 90 * MINUTE_MS, ts=now - 55 * MINUTE_MS)
    tracer.drain()
    feed.checkin("p-missed", now - 65 * MINUTE_MS)  # 25 minutes after the case left
    late.drain()
    assert contacts(client, settings) == {}
    assert late.tick_keepers() == 1
    assert set(contacts(client, settings)) == {"p-missed"} and totals(client, settings) == {"yellow": 1, "red": 1}


def test_a_contact_turns_yellow_a_case_red_and_a_contact_who_falls_ill_moves_to_red_once(
    client, settings, worker, feed
):
    now = int(time.time() * 1000)
    person = "p-diner"
    feed.checkin(person, now - 3 * HOUR_MS, stay_s=3600)
    feed.checkin(derived_case_token("p-index"), now - 3 * HOUR_MS, stay_s=3600)  # the case's own scan
    feed.report("c-index", "confirmed", now - 2 * HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-index", now - 3 * HOUR_MS, now - 2 * HOUR_MS - 30 * MINUTE_MS, ts=now - 110 * MINUTE_MS)
    feed.visit("c-index", now - 3 * HOUR_MS, now - 2 * HOUR_MS - 30 * MINUTE_MS, ts=now - 100 * MINUTE_MS)
    worker.drain()
    assert totals(client, settings) == {"yellow": 2, "red": 1}
    assert contacts(client, settings)[person]["case_ids"] == ["c-index"]
    # Met a second case: the link is recorded, the person is not counted again.
    feed.report("c-other", "confirmed", now - 90 * MINUTE_MS, onset=now - DAY_MS)
    feed.visit("c-other", now - 3 * HOUR_MS, now - 150 * MINUTE_MS, ts=now - 80 * MINUTE_MS)
    worker.drain()
    assert contacts(client, settings)[person]["case_ids"] == ["c-index", "c-other"]
    assert totals(client, settings) == {"yellow": 2, "red": 2}
    # The diner falls ill: red now, yellow no more.
    feed.report(derived_case_token(person), "suspected", now - 20 * MINUTE_MS, onset=now - HOUR_MS)
    worker.drain()
    assert totals(client, settings) == {"yellow": 2, "red": 2}
    feed.report(derived_case_token(person), "confirmed", now - 10 * MINUTE_MS, onset=now - HOUR_MS)
    feed.report(derived_case_token(person), "confirmed", now - 9 * MINUTE_MS, onset=now - HOUR_MS)
    worker.drain()
    assert totals(client, settings) == {"yellow": 1, "red": 3}
    moves = CityReader(client, settings).counts("cases", "codes.community_colour", Window.last(4 * 3600))
    assert sorted(k.rsplit("|", 1)[1] for k, n in moves.items() for _ in range(n)) == ["red"] * 3 + ["yellow"] * 2


def test_the_earliest_confirmation_counts_whichever_report_is_processed_first(client, settings, worker, feed):
    now = int(time.time() * 1000)
    feed.report("c-twice", "confirmed", now - 2 * MINUTE_MS)
    worker.drain()
    feed.report("c-twice", "confirmed", now - 10 * MINUTE_MS)  # an earlier report, processed later
    worker.drain()
    reader = CityReader(client, settings)
    late = reader.counts("cases", "codes.community_colour", Window(now // 1000 - 300, now // 1000 + 60))
    early = reader.counts("cases", "codes.community_colour", Window(now // 1000 - 900, now // 1000 - 300))
    assert sum(late.values()) == 0 and sum(early.values()) == 1 and totals(client, settings)["red"] == 1


def test_an_earlier_confirmation_read_later_lets_go_of_a_contact_met_after_the_case_was_isolated(
    client, settings, worker, feed
):
    now = int(time.time() * 1000)
    feed.report("c-1", "confirmed", now - 8 * MINUTE_MS, onset=now - DAY_MS)
    feed.visit("c-1", now - 60 * MINUTE_MS, now - 12 * MINUTE_MS, ts=now - 9 * MINUTE_MS)
    feed.checkin("p-while-infectious", now - 55 * MINUTE_MS, stay_s=600)
    feed.checkin("p-after-isolation", now - 16 * MINUTE_MS, stay_s=120)
    worker.drain()
    assert set(contacts(client, settings)) == {"p-while-infectious", "p-after-isolation"}
    # The case was confirmed, so isolated, 20 minutes ago: the report says so only now.
    feed.report("c-1", "confirmed", now - 20 * MINUTE_MS, onset=now - DAY_MS)
    worker.drain()
    found = contacts(client, settings)
    assert set(found) == {"p-while-infectious"}
    # Flagged when the case was confirmed (the check-in came before): the earlier confirmation.
    assert found["p-while-infectious"]["flagged_ts"] == now - 20 * MINUTE_MS
    assert totals(client, settings) == {"yellow": 1, "red": 1}
    reader = CityReader(client, settings)
    new = reader.counts("cases", "contacts.community", Window(now // 1000 - 25 * 60, now // 1000 + 60))
    moved = reader.counts("cases", "contacts.community", Window(now // 1000 - 15 * 60, now // 1000 + 60))
    assert sum(new.values()) == 1 and sum(moved.values()) == 0
    assert worker.tick_keepers() == 0  # tracing it again changes nothing


@pytest.mark.parametrize("order", ["one batch", "V-a first", "V-b first"])
def test_a_contact_keeps_the_link_that_flags_them_first_then_the_first_venue_whatever_order_they_come_in(
    client, settings, worker, feed, order
):
    now = int(time.time() * 1000)
    confirmed = now - 10 * MINUTE_MS
    feed.report("c-1", "confirmed", confirmed, onset=now - DAY_MS)
    feed.checkin("p-diner", now - 90 * MINUTE_MS, stay_s=600, venue="V-b")  # the earlier check-in
    feed.checkin("p-diner", now - 50 * MINUTE_MS, stay_s=600, venue="V-a")
    worker.drain()
    visits = {
        venue: lambda venue=venue, at=at: feed.visit(
            "c-1", at, at + 20 * MINUTE_MS, ts=now - 5 * MINUTE_MS, venue=venue
        )
        for venue, at in (("V-a", now - 55 * MINUTE_MS), ("V-b", now - 95 * MINUTE_MS))
    }
    for venue in ("V-a", "V-b") if order != "V-b first" else ("V-b", "V-a"):
        visits[venue]()
        if order != "one batch":
            worker.drain()
    worker.drain()
    found = contacts(client, settings)["p-diner"]
    # Both check-ins came before the confirmation: both flag the diner when the case was confirmed.
    assert (found["flagged_ts"], found["venue_id"]) == (confirmed, "V-a")
    assert totals(client, settings) == {"yellow": 1, "red": 1}


def test_codes_return_to_green_when_the_quarantine_ends(client, settings, worker, feed):
    keys = Keys(settings.key_prefix)
    then = int(time.time() * 1000) - 15 * DAY_MS  # every quarantine and isolation since then has ended
    feed.checkin("p-long-ago", then, stay_s=3600)
    feed.report("c-long-ago", "confirmed", then + 2 * HOUR_MS, onset=then)
    feed.visit("c-long-ago", then, then + HOUR_MS, ts=then + 3 * HOUR_MS)
    worker.drain()
    assert totals(client, settings) == {"yellow": 1, "red": 1}
    assert worker.tick_keepers() == 1
    assert totals(client, settings) == {"yellow": 0, "red": 0}
    assert client.hlen(keys.state("cases", ACTIVE)) == 0 and contacts(client, settings) == {}
    assert worker.tick_keepers() == 0  # nothing left to end, and tracing again brings nobody back


def test_exposure_sites_and_clusters_come_from_the_read_functions_without_person_tokens(client, settings, worker, feed):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    feed.checkin("p-guest", now - 5 * HOUR_MS, stay_s=3600)
    feed.report("c-a", "confirmed", now - 3 * HOUR_MS, onset=now - DAY_MS)
    feed.report("c-b", "confirmed", now - 3 * HOUR_MS, onset=now - DAY_MS)
    feed.report("c-alone", "confirmed", now - 3 * HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-a", now - 5 * HOUR_MS, now - 4 * HOUR_MS, ts=now - 2 * HOUR_MS)
    feed.visit("c-b", now - 4 * HOUR_MS - 20 * MINUTE_MS, now - 4 * HOUR_MS + 10 * MINUTE_MS, ts=now - 2 * HOUR_MS)
    feed.visit("c-alone", now - 5 * HOUR_MS, now - 4 * HOUR_MS, ts=now - 2 * HOUR_MS, venue="V-elsewhere")
    feed.visit("c-a", now - 20 * DAY_MS, now - 20 * DAY_MS + HOUR_MS, ts=now - HOUR_MS, venue="V-before-illness")
    worker.drain()
    sites = {s["venue_id"]: s for s in exposure_sites(client, keys, now)}
    assert set(sites) == {VENUE, "V-elsewhere"}  # not the visit long before the infectious window
    site = sites[VENUE]
    assert site["cases"] == 2 and site["visits"] == 2 and site["case_ids"] == ("c-a", "c-b")
    assert 3.7 < site["recency_h"] < 4.1 and site["community_id"] != "outside" and site["h3"] != "outside"
    assert "p-guest" not in repr(sites) and "lon" not in site
    found = clusters(client, keys, now)
    assert len(found) == 1 and found[0]["case_ids"] == ("c-a", "c-b") and found[0]["sites"] == (VENUE,)
    assert clusters(client, keys, now + 30 * DAY_MS) == []  # off the map once its sites are


def test_the_workers_publish_sites_and_clusters_as_one_picture_without_tokens_and_rebuild_it_on_change(
    client, settings, worker, feed
):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    assert case_picture(CityReader(client, settings), now) is None  # no worker has built one yet
    feed.checkin("p-guest", now - 5 * HOUR_MS, stay_s=3600)
    feed.report("c-a", "confirmed", now - 3 * HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-a", now - 5 * HOUR_MS, now - 4 * HOUR_MS, ts=now - 2 * HOUR_MS)
    worker.drain()
    picture = case_picture(CityReader(client, settings), now)
    assert [s["venue_id"] for s in picture["sites"]] == [VENUE] and picture["clusters"] == []
    direct = exposure_sites(client, keys, now)[0]
    assert {k: v for k, v in direct.items() if k not in ("case_ids", "visit_times")} == picture["sites"][0]
    raw = client.get(keys.state("cases", "cases:picture")).decode()
    assert "c-a" not in raw and "p-guest" not in raw  # the dashboards never see a person token
    keeper = worker.keepers["cases"][0]
    assert not keeper.publish(client, keys, now + 1000)  # nothing changed: the picture stands
    feed.report("c-b", "confirmed", now - HOUR_MS, onset=now - DAY_MS)  # (within the lateness of the newest)
    feed.visit("c-b", now - 4 * HOUR_MS - 20 * MINUTE_MS, now - 4 * HOUR_MS + 10 * MINUTE_MS, ts=now - HOUR_MS)
    worker.drain()  # a new case linked at the same venue: the picture is rebuilt at once
    picture = case_picture(CityReader(client, settings), now)
    assert [(c["size"], c["sites"]) for c in picture["clusters"]] == [(2, (VENUE,))]
    assert picture["sites"][0]["cases"] == 2
    assert keeper.publish(client, keys, now + 61_000)  # rebuilt once it has aged, changed or not
    later = case_picture(CityReader(client, settings), now + 30 * DAY_MS)
    assert later["sites"] == [] and later["clusters"] == []  # off the map once past the horizon


def test_active_codes_are_counted_exactly_per_community(client, settings, worker, feed):
    now = int(time.time() * 1000)
    for i in range(3):
        feed.checkin(f"p-{i}", now - 2 * HOUR_MS, stay_s=3600)
    feed.report("c-1", "confirmed", now - HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-1", now - 2 * HOUR_MS, now - 90 * MINUTE_MS, ts=now - 50 * MINUTE_MS)
    worker.drain()
    exact = active_codes(CityReader(client, settings))
    # Exact: the small-cell rule is the shared screen's (views.privacy), not the keeper's.
    assert len(exact) == 1 and exact.iloc[0].to_dict() == {"yellow": 3, "red": 1}


def test_precise_visits_give_a_case_path_only_when_asked(client, settings, worker, feed):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    feed.report("c-path", "confirmed", now - HOUR_MS, onset=now - DAY_MS)
    feed.visit("c-path", now - 5 * HOUR_MS, now - 4 * HOUR_MS, ts=now - 50 * MINUTE_MS)
    feed.visit("c-path", now - 3 * HOUR_MS, now - 2 * HOUR_MS, ts=now - 40 * MINUTE_MS, venue="V-gym")
    worker.drain()
    assert all("lon" not in s and "lat" not in s for s in exposure_sites(client, keys, now))
    path = precise_visits(client, keys, "c-path")
    assert [p["venue_id"] for p in path] == [VENUE, "V-gym"]
    assert path[0]["lon"] == pytest.approx(LON) and path[0]["lat"] == pytest.approx(LAT)
    assert precise_visits(client, keys, "c-unknown") == []


def test_the_case_token_of_a_person_is_the_one_the_simulator_reports_cases_under(demo_city):
    from simulators.cases import _case_id
    from simulators.world import World

    world = World(demo_city, scale=0.001, seed=5)
    assert derived_case_token(world.resident_token(42)) == _case_id(world, 42)


def test_the_outbreak_scenario_yields_contacts_yellow_and_red_codes_and_a_cluster(
    client, settings, city_map, demo_city
):
    from simulators.generate import generate

    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    events = generate(
        "cases", demo_city, start_ms=now - 7 * DAY_MS, end_ms=now - DAY_MS, scenario="outbreak", scale=0.01, seed=11
    )
    pipe = client.pipeline(transaction=False)
    for seq, event in enumerate(events):
        pipe.xadd(keys.stream("cases"), encode(event.type, src="sim-cases-test", seq=seq, ts=event.ts, **event.fields))
        if seq % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    worker = Aggregator(client, settings, city_map, name="outbreak", sources=("cases",))
    worker.ensure_groups()
    worker.drain()
    worker.tick_keepers()

    found = contacts(client, settings)
    assert len(found) >= 20  # the index case's fellow diners, at least
    codes = totals(client, settings)
    assert codes["yellow"] >= 10 and codes["red"] >= 2
    biggest = clusters(client, keys, now)[0]
    assert biggest["size"] >= 2
    sites = exposure_sites(client, keys, now)
    assert any(set(biggest["sites"]) & {s["venue_id"]} for s in sites)
    # No person token reaches the counters.
    tag = keys.stream("cases").removesuffix(":events")
    counted = [client.hgetall(k) for k in client.scan_iter(match=f"{tag}:agg:*", count=1000)]
    assert not any(person.encode() in field for person in list(found)[:5] for h in counted for field in h)


@pytest.mark.parametrize("behind_s", [0, 3600], ids=["clock at the wall's time", "clock an hour behind"])
def test_a_checkin_folded_by_a_worker_that_had_not_yet_seen_the_new_exposure_is_linked_at_the_tick(
    client, settings, city_map, feed, behind_s
):
    """Worker B lists exposure venues, A stores a new exposure, then B folds a check-in there without reading
    it: neither batch sees the other. The tick traces the case again and finds the contact, whatever the
    workers' clock (a replay or a test runs it behind the wall's)."""
    now = int(time.time() * 1000) - behind_s * 1000
    a, b = (Aggregator(client, settings, city_map, name=n, sources=("cases",), clock=lambda: now / 1000) for n in "ab")
    a.ensure_groups()
    feed.checkin("p-elsewhere", now - 20 * MINUTE_MS, venue="V-elsewhere")
    assert b.drain() == 1  # B has read the exposure venues: none yet
    feed.report("c-1", "confirmed", now - 10 * MINUTE_MS, onset=now - DAY_MS)
    feed.visit("c-1", now - 30 * MINUTE_MS, now - 20 * MINUTE_MS, ts=now - 10 * MINUTE_MS)
    assert a.drain() == 2  # A stores the exposure at VENUE
    feed.checkin("p-late", now - 25 * MINUTE_MS, stay_s=600)
    assert b.drain() == 1  # B's list is a moment old: it folds the check-in without looking for exposures
    a.tick_keepers()
    assert sorted(contacts(client, settings)) == ["p-late"]
    assert totals(client, settings) == {"yellow": 1, "red": 1}
