"""Service volumes of e-government: applications by service, channel, district and hour, how many are
decided automatically and how fast against the one-second promise, and how many counters each
administrative service center needs per hour to keep the expected wait under a target.

The counter plan is an M/M/c queue (Erlang C): arrivals in an hour are Poisson at the hour's expected
rate (booked visits that show up plus forecast walk-ins) and every open counter serves one resident
at a time. Service times are taken as exponential unless their observed coefficient of variation is
given, in which case the Allen–Cunneen approximation scales the M/M/c wait by (ca² + cs²) / 2. The
hour is treated as a steady state, which overstates waits in an hour that starts with an empty hall
and understates them after a busy one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.fold import PROCESSING_BINS_S

HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS
DECIDED = ("approved", "rejected")


@dataclass(frozen=True)
class ServiceParams:
    """Parameters of the service-volume engine (name, default, unit)."""

    promise_s: float = 1.0  # s: an automatic decision is promised "in about a second"
    target_wait_s: float = 600.0  # s: expected wait before a counter that the plan must not exceed
    mean_service_s: float = 600.0  # s: mean time a resident spends at a counter, when none is observed
    service_cv: float = 1.0  # ratio: std/mean of service time, when none is observed (1 = exponential)
    arrival_cv: float = 1.0  # ratio: std/mean of inter-arrival times (1 = Poisson arrivals)
    history_weeks: int = 4  # weeks: walk-in history averaged per hour of the week
    max_counters: int = 200  # counters: the most the plan will ever ask one center to open
    timezone: str = "Asia/Shanghai"  # IANA zone: the hour of the week is local time


# ---------------------------------------------------------------------------- volumes


def service_volumes(
    applications: pd.DataFrame, by: Sequence[str] = ("service_code", "channel", "district_id", "hour_ms")
) -> pd.DataFrame:
    """Count applications filed and decided, automatic decisions and rejections per group.

    ``applications`` holds application events with columns ``ts`` (ms), ``service_code``,
    ``channel``, ``district_id``, ``decision`` (approved/rejected/pending), ``automatic`` (bool).
    ``hour_ms`` (start of the event's UTC hour) is derived from ``ts`` when grouped by.
    A clerk-decided application appears twice (filed as pending, then decided); an automatic one
    once, already decided, so ``filed`` counts pending events plus automatic decisions.

    Returns one row per group: the ``by`` columns, ``filed``, ``decided``, ``automatic``,
    ``rejected``, ``automatic_share`` and ``rejected_share`` (of decided; NaN when none).
    """
    frame = applications.assign(hour_ms=(applications["ts"].to_numpy(np.int64) // HOUR_MS) * HOUR_MS)
    decided = frame["decision"].isin(DECIDED).to_numpy()
    automatic = frame["automatic"].fillna(False).astype(bool).to_numpy()
    frame = frame.assign(
        filed=((frame["decision"] == "pending").to_numpy() | (automatic & decided)).astype(np.int64),
        decided=decided.astype(np.int64),
        automatic=(automatic & decided).astype(np.int64),
        rejected=(frame["decision"] == "rejected").to_numpy().astype(np.int64),
    )
    out = frame.groupby(list(by), sort=True, observed=True)[["filed", "decided", "automatic", "rejected"]].sum()
    out = out.reset_index()
    with np.errstate(invalid="ignore", divide="ignore"):
        out["automatic_share"] = np.where(out["decided"] > 0, out["automatic"] / out["decided"], np.nan)
        out["rejected_share"] = np.where(out["decided"] > 0, out["rejected"] / out["decided"], np.nan)
    return out


# ---------------------------------------------------------------------------- processing time


def bin_label_index(edges: Sequence[float] = PROCESSING_BINS_S) -> dict[str, int]:
    """Return the position of each histogram label (``le1``, ``leinf``...) the aggregator writes."""
    return {f"le{edge:g}": i for i, edge in enumerate(edges)}


def quantile_from_bins(counts: Sequence[float], q: float, edges: Sequence[float] = PROCESSING_BINS_S) -> float:
    """Return the q-quantile of durations histogrammed by upper bin edges, interpolating within a bin.

    The first bin starts at 0. Durations are taken as spread evenly within their bin; a quantile
    falling in the open last bin is reported as that bin's lower edge (a lower bound). NaN when empty.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.nan
    upper = np.asarray(edges, dtype=np.float64)
    lower = np.concatenate(([0.0], upper[:-1]))
    rank = q * total
    cumulative = np.cumsum(counts)
    b = int(np.searchsorted(cumulative, rank, side="left"))
    b = min(b, len(counts) - 1)
    # Skip empty bins the rank lands on the edge of (rank 0 must report the first occupied bin).
    while counts[b] == 0 and b < len(counts) - 1:
        b += 1
    if not math.isfinite(upper[b]):
        return float(lower[b])
    before = cumulative[b] - counts[b]
    fraction = min(1.0, max(0.0, (rank - before) / counts[b]))
    return float(lower[b] + fraction * (upper[b] - lower[b]))


def share_within_from_bins(
    counts: Sequence[float], limit_s: float, edges: Sequence[float] = PROCESSING_BINS_S
) -> float:
    """Return the share of histogrammed durations at or under limit_s, interpolating within a bin."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        return math.nan
    upper = np.asarray(edges, dtype=np.float64)
    lower = np.concatenate(([0.0], upper[:-1]))
    width = upper - lower
    with np.errstate(invalid="ignore"):
        covered = np.where(np.isfinite(width), np.clip((limit_s - lower) / width, 0.0, 1.0), limit_s >= lower)
    return float((counts * covered).sum() / total)


def processing_from_bins(facet: Mapping[str, float], params: ServiceParams = ServiceParams()) -> pd.DataFrame:
    """Summarise the aggregator's ``applications.processing`` facet (keys ``auto|le1``...) per mode.

    Returns one row per mode (``auto``, ``manual``) with ``decided``, ``median_s``, ``p95_s`` and
    ``within_promise_share``. The facet counts every application event, so for clerk-decided
    services it also holds the pending filings (processing 0 s) in its first bin.
    """
    index = bin_label_index()
    counts: dict[str, np.ndarray] = {}
    for key, value in facet.items():
        mode, _, label = str(key).partition("|")
        if label in index:
            counts.setdefault(mode, np.zeros(len(index)))[index[label]] += float(value)
    return pd.DataFrame(
        [_processing_row(mode, bins, params) for mode, bins in sorted(counts.items())],
        columns=["mode", "decided", "median_s", "p95_s", "within_promise_share"],
    )


def _processing_row(mode: str, bins: np.ndarray, params: ServiceParams) -> dict:
    return {
        "mode": mode,
        "decided": int(bins.sum()),
        "median_s": quantile_from_bins(bins, 0.5),
        "p95_s": quantile_from_bins(bins, 0.95),
        "within_promise_share": share_within_from_bins(bins, params.promise_s),
    }


def processing_from_samples(applications: pd.DataFrame, params: ServiceParams = ServiceParams()) -> pd.DataFrame:
    """Summarise raw decision times per mode: the exact counterpart of ``processing_from_bins``.

    ``applications`` has ``decision``, ``automatic`` and ``processing_s``; pending filings are left out.
    Returns ``mode``, ``decided``, ``median_s``, ``p95_s``, ``within_promise_share``.
    """
    decided = applications[applications["decision"].isin(DECIDED)]
    mode = np.where(decided["automatic"].fillna(False).astype(bool), "auto", "manual")
    rows = []
    for name in sorted(set(mode)):
        seconds = decided["processing_s"].to_numpy(np.float64)[mode == name]
        rows.append(
            {
                "mode": name,
                "decided": len(seconds),
                "median_s": float(np.percentile(seconds, 50)),
                "p95_s": float(np.percentile(seconds, 95)),
                "within_promise_share": float((seconds <= params.promise_s).mean()),
            }
        )
    return pd.DataFrame(rows, columns=["mode", "decided", "median_s", "p95_s", "within_promise_share"])


# ---------------------------------------------------------------------------- queueing


def erlang_b(counters: int, load_erlangs: float) -> float:
    """Return the Erlang B blocking probability of ``counters`` servers offered ``load_erlangs``.

    Uses the recursion B(0) = 1, B(c) = a·B(c−1) / (c + a·B(c−1)), which never forms a^c or c!.
    """
    if counters < 0 or load_erlangs < 0:
        raise ValueError(f"counters and load must be non-negative (got {counters}, {load_erlangs})")
    blocking = 1.0
    for c in range(1, int(counters) + 1):
        blocking = load_erlangs * blocking / (c + load_erlangs * blocking)
    return blocking


def erlang_c(counters: int, load_erlangs: float) -> float:
    """Return the Erlang C probability that an arrival must wait (1.0 when load ≥ counters)."""
    if load_erlangs <= 0:
        return 0.0
    if counters <= 0 or load_erlangs >= counters:
        return 1.0
    return _waiting_from_blocking(erlang_b(counters, load_erlangs), counters, load_erlangs)


def _waiting_from_blocking(blocking: float, counters: int, load_erlangs: float) -> float:
    # Erlang C from Erlang B: C = B / (1 − ρ(1 − B)), valid for ρ = a/c < 1.
    return blocking / (1.0 - (load_erlangs / counters) * (1.0 - blocking))


def _wait_s(waiting: float, counters: int, load_erlangs: float, mean_service_s: float, variability: float) -> float:
    return variability * waiting * mean_service_s / (counters - load_erlangs)


def expected_wait_s(
    arrivals_per_h: float,
    mean_service_s: float,
    counters: int,
    *,
    service_cv: float = 1.0,
    arrival_cv: float = 1.0,
) -> float:
    """Return the expected wait before a counter (s): Erlang C, Allen–Cunneen scaled; inf when overloaded."""
    if arrivals_per_h <= 0:
        return 0.0
    load = arrivals_per_h * mean_service_s / 3600.0
    if counters <= 0 or load >= counters:
        return math.inf
    variability = (arrival_cv**2 + service_cv**2) / 2.0
    return _wait_s(erlang_c(counters, load), counters, load, mean_service_s, variability)


def counters_for_wait(
    arrivals_per_h: float,
    mean_service_s: float,
    target_wait_s: float,
    *,
    service_cv: float = 1.0,
    arrival_cv: float = 1.0,
    max_counters: int = 200,
) -> int:
    """Return the fewest counters keeping the expected wait at or under target_wait_s (capped at max_counters)."""
    if arrivals_per_h <= 0:
        return 0
    load = arrivals_per_h * mean_service_s / 3600.0
    variability = (arrival_cv**2 + service_cv**2) / 2.0
    # Walk Erlang B up from zero counters; every count at or below the load is overloaded anyway.
    blocking = 1.0
    for c in range(1, max_counters + 1):
        blocking = load * blocking / (c + load * blocking)
        if load >= c:
            continue
        if _wait_s(_waiting_from_blocking(blocking, c, load), c, load, mean_service_s, variability) <= target_wait_s:
            return c
    return max_counters


def service_time_stats(service_s: Sequence[float], params: ServiceParams = ServiceParams()) -> tuple[float, float]:
    """Return the mean (s) and coefficient of variation of observed service times, or the defaults if none."""
    seconds = np.asarray(service_s, dtype=np.float64)
    seconds = seconds[np.isfinite(seconds) & (seconds > 0)]
    if len(seconds) < 2:
        return params.mean_service_s, params.service_cv
    mean = float(seconds.mean())
    return mean, float(seconds.std(ddof=1) / mean)


def _hour_of_week(ts_ms: np.ndarray, timezone: str) -> np.ndarray:
    local = pd.to_datetime(np.asarray(ts_ms, dtype=np.int64), unit="ms", utc=True).tz_convert(timezone)
    return np.asarray(local.day_of_week * 24 + local.hour, dtype=np.int64)


def walk_in_forecast(appointments: pd.DataFrame, now_ms: int, params: ServiceParams = ServiceParams()) -> pd.DataFrame:
    """Forecast walk-ins per center and local hour of the week from the last ``history_weeks`` weeks.

    ``appointments`` holds appointment events (``ts``, ``center_id``, ``action``, ``walk_in``). A
    walk-in is an ``arrived`` event with ``walk_in`` true. The forecast of an hour of the week is the
    mean count over the occurrences of that hour seen in the history (zero when a center had none).
    Returns ``center_id``, ``hour_of_week`` (0 = Monday 00:00 local) and ``walk_ins_per_h``.
    """
    begin = now_ms - params.history_weeks * WEEK_MS
    ts = appointments["ts"].to_numpy(np.int64)
    walk_in = appointments["walk_in"].fillna(False).astype(bool).to_numpy()
    rows = appointments[(appointments["action"] == "arrived").to_numpy() & walk_in & (ts >= begin) & (ts < now_ms)]
    columns = ["center_id", "hour_of_week", "walk_ins_per_h"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    # A young history holds fewer occurrences of each hour of the week than the full window.
    first_hour = max(begin, int(ts[ts >= begin].min()) // HOUR_MS * HOUR_MS)
    seen_hours = np.arange(first_hour, now_ms, HOUR_MS, dtype=np.int64)
    occurrences = np.bincount(_hour_of_week(seen_hours, params.timezone), minlength=168)
    counts = (
        rows.assign(hour_of_week=_hour_of_week(rows["ts"].to_numpy(np.int64), params.timezone))
        .groupby(["center_id", "hour_of_week"])
        .size()
        .rename("walk_ins")
        .reset_index()
    )
    counts["walk_ins_per_h"] = counts["walk_ins"] / np.maximum(occurrences[counts["hour_of_week"].to_numpy()], 1)
    return counts[columns]


def expected_arrivals(
    appointments: pd.DataFrame,
    hours_ms: Sequence[int],
    now_ms: int,
    params: ServiceParams = ServiceParams(),
    centers: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the expected visits per center and planned hour: booked visits that show up plus walk-ins.

    Booked visits are the appointments, as known at ``now_ms``, whose latest step is ``booked`` and whose
    slot (``slot_ts``) falls in the hour; they are scaled by the show-up share seen in the history
    (arrived ÷ (arrived + no-show) of booked visits whose slot has passed; 1 when none). ``centers``
    lists centers to plan even when nothing is booked there.
    Returns ``center_id``, ``hour_ms``, ``booked``, ``show_up_share``, ``walk_ins_expected``, ``arrivals_per_h``.
    """
    known = appointments[appointments["ts"].to_numpy(np.int64) <= now_ms]
    latest = known.sort_values("ts", kind="stable").groupby("appointment_id", sort=False).tail(1)
    walk_in = latest["walk_in"].fillna(False).astype(bool).to_numpy()
    booked = latest[(latest["action"] == "booked").to_numpy() & ~walk_in]
    slot_hour = booked["slot_ts"].to_numpy(np.int64) // HOUR_MS * HOUR_MS
    hours = np.asarray(sorted(set(int(h) // HOUR_MS * HOUR_MS for h in hours_ms)), dtype=np.int64)
    booked = booked.assign(hour_ms=slot_hour)[np.isin(slot_hour, hours)]
    booked_counts = booked.groupby(["center_id", "hour_ms"]).size().rename("booked")

    past = latest[(latest["slot_ts"].to_numpy(np.int64) < now_ms) & ~walk_in]
    arrived = int(past["action"].isin(("arrived", "served")).sum())
    no_show = int((past["action"] == "no_show").sum())
    show_up = arrived / (arrived + no_show) if arrived + no_show else 1.0

    names = set(map(str, centers or ())) | set(booked_counts.index.get_level_values(0))
    forecast = walk_in_forecast(appointments, now_ms, params)
    names |= set(forecast["center_id"])
    grid = pd.MultiIndex.from_product([sorted(names), hours], names=["center_id", "hour_ms"])
    out = pd.DataFrame(index=grid).join(booked_counts).fillna({"booked": 0}).reset_index()
    out["booked"] = out["booked"].astype(np.int64)
    out["show_up_share"] = show_up
    out["hour_of_week"] = _hour_of_week(out["hour_ms"].to_numpy(np.int64), params.timezone)
    out = out.merge(forecast, on=["center_id", "hour_of_week"], how="left")
    out["walk_ins_expected"] = out["walk_ins_per_h"].fillna(0.0)
    out["arrivals_per_h"] = out["booked"] * show_up + out["walk_ins_expected"]
    return out[["center_id", "hour_ms", "booked", "show_up_share", "walk_ins_expected", "arrivals_per_h"]]


def counters_needed(
    demand: pd.DataFrame,
    open_counters: Mapping[str, int] | int,
    params: ServiceParams = ServiceParams(),
    *,
    mean_service_s: float | None = None,
    service_cv: float | None = None,
) -> pd.DataFrame:
    """Plan counters per center and hour so the expected wait stays under ``params.target_wait_s``.

    ``demand`` has ``center_id``, ``hour_ms`` and ``arrivals_per_h`` (e.g. from ``expected_arrivals``);
    ``open_counters`` is the number open now, per center or one number for all. Service time is the
    observed mean and CV when given (see ``service_time_stats``), else the parameters' defaults.
    Adds ``load_erlangs``, ``counters_open``, ``wait_open_s`` (inf when overloaded),
    ``counters_needed``, ``wait_needed_s`` and ``p_wait_needed`` (Erlang C with the recommended counters).
    """
    service = params.mean_service_s if mean_service_s is None else mean_service_s
    cv = params.service_cv if service_cv is None else service_cv
    out = demand.copy()
    if isinstance(open_counters, Mapping):
        opened = out["center_id"].map(open_counters).fillna(0).astype(np.int64)
    else:
        opened = pd.Series(int(open_counters), index=out.index, dtype=np.int64)
    arrivals = np.maximum(out["arrivals_per_h"].to_numpy(np.float64), 0.0)
    load = arrivals * service / 3600.0
    out["load_erlangs"] = load
    open_now = opened.to_numpy()
    out["counters_open"] = open_now
    # Every row's Erlang B for every counter count at once: the recursion walks the counters, not the
    # rows, so a plan costs the same whatever the demand (a loop per row walks up to its load).
    top = max(int(params.max_counters), int(open_now.max(initial=0)))
    blocking = np.ones((top + 1, len(out)))
    for c in range(1, top + 1):
        blocking[c] = load * blocking[c - 1] / (c + load * blocking[c - 1])
    counts = np.arange(top + 1, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        waiting = blocking / (1.0 - (load / counts) * (1.0 - blocking))  # Erlang C where load < c
        waits = (cv**2 + params.arrival_cv**2) / 2.0 * waiting * service / (counts - load)
    stable = counts > load
    waits = np.where(stable, waits, np.inf)
    waiting = np.where(stable, waiting, 1.0)
    waits[:, arrivals <= 0] = 0.0
    waiting[:, arrivals <= 0] = 0.0
    rows = np.arange(len(out))
    out["wait_open_s"] = np.where(
        open_now > 0, waits[np.clip(open_now, 0, top), rows], np.where(arrivals > 0, np.inf, 0)
    )
    meets = (waits[1 : params.max_counters + 1] <= params.target_wait_s) & stable[1 : params.max_counters + 1]
    needed = np.where(meets.any(axis=0), meets.argmax(axis=0) + 1, params.max_counters)
    needed = np.where(arrivals > 0, needed, 0).astype(np.int64)
    out["counters_needed"] = needed
    out["wait_needed_s"] = np.where(needed > 0, waits[needed, rows], 0.0)
    out["p_wait_needed"] = np.where(needed > 0, waiting[needed, rows], 0.0)
    return out
