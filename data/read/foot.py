"""Foot-traffic reads: each sensor's latest reading, and the foot engine's judgements of the aggregates.

Now versus normal, crowding, fever and silent-sensor alerts. Every function reads a
bounded number of buckets (the hour now and the same hour on the comparable days before), never
raw events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pandas as pd
from scipy.stats import poisson

from data.keepers.foot import OVER, decode_stretch
from data.read.windows import DAY_S, HOUR_S, Window, shared_value
from engines.foot import CrowdingRule, FeverRule, NormalBands, SilenceRule, hour_baseline, judge_against

if TYPE_CHECKING:
    from data.read.reader import CityReader


def latest_readings(reader: CityReader) -> dict[str, dict[str, object]]:
    """The newest reading of every foot-traffic sensor (as data.fold keeps it, JSON), with its age.

    A state stored by an older version (text, not JSON) is left out until the sensor's next reading.
    """
    raw = reader.client.hgetall(reader.keys.latest("foot", "sensor"))
    now_ms = int(reader.clock() * 1000)
    out = {}
    for sensor, state in raw.items():
        try:
            row = orjson.loads(state)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        row["age_s"] = max(0.0, (now_ms - row["ts"]) / 1000)
        out[sensor.decode()] = row
    return out


def over_capacity(reader: CityReader) -> dict[str, dict[str, object]]:
    """Sensor -> its crowded stretch: since when and until which reading (ms), with the place and community."""
    stored = reader.client.hgetall(reader.keys.state("foot", OVER))
    stretches = {sensor.decode(): decode_stretch(raw) for sensor, raw in stored.items()}
    return {sensor: stretch for sensor, stretch in stretches.items() if stretch is not None}


def now_versus_normal(
    reader: CityReader,
    now_s: float,
    *,
    facet: str = "people.sensor",
    days: int = 28,
    tz: str = "Asia/Shanghai",
    bands: NormalBands | None = None,
) -> pd.DataFrame:
    """Judge the hour so far of each sensor (or area, with an area facet) against the same hour before.

    The current hour is scaled up from the minutes seen so far; previous days come from the
    hourly buckets (kept ``CITYDECK_HISTORY_DAYS``). Columns as ``engines.foot.now_versus_normal``
    plus ``key``: ``people``, ``baseline``, ``history_days``, ``ratio``, ``z``, ``flag``.

    The hour so far is a running sum in the reader; the baseline depends only on past days, so it
    is computed once per hour and kept in Redis (see :func:`hour_normal`), not at every refresh.
    """
    bands = bands or NormalBands()
    hour = int(now_s) - int(now_s) % HOUR_S
    elapsed = max(int(now_s) - hour, 60)
    now_counts = reader.counts_since("foot", [facet], hour, now_s)[facet]
    normal = hour_normal(reader, facet, hour, days=days, tz=tz, bands=bands)
    now = pd.Series({key: people * HOUR_S / elapsed for key, people in now_counts.items()}, dtype=float)
    return judge_against(now, normal, pd.Index(sorted(now_counts)), bands, key="key")


def hour_normal(reader: CityReader, facet: str, hour: int, *, days: int, tz: str, bands: NormalBands) -> pd.DataFrame:
    """The normal of each key of a foot facet for one hour (epoch s), as ``engines.foot.hour_baseline``.

    Every dashboard process must judge with the same normal, whichever built the tick: the first
    reader of the hour computes it and stores it in Redis (SET NX, kept ``BASELINE_KEEP_S``); the
    others, and the first itself, use what is stored.
    """

    def build() -> dict:
        past = [Window(hour - d * DAY_S, hour - d * DAY_S + HOUR_S) for d in range(1, days + 1)]
        rows = [
            (name, window.start * 1000, people, 1.0)
            for window, counts in zip(past, reader.counts_in_windows("foot", facet, past))
            for name, people in counts.items()
        ]
        hourly = pd.DataFrame(rows, columns=["key", "hour_ts", "people", "coverage"])
        normal = hour_baseline(hourly, hour * 1000, bands, key="key", tz=tz)
        columns = zip(normal.index, normal["median"], normal["size"], normal["mad"])
        return {name: [float(m), int(n), float(mad)] for name, m, n, mad in columns}

    rule = hashlib.sha1(repr((days, tz, bands)).encode()).hexdigest()[:12]
    stats = shared_value(reader, reader.keys.baseline("foot", facet, hour, rule), build)
    normal = pd.DataFrame.from_dict(stats, orient="index", columns=["median", "size", "mad"])
    normal.index.name = "key"
    return normal


def crowding_alerts(
    reader: CityReader, now_s: float, rule: CrowdingRule | None = None, sensors: Mapping[str, dict] | None = None
) -> list[dict]:
    """Places crowded for longer than the grace period and still reporting, longest first.

    ``sensors`` as in silent_sensors. A stretch whose last crowded reading is older than the rule's
    gap is over: a sensor that stopped reporting is silent, not crowded.
    """
    rule = rule or CrowdingRule.of(reader.settings)
    sensors = latest_readings(reader) if sensors is None else sensors
    out = []
    for sensor, stretch in over_capacity(reader).items():
        over_s = now_s - stretch["since_ms"] / 1000
        if over_s < rule.grace_s or now_s - stretch["last_ms"] / 1000 > rule.gap_s(stretch["interval_s"]):
            continue
        latest = sensors.get(sensor, {})
        out.append(
            {
                "sensor_id": sensor,
                **stretch,
                "over_s": over_s,
                "occupancy": latest.get("occupancy"),
                "capacity": latest.get("capacity"),
                "lon": latest.get("lon"),
                "lat": latest.get("lat"),
            }
        )
    return sorted(out, key=lambda a: -a["over_s"])


def fever_alerts(reader: CityReader, now_s: float, rule: FeverRule | None = None) -> list[dict]:
    """Sensors whose fever count in the last window is improbably high for the people they counted.

    Expected fevers are the sensor's rate per person over the ``baseline_h`` whole hours before the
    window (with one prior pseudo-fever at ``prior_rate``), times the people counted now; the alert
    needs a Poisson tail probability under ``alert_p`` and at least ``min_count`` fevers.

    The window is whole buckets ending with the one holding now, so it slides with the reader's
    running sums (the foot page reads the same facets); the baseline holds closed hours only, so
    it is summed once an hour for every process (see :func:`shared_value`), not at every refresh.
    """
    rule = rule or FeverRule()
    recent = Window.last(rule.window_min * 60, now_s, reader.settings.bucket_seconds)
    hour = recent.start - recent.start % HOUR_S
    past = Window(hour - int(rule.baseline_h * HOUR_S), hour)
    key = reader.keys.baseline("foot", "fever.sensor", hour, f"fever{rule.baseline_h:g}")
    before = shared_value(reader, key, lambda: reader.counts_many("foot", ["fever.sensor", "people.sensor"], past))
    return judge_fevers(reader.counts_many("foot", ["fever.sensor", "people.sensor"], recent), before, rule)


def judge_fevers(
    now: Mapping[str, Mapping[str, int]], before: Mapping[str, Mapping[str, int]], rule: FeverRule
) -> list[dict]:
    """The fever rule applied to counts per sensor (``fever.sensor`` and ``people.sensor``, in the window
    and in the baseline before it): the alerts, most improbable first. Pure: no read."""
    sensors = list(now["fever.sensor"])
    if not sensors:
        return []
    fevers = np.array([now["fever.sensor"][s] for s in sensors], dtype=np.float64)
    people = np.array([now["people.sensor"].get(s, 0) for s in sensors], dtype=np.float64)
    fevers_before = np.array([before["fever.sensor"].get(s, 0) for s in sensors], dtype=np.float64)
    people_before = np.array([before["people.sensor"].get(s, 0) for s in sensors], dtype=np.float64)
    expected = (fevers_before + 1) / (people_before + 1 / rule.prior_rate) * people
    # One call for every sensor: scipy's per-call overhead, not the arithmetic, is what costs.
    p = np.where(expected > 0, poisson.sf(fevers - 1, np.where(expected > 0, expected, 1.0)), 0.0)
    out = [
        {"sensor_id": s, "fever": int(f), "people": int(n), "expected": float(e), "p_value": float(pv)}
        for s, f, n, e, pv in zip(sensors, fevers, people, expected, p)
        if f >= rule.min_count and pv < rule.alert_p
    ]
    return sorted(out, key=lambda a: a["p_value"])


def silent_sensors(
    reader: CityReader, rule: SilenceRule | None = None, sensors: Mapping[str, dict] | None = None
) -> list[dict]:
    """Sensors that have fallen behind their source by the multiple of their cadence, quietest first.

    A sensor is silent when the foot source has moved on without it: its last reading is that far
    behind the newest reading of any sensor (or behind now, if that is earlier). So at start-up,
    while a source replays its last hour, or when every sensor stops at once (the source is stale,
    which the freshness line says), no sensor is silent on its own. ``quiet_s`` is how far behind
    it is. ``sensors`` is ``latest_readings(reader)`` when the caller has already read it.
    """
    rule = rule or SilenceRule()
    newest_ms = reader.freshness()["foot"]["newest_ms"]
    now_ms = reader.clock() * 1000
    reference_ms = now_ms if newest_ms is None else min(newest_ms, now_ms)
    out = []
    for sensor, state in (latest_readings(reader) if sensors is None else sensors).items():
        quiet_s = (reference_ms - state["ts"]) / 1000
        if quiet_s > rule.cadence_multiple * max(state["interval_s"], 1):
            out.append({"sensor_id": sensor, **state, "quiet_s": quiet_s})
    return sorted(out, key=lambda s: -s["quiet_s"])
