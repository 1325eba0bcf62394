"""Foot traffic: each sensor's (or area's) count now against its normal for the hour, crowding
against capacity, fever screening rises, and sensors that have gone silent.

Pure computations over pandas frames of sensor readings (the ``reading`` events): ``sensor_id``,
``ts`` (end of the counting interval, int64 ms since the epoch, UTC), ``interval_s``,
``people``, and where the sensor reports them ``fever``, ``occupancy``, ``capacity`` (missing
otherwise), optionally ``place_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from scipy.stats import poisson

__all__ = [
    "FLAGS",
    "CrowdingRule",
    "FeverRule",
    "NormalBands",
    "SilenceRule",
    "area_hourly",
    "crowding_alerts",
    "fever_alerts",
    "hourly_counts",
    "now_versus_normal",
    "hour_baseline",
    "judge_against",
    "silent_sensors",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# 1.4826 x MAD estimates the standard deviation of normally distributed counts.
MAD_TO_SD = 1.4826

FLAGS = {
    "quiet": "well below the normal for this hour",
    "normal": "within the normal band for this hour",
    "busy": "well above the normal for this hour",
    "unusual": "outside anything this sensor usually does at this hour (robust z-score)",
    "no_history": "too few comparable past days to say what normal is",
    "no_data": "no complete count for the hour being judged",
}


@dataclass(frozen=True)
class NormalBands:
    """How a count is judged against the same hour on comparable previous days.

    The baseline is the median of the same local hour on up to ``baseline_days`` (28 days)
    previous days of the same kind (weekday, or weekend/holiday); with fewer than
    ``min_history_days`` (3 days) it is ``no_history``. The spread is 1.4826 × the median absolute
    deviation, floored by Poisson noise (√median) and by ``spread_floor_share`` (0.15, a share of
    the median) so a very steady sensor is not alarmed by a small change. Then, in order:
    ``unusual`` when the robust z-score (count − median) / spread is beyond ±``unusual_z`` (3.5);
    ``busy`` when count / median ≥ ``busy_ratio`` (1.3); ``quiet`` when ≤ ``quiet_ratio`` (0.7);
    else ``normal``. Hours covered by less than ``min_coverage`` (0.9, a share of the hour) of
    readings are not used, for the baseline or as the count judged.
    """

    baseline_days: int = 28
    min_history_days: int = 3
    unusual_z: float = 3.5
    busy_ratio: float = 1.3
    quiet_ratio: float = 0.7
    spread_floor_share: float = 0.15
    min_coverage: float = 0.9


@dataclass(frozen=True)
class CrowdingRule:
    """When a place is crowded.

    - ``share`` (0.9, a share of capacity): occupancy at or over this is over capacity.
    - ``grace_s`` (600 s): the alert is raised once over capacity for longer than this.
    - ``max_gap_s`` (300 s): readings further apart than this break a stretch (no data is not
      evidence of crowding).
    """

    share: float = 0.9
    grace_s: float = 600.0
    max_gap_s: float = 300.0


@dataclass(frozen=True)
class FeverRule:
    """When infrared fever counts have risen.

    Fever counts of the last ``window_min`` (60 minutes) are compared with what the sensor's rate
    per person over the previous ``baseline_h`` (24 hours) predicts for the people counted now;
    one pseudo-fever at ``prior_rate`` (0.001 fevers per person) keeps a sensor with little
    history from dividing by nothing. An alert needs a Poisson tail probability P(X ≥ count)
    below ``alert_p`` (0.001) and at least ``min_count`` (3 persons) with fever.
    """

    window_min: float = 60.0
    baseline_h: float = 24.0
    prior_rate: float = 0.001
    alert_p: float = 0.001
    min_count: int = 3


@dataclass(frozen=True)
class SilenceRule:
    """A sensor is silent once it has not reported for ``cadence_multiple`` (3.0) × its ``interval_s``."""

    cadence_multiple: float = 3.0


# ---------------------------------------------------------------------------- now versus normal


def _local(ts_ms: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (local ms since the epoch, UTC offset ms) for each time."""
    stamps = pd.to_datetime(np.asarray(ts_ms, dtype="int64"), unit="ms", utc=True).tz_convert(tz)
    local = stamps.tz_localize(None).as_unit("ms").asi8
    return local, local - np.asarray(ts_ms, dtype="int64")


def hourly_counts(readings: pd.DataFrame, tz: str = "Asia/Shanghai") -> pd.DataFrame:
    """Sum readings into local clock hours: ``sensor_id``, ``hour_ts`` (UTC ms of the hour's start), ``people``, ``coverage``.

    A reading belongs to the hour its interval starts in; ``coverage`` is the share of the hour
    its readings cover (1.0 for a complete hour).
    """
    ts = readings["ts"].to_numpy(dtype="int64")
    interval_ms = readings["interval_s"].to_numpy(dtype="int64") * 1000
    start = ts - interval_ms
    local, _ = _local(start, tz)
    hour_ts = start - local % HOUR_MS
    grouped = pd.DataFrame(
        {
            "sensor_id": readings["sensor_id"].to_numpy(dtype=object),
            "hour_ts": hour_ts,
            "people": readings["people"].to_numpy(dtype="int64"),
            "coverage": interval_ms / HOUR_MS,
        }
    ).groupby(["sensor_id", "hour_ts"], as_index=False)
    return grouped.sum()


def area_hourly(
    hourly: pd.DataFrame, areas: Mapping[str, str] | pd.Series, area_column: str = "area_id"
) -> pd.DataFrame:
    """Sum sensors' hourly counts per area (community, H3 cell...): ``area_column``, ``hour_ts``, ``people``, ``coverage``.

    ``areas`` maps sensor → area; an area's coverage is the mean of its sensors' (a sensor
    missing from an hour counts as 0), so an hour with a sensor down is not taken for a quiet one.
    """
    areas = pd.Series(areas, dtype=object) if not isinstance(areas, pd.Series) else areas
    sensors_per_area = areas.value_counts()
    placed = hourly.assign(**{area_column: areas.reindex(hourly["sensor_id"]).to_numpy()}).dropna(subset=[area_column])
    summed = placed.groupby([area_column, "hour_ts"], as_index=False)[["people", "coverage"]].sum()
    summed["coverage"] = summed["coverage"] / sensors_per_area.reindex(summed[area_column]).to_numpy()
    return summed


def now_versus_normal(
    hourly: pd.DataFrame,
    hour_ts: int,
    bands: NormalBands = NormalBands(),
    *,
    key: str = "sensor_id",
    tz: str = "Asia/Shanghai",
    holidays: Iterable[date] = (),
    keys: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Judge each sensor's (or area's) count in one hour against its normal for that hour.

    ``hourly`` has ``key``, ``hour_ts``, ``people`` and optionally ``coverage`` (as from
    :func:`hourly_counts` or :func:`area_hourly`); ``hour_ts`` is the UTC ms of the start of the
    hour judged (pass a complete hour). Weekends and ``holidays`` are compared only with
    weekends and holidays, weekdays only with weekdays. ``keys`` (e.g. the sensor register) lists
    what to judge, so a sensor that never reported still appears; by default, every key in
    ``hourly``. Columns: ``key``, ``people`` (NaN when
    missing), ``baseline`` (median), ``history_days``, ``ratio``, ``z``, ``flag`` (one of
    :data:`FLAGS`).
    """
    usable = _covered(hourly, bands)
    normal = hour_baseline(hourly, hour_ts, bands, key=key, tz=tz, holidays=holidays)
    now = usable[usable["hour_ts"] == hour_ts].groupby(key)["people"].sum()
    keys = pd.Index(hourly[key].unique() if keys is None else list(keys)).sort_values()
    return judge_against(now, normal, keys, bands, key=key)


def hour_baseline(
    hourly: pd.DataFrame,
    hour_ts: int,
    bands: NormalBands = NormalBands(),
    *,
    key: str = "sensor_id",
    tz: str = "Asia/Shanghai",
    holidays: Iterable[date] = (),
) -> pd.DataFrame:
    """The normal of each key for one hour from the comparable days before it: index ``key``, columns
    ``median``, ``size`` (days) and ``mad``. Depends only on the past, so it can be kept for the hour."""
    holidays = frozenset(holidays)
    usable = _covered(hourly, bands)
    local, _ = _local(usable["hour_ts"].to_numpy(dtype="int64"), tz)
    day = local // DAY_MS
    hour = (local % DAY_MS) // HOUR_MS
    (target_local,), _ = _local(np.array([hour_ts]), tz)
    target_day, target_hour = target_local // DAY_MS, (target_local % DAY_MS) // HOUR_MS
    kind = _day_kind(day, holidays)
    target_kind = _day_kind(np.array([target_day]), holidays)[0]
    in_history = (
        (hour == target_hour) & (kind == target_kind) & (day < target_day) & (day >= target_day - bands.baseline_days)
    )
    history = usable[in_history]
    stats = history.groupby(key)["people"].agg(["median", "size"])
    deviation = (history["people"] - stats["median"].reindex(history[key]).to_numpy()).abs()
    stats["mad"] = deviation.groupby(history[key].to_numpy()).median()
    return stats


def _covered(hourly: pd.DataFrame, bands: NormalBands) -> pd.DataFrame:
    """The hours covered well enough to judge or to learn from (all of them when coverage is not given)."""
    return hourly[hourly["coverage"] >= bands.min_coverage] if "coverage" in hourly else hourly


def judge_against(
    now: pd.Series, normal: pd.DataFrame, keys: pd.Index, bands: NormalBands = NormalBands(), *, key: str = "sensor_id"
) -> pd.DataFrame:
    """Judge counts (``now``, by key) against a :func:`hour_baseline`; columns as :func:`now_versus_normal`."""
    out = pd.DataFrame({key: keys.to_numpy(dtype=object)})
    out["people"] = now.reindex(keys).to_numpy(dtype=float)
    out["baseline"] = normal["median"].reindex(keys).to_numpy(dtype=float)
    out["history_days"] = normal["size"].reindex(keys).fillna(0).to_numpy(dtype="int64")
    spread = np.maximum.reduce(
        [
            MAD_TO_SD * normal["mad"].reindex(keys).to_numpy(dtype=float),
            np.sqrt(out["baseline"].to_numpy()),
            bands.spread_floor_share * out["baseline"].to_numpy(),
            np.ones(len(out)),
        ]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ratio"] = out["people"] / out["baseline"]
    out["z"] = (out["people"] - out["baseline"]) / spread
    flag = np.select(
        [
            out["history_days"] < bands.min_history_days,
            out["people"].isna(),
            out["z"].abs() >= bands.unusual_z,
            out["ratio"] >= bands.busy_ratio,
            out["ratio"] <= bands.quiet_ratio,
        ],
        ["no_history", "no_data", "unusual", "busy", "quiet"],
        default="normal",
    )
    out["flag"] = flag
    return out


def _day_kind(day: np.ndarray, holidays: frozenset[date]) -> np.ndarray:
    """Return 1 for weekend days and holidays, 0 for weekdays (days counted from 1970-01-01, local)."""
    # 1970-01-01 was a Thursday: weekday = (day + 3) % 7 with Monday = 0.
    weekend = (day + 3) % 7 >= 5
    if holidays:
        holiday_days = np.array([(d - date(1970, 1, 1)).days for d in holidays])
        weekend |= np.isin(day, holiday_days)
    return weekend.astype(np.int8)


# ---------------------------------------------------------------------------- crowding


def crowding_alerts(
    readings: pd.DataFrame, rule: CrowdingRule = CrowdingRule(), *, key: str = "place_id"
) -> pd.DataFrame:
    """Find stretches where a place stayed over its crowding share for longer than the grace period.

    Uses the readings with ``occupancy`` and a positive ``capacity``, per ``key`` (``place_id``,
    or ``sensor_id`` when there is no place column). Columns: ``key``, ``over_since_ts`` (first
    reading over), ``start_ts`` (the reading that raised the alert), ``end_ts`` (the first reading
    back under, or the last reading over when data stopped; missing while still ongoing),
    ``ongoing``, ``peak_share``, ``peak_occupancy``, ``capacity``.
    """
    if key not in readings:
        key = "sensor_id"
    columns = [key, "over_since_ts", "start_ts", "end_ts", "ongoing", "peak_share", "peak_occupancy", "capacity"]
    frame = readings[[key, "ts", "occupancy", "capacity"]].dropna()
    frame = frame[frame["capacity"] > 0].sort_values([key, "ts"], kind="stable").reset_index(drop=True)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    place = frame[key].to_numpy(dtype=object)
    ts = frame["ts"].to_numpy(dtype="int64")
    share = frame["occupancy"].to_numpy(dtype=float) / frame["capacity"].to_numpy(dtype=float)
    over = share >= rule.share
    same_place = np.r_[False, place[1:] == place[:-1]]
    continuous = same_place & np.r_[False, np.diff(ts) <= rule.max_gap_s * 1000]
    previous_over = np.r_[False, over[:-1]]
    starts = over & ~(continuous & previous_over)
    stretch = np.cumsum(starts)
    rows = np.flatnonzero(over)
    stretches = pd.DataFrame(
        {
            "stretch": stretch[rows],
            "row": rows,
            "ts": ts[rows],
            "share": share[rows],
            "occupancy": frame["occupancy"].to_numpy(dtype="int64")[rows],
        }
    )
    stretches["since"] = stretches.groupby("stretch")["ts"].transform("min")
    stretches["alerting"] = stretches["ts"] - stretches["since"] > rule.grace_s * 1000
    grouped = stretches.groupby("stretch")
    summary = grouped.agg(
        first_row=("row", "min"),
        last_row=("row", "max"),
        over_since_ts=("since", "first"),
        peak_share=("share", "max"),
        peak_occupancy=("occupancy", "max"),
    )
    raised = stretches[stretches["alerting"]].groupby("stretch")["ts"].min()
    summary = summary.join(raised.rename("start_ts"), how="inner")
    if summary.empty:
        return pd.DataFrame(columns=columns)
    last = summary["last_row"].to_numpy()
    following = np.minimum(last + 1, len(frame) - 1)
    has_next = (last + 1 < len(frame)) & same_place[following]
    back_under = has_next & continuous[following]
    end = np.where(back_under, ts[following], np.where(has_next, ts[last], -1))
    # The last reading over with no later reading at all: still crowded as far as we know.
    summary["ongoing"] = ~has_next
    summary["end_ts"] = pd.array(np.where(end < 0, pd.NA, end), dtype="Int64")
    summary[key] = place[summary["first_row"].to_numpy()]
    summary["capacity"] = frame["capacity"].to_numpy(dtype="int64")[summary["first_row"].to_numpy()]
    return summary[columns].reset_index(drop=True)


# ---------------------------------------------------------------------------- fever screening


def fever_alerts(
    readings: pd.DataFrame,
    now_ms: int,
    rule: FeverRule = FeverRule(),
    *,
    areas: Mapping[str, str] | pd.Series | None = None,
) -> pd.DataFrame:
    """Judge each infrared sensor's (or, given ``areas`` sensor → area, each area's) fever count.

    Uses readings with a ``fever`` value. Columns: ``sensor_id`` (or ``area_id``), ``fever`` and
    ``people`` in the last window, ``expected`` fevers at the recent rate, ``p_value``
    P(X ≥ fever) for X ~ Poisson(expected), ``alert``.
    """
    infrared = readings.dropna(subset=["fever"])
    key = "sensor_id"
    if areas is not None:
        areas = pd.Series(areas, dtype=object) if not isinstance(areas, pd.Series) else areas
        infrared = infrared.assign(area_id=areas.reindex(infrared["sensor_id"]).to_numpy()).dropna(subset=["area_id"])
        key = "area_id"
    window_start = now_ms - rule.window_min * 60_000
    baseline_start = window_start - rule.baseline_h * HOUR_MS
    ts = infrared["ts"]
    current = infrared[(ts > window_start) & (ts <= now_ms)].groupby(key)[["fever", "people"]].sum()
    recent = infrared[(ts > baseline_start) & (ts <= window_start)].groupby(key)[["fever", "people"]].sum()
    recent = recent.reindex(current.index, fill_value=0)
    rate = (recent["fever"] + 1.0) / (recent["people"] + 1.0 / rule.prior_rate)
    out = pd.DataFrame(
        {
            key: current.index.to_numpy(dtype=object),
            "fever": current["fever"].to_numpy(dtype="int64"),
            "people": current["people"].to_numpy(dtype="int64"),
            "expected": (rate * current["people"]).to_numpy(dtype=float),
        }
    )
    out["p_value"] = poisson.sf(out["fever"] - 1, out["expected"])
    out["alert"] = (out["p_value"] < rule.alert_p) & (out["fever"] >= rule.min_count)
    return out


# ---------------------------------------------------------------------------- silent sensors


def silent_sensors(
    readings: pd.DataFrame, now_ms: int, rule: SilenceRule = SilenceRule(), *, sensors: Iterable[str] | None = None
) -> pd.DataFrame:
    """Mark sensors that stopped reporting: ``sensor_id``, ``last_ts``, ``interval_s``, ``quiet_s``, ``silent``.

    ``readings`` may be the raw readings or one row per sensor of its latest; the cadence is the
    latest reading's ``interval_s``. Sensors of the ``sensors`` register never heard from are
    silent, with missing ``last_ts``.
    """
    latest = readings.sort_values("ts", kind="stable").drop_duplicates("sensor_id", keep="last")
    latest = latest.set_index("sensor_id")[["ts", "interval_s"]].rename(columns={"ts": "last_ts"})
    if sensors is not None:
        latest = latest.reindex(latest.index.union(pd.Index(list(sensors))))
    latest.index.name = "sensor_id"
    out = latest.reset_index()
    out["quiet_s"] = (now_ms - out["last_ts"]) / 1000.0
    out["silent"] = out["last_ts"].isna() | (out["quiet_s"] > rule.cadence_multiple * out["interval_s"])
    return out.sort_values("sensor_id").reset_index(drop=True)
