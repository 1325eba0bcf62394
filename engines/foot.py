"""Foot traffic rules: a count judged against its normal for the hour, and the rules of crowding,
fever rises and silent sensors that the foot keeper and the read side apply.

Times are int64 ms since the epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# 1.4826 x MAD estimates the standard deviation of normally distributed counts.
MAD_TO_SD = 1.4826


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
    """When a place is crowded, and when its crowding is an alert.

    - ``share`` (0.9, a share of capacity): a reading with occupancy at or over this share of a
      positive capacity is crowded (``CITYDECK_CROWDING_SHARE``).
    - ``grace_s`` (600 s): a place crowded for longer than this, reading after reading, raises the
      alert (``CITYDECK_CROWDING_GRACE_S``).
    - ``max_gap_s`` (300 s) or ``gap_intervals`` (3) of the sensor's counting interval, whichever
      is longer: readings further apart break a stretch, and a stretch whose last reading is older
      is over. No data is not evidence of crowding.
    """

    share: float = 0.9
    grace_s: float = 600.0
    max_gap_s: float = 300.0
    gap_intervals: float = 3.0

    @classmethod
    def of(cls, settings) -> CrowdingRule:
        """The crowding rule a deployment set."""
        return cls(share=settings.crowding_share, grace_s=settings.crowding_grace_s)

    def gap_s(self, interval_s: float) -> float:
        """The longest silence a crowded stretch survives, for a sensor counting every ``interval_s``."""
        return max(self.max_gap_s, self.gap_intervals * interval_s)

    def crowded(self, occupancy, capacity):
        """Whether readings are crowded (numbers or arrays; a missing or zero capacity never is)."""
        return (capacity > 0) & (occupancy >= self.share * capacity)


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
    """Judge counts (``now``, by key) against a :func:`hour_baseline`.

    Columns: ``key``, ``people`` (NaN when missing), ``baseline`` (median), ``history_days``, ``ratio``,
    ``z`` and ``flag``: ``no_history``, ``no_data``, ``unusual``, ``busy``, ``quiet`` or ``normal``.
    """
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
