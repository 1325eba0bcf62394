"""Service rules of e-government: how fast applications are decided against the one-second promise
(from the aggregator's processing-time histogram), and how many counters each administrative
service center needs to keep the expected wait under a target.

The counter plan is an M/M/c queue (Erlang C): arrivals in an hour are Poisson at the hour's expected
rate and every open counter serves one resident
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


@dataclass(frozen=True)
class ServiceParams:
    """Parameters of the service-volume engine (name, default, unit)."""

    promise_s: float = 1.0  # s: an automatic decision is promised "in about a second"
    target_wait_s: float = 600.0  # s: expected wait before a counter that the plan must not exceed
    mean_service_s: float = 600.0  # s: mean time a resident spends at a counter, when none is observed
    service_cv: float = 1.0  # ratio: std/mean of service time, when none is observed (1 = exponential)
    arrival_cv: float = 1.0  # ratio: std/mean of inter-arrival times (1 = Poisson arrivals)
    max_counters: int = 200  # counters: the most the plan will ever ask one center to open


# ---------------------------------------------------------------------------- volumes


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


def processing_from_bins(
    by_mode: Mapping[str, Mapping[str, float]], params: ServiceParams = ServiceParams()
) -> pd.DataFrame:
    """Summarise processing-time counts per mode and bin (``{"auto": {"le1": n, ...}, ...}``), e.g.
    ``applications.community_processing`` summed over an area and split by the read API.

    Returns one row per mode (``auto``, ``manual``) with ``decided``, ``median_s``, ``p95_s`` and
    ``within_promise_share``. The facet counts every application event, so for clerk-decided
    services it also holds the pending filings (processing 0 s) in its first bin.
    """
    index = bin_label_index()
    counts: dict[str, np.ndarray] = {}
    for mode, bins in by_mode.items():
        for label, value in bins.items():
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


# ---------------------------------------------------------------------------- queueing


def counters_needed(
    demand: pd.DataFrame,
    open_counters: Mapping[str, int] | int,
    params: ServiceParams = ServiceParams(),
    *,
    mean_service_s: float | None = None,
    service_cv: float | None = None,
) -> pd.DataFrame:
    """Plan counters per center and hour so the expected wait stays under ``params.target_wait_s``.

    ``demand`` has ``center_id``, ``hour_ms`` and ``arrivals_per_h``; ``open_counters`` is the number
    open now, per center or one number for all. Service time is the observed mean and CV when given,
    else the parameters' defaults.
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
