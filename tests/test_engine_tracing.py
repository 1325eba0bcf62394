"""Case tracing engine: exposure sites, close contacts, health codes, clusters and shared-screen privacy."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from engines.tracing import (
    CONTACT_COLUMNS,
    ContactTracer,
    TracingParams,
    clusters,
    code_counts_by_community,
    code_periods,
    exposure_sites,
    health_codes,
    homes_from_declarations,
    precise_visits,
    shared_screen_view,
)
from tests.conftest import real_data

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = int(datetime(2024, 6, 4, 10, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)


def checkins(*rows: tuple) -> pd.DataFrame:
    """Build check-ins from (person, venue, ts[, stay_s]) rows."""
    return pd.DataFrame(
        [(r[0], r[1], r[2], r[3] if len(r) > 3 else np.nan) for r in rows],
        columns=["person_id", "venue_id", "ts", "stay_s"],
    )


def visits(*rows: tuple) -> pd.DataFrame:
    """Build case visits from (case, venue, arrive, leave) rows."""
    return pd.DataFrame(rows, columns=["case_id", "venue_id", "arrive_ts", "leave_ts"])


def cases(*rows: tuple) -> pd.DataFrame:
    """Build cases from (case, confirmed, onset) rows."""
    return pd.DataFrame(rows, columns=["case_id", "confirmed_ts", "onset_ts"])


# A case at the noodle bar from 10:00 to 11:00, confirmed the next day.
VISIT = visits(("c1", "NOODLE", T0, T0 + HOUR))
CONFIRMED = T0 + DAY


def traced(checkin_rows: pd.DataFrame, params: TracingParams | None = None) -> set[str]:
    """Return the persons found as contacts of the noodle-bar case."""
    tracer = ContactTracer(params or TracingParams())
    tracer.add_checkins(checkin_rows)
    found = tracer.add_case("c1", CONFIRMED, None, VISIT)
    return set(found["person_id"])


def test_a_checkin_inside_the_window_is_a_contact_and_one_just_outside_is_not():
    window = 30 * MINUTE
    found = traced(
        checkins(
            ("early-in", "NOODLE", T0 - window),
            ("early-out", "NOODLE", T0 - window - 1),
            ("during", "NOODLE", T0 + 20 * MINUTE),
            ("late-in", "NOODLE", T0 + HOUR + window),
            ("late-out", "NOODLE", T0 + HOUR + window + 1),
            ("elsewhere", "TEA-SHOP", T0 + 20 * MINUTE),
        )
    )
    assert found == {"early-in", "during", "late-in"}


def test_the_contact_window_is_a_parameter():
    rows = checkins(("late", "NOODLE", T0 + HOUR + 45 * MINUTE))
    assert traced(rows) == set()
    assert traced(rows, TracingParams(contact_window_min=60)) == {"late"}


def test_contacts_are_found_whether_the_checkin_arrives_before_or_after_the_case():
    before = checkins(("ahead", "NOODLE", T0 + 10 * MINUTE))
    after = checkins(("behind", "NOODLE", T0 + 15 * MINUTE))
    tracer = ContactTracer()
    assert tracer.add_checkins(before).empty
    assert list(tracer.add_case("c1", CONFIRMED, None, VISIT)["person_id"]) == ["ahead"]
    # A check-in uploaded late, after the case was confirmed.
    late = tracer.add_checkins(after)
    assert list(late["person_id"]) == ["behind"]
    assert late["flagged_ts"].iloc[0] == CONFIRMED
    assert sorted(tracer.contacts["person_id"]) == ["ahead", "behind"]
    assert tuple(tracer.contacts.columns) == CONTACT_COLUMNS


def test_known_stays_count_when_they_overlap_the_visit_however_early_the_checkin():
    found = traced(
        checkins(
            # Checked in three hours before the case came, still there when it arrived.
            ("long-lunch", "NOODLE", T0 - 3 * HOUR, 3 * 3600 + 60),
            # Left a minute before the case arrived: no overlap, though within 30 minutes.
            ("left-before", "NOODLE", T0 - 20 * MINUTE, 19 * 60),
            # Came in the instant the case left.
            ("touching", "NOODLE", T0 + HOUR, 600),
            ("after", "NOODLE", T0 + HOUR + 1, 600),
        )
    )
    assert found == {"long-lunch", "touching"}


def test_visits_can_arrive_one_by_one_after_the_case_report_and_replays_are_ignored():
    tracer = ContactTracer()
    tracer.add_checkins(checkins(("diner", "NOODLE", T0 + 5 * MINUTE), ("shopper", "MARKET", T0 + 3 * HOUR)))
    assert tracer.add_case("c1", CONFIRMED, None).empty
    assert list(tracer.add_visits(VISIT)["person_id"]) == ["diner"]
    assert tracer.add_visits(VISIT).empty
    second = visits(("c1", "MARKET", T0 + 3 * HOUR, T0 + 4 * HOUR))
    assert list(tracer.add_visits(second)["person_id"]) == ["shopper"]
    assert len(tracer.contacts) == 2


def test_visits_before_the_case_is_confirmed_wait_for_the_report():
    tracer = ContactTracer()
    tracer.add_checkins(checkins(("diner", "NOODLE", T0 + 5 * MINUTE)))
    assert tracer.add_visits(VISIT).empty
    assert list(tracer.add_case("c1", CONFIRMED, None)["person_id"]) == ["diner"]


def test_a_visit_outside_the_infectious_window_exposes_nobody():
    # Symptoms began three days after the dinner: two days before onset is after the dinner.
    tracer = ContactTracer()
    tracer.add_checkins(checkins(("diner", "NOODLE", T0 + 5 * MINUTE)))
    assert tracer.add_case("c1", T0 + 4 * DAY, T0 + 3 * DAY, VISIT).empty
    sites = exposure_sites(cases(("c1", T0 + 4 * DAY, T0 + 3 * DAY)), VISIT, T0 + 5 * DAY)
    assert sites.empty


def test_the_case_own_checkins_are_not_its_contacts():
    tracer = ContactTracer()
    tracer.add_checkins(checkins(("patient", "NOODLE", T0), ("diner", "NOODLE", T0 + MINUTE)))
    found = tracer.add_case("c1", CONFIRMED, None, VISIT, person_id="patient")
    assert list(found["person_id"]) == ["diner"]


def test_checkins_older_than_the_retention_are_pruned():
    tracer = ContactTracer(TracingParams(retention_days=2))
    tracer.add_checkins(checkins(("old", "NOODLE", T0), ("new", "NOODLE", T0 + 3 * DAY)))
    assert tracer.checkins == 1
    assert tracer.add_case("c1", T0 + 3 * DAY, T0 + 2 * DAY, VISIT).empty


def test_many_batches_give_the_same_contacts_as_one():
    rng = np.random.default_rng(5)
    n = 5_000
    rows = checkins(
        *zip(
            [f"p{i}" for i in range(n)],
            rng.choice(["A", "B", "C", "D"], n),
            T0 + rng.integers(-6 * HOUR, 6 * HOUR, n),
            np.where(rng.random(n) < 0.3, np.nan, rng.integers(60, 7200, n)),
            strict=True,
        )
    )
    case_visits = visits(("c1", "A", T0, T0 + HOUR), ("c1", "C", T0 + 2 * HOUR, T0 + 2 * HOUR + 30 * MINUTE))
    whole = ContactTracer()
    whole.add_checkins(rows)
    expected = set(whole.add_case("c1", CONFIRMED, None, case_visits)["person_id"])
    batched = ContactTracer()
    for i, bounds in enumerate(np.array_split(np.arange(n), 37)):
        if i == 20:
            batched.add_case("c1", CONFIRMED, None, case_visits)
        batched.add_checkins(rows.iloc[bounds])
    assert set(batched.contacts["person_id"]) == expected
    assert len(batched.contacts) == len(expected) > 100


def test_exposure_sites_list_visit_times_cases_and_recency():
    case_visits = visits(
        ("c1", "NOODLE", T0, T0 + HOUR),
        ("c2", "NOODLE", T0 + 2 * HOUR, T0 + 3 * HOUR),
        ("c2", "GYM", T0 + 5 * HOUR, T0 + 6 * HOUR),
    )
    now = T0 + 10 * HOUR
    sites = exposure_sites(cases(("c1", CONFIRMED, None), ("c2", CONFIRMED, None)), case_visits, now)
    assert list(sites["venue_id"]) == ["GYM", "NOODLE"]
    noodle = sites.set_index("venue_id").loc["NOODLE"]
    assert noodle["case_ids"] == ("c1", "c2")
    assert noodle["visit_times"] == ((T0, T0 + HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR))
    assert noodle["cases"] == 2 and noodle["visits"] == 2
    assert noodle["recency_h"] == pytest.approx(7.0)
    assert sites.set_index("venue_id").loc["GYM", "recency_h"] == pytest.approx(4.0)


def test_precise_visit_points_come_only_from_the_explicit_call():
    case_visits = visits(("c1", "NOODLE", T0, T0 + HOUR)).assign(lon=114.05, lat=22.54)
    confirmed = cases(("c1", CONFIRMED, None))
    sites = exposure_sites(confirmed, case_visits, T0 + 2 * HOUR)
    assert not {"lon", "lat", "arrive_ts", "leave_ts"} & set(sites.columns)
    path = precise_visits(confirmed, case_visits)
    assert path[["case_id", "venue_id", "arrive_ts", "lon", "lat"]].iloc[0].tolist() == [
        "c1",
        "NOODLE",
        T0,
        114.05,
        22.54,
    ]


def test_health_codes_turn_yellow_and_red_then_green_after_quarantine():
    params = TracingParams(contact_quarantine_days=7, case_isolation_days=14)
    contacts = pd.DataFrame({"person_id": ["neighbour"], "checkin_ts": [T0], "flagged_ts": [CONFIRMED]})
    periods = code_periods(contacts, cases(("c1", CONFIRMED, None)), params)
    persons = ["neighbour", "c1", "stranger"]

    def colours(at: int) -> list[str]:
        return health_codes(periods, at, persons).tolist()

    assert colours(CONFIRMED - 1) == ["green", "green", "green"]
    assert colours(CONFIRMED) == ["yellow", "red", "green"]
    assert colours(CONFIRMED + 7 * DAY - 1) == ["yellow", "red", "green"]
    assert colours(CONFIRMED + 7 * DAY) == ["green", "red", "green"]
    assert colours(CONFIRMED + 14 * DAY) == ["green", "green", "green"]


def test_a_contact_who_becomes_a_case_is_red_not_yellow():
    contacts = pd.DataFrame({"person_id": ["p1"], "checkin_ts": [T0], "flagged_ts": [CONFIRMED]})
    linked = cases(("c9", CONFIRMED + DAY, None)).assign(person_id="p1")
    periods = code_periods(contacts, linked)
    assert health_codes(periods, CONFIRMED + DAY, ["p1"]).tolist() == ["red"]


def test_code_counts_per_community_come_from_declared_homes():
    declarations = pd.DataFrame(
        {
            "person_id": ["a", "b", "c", "d", "a"],
            "ts": [1, 1, 1, 1, 2],
            "community_id": ["EAST", "EAST", "WEST", "WEST", "WEST"],
        }
    )
    homes = homes_from_declarations(declarations)
    assert homes["a"] == "WEST"  # the latest declaration wins
    contacts = pd.DataFrame({"person_id": ["b", "c"], "checkin_ts": [T0, T0], "flagged_ts": [T0, T0]})
    periods = code_periods(contacts, cases(("d", T0, None)))
    counts = code_counts_by_community(periods, homes, [T0 - 1, T0]).set_index(["ts", "community_id"])
    assert counts.loc[(T0 - 1, "WEST")].tolist() == [3, 0, 0]
    assert counts.loc[(T0, "EAST")].tolist() == [0, 1, 0]
    assert counts.loc[(T0, "WEST")].tolist() == [1, 1, 1]


def test_two_cases_sharing_a_venue_form_a_cluster_and_a_third_stands_apart():
    case_visits = visits(
        ("c1", "NOODLE", T0, T0 + HOUR),
        ("c2", "NOODLE", T0 + 80 * MINUTE, T0 + 2 * HOUR),  # 20 minutes after c1 left
        ("c2", "GYM", T0 + 5 * HOUR, T0 + 6 * HOUR),
        ("c3", "NOODLE", T0 + 5 * HOUR, T0 + 6 * HOUR),  # hours later: not linked
        ("c3", "GYM", T0 + 30 * HOUR, T0 + 31 * HOUR),
    )
    confirmed = cases(*((c, CONFIRMED + 2 * DAY, T0) for c in ("c1", "c2", "c3")))
    found = clusters(confirmed, case_visits)
    assert len(found) == 1
    cluster = found.iloc[0]
    assert cluster["case_ids"] == ("c1", "c2")
    assert cluster["sites"] == ("NOODLE",)
    assert cluster["size"] == 2


def test_clusters_chain_through_a_case_linked_at_two_venues():
    case_visits = visits(
        ("c1", "NOODLE", T0, T0 + HOUR),
        ("c2", "NOODLE", T0, T0 + HOUR),
        ("c2", "GYM", T0 + 5 * HOUR, T0 + 6 * HOUR),
        ("c3", "GYM", T0 + 5 * HOUR, T0 + 6 * HOUR),
        ("c4", "BANK", T0, T0 + HOUR),
        ("c5", "BANK", T0, T0 + HOUR),
    )
    confirmed = cases(*((c, CONFIRMED, None) for c in ("c1", "c2", "c3", "c4", "c5")))
    found = clusters(confirmed, case_visits)
    assert found["case_ids"].tolist() == [("c1", "c2", "c3"), ("c4", "c5")]
    assert found["sites"].tolist() == [("GYM", "NOODLE"), ("BANK",)]


def test_shared_screen_shows_no_count_below_three():
    counts = pd.DataFrame({"green": [120, 40], "yellow": [2, 7], "red": [1, 0]}, index=["EAST", "WEST"])
    view = shared_screen_view(counts)
    assert view.loc["EAST", "yellow"] == "<3"
    assert view.loc["EAST", "red"] == "<3"
    assert view.loc["WEST", "red"] == "<3"
    assert view.loc["WEST", "yellow"] == "7"
    assert view.loc["total", "green"] == "160"
    # The exact red total (1) and EAST's exact total (123) would give the hidden cells away.
    assert view.loc["total", "red"] == "≥0"
    assert view.loc["EAST", "total"] == "≥120"
    assert shared_screen_view(counts, show_zeros=True).loc["WEST", "red"] == "0"


@pytest.mark.parametrize("show_zeros", [False, True])
def test_no_hidden_count_can_be_derived_from_the_totals(show_zeros):
    # Every value a hidden cell could take must give the same screen: then nothing shown,
    # totals included, depends on which it is.
    rng = np.random.default_rng(11)
    for _ in range(30):
        counts = pd.DataFrame(rng.choice([0, 1, 2, 3, 4, 9, 25], size=(3, 3)), columns=["green", "yellow", "red"])
        view = shared_screen_view(counts, show_zeros=show_zeros)
        hidden = [(r, c) for r, c in itertools.product(range(3), range(3)) if view.iat[r, c] == "<3"]
        low = 1 if show_zeros else 0
        for r, c in hidden:
            for value in range(low, 3):
                changed = counts.copy()
                changed.iat[r, c] = value
                pd.testing.assert_frame_equal(shared_screen_view(changed, show_zeros=show_zeros), view)


# ---------------------------------------------------------------------------- real data


def test_korean_case_routes_give_the_exposure_sites_of_their_infectious_days():
    routes = pd.read_csv(real_data("case_tracing", "ds4c_PatientRoute.csv"))
    info = pd.read_csv(real_data("case_tracing", "ds4c_PatientInfo.csv"))

    # Routes and dates are by day (Korea, UTC+9): a visit lasts the day, a case is confirmed
    # and isolated some time during its confirmation day.
    def day_ms(dates: pd.Series) -> pd.Series:
        stamps = pd.to_datetime(dates, format="%Y-%m-%d", errors="coerce").dt.tz_localize("Asia/Seoul")
        return (stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)

    route_visits = pd.DataFrame(
        {
            "case_id": routes["patient_id"].astype(str),
            "venue_id": routes["type"]
            + "@"
            + routes["latitude"].round(5).astype(str)
            + ","
            + routes["longitude"].round(5).astype(str),
            "arrive_ts": day_ms(routes["date"]).astype("int64"),
        }
    )
    route_visits["leave_ts"] = route_visits["arrive_ts"] + DAY - 1
    info = info.dropna(subset=["confirmed_date"])
    confirmed = day_ms(info["confirmed_date"]).astype("int64")
    known_cases = pd.DataFrame(
        {
            "case_id": info["patient_id"].astype(str),
            "confirmed_ts": confirmed,
            "onset_ts": day_ms(info["symptom_onset_date"]),
            "isolated_ts": confirmed + DAY - 1,
        }
    )
    params = TracingParams(site_horizon_days=365)
    now = int(datetime(2020, 5, 1, tzinfo=ZoneInfo("Asia/Seoul")).timestamp() * 1000)

    def sites_of(patient: str) -> pd.DataFrame:
        return exposure_sites(known_cases, route_visits[route_visits["case_id"] == patient], now, params)

    # Patient 1: symptoms 22 Jan, confirmed 23 Jan; the airport (22 Jan) counts, the hospital
    # visit of 24 Jan came after isolation.
    assert sites_of("1000000001")["venue_id"].str.split("@").str[0].tolist() == ["airport"]
    # Patient 2: no onset, confirmed 30 Jan: of 13 routes from 25 Jan, the 6 from 28 to 30 Jan count.
    patient_2 = sites_of("1000000002")
    assert len(patient_2) == 6
    assert patient_2["first_arrive_ts"].min() == day_ms(pd.Series(["2020-01-28"])).iloc[0]

    everyone = exposure_sites(known_cases, route_visits, now, params)
    assert 0 < len(everyone) < len(route_visits)
    assert (everyone["recency_h"] > 0).all()
    assert everyone["cases"].max() > 1  # some places were visited by several patients


# ---------------------------------------------------------------------------- simulated outbreak


@pytest.fixture(scope="module")
def outbreak_events(demo_city):
    """Six simulated days of the cases source in the outbreak scenario (small scale: the story does not scale)."""
    from simulators.generate import generate

    start = int(datetime(2024, 6, 3, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    return start, generate(
        "cases", demo_city, start_ms=start, end_ms=start + 6 * DAY, scenario="outbreak", scale=0.01, seed=3
    )


@pytest.mark.slow
def test_the_simulated_outbreak_yields_a_cluster_contacts_and_yellow_and_red_codes(outbreak_events):
    start, events = outbreak_events
    params = TracingParams()
    tracer = ContactTracer(params)
    confirmed = []
    pending = []
    for event in events:
        f = event.fields
        if event.type == "checkin":
            pending.append((f["person_id"], f["venue_id"], event.ts, f["stay_s"]))
            continue
        if event.type == "declaration":
            continue
        # Events come in event-time order: hand over the check-ins seen so far, as a worker's batch would.
        if pending:
            tracer.add_checkins(checkins(*pending))
            pending = []
        if event.type == "case_report" and f["status"] == "confirmed":
            confirmed.append((f["case_id"], event.ts, f["onset_ts"]))
            tracer.add_case(f["case_id"], event.ts, f["onset_ts"])
        elif event.type == "case_visit":
            tracer.add_visits(visits((f["case_id"], f["venue_id"], f["arrive_ts"], f["leave_ts"])))
    tracer.add_checkins(checkins(*pending))

    case_visits = pd.DataFrame(
        [
            (e.fields["case_id"], e.fields["venue_id"], e.fields["arrive_ts"], e.fields["leave_ts"])
            for e in events
            if e.type == "case_visit"
        ],
        columns=["case_id", "venue_id", "arrive_ts", "leave_ts"],
    )
    confirmed_cases = cases(*confirmed)
    contacts = tracer.contacts
    found = clusters(confirmed_cases, case_visits, params)
    # The index case dined among some forty others at one restaurant; a quarter fell ill.
    assert len(found) >= 1
    biggest = found.iloc[0]
    assert biggest["size"] >= 2 and len(biggest["sites"]) >= 1
    restaurant = biggest["sites"][0]
    assert (contacts["venue_id"] == restaurant).sum() >= 30

    periods = code_periods(contacts, confirmed_cases, params)
    codes = health_codes(periods, start + 6 * DAY - 1)
    assert (codes == "yellow").sum() >= 30
    assert (codes == "red").sum() == len(confirmed_cases) >= 2
    sites = exposure_sites(confirmed_cases, case_visits, start + 6 * DAY, params)
    assert restaurant in set(sites["venue_id"])


def test_a_case_infected_at_another_case_infectious_visit_joins_its_cluster():
    # c2 caught it at the noodle bar from c1: c2's own infectious window opens days later.
    case_visits = visits(("c1", "NOODLE", T0, T0 + HOUR), ("c2", "NOODLE", T0 + 30 * MINUTE, T0 + HOUR))
    confirmed = cases(("c1", CONFIRMED, T0 + DAY), ("c2", T0 + 7 * DAY, T0 + 6 * DAY))
    assert exposure_sites(confirmed, case_visits, T0 + 7 * DAY)["case_ids"].tolist() == [("c1",)]
    assert clusters(confirmed, case_visits)["case_ids"].tolist() == [("c1", "c2")]
