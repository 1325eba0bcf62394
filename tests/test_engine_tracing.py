"""Case tracing rules: exposure sites, the close-contact rule and clusters (the cases keeper applies them)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from engines.tracing import TracingParams, clusters, exposure_sites, is_contact, precise_visits
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
    """Return the persons whose check-in meets the noodle-bar case's visit."""
    stay = checkin_rows["stay_s"].to_numpy(dtype=float)
    stay_ms = np.where(np.isnan(stay), -1, stay * 1000).astype("int64")
    met = is_contact(
        checkin_rows["ts"].to_numpy(dtype="int64"),
        stay_ms,
        np.int64(T0),
        np.int64(T0 + HOUR),
        params or TracingParams(),
    )
    return set(checkin_rows.loc[met & (checkin_rows["venue_id"] == "NOODLE").to_numpy(), "person_id"])


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


def test_a_visit_outside_the_infectious_window_is_no_exposure_site():
    # Symptoms began three days after the dinner: two days before onset is after the dinner.
    sites = exposure_sites(cases(("c1", T0 + 4 * DAY, T0 + 3 * DAY)), VISIT, T0 + 5 * DAY)
    assert sites.empty


def test_a_case_infected_at_another_case_infectious_visit_joins_its_cluster():
    # c2 caught it at the noodle bar from c1: c2's own infectious window opens days later.
    case_visits = visits(("c1", "NOODLE", T0, T0 + HOUR), ("c2", "NOODLE", T0 + 30 * MINUTE, T0 + HOUR))
    confirmed = cases(("c1", CONFIRMED, T0 + DAY), ("c2", T0 + 7 * DAY, T0 + 6 * DAY))
    assert exposure_sites(confirmed, case_visits, T0 + 7 * DAY)["case_ids"].tolist() == [("c1",)]
    assert clusters(confirmed, case_visits)["case_ids"].tolist() == [("c1", "c2")]
