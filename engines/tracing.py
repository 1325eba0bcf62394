"""Case tracing: where confirmed cases were while infectious (exposure sites), who shared a venue
with them (close contacts), the health codes that follow, clusters of linked cases, and what a
shared screen may show of all this.

Pure computations over pandas frames; persons and cases are pseudonymous tokens throughout and
times are int64 milliseconds since the epoch, UTC. The frames used here:

- cases: ``case_id``, ``confirmed_ts``, ``onset_ts`` (missing when unknown), optional
  ``isolated_ts`` (when the case was isolated; default confirmation + ``isolation_delay_h``) and
  optional ``person_id`` (the case's person token, when the registry links it).
- visits (the ``case_visit`` events): ``case_id``, ``venue_id``, ``arrive_ts``, ``leave_ts``,
  optional ``lon``, ``lat``.
- check-ins (the ``checkin`` events): ``person_id``, ``venue_id``, ``ts``, optional ``stay_s``
  (missing or negative when unknown).
- contacts: see :data:`CONTACT_COLUMNS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "CONTACT_COLUMNS",
    "UNKNOWN_COMMUNITY",
    "ContactTracer",
    "TracingParams",
    "clusters",
    "code_counts_by_community",
    "code_periods",
    "exposure_sites",
    "health_codes",
    "homes_from_declarations",
    "infectious_windows",
    "is_contact",
    "precise_visits",
    "shared_screen_view",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# A check-in is stored under one sortable int64: venue code in the high bits, event time in the
# low 42 bits (ms since 1970 fit until the year 2109), so "this venue, this time range" is one
# binary search.
_TS_BITS = 42
_TS_LIMIT = 1 << _TS_BITS

CONTACT_COLUMNS = (
    "person_id",  # the contact's pseudonymous token
    "case_id",  # the case they shared a venue with
    "venue_id",
    "checkin_ts",  # the contact's check-in (ms)
    "stay_s",  # the contact's stay (s), NaN when unknown
    "arrive_ts",  # the case's visit, clipped to its infectious window (ms)
    "leave_ts",
    "flagged_ts",  # when the contact could first be known: the later of check-in and confirmation (ms)
)
UNKNOWN_COMMUNITY = "unknown"
CODE_COLOURS = ("green", "yellow", "red")


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
    - ``small_count`` (3 persons): counts below this are suppressed on shared screens.
    """

    infectious_days_before: float = 2.0
    isolation_delay_h: float = 0.0
    contact_window_min: float = 30.0
    stay_margin_min: float = 0.0
    retention_days: float = 14.0
    site_horizon_days: float = 14.0
    contact_quarantine_days: float = 14.0
    case_isolation_days: float = 14.0
    small_count: int = 3


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


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (owner, position) for every position in each half-open range [lo, hi)."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), counts)
    first = np.cumsum(counts) - counts
    return owner, np.repeat(lo - first, counts) + np.arange(counts.sum())


@dataclass
class _CheckinRun:
    """Check-ins sorted by (venue code, time)."""

    key: np.ndarray  # int64: venue code << _TS_BITS | ts
    stay_ms: np.ndarray  # int64, -1 when unknown
    person: np.ndarray  # object: person tokens

    def __len__(self) -> int:
        return len(self.key)

    @property
    def ts(self) -> np.ndarray:
        return self.key & (_TS_LIMIT - 1)

    def take(self, order: np.ndarray) -> _CheckinRun:
        return _CheckinRun(self.key[order], self.stay_ms[order], self.person[order])

    @staticmethod
    def joined(runs: list[_CheckinRun]) -> _CheckinRun:
        merged = _CheckinRun(
            np.concatenate([r.key for r in runs]),
            np.concatenate([r.stay_ms for r in runs]),
            np.concatenate([r.person for r in runs]),
        )
        # Stable sort of concatenated sorted runs is a merge (timsort finds the runs).
        return merged.take(np.argsort(merged.key, kind="stable"))


class ContactTracer:
    """Find close contacts incrementally, whichever arrives first: the check-in or the case.

    Check-ins are kept per venue in time order (a few sorted runs merged as they grow, like a
    log-structured index); the confirmed cases' infectious visits are kept sorted by venue. A new
    check-in is matched against the stored visits, and a new case's visits against the stored
    check-ins, so each (check-in, visit) pair is reported exactly once, by whichever call brought
    in its second half. State older than ``retention_days`` behind the newest event is pruned.
    Every method returns the new contacts as a frame with :data:`CONTACT_COLUMNS`.
    """

    def __init__(self, params: TracingParams = TracingParams()) -> None:
        self.params = params
        self._venue_codes: dict[str, int] = {}
        self._runs: list[_CheckinRun] = []
        self._max_stay_ms = 0
        self._newest_ms = 0
        self._pruned_at_ms = 0
        # case_id -> (window start, window end, confirmed, person token or None)
        self._cases: dict[str, tuple[int, int, int, str | None]] = {}
        self._visit_keys: set[tuple[str, str, int, int]] = set()
        self._visits = _empty_visit_store()
        self._waiting_visits: list[pd.DataFrame] = []
        self._found: list[pd.DataFrame] = []

    # -- state

    @property
    def checkins(self) -> int:
        """Number of check-ins held."""
        return sum(len(r) for r in self._runs)

    @property
    def contacts(self) -> pd.DataFrame:
        """Return every contact found so far."""
        return pd.concat(self._found, ignore_index=True) if self._found else _empty_contacts()

    # -- inputs

    def add_checkins(self, checkins: pd.DataFrame) -> pd.DataFrame:
        """Store a batch of check-ins and return the contacts among them with already known cases."""
        if checkins.empty:
            return _empty_contacts()
        ts = checkins["ts"].to_numpy(dtype="int64")
        if ts.min() < 0 or ts.max() >= _TS_LIMIT:
            raise ValueError("check-in times must be ms since 1970 before the year 2109")
        venue = self._codes(checkins["venue_id"].to_numpy(dtype=object))
        stay = _optional_ms(checkins, "stay_s") * 1000.0
        stay_ms = np.where(np.isnan(stay) | (stay < 0), -1, stay).astype("int64")
        person = checkins["person_id"].to_numpy(dtype=object)

        found = self._match_checkins(venue, ts, stay_ms, person)

        run = _CheckinRun((venue << _TS_BITS) | ts, stay_ms, person)
        self._runs.append(run.take(np.argsort(run.key, kind="stable")))
        # Keep run sizes falling geometrically: O(log n) runs, each check-in merged O(log n) times.
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = _CheckinRun.joined([self._runs[-1], last])
        self._max_stay_ms = max(self._max_stay_ms, int(stay_ms.max()))
        self._advance(int(ts.max()))
        return self._record(found)

    def add_case(
        self,
        case_id: str,
        confirmed_ms: int,
        onset_ms: int | None = None,
        visits: pd.DataFrame | None = None,
        *,
        isolated_ms: int | None = None,
        person_id: str | None = None,
    ) -> pd.DataFrame:
        """Register a confirmed case (and optionally its visits); return the contacts now found.

        ``visits`` has ``venue_id``, ``arrive_ts``, ``leave_ts`` (a ``case_id`` column, if any, is
        ignored). Visits of this case given earlier to :meth:`add_visits` are matched now too.
        ``person_id``, when known, keeps the case's own check-ins from counting as contacts.
        """
        frame = pd.DataFrame(
            {"case_id": [case_id], "confirmed_ts": [confirmed_ms], "onset_ts": [onset_ms], "isolated_ts": [isolated_ms]}
        )
        window = infectious_windows(frame, self.params).iloc[0]
        self._cases[case_id] = (int(window.start_ts), int(window.end_ts), int(confirmed_ms), person_id)
        self._advance(int(confirmed_ms))
        waiting = [v for v in self._waiting_visits if (v["case_id"] == case_id).any()]
        self._waiting_visits = [v[v["case_id"] != case_id] for v in self._waiting_visits]
        self._waiting_visits = [v for v in self._waiting_visits if len(v)]
        mine = [w[w["case_id"] == case_id] for w in waiting]
        if visits is not None and len(visits):
            mine.append(visits.assign(case_id=case_id))
        if not mine:
            return _empty_contacts()
        return self.add_visits(pd.concat(mine, ignore_index=True))

    def add_visits(self, visits: pd.DataFrame) -> pd.DataFrame:
        """Add case visits (with ``case_id``); return the contacts found among stored check-ins.

        Visits of a case not yet confirmed wait until :meth:`add_case`; a visit seen before is
        ignored, so replaying events is harmless.
        """
        if visits.empty:
            return _empty_contacts()
        known = visits["case_id"].isin(self._cases.keys()).to_numpy()
        if (~known).any():
            self._waiting_visits.append(visits.loc[~known, ["case_id", "venue_id", "arrive_ts", "leave_ts"]])
        visits = visits.loc[known]
        rows = []
        for case_id, venue_id, arrive, leave in zip(
            visits["case_id"],
            visits["venue_id"],
            visits["arrive_ts"].astype("int64"),
            visits["leave_ts"].astype("int64"),
        ):
            key = (case_id, venue_id, int(arrive), int(leave))
            if key in self._visit_keys:
                continue
            self._visit_keys.add(key)
            start, end, confirmed, person = self._cases[case_id]
            leave = max(int(leave), int(arrive))
            if arrive > end or leave < start:
                continue
            rows.append((case_id, venue_id, max(int(arrive), start), min(leave, end), confirmed, person))
        if not rows:
            return _empty_contacts()
        new = pd.DataFrame(rows, columns=["case_id", "venue_id", "arrive_ts", "leave_ts", "confirmed_ts", "person"])
        new["venue"] = self._codes(new["venue_id"].to_numpy(dtype=object))
        found = self._match_visits(new)
        store = pd.concat([self._visits, new], ignore_index=True) if len(self._visits) else new
        self._visits = store.sort_values(["venue", "arrive_ts"], kind="stable").reset_index(drop=True)
        return self._record(found)

    # -- matching

    def _codes(self, venue_ids: np.ndarray) -> np.ndarray:
        """Return each venue's int code, giving new venues the next codes."""
        positions, uniques = pd.factorize(venue_ids)
        codes = np.empty(len(uniques), dtype="int64")
        for i, venue_id in enumerate(uniques):
            codes[i] = self._venue_codes.setdefault(venue_id, len(self._venue_codes))
        return codes[positions]

    def _match_checkins(
        self, venue: np.ndarray, ts: np.ndarray, stay_ms: np.ndarray, person: np.ndarray
    ) -> pd.DataFrame:
        visits = self._visits
        if visits.empty:
            return _empty_contacts()
        visit_venue = visits["venue"].to_numpy(dtype="int64")
        lo = np.searchsorted(visit_venue, venue, side="left")
        hi = np.searchsorted(visit_venue, venue, side="right")
        candidates = np.flatnonzero(hi > lo)
        checkin, visit = _expand_ranges(lo[candidates], hi[candidates])
        checkin = candidates[checkin]
        return self._pairs(visits, visit, ts[checkin], stay_ms[checkin], person[checkin])

    def _match_visits(self, visits: pd.DataFrame) -> pd.DataFrame:
        params = self.params
        before = max(params.contact_window_min * MINUTE_MS, self._max_stay_ms + params.stay_margin_min * MINUTE_MS)
        after = max(params.contact_window_min, params.stay_margin_min) * MINUTE_MS
        base = visits["venue"].to_numpy(dtype="int64") << _TS_BITS
        low = base | np.clip(visits["arrive_ts"].to_numpy(dtype="int64") - int(before), 0, _TS_LIMIT - 1)
        high = base | np.clip(visits["leave_ts"].to_numpy(dtype="int64") + int(after), 0, _TS_LIMIT - 1)
        found = []
        for run in self._runs:
            lo = np.searchsorted(run.key, low, side="left")
            hi = np.searchsorted(run.key, high, side="right")
            visit, checkin = _expand_ranges(lo, hi)
            if len(checkin):
                found.append(self._pairs(visits, visit, run.ts[checkin], run.stay_ms[checkin], run.person[checkin]))
        return pd.concat(found, ignore_index=True) if found else _empty_contacts()

    def _pairs(
        self, visits: pd.DataFrame, visit: np.ndarray, ts: np.ndarray, stay_ms: np.ndarray, person: np.ndarray
    ) -> pd.DataFrame:
        """Keep the (check-in, visit) pairs that are contacts, as a contacts frame."""
        arrive = visits["arrive_ts"].to_numpy(dtype="int64")[visit]
        leave = visits["leave_ts"].to_numpy(dtype="int64")[visit]
        keep = is_contact(ts, stay_ms, arrive, leave, self.params)
        case_person = visits["person"].to_numpy(dtype=object)[visit]
        keep &= person != case_person
        visit = visit[keep]
        stay = stay_ms[keep].astype(float)
        stay[stay < 0] = np.nan
        return pd.DataFrame(
            {
                "person_id": person[keep],
                "case_id": visits["case_id"].to_numpy(dtype=object)[visit],
                "venue_id": visits["venue_id"].to_numpy(dtype=object)[visit],
                "checkin_ts": ts[keep],
                "stay_s": stay / 1000.0,
                "arrive_ts": arrive[keep],
                "leave_ts": leave[keep],
                "flagged_ts": np.maximum(ts[keep], visits["confirmed_ts"].to_numpy(dtype="int64")[visit]),
            }
        )

    def _record(self, found: pd.DataFrame) -> pd.DataFrame:
        if len(found):
            self._found.append(found)
        return found

    # -- pruning

    def _advance(self, event_ms: int) -> None:
        """Move the newest event time on, pruning stale state once per tenth of the retention."""
        self._newest_ms = max(self._newest_ms, event_ms)
        retention = self.params.retention_days * DAY_MS
        if self._newest_ms - self._pruned_at_ms < retention / 10:
            return
        self._pruned_at_ms = self._newest_ms
        cutoff = self._newest_ms - retention
        runs = []
        for run in self._runs:
            ends = run.ts + np.maximum(run.stay_ms, 0)
            keep = ends >= cutoff
            if keep.any():
                runs.append(run if keep.all() else run.take(np.flatnonzero(keep)))
        self._runs = runs
        if len(self._visits):
            self._visits = self._visits[self._visits["leave_ts"] >= cutoff].reset_index(drop=True)
        for case_id, (_, end, _, _) in list(self._cases.items()):
            if end < cutoff:
                del self._cases[case_id]
        self._visit_keys = {k for k in self._visit_keys if k[3] >= cutoff}


def _empty_visit_store() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": pd.Series(dtype=object),
            "venue_id": pd.Series(dtype=object),
            "arrive_ts": pd.Series(dtype="int64"),
            "leave_ts": pd.Series(dtype="int64"),
            "confirmed_ts": pd.Series(dtype="int64"),
            "person": pd.Series(dtype=object),
            "venue": pd.Series(dtype="int64"),
        }
    )


def _empty_contacts() -> pd.DataFrame:
    dtypes = {"person_id": object, "case_id": object, "venue_id": object, "stay_s": float}
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "int64")) for c in CONTACT_COLUMNS})


# ---------------------------------------------------------------------------- health codes


def code_periods(contacts: pd.DataFrame, cases: pd.DataFrame, params: TracingParams = TracingParams()) -> pd.DataFrame:
    """Return the periods each person's health code is not green: ``person_id``, ``colour``, ``start_ts``, ``end_ts``.

    A contact is yellow from ``flagged_ts`` (or ``checkin_ts``) for ``contact_quarantine_days``; a
    confirmed case is red from confirmation for ``case_isolation_days``, under its ``person_id``
    when the cases frame links one, else under its case token. Periods are half-open
    [start_ts, end_ts): at ``end_ts`` the code is green again.
    """
    flagged = contacts["flagged_ts"] if "flagged_ts" in contacts else contacts["checkin_ts"]
    yellow = pd.DataFrame(
        {
            "person_id": contacts["person_id"].to_numpy(dtype=object),
            "colour": "yellow",
            "start_ts": flagged.to_numpy(dtype="int64"),
        }
    )
    yellow["end_ts"] = yellow["start_ts"] + int(params.contact_quarantine_days * DAY_MS)
    person = cases["case_id"].to_numpy(dtype=object)
    if "person_id" in cases:
        linked = cases["person_id"].to_numpy(dtype=object)
        person = np.where(pd.isna(linked), person, linked)
    red = pd.DataFrame(
        {"person_id": person, "colour": "red", "start_ts": cases["confirmed_ts"].to_numpy(dtype="int64")}
    )
    red["end_ts"] = red["start_ts"] + int(params.case_isolation_days * DAY_MS)
    periods = pd.concat([red, yellow], ignore_index=True).drop_duplicates()
    return periods.sort_values(["person_id", "start_ts"]).reset_index(drop=True)


def health_codes(periods: pd.DataFrame, at_ms: int, persons: Iterable[str] | None = None) -> pd.Series:
    """Return each person's code colour at a time (red over yellow over green), indexed by person.

    Without ``persons``, only the persons whose code is not green are listed; with it, exactly
    those persons, green where no period covers ``at_ms``.
    """
    active = periods[(periods["start_ts"] <= at_ms) & (periods["end_ts"] > at_ms)]
    red = set(active.loc[active["colour"] == "red", "person_id"])
    flagged = pd.Series("yellow", index=pd.Index(active["person_id"].unique(), name="person_id"), dtype=object)
    flagged[flagged.index.isin(red)] = "red"
    flagged.name = "colour"
    if persons is None:
        return flagged.sort_index()
    index = pd.Index(list(persons), name="person_id")
    return flagged.reindex(index, fill_value="green").rename("colour")


def homes_from_declarations(declarations: pd.DataFrame) -> pd.Series:
    """Return each person's home community (their latest declaration's), indexed by person.

    ``declarations`` has ``person_id``, ``ts`` and ``community_id`` (the declaration's point
    already placed in a community, as the aggregator does).
    """
    latest = declarations.sort_values("ts").drop_duplicates("person_id", keep="last")
    return latest.set_index("person_id")["community_id"].rename("community_id")


def code_counts_by_community(
    periods: pd.DataFrame, homes: pd.Series | Mapping[str, str], times_ms: Iterable[int]
) -> pd.DataFrame:
    """Count persons per community and colour at each time: ``ts``, ``community_id``, ``green``, ``yellow``, ``red``.

    ``homes`` maps person → community and defines who is counted green; a flagged person with no
    known home is counted under :data:`UNKNOWN_COMMUNITY`.
    """
    homes = pd.Series(homes, dtype=object) if not isinstance(homes, pd.Series) else homes
    population = homes.value_counts()
    frames = []
    for at_ms in times_ms:
        codes = health_codes(periods, int(at_ms))
        where = homes.reindex(codes.index).fillna(UNKNOWN_COMMUNITY).to_numpy(dtype=object)
        counts = pd.crosstab(where, codes.to_numpy(dtype=object)).reindex(columns=["yellow", "red"], fill_value=0)
        counts = counts.reindex(counts.index.union(population.index), fill_value=0)
        counts.insert(0, "green", population.reindex(counts.index, fill_value=0) - counts["yellow"] - counts["red"])
        counts["green"] = counts["green"].clip(lower=0)
        counts.index.name = "community_id"
        counts.columns.name = None
        frames.append(counts.reset_index().assign(ts=int(at_ms)))
    if not frames:
        return pd.DataFrame(columns=["ts", "community_id", *CODE_COLOURS])
    out = pd.concat(frames, ignore_index=True)[["ts", "community_id", *CODE_COLOURS]]
    return out.astype({c: "int64" for c in CODE_COLOURS})


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


def shared_screen_view(
    counts: pd.DataFrame, threshold: int = TracingParams.small_count, *, show_zeros: bool = False, totals: bool = True
) -> pd.DataFrame:
    """Return a table of counts (rows: areas, columns: categories) as text fit for a shared screen.

    Every count below ``threshold`` is shown as ``"<3"`` (for threshold 3), never as its number;
    zero too, unless ``show_zeros`` (public-health rules allow zeros; off by default because a
    shown zero beside ``"<3"`` narrows that cell to 1 or 2, which the rule tolerates but a careful
    reader may not).

    Totals (a ``total`` column per area and a ``total`` row per category, with ``totals``) cannot
    give a hidden count away: a line with no hidden cell shows its exact sum; a line with a
    hidden cell shows ``"≥N"``, N being the sum of what the line shows (plus 1 per hidden cell
    when zeros are shown, since those hidden cells are then at least 1). Every total is thus a
    function of the visible cells only, so no subtraction, within a line or across lines, can
    recover a hidden count. The cost is that an exact total is withheld wherever a small count
    hides; the role-gated views show it. Publish one geographic level per screen: an exact
    district total beside suppressed community counts would give them away.
    """
    values = counts.to_numpy(dtype="int64")
    hidden = values < threshold
    if show_zeros:
        hidden &= values != 0
    text = np.where(hidden, f"<{threshold}", values.astype(str)).astype(object)
    view = pd.DataFrame(text, index=counts.index, columns=counts.columns)
    if not totals:
        return view
    shown = np.where(hidden, 0, values)
    floor = 1 if show_zeros else 0

    def total(shown_sum: int, hidden_cells: int) -> str:
        return str(shown_sum) if hidden_cells == 0 else f"≥{shown_sum + floor * hidden_cells}"

    # Cells are text ("<3", "≥5"): an empty table must not get a numeric column the total row cannot fit.
    view["total"] = pd.Series(
        [total(int(s), int(h)) for s, h in zip(shown.sum(axis=1), hidden.sum(axis=1))], index=view.index, dtype=object
    )
    column_totals = [total(int(s), int(h)) for s, h in zip(shown.sum(axis=0), hidden.sum(axis=0))]
    view.loc["total"] = [*column_totals, total(int(shown.sum()), int(hidden.sum()))]
    return view
