"""Case tracing rules: infectious windows, where confirmed cases were while infectious (exposure
sites), whether a check-in meets a case's visit (close contact), and clusters of linked cases.
The cases keeper applies them as events arrive.

Pure computations over pandas frames; persons and cases are pseudonymous tokens throughout and
times are int64 milliseconds since the epoch, UTC. The frames used here:

- cases: ``case_id``, ``confirmed_ts``, ``onset_ts`` (missing when unknown), optional
  ``isolated_ts`` (when the case was isolated; default confirmation + ``isolation_delay_h``) and
  optional ``person_id`` (the case's person token, when the registry links it).
- visits (the ``case_visit`` events): ``case_id``, ``venue_id``, ``arrive_ts``, ``leave_ts``,
  optional ``lon``, ``lat``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class TracingParams:
    """How cases are traced; every duration is in the unit its name ends with.

    - ``infectious_days_before`` (2.0 days): the infectious window opens this long before symptom
      onset, or before confirmation when onset is unknown.
    - ``isolation_delay_h`` (0.0 hours): the window closes this long after confirmation, unless the
      case has its own ``isolated_ts``.
    - ``contact_window_min`` (30.0 minutes): a check-in whose stay is unknown is a contact when it
      falls within this many minutes before the case's arrival or after its departure.
    - ``stay_margin_min`` (0.0 minutes): a check-in whose stay is known is a contact when its stay
      overlaps the case's visit widened by this margin on both sides.
    - ``retention_days`` (14.0 days): check-ins and case visits older than this, behind the newest
      event seen, are dropped from the tracer; it must cover the longest delay from a visit to
      the case's confirmation.
    - ``site_horizon_days`` (14.0 days): an exposure site stays on the map this long after its
      last visit.
    - ``contact_quarantine_days`` (14.0 days): a contact's code is yellow this long from when
      they are flagged.
    - ``case_isolation_days`` (14.0 days): a case's code is red this long from confirmation.
    """

    infectious_days_before: float = 2.0
    isolation_delay_h: float = 0.0
    contact_window_min: float = 30.0
    stay_margin_min: float = 0.0
    retention_days: float = 14.0
    site_horizon_days: float = 14.0
    contact_quarantine_days: float = 14.0
    case_isolation_days: float = 14.0

    @classmethod
    def of(cls, settings) -> TracingParams:
        """The tracing rules a deployment set (the rest keep the engine's defaults)."""
        return cls(
            infectious_days_before=settings.infectious_days,
            contact_window_min=settings.contact_window_min,
            contact_quarantine_days=settings.contact_quarantine_days,
            case_isolation_days=settings.case_isolation_days,
        )


# ---------------------------------------------------------------------------- infectious windows


def infectious_windows(cases: pd.DataFrame, params: TracingParams = TracingParams()) -> pd.DataFrame:
    """Return each case's infectious window: ``case_id``, ``start_ts``, ``end_ts``, ``confirmed_ts``."""
    confirmed = cases["confirmed_ts"].astype("int64").to_numpy()
    onset = _optional_ms(cases, "onset_ts")
    opens_from = np.where(np.isnan(onset), confirmed, onset)
    start = opens_from - params.infectious_days_before * DAY_MS
    isolated = _optional_ms(cases, "isolated_ts")
    end = np.where(np.isnan(isolated), confirmed + params.isolation_delay_h * HOUR_MS, isolated)
    return pd.DataFrame(
        {
            "case_id": cases["case_id"].to_numpy(dtype=object),
            "start_ts": start.astype("int64"),
            "end_ts": end.astype("int64"),
            "confirmed_ts": confirmed,
        }
    )


def _optional_ms(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)


def _infectious_visits(cases: pd.DataFrame, visits: pd.DataFrame, params: TracingParams) -> pd.DataFrame:
    """Return the visits that overlap their case's infectious window, clipped to it."""
    windows = infectious_windows(cases, params)
    joined = visits.merge(windows, on="case_id", how="inner")
    arrive = joined["arrive_ts"].astype("int64")
    leave = np.maximum(joined["leave_ts"].astype("int64"), arrive)
    inside = (arrive <= joined["end_ts"]) & (leave >= joined["start_ts"])
    joined = joined.loc[inside].copy()
    joined["arrive_ts"] = np.maximum(arrive[inside], joined["start_ts"])
    joined["leave_ts"] = np.minimum(leave[inside], joined["end_ts"])
    return joined.reset_index(drop=True)


# ---------------------------------------------------------------------------- exposure sites


def exposure_sites(
    cases: pd.DataFrame, visits: pd.DataFrame, now_ms: int, params: TracingParams = TracingParams()
) -> pd.DataFrame:
    """Return every venue a confirmed case visited while infectious, most recent first.

    Columns: ``venue_id``, ``cases`` and ``visits`` (counts), ``first_arrive_ts``,
    ``last_leave_ts``, ``recency_h`` (hours from the last departure to ``now_ms``, 0 while a visit
    is under way), ``case_ids`` (sorted tuple of case tokens) and ``visit_times`` (tuple of
    (arrive_ts, leave_ts) pairs, in time order). Visits are clipped to the infectious window and
    visits not yet begun at ``now_ms`` are left out. There are no coordinates here: join the venue
    with the public place register; a case's own points come only from :func:`precise_visits`.
    """
    infectious = _infectious_visits(cases, visits, params)
    horizon = now_ms - params.site_horizon_days * DAY_MS
    infectious = infectious[(infectious["arrive_ts"] <= now_ms)]
    keep = infectious.groupby("venue_id")["leave_ts"].transform("max") >= horizon
    infectious = infectious[keep].sort_values(["venue_id", "arrive_ts", "leave_ts"])
    if infectious.empty:
        return _empty_sites()
    grouped = infectious.groupby("venue_id", sort=False)
    sites = grouped.agg(
        cases=("case_id", "nunique"),
        visits=("case_id", "size"),
        first_arrive_ts=("arrive_ts", "min"),
        last_leave_ts=("leave_ts", "max"),
    )
    sites["recency_h"] = np.maximum(now_ms - sites["last_leave_ts"], 0) / HOUR_MS
    sites["case_ids"] = grouped["case_id"].agg(lambda ids: tuple(sorted(set(ids))))
    pairs = pd.Series(list(zip(infectious["arrive_ts"].tolist(), infectious["leave_ts"].tolist())))
    sites["visit_times"] = pairs.groupby(infectious["venue_id"].to_numpy()).agg(tuple)
    sites = sites.reset_index().sort_values(["last_leave_ts", "venue_id"], ascending=[False, True])
    return sites.reset_index(drop=True)


def _empty_sites() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "venue_id": pd.Series(dtype=object),
            "cases": pd.Series(dtype="int64"),
            "visits": pd.Series(dtype="int64"),
            "first_arrive_ts": pd.Series(dtype="int64"),
            "last_leave_ts": pd.Series(dtype="int64"),
            "recency_h": pd.Series(dtype=float),
            "case_ids": pd.Series(dtype=object),
            "visit_times": pd.Series(dtype=object),
        }
    )


def precise_visits(cases: pd.DataFrame, visits: pd.DataFrame, params: TracingParams = TracingParams()) -> pd.DataFrame:
    """Return each case's infectious visits with exact times and points: the case's trajectory.

    This is the only function that gives a case's individual path (``case_id``, ``venue_id``,
    ``arrive_ts``, ``leave_ts``, and ``lon``/``lat`` when the visits carry them), ordered by case
    and arrival; the dashboard keeps it behind a role and never on a shared screen.
    """
    infectious = _infectious_visits(cases, visits, params)
    columns = ["case_id", "venue_id", "arrive_ts", "leave_ts"] + [c for c in ("lon", "lat") if c in infectious]
    return infectious[columns].sort_values(["case_id", "arrive_ts"]).reset_index(drop=True)


# ---------------------------------------------------------------------------- close contacts


def is_contact(
    checkin_ts: np.ndarray, stay_ms: np.ndarray, arrive: np.ndarray, leave: np.ndarray, params: TracingParams
) -> np.ndarray:
    """Decide, pair by pair, whether a check-in meets a case's visit (stay_ms < 0: stay unknown)."""
    window = params.contact_window_min * MINUTE_MS
    margin = params.stay_margin_min * MINUTE_MS
    known = stay_ms >= 0
    # Closed intervals: sharing one instant is enough.
    overlaps = (checkin_ts <= leave + margin) & (checkin_ts + stay_ms >= arrive - margin)
    near = (checkin_ts >= arrive - window) & (checkin_ts <= leave + window)
    return np.where(known, overlaps, near)


# ---------------------------------------------------------------------------- health codes


# ---------------------------------------------------------------------------- clusters


def clusters(cases: pd.DataFrame, visits: pd.DataFrame, params: TracingParams = TracingParams()) -> pd.DataFrame:
    """Group cases linked by a shared venue into clusters (connected components), largest first.

    Two cases are linked when one visited a venue while infectious and the other was there within
    ``contact_window_min`` of that visit, whether or not the other was infectious yet: a case is
    usually infected before its own infectious window opens. Only cases in ``cases`` count.
    Columns: ``cluster_id`` (0, 1, ... by size, then first linking visit), ``size``,
    ``case_ids`` (sorted tuple), ``sites`` (sorted tuple of the venues that link them),
    ``first_arrive_ts`` and ``last_leave_ts`` (span of the linking visits). Unlinked cases form
    no cluster.
    """
    infectious = _infectious_visits(cases, visits, params)[["case_id", "venue_id", "arrive_ts", "leave_ts"]]
    known = visits[visits["case_id"].isin(cases["case_id"])][["case_id", "venue_id", "arrive_ts", "leave_ts"]]
    window = params.contact_window_min * MINUTE_MS
    pairs = infectious.merge(known, on="venue_id", suffixes=("_a", "_b"))
    linked = (
        (pairs["case_id_a"] != pairs["case_id_b"])
        & (pairs["arrive_ts_a"] <= pairs["leave_ts_b"] + window)
        & (pairs["arrive_ts_b"] <= pairs["leave_ts_a"] + window)
    )
    pairs = pairs[linked]
    columns = ["cluster_id", "size", "case_ids", "sites", "first_arrive_ts", "last_leave_ts"]
    if pairs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("case_ids", "sites") else "int64") for c in columns})
    ids, case_index = np.unique(np.concatenate([pairs["case_id_a"], pairs["case_id_b"]]), return_inverse=True)
    a, b = case_index[: len(pairs)], case_index[len(pairs) :]
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    pairs = pairs.assign(component=component[a])
    both = pd.DataFrame(
        {
            "component": np.concatenate([component[a], component[b]]),
            "case_id": np.concatenate([pairs["case_id_a"], pairs["case_id_b"]]),
            "arrive_ts": np.concatenate([pairs["arrive_ts_a"], pairs["arrive_ts_b"]]),
            "leave_ts": np.concatenate([pairs["leave_ts_a"], pairs["leave_ts_b"]]),
        }
    )
    summary = both.groupby("component").agg(
        size=("case_id", "nunique"),
        case_ids=("case_id", lambda s: tuple(sorted(set(s)))),
        first_arrive_ts=("arrive_ts", "min"),
        last_leave_ts=("leave_ts", "max"),
    )
    summary["sites"] = pairs.groupby("component")["venue_id"].agg(lambda s: tuple(sorted(set(s))))
    summary = summary.sort_values(["size", "first_arrive_ts"], ascending=[False, True]).reset_index(drop=True)
    summary["cluster_id"] = np.arange(len(summary), dtype="int64")
    return summary[columns].astype({"first_arrive_ts": "int64", "last_leave_ts": "int64"})


# ---------------------------------------------------------------------------- shared screens
