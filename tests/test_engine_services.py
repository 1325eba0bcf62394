"""Processing-time percentiles and the Erlang C counter plan, on cases worked by hand and against the
textbook formulas computed counter by counter."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from data.fold import PROCESSING_BINS_S
from engines.services import (
    ServiceParams,
    counters_needed,
    processing_from_bins,
    quantile_from_bins,
    share_within_from_bins,
)

# ---------------------------------------------------------------------------- the textbook, one counter count at a time


def erlang_b(counters: int, load: float) -> float:
    """Erlang B by its recursion B(0) = 1, B(c) = a·B(c−1) / (c + a·B(c−1))."""
    blocking = 1.0
    for c in range(1, counters + 1):
        blocking = load * blocking / (c + load * blocking)
    return blocking


def erlang_c(counters: int, load: float) -> float:
    """The probability that an arrival waits (1 when the counters are overloaded)."""
    if load <= 0:
        return 0.0
    if counters <= 0 or load >= counters:
        return 1.0
    b = erlang_b(counters, load)
    return b / (1 - (load / counters) * (1 - b))


def expected_wait_s(arrivals_per_h, service_s, counters, *, service_cv=1.0, arrival_cv=1.0) -> float:
    """Mean wait before a counter, Allen–Cunneen scaled; inf when overloaded."""
    if arrivals_per_h <= 0:
        return 0.0
    load = arrivals_per_h * service_s / 3600
    if counters <= 0 or load >= counters:
        return math.inf
    return (arrival_cv**2 + service_cv**2) / 2 * erlang_c(counters, load) * service_s / (counters - load)


def counters_for_wait(arrivals_per_h, service_s, target_s, *, max_counters=200, **cv) -> int:
    """The fewest counters whose mean wait meets the target, found by trying each count."""
    if arrivals_per_h <= 0:
        return 0
    for c in range(1, max_counters + 1):
        if expected_wait_s(arrivals_per_h, service_s, c, **cv) <= target_s:
            return c
    return max_counters


def plan(arrivals_per_h: float, open_counters: int, **params) -> pd.Series:
    """The engine's plan for one center."""
    demand = pd.DataFrame({"center_id": ["A"], "hour_ms": [0], "arrivals_per_h": [arrivals_per_h]})
    return counters_needed(demand, open_counters, ServiceParams(**params)).iloc[0]


def test_the_textbook_formulas_match_values_worked_by_hand():
    # M/M/3 with a = λ/μ = 2 Erlangs: P0 = 1 / (1 + 2 + 2 + (8/6)·3/(3−2)) = 1/9, so
    # P(wait) = (a³/3!)·(3/(3−2))·P0 = 4/9 ≈ 0.4444 and, with a 10-minute service (600 s) and
    # λ = 12/h, Wq = P(wait)·S/(c − a) = 0.4444 · 600 s = 266.7 s. Erlang B(3, 2) = (4/3)/(19/3) = 4/19.
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert expected_wait_s(12, 600, 3) == pytest.approx(800 / 3)
    # M/M/1 with λ = 3/h and μ = 4/h (15-minute service): ρ = 0.75, Wq = ρ/(μ − λ) = 0.75 h = 2,700 s.
    assert expected_wait_s(3, 900, 1) == pytest.approx(2700)


def test_the_plan_gives_the_textbook_wait_for_three_counters_and_for_one():
    three = plan(12, 3, target_wait_s=600)
    assert three["wait_open_s"] == pytest.approx(800 / 3)
    # 2 counters are exactly loaded (ρ = 1); 3 wait 266.7 s ≤ 600 s.
    assert three["counters_needed"] == 3
    assert three["p_wait_needed"] == pytest.approx(4 / 9)
    assert plan(3, 1, mean_service_s=900)["wait_open_s"] == pytest.approx(2700)


def test_the_plan_is_stable_for_hundreds_of_counters():
    # a^c / c! would overflow a float here; the Erlang B recursion does not.
    row = plan(380 * 6, 400, max_counters=500)
    assert 0 < row["wait_open_s"] < math.inf
    assert 380 < row["counters_needed"] <= 400


def test_overloaded_counters_wait_forever_and_idle_ones_not_at_all():
    assert plan(12, 2)["wait_open_s"] == math.inf  # ρ = 1
    assert plan(20, 2)["wait_open_s"] == math.inf  # ρ > 1
    assert plan(12, 0)["wait_open_s"] == math.inf
    idle = plan(0, 0)
    assert idle["wait_open_s"] == 0.0 and idle["counters_needed"] == 0


def test_counters_needed_grows_with_demand():
    needed = [plan(rate, 1)["counters_needed"] for rate in range(0, 400, 7)]
    assert needed == sorted(needed)
    assert needed[-1] > needed[1] > 0


def test_more_variable_service_needs_at_least_as_many_counters():
    demand = pd.DataFrame({"center_id": ["A"], "hour_ms": [0], "arrivals_per_h": [60.0]})
    params = ServiceParams(target_wait_s=120)
    exponential = counters_needed(demand, 1, params, service_cv=1.0).iloc[0]
    spread = counters_needed(demand, 1, params, service_cv=2.0).iloc[0]
    assert spread["counters_needed"] >= exponential["counters_needed"]
    # Allen–Cunneen scales the M/M/c wait by (ca² + cs²)/2 = (1 + 4)/2.
    three = counters_needed(demand.assign(arrivals_per_h=12.0), 3, ServiceParams(), service_cv=2.0).iloc[0]
    assert three["wait_open_s"] == pytest.approx(2.5 * 800 / 3)


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
    summary = processing_from_bins({"auto": {"le1": 90, "le2": 10}, "manual": {"le86400": 4}}).set_index("mode")
    assert summary.loc["auto", "decided"] == 100
    assert summary.loc["auto", "median_s"] == pytest.approx(0.5 + 0.5 * 50 / 90)
    assert summary.loc["auto", "within_promise_share"] == pytest.approx(0.9)
    assert summary.loc["manual", "median_s"] == pytest.approx(4 * 3600 + 0.5 * (86_400 - 4 * 3600))


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
