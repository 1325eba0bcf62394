"""Benchmark finding close contacts over a day of the demo city's check-ins: the incremental
ContactTracer against the same event order handled with pandas merges.

Run with ``python -m bench.contacts``. Check-ins follow each venue category's daily rhythm and
stay; a few reach the system hours late (phones that were offline), so contacts are found both
when a case is confirmed and when a late check-in arrives.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from engines.tracing import ContactTracer, TracingParams, is_contact
from geo.demo import demo_city
from simulators.cases import CHECKIN_CATEGORIES, OTHER_CATEGORY
from simulators.rhythm import WEEKDAY
from simulators.world import SHENZHEN_POPULATION

CHECKINS = 2_000_000
CASES = 50
VISITS_PER_CASE = 5
SEED = 20_240_604
DAY_START_MS = int(datetime(2024, 6, 4, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
LATE_SHARE = 0.03
LATE_MEAN_H = 3.0
UNKNOWN_STAY_SHARE = 0.1


def day_of_checkins(venues: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Draw a weekday's check-ins over the venues, with arrival (processing) times."""
    categories = venues["category"].to_numpy(dtype=object)
    popularity = rng.lognormal(0.0, 0.8, len(venues))
    profiles = {c: CHECKIN_CATEGORIES.get(c, OTHER_CATEGORY) for c in np.unique(categories)}
    shares = np.array([profiles[c][0] for c in profiles])
    per_category = rng.multinomial(CHECKINS, shares / shares.sum())
    venue_idx, ts, stay_s = [], [], []
    for (category, (_, rhythm, stay_min)), count in zip(profiles.items(), per_category):
        members = np.flatnonzero(categories == category)
        weights = popularity[members] / popularity[members].sum()
        venue_idx.append(members[rng.choice(len(members), count, p=weights)])
        hourly = np.array([rhythm.level(h + 0.5, WEEKDAY) for h in range(24)])
        hour = rng.choice(24, count, p=hourly / hourly.sum())
        ts.append(DAY_START_MS + hour * HOUR_MS + rng.integers(0, HOUR_MS, count))
        stay_s.append(np.minimum(rng.lognormal(np.log(stay_min * 60), 0.5, count), 86_400).round())
    venue_idx, ts, stay = np.concatenate(venue_idx), np.concatenate(ts), np.concatenate(stay_s)
    stay[rng.random(len(stay)) < UNKNOWN_STAY_SHARE] = np.nan
    late = rng.random(len(ts)) < LATE_SHARE
    arrival = ts + np.where(late, rng.exponential(LATE_MEAN_H * HOUR_MS, len(ts)).astype(np.int64), 0)
    residents = rng.integers(0, SHENZHEN_POPULATION, len(ts))
    frame = pd.DataFrame(
        {
            "person_id": np.array([f"p{r:012x}" for r in residents.tolist()], dtype=object),
            "venue_id": venues["place_id"].to_numpy(dtype=object)[venue_idx],
            "ts": ts,
            "stay_s": stay,
            "arrival_ms": arrival,
        }
    )
    return frame.sort_values("arrival_ms", kind="stable").reset_index(drop=True)


def day_of_cases(venues: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Draw the day's confirmed cases and the places each visited earlier that day."""
    cases, visits = [], []
    for i in range(CASES):
        case_id = f"c{i:04d}"
        chosen = rng.choice(len(venues), VISITS_PER_CASE, replace=False)
        arrive = np.sort(DAY_START_MS + rng.integers(8 * HOUR_MS, 20 * HOUR_MS, VISITS_PER_CASE))
        stay = rng.integers(20, 120, VISITS_PER_CASE) * MINUTE_MS
        confirmed = min(int((arrive + stay).max() + rng.integers(1, 4) * HOUR_MS), DAY_START_MS + 24 * HOUR_MS - 1)
        cases.append((case_id, confirmed, confirmed - 24 * HOUR_MS))
        for venue, a, s in zip(chosen, arrive, stay):
            visits.append((case_id, venues["place_id"].iloc[venue], int(a), int(a + s)))
    cases_frame = pd.DataFrame(cases, columns=["case_id", "confirmed_ts", "onset_ts"]).sort_values("confirmed_ts")
    return cases_frame.reset_index(drop=True), pd.DataFrame(
        visits, columns=["case_id", "venue_id", "arrive_ts", "leave_ts"]
    )


def event_order(checkins: pd.DataFrame, cases: pd.DataFrame) -> list[tuple[str, object]]:
    """Interleave minute batches of arriving check-ins with case reports at their confirmation."""
    minute = (checkins["arrival_ms"].to_numpy() - DAY_START_MS) // MINUTE_MS
    bounds = np.flatnonzero(np.r_[True, minute[1:] != minute[:-1], True])
    batches = [(int(minute[a]), checkins.iloc[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    events: list[tuple[int, int, str, object]] = [(m, 1, "checkins", batch) for m, batch in batches]
    for case in cases.itertuples(index=False):
        events.append(((case.confirmed_ts - DAY_START_MS) // MINUTE_MS, 0, "case", case))
    events.sort(key=lambda e: (e[0], e[1]))
    return [(kind, payload) for _, _, kind, payload in events]


def incremental(events: list[tuple[str, object]], visits: pd.DataFrame, params: TracingParams) -> pd.DataFrame:
    """Feed the events to a ContactTracer; return every contact it found."""
    tracer = ContactTracer(params)
    by_case = {case_id: v for case_id, v in visits.groupby("case_id")}
    for kind, payload in events:
        if kind == "checkins":
            tracer.add_checkins(payload)
        else:
            tracer.add_case(payload.case_id, payload.confirmed_ts, payload.onset_ts, by_case[payload.case_id])
    return tracer.contacts


def naive(events: list[tuple[str, object]], visits: pd.DataFrame, params: TracingParams) -> pd.DataFrame:
    """Handle the same events with pandas merges: each case against all check-ins so far, each batch against known visits."""
    seen: list[pd.DataFrame] = []
    known = visits.iloc[0:0]
    found = []
    for kind, payload in events:
        if kind == "checkins":
            seen.append(payload)
            if len(known):
                found.append(_merge_contacts(payload, known, params))
        else:
            mine = visits[visits["case_id"] == payload.case_id]
            known = pd.concat([known, mine], ignore_index=True)
            found.append(_merge_contacts(pd.concat(seen, ignore_index=True), mine, params))
    return pd.concat(found, ignore_index=True)


def _merge_contacts(checkins: pd.DataFrame, visits: pd.DataFrame, params: TracingParams) -> pd.DataFrame:
    pairs = checkins.merge(visits, on="venue_id")
    stay_ms = (pairs["stay_s"].fillna(-1.0) * 1000).where(pairs["stay_s"].notna(), -1).to_numpy(dtype="int64")
    keep = is_contact(
        pairs["ts"].to_numpy(), stay_ms, pairs["arrive_ts"].to_numpy(), pairs["leave_ts"].to_numpy(), params
    )
    return pairs.loc[keep, ["person_id", "case_id", "venue_id", "ts"]]


def main() -> None:
    """Build the day, time both joins, check they agree, print a table and the RESULT line."""
    rng = np.random.default_rng(SEED)
    places = demo_city(7).places
    venues = places[places["kind"] == "venue"].reset_index(drop=True)
    checkins = day_of_checkins(venues, rng)
    cases, visits = day_of_cases(venues, rng)
    events = event_order(checkins, cases)
    params = TracingParams()

    start = time.perf_counter()
    found = incremental(events, visits, params)
    seconds = time.perf_counter() - start

    start = time.perf_counter()
    reference = naive(events, visits, params)
    naive_seconds = time.perf_counter() - start

    ours = sorted(zip(found["person_id"], found["case_id"], found["venue_id"], found["checkin_ts"].tolist()))
    theirs = sorted(zip(reference["person_id"], reference["case_id"], reference["venue_id"], reference["ts"].tolist()))
    if ours != theirs:
        raise SystemExit(f"the joins disagree: {len(ours)} contacts incremental, {len(theirs)} by pandas merges")

    batches = sum(kind == "checkins" for kind, _ in events)
    late = int((checkins["arrival_ms"] > checkins["ts"]).sum())
    print(
        f"{len(checkins):,} check-ins ({late:,} late) in {batches:,} minute batches, {len(cases)} cases, {len(visits)} visits"
    )
    print(f"{'join':<34}{'seconds':>10}{'contacts':>10}{'check-ins/s':>14}")
    for name, secs in (("incremental (ContactTracer)", seconds), ("pandas merges, same event order", naive_seconds)):
        print(f"{name:<34}{secs:>10.2f}{len(found):>10,}{len(checkins) / secs:>14,.0f}")
    print(f"ratio: pandas merges take {naive_seconds / seconds:.1f}x the incremental tracer's time")
    print(
        f"RESULT seconds={seconds:.3f} checkins={len(checkins)} cases={len(cases)} visits={len(visits)} "
        f"contacts={len(found)} naive_seconds={naive_seconds:.3f}"
    )


if __name__ == "__main__":
    main()
