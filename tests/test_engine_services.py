"""Service volumes, processing-time percentiles and the Erlang C counter plan, on cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data.fold import PROCESSING_BINS_S
from engines.services import (
    HOUR_MS,
    ServiceParams,
    counters_for_wait,
    counters_needed,
    erlang_b,
    erlang_c,
    expected_arrivals,
    expected_wait_s,
    processing_from_bins,
    processing_from_samples,
    quantile_from_bins,
    service_volumes,
    share_within_from_bins,
)

MONDAY_9H_SHANGHAI = 1_704_675_600_000  # 2024-01-08 09:00 +08:00


def test_erlang_c_matches_the_textbook_value_for_three_counters_and_two_erlangs():
    # M/M/3 with a = λ/μ = 2 Erlangs: P0 = 1 / (1 + 2 + 2 + (8/6)·3/(3−2)) = 1/9, so
    # P(wait) = (a³/3!)·(3/(3−2))·P0 = 4/9 ≈ 0.4444 and, with a 10-minute service (600 s) and
    # λ = 12/h, Wq = P(wait)·S/(c − a) = 0.4444 · 600 s = 266.7 s. Erlang B(3, 2) = (4/3)/(19/3) = 4/19.
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert expected_wait_s(12, 600, 3) == pytest.approx(800 / 3)


def test_one_counter_is_the_textbook_m_m_1_queue():
    # M/M/1 with λ = 3/h and μ = 4/h (15-minute service): ρ = 0.75, Wq = ρ/(μ − λ) = 0.75 h = 2,700 s.
    assert erlang_c(1, 0.75) == pytest.approx(0.75)
    assert expected_wait_s(3, 900, 1) == pytest.approx(2700)


def test_erlang_c_is_stable_for_hundreds_of_counters():
    # a^c / c! would overflow a float here; the Erlang B recursion does not.
    p = erlang_c(400, 380.0)
    assert 0 < p < 1
    assert math.isfinite(expected_wait_s(380 * 6, 600, 400))


def test_overloaded_counters_wait_forever_and_idle_ones_not_at_all():
    assert erlang_c(2, 2.0) == 1.0
    assert expected_wait_s(12, 600, 2) == math.inf  # ρ = 1
    assert expected_wait_s(20, 600, 2) == math.inf  # ρ > 1
    assert expected_wait_s(12, 600, 0) == math.inf
    assert expected_wait_s(0, 600, 0) == 0.0
    assert counters_for_wait(0, 600, 600) == 0


def test_counters_needed_keeps_the_wait_under_target_and_one_fewer_would_not():
    needed = counters_for_wait(12, 600, 600)
    assert needed == 3  # 2 counters are exactly loaded (ρ = 1); 3 wait 266.7 s ≤ 600 s
    assert expected_wait_s(12, 600, needed) <= 600 < expected_wait_s(12, 600, needed - 1)


def test_counters_needed_grows_with_demand():
    plan = [counters_for_wait(rate, 600, 600) for rate in range(0, 400, 7)]
    assert plan == sorted(plan)
    assert plan[-1] > plan[1] > 0


def test_more_variable_service_needs_at_least_as_many_counters():
    exponential = counters_for_wait(60, 600, 120, service_cv=1.0)
    spread = counters_for_wait(60, 600, 120, service_cv=2.0)
    assert spread >= exponential
    # Allen–Cunneen scales the M/M/c wait by (ca² + cs²)/2 = (1 + 4)/2.
    assert expected_wait_s(12, 600, 3, service_cv=2.0) == pytest.approx(2.5 * 800 / 3)


def test_quantiles_interpolate_within_processing_bins():
    counts = np.zeros(len(PROCESSING_BINS_S))
    counts[1] = 100  # all between 0.5 s and 1 s
    assert quantile_from_bins(counts, 0.5) == pytest.approx(0.75)
    counts[2] = 100  # another hundred between 1 s and 2 s
    assert quantile_from_bins(counts, 0.5) == pytest.approx(1.0)
    assert quantile_from_bins(counts, 0.95) == pytest.approx(1.9)
    assert share_within_from_bins(counts, 1.0) == pytest.approx(0.5)
    assert share_within_from_bins(counts, 1.5) == pytest.approx(0.75)
    assert math.isnan(quantile_from_bins(np.zeros(len(PROCESSING_BINS_S)), 0.5))


def test_a_quantile_in_the_open_last_bin_is_its_lower_edge():
    counts = np.zeros(len(PROCESSING_BINS_S))
    counts[-1] = 10
    assert quantile_from_bins(counts, 0.95) == PROCESSING_BINS_S[-2]


def test_processing_facet_keys_are_read_per_mode():
    summary = processing_from_bins({"auto|le1": 90, "auto|le2": 10, "manual|le86400": 4}).set_index("mode")
    assert summary.loc["auto", "decided"] == 100
    assert summary.loc["auto", "median_s"] == pytest.approx(0.5 + 0.5 * 50 / 90)
    assert summary.loc["auto", "within_promise_share"] == pytest.approx(0.9)
    assert summary.loc["manual", "median_s"] == pytest.approx(4 * 3600 + 0.5 * (86_400 - 4 * 3600))


def _applications() -> pd.DataFrame:
    rows = [
        (0, "permit", "app", "FT", "approved", True, 0.8),
        (1_000, "permit", "app", "FT", "rejected", True, 1.6),
        (2_000, "licence", "counter", "FT", "pending", False, 0.0),
        (2_000 + 7_200_000, "licence", "counter", "FT", "approved", False, 7_200.0),
    ]
    columns = ["ts", "service_code", "channel", "district_id", "decision", "automatic", "processing_s"]
    return pd.DataFrame(rows, columns=columns)


def test_volumes_count_filings_once_and_decisions_by_mode():
    volumes = service_volumes(_applications(), by=("service_code",)).set_index("service_code")
    assert volumes.loc["permit", ["filed", "decided", "automatic", "rejected"]].tolist() == [2, 2, 2, 1]
    assert volumes.loc["licence", ["filed", "decided", "automatic"]].tolist() == [1, 1, 0]
    assert volumes.loc["permit", "automatic_share"] == 1.0
    by_hour = service_volumes(_applications(), by=("hour_ms",))
    assert by_hour["hour_ms"].tolist() == [0, 2 * HOUR_MS]


def test_raw_processing_samples_leave_pending_filings_out():
    summary = processing_from_samples(_applications()).set_index("mode")
    assert summary.loc["auto", "median_s"] == pytest.approx(1.2)
    assert summary.loc["auto", "within_promise_share"] == 0.5
    assert summary.loc["manual", "decided"] == 1


def _appointment(ts, center, action, slot, walk_in=False, ident=None):
    return {
        "appointment_id": ident,
        "ts": ts,
        "center_id": center,
        "action": action,
        "slot_ts": slot,
        "walk_in": walk_in,
    }


def test_demand_adds_booked_visits_that_show_up_to_forecast_walk_ins():
    now = MONDAY_9H_SHANGHAI
    rows = []
    # Four past Mondays at 10:00 had 3 walk-ins each at center A.
    for week in range(1, 5):
        for k in range(3):
            t = now + HOUR_MS - week * 7 * 24 * HOUR_MS + k * 60_000
            rows.append(_appointment(t, "A", "arrived", t, True, f"w{week}{k}"))
    # A past booking that showed and one that did not: show-up share 1/2.
    rows.append(_appointment(now - 10 * HOUR_MS, "A", "booked", now - 3 * HOUR_MS, ident="p1"))
    rows.append(_appointment(now - 3 * HOUR_MS, "A", "arrived", now - 3 * HOUR_MS, ident="p1"))
    rows.append(_appointment(now - 10 * HOUR_MS, "A", "booked", now - 3 * HOUR_MS, ident="p2"))
    rows.append(_appointment(now - 2 * HOUR_MS, "A", "no_show", now - 3 * HOUR_MS, ident="p2"))
    # Today at 10:00: four bookings, one of them cancelled.
    for k in range(4):
        rows.append(_appointment(now - HOUR_MS, "A", "booked", now + HOUR_MS + k * 60_000, ident=f"b{k}"))
    rows.append(_appointment(now - 60_000, "A", "cancelled", now + HOUR_MS, ident="b0"))
    demand = expected_arrivals(pd.DataFrame(rows), [now + HOUR_MS], now, centers=["B"]).set_index("center_id")
    assert demand.loc["A", "booked"] == 3
    assert demand.loc["A", "show_up_share"] == pytest.approx(0.5)
    assert demand.loc["A", "walk_ins_expected"] == pytest.approx(3.0)
    assert demand.loc["A", "arrivals_per_h"] == pytest.approx(4.5)
    assert demand.loc["B", "arrivals_per_h"] == 0

    plan = counters_needed(demand.reset_index(), {"A": 1}, ServiceParams(target_wait_s=300)).set_index("center_id")
    # 4.5/h × 10 min = 0.75 Erlangs: one counter waits 0.75 · 600 / 0.25 = 1,800 s; two wait ≈ 68 s.
    assert plan.loc["A", "wait_open_s"] == pytest.approx(1800)
    assert plan.loc["A", "counters_needed"] == 2
    assert plan.loc["A", "wait_needed_s"] < 300
    assert plan.loc["B", "counters_needed"] == 0


def test_a_whole_plan_agrees_with_the_counter_by_counter_formulas():
    rng = np.random.default_rng(7)
    arrivals = np.concatenate([[0.0, 0.4, 3.0, 5_000.0], rng.gamma(2.0, 40.0, size=60)])  # idle to past the cap
    demand = pd.DataFrame(
        {"center_id": [f"C{i}" for i in range(len(arrivals))], "hour_ms": 0, "arrivals_per_h": arrivals}
    )
    opened = {f"C{i}": int(rng.integers(0, 12)) for i in range(len(arrivals))}
    params = ServiceParams(target_wait_s=420)
    plan = counters_needed(demand, opened, params, service_cv=1.3)
    wait = dict(service_cv=1.3, arrival_cv=params.arrival_cv)
    for row in plan.itertuples():
        needed = counters_for_wait(
            row.arrivals_per_h, params.mean_service_s, params.target_wait_s, max_counters=params.max_counters, **wait
        )
        assert row.counters_needed == needed
        assert row.wait_open_s == pytest.approx(
            expected_wait_s(row.arrivals_per_h, params.mean_service_s, row.counters_open, **wait)
        )
        assert row.wait_needed_s == pytest.approx(
            expected_wait_s(row.arrivals_per_h, params.mean_service_s, needed, **wait)
        )
        assert row.p_wait_needed == pytest.approx(erlang_c(needed, row.load_erlangs) if needed else 0.0)
