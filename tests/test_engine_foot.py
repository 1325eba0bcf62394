"""Foot-traffic engine: now versus normal, crowding, fever screening and silent sensors."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from engines.foot import (
    CrowdingRule,
    FeverRule,
    NormalBands,
    SilenceRule,
    area_hourly,
    crowding_alerts,
    fever_alerts,
    hourly_counts,
    now_versus_normal,
    silent_sensors,
)
from tests.conftest import real_data

SHENZHEN = ZoneInfo("Asia/Shanghai")
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def local_ms(day: date, hour: int = 0, minute: int = 0, tz: ZoneInfo = SHENZHEN) -> int:
    """Return the UTC ms of a local wall-clock time."""
    return int(datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp() * 1000)


# Four weeks of 8 am counts: weekdays about 100 people, weekends about 20. 3 June 2024 is a Monday.
JUDGED_MONDAY = date(2024, 7, 1)
JUDGED_SATURDAY = date(2024, 6, 29)


def eight_am_history(sensor: str = "MALL-S1", days: int = 28) -> pd.DataFrame:
    """Build the hourly counts of a sensor at 8 am over the days before 1 July 2024."""
    rows = []
    for k in range(1, days + 1):
        day = date.fromordinal(JUDGED_MONDAY.toordinal() - k)
        people = 20 + k % 3 if day.weekday() >= 5 else 98 + k % 5
        rows.append((sensor, local_ms(day, 8), people, 1.0))
    return pd.DataFrame(rows, columns=["sensor_id", "hour_ts", "people", "coverage"])


def judged(history: pd.DataFrame, day: date, people: int, **kwargs) -> pd.Series:
    """Return the verdict on a count at 8 am of a day, given a history."""
    now = pd.DataFrame([(history["sensor_id"].iloc[0], local_ms(day, 8), people, 1.0)], columns=history.columns)
    return now_versus_normal(pd.concat([history, now]), local_ms(day, 8), **kwargs).iloc[0]


@pytest.mark.parametrize(
    ("people", "flag"),
    [(100, "normal"), (125, "normal"), (140, "busy"), (200, "unusual"), (65, "quiet"), (30, "unusual")],
)
def test_a_weekday_count_is_judged_against_the_weekday_normal(people, flag):
    verdict = judged(eight_am_history(), JUDGED_MONDAY, people)
    assert verdict["baseline"] == 100
    assert verdict["history_days"] == 20
    assert verdict["ratio"] == pytest.approx(people / 100)
    assert verdict["flag"] == flag


def test_weekends_have_their_own_baseline():
    history = eight_am_history()
    saturday = history[history["hour_ts"] < local_ms(JUDGED_SATURDAY, 0)]
    verdict = judged(saturday, JUDGED_SATURDAY, 21)
    assert verdict["baseline"] == 21
    assert verdict["flag"] == "normal"
    # Saturday's ordinary 21 people on a weekday would be far below normal.
    assert judged(history, JUDGED_MONDAY, 21)["flag"] == "unusual"


def test_a_holiday_is_judged_like_a_weekend():
    history = eight_am_history()
    assert judged(history, JUDGED_MONDAY, 21, holidays=[JUDGED_MONDAY])["flag"] == "normal"


def test_too_little_history_says_no_history_rather_than_guessing():
    verdict = judged(eight_am_history(days=3), JUDGED_MONDAY, 500)
    assert verdict["history_days"] == 1
    assert verdict["flag"] == "no_history"
    assert judged(eight_am_history(days=3), JUDGED_MONDAY, 500, bands=NormalBands(min_history_days=1))["flag"] == (
        "unusual"
    )


def test_a_missing_hour_is_no_data_and_incomplete_hours_are_not_history():
    history = eight_am_history()
    verdict = now_versus_normal(history, local_ms(JUDGED_MONDAY, 8)).iloc[0]
    assert verdict["flag"] == "no_data"
    partial = history.assign(coverage=np.where(history["people"] > 50, 0.5, 1.0))
    assert judged(partial, JUDGED_MONDAY, 100)["flag"] == "no_history"


def test_hourly_counts_sum_minute_readings_into_local_hours():
    start = local_ms(JUDGED_MONDAY, 8)
    readings = pd.DataFrame(
        {
            "sensor_id": "GATE-1",
            "ts": [start + (i + 1) * MINUTE for i in range(90)],
            "interval_s": 60,
            "people": 2,
        }
    )
    hourly = hourly_counts(readings)
    assert hourly["hour_ts"].tolist() == [start, start + HOUR]
    assert hourly["people"].tolist() == [120, 60]
    assert hourly["coverage"].tolist() == pytest.approx([1.0, 0.5])


def test_areas_are_judged_on_the_sum_of_their_sensors():
    history = pd.concat([eight_am_history("A"), eight_am_history("B")])
    now = pd.DataFrame(
        [("A", local_ms(JUDGED_MONDAY, 8), 100, 1.0), ("B", local_ms(JUDGED_MONDAY, 8), 300, 1.0)],
        columns=history.columns,
    )
    areas = area_hourly(pd.concat([history, now]), {"A": "EAST", "B": "EAST"}, "community_id")
    verdict = now_versus_normal(areas, local_ms(JUDGED_MONDAY, 8), key="community_id").iloc[0]
    assert verdict["community_id"] == "EAST"
    assert verdict["baseline"] == 200
    assert verdict["people"] == 400
    assert verdict["flag"] == "unusual"


def occupancy(shares: list[float], capacity: int = 1000, start: int = 0) -> pd.DataFrame:
    """Build minute-by-minute occupancy readings of one mall at these shares of capacity."""
    return pd.DataFrame(
        {
            "sensor_id": "MALL-S1",
            "place_id": "MALL",
            "ts": [start + i * MINUTE for i in range(len(shares))],
            "interval_s": 60,
            "people": 0,
            "occupancy": [round(s * capacity) for s in shares],
            "capacity": capacity,
        }
    )


def test_crowding_alerts_only_after_the_grace_period():
    rule = CrowdingRule(share=0.9, grace_s=600)
    # Over from minute 5 to minute 20, back under at minute 21.
    readings = occupancy([0.5] * 5 + [0.95] * 16 + [0.6] * 5)
    alert = crowding_alerts(readings, rule).iloc[0]
    assert alert["over_since_ts"] == 5 * MINUTE
    assert alert["start_ts"] == 16 * MINUTE  # over for 11 minutes: longer than 10
    assert alert["end_ts"] == 21 * MINUTE
    assert not alert["ongoing"]
    assert alert["peak_share"] == pytest.approx(0.95)
    # Over for exactly ten minutes, then under: no alert.
    assert crowding_alerts(occupancy([0.5] * 5 + [0.95] * 11 + [0.6] * 5), rule).empty


def test_crowding_still_over_at_the_last_reading_is_ongoing_and_a_data_gap_breaks_a_stretch():
    ongoing = crowding_alerts(occupancy([0.95] * 30)).iloc[0]
    assert ongoing["ongoing"] and pd.isna(ongoing["end_ts"])
    before_gap = occupancy([0.95] * 8)
    after_gap = occupancy([0.95] * 8, start=60 * MINUTE)
    assert crowding_alerts(pd.concat([before_gap, after_gap]), CrowdingRule(grace_s=600)).empty


def fever_readings(sensor: str, hours: list[tuple[int, int]], start: int) -> pd.DataFrame:
    """Build one reading per hour of (people, fever) for an infrared sensor."""
    return pd.DataFrame(
        {
            "sensor_id": sensor,
            "ts": [start + (i + 1) * HOUR for i in range(len(hours))],
            "interval_s": 3600,
            "people": [p for p, _ in hours],
            "fever": [f for _, f in hours],
        }
    )


def test_a_rise_in_fever_counts_raises_an_alert_and_a_crowd_alone_does_not():
    start = 0
    ordinary = [(1000, 1)] * 24
    readings = pd.concat(
        [
            fever_readings("STATION", ordinary + [(1000, 10)], start),
            fever_readings("HOSPITAL", ordinary + [(1000, 2)], start),
            # Ten times the people bring ten times the (false) fevers: no alert.
            fever_readings("STADIUM", ordinary + [(10_000, 10)], start),
        ]
    )
    result = fever_alerts(readings, start + 25 * HOUR).set_index("sensor_id")
    assert result.loc["STATION", "alert"]
    assert result.loc["STATION", "p_value"] < 1e-5
    assert not result.loc["HOSPITAL", "alert"]
    assert not result.loc["STADIUM", "alert"]
    assert result.loc["STADIUM", "expected"] == pytest.approx(10.0, rel=0.05)


def test_fever_alerts_sum_sensors_per_area_and_need_a_minimum_count():
    readings = pd.concat(
        [
            fever_readings("A", [(1000, 0)] * 24 + [(1000, 2)], 0),
            fever_readings("B", [(1000, 0)] * 24 + [(1000, 2)], 0),
        ]
    )
    per_sensor = fever_alerts(readings, 25 * HOUR)
    assert not per_sensor["alert"].any()  # 2 each: below the minimum of 3
    per_area = fever_alerts(readings, 25 * HOUR, areas={"A": "EAST", "B": "EAST"})
    assert per_area.iloc[0]["area_id"] == "EAST"
    assert per_area.iloc[0]["fever"] == 4
    assert per_area.iloc[0]["alert"]
    assert not fever_alerts(readings, 25 * HOUR, FeverRule(min_count=5), areas={"A": "EAST", "B": "EAST"})[
        "alert"
    ].any()


def test_a_sensor_is_silent_after_three_missed_intervals():
    now = 1_000 * MINUTE
    readings = pd.DataFrame(
        {
            "sensor_id": ["LATE", "LATE", "GONE", "SLOW"],
            "ts": [now - 10 * MINUTE, now - 179_000, now - 181_000, now - 50 * MINUTE],
            "interval_s": [60, 60, 60, 3600],
        }
    )
    result = silent_sensors(readings, now, sensors=["LATE", "GONE", "SLOW", "NEVER"]).set_index("sensor_id")
    assert result["silent"].to_dict() == {"GONE": True, "LATE": False, "NEVER": True, "SLOW": False}
    assert result.loc["LATE", "quiet_s"] == 179
    assert silent_sensors(readings, now, SilenceRule(cadence_multiple=2)).set_index("sensor_id").loc["LATE", "silent"]


# ---------------------------------------------------------------------------- real data

MELBOURNE = ZoneInfo("Australia/Melbourne")
# New Year's Day and the Australia Day holiday (Monday 28 January 2019).
MELBOURNE_HOLIDAYS = [date(2019, 1, 1), date(2019, 1, 28)]


@pytest.fixture(scope="module")
def melbourne_hourly() -> pd.DataFrame:
    """January 2019 pedestrian counts as hourly counts per sensor, sentinels dropped."""
    wide = pd.read_csv(real_data("foot_traffic", "melbourne_hourly_counts_jan2019_wide.csv"), dtype=str)
    long = wide.melt(id_vars=["Date", "Hour"], var_name="sensor_id", value_name="people")
    # -1 and "undefined" mark a sensor offline or not yet installed: missing, not zero.
    long["people"] = pd.to_numeric(long["people"], errors="coerce")
    long = long[long["people"] >= 0]
    local = pd.to_datetime(long["Date"], format="%d/%m/%Y") + pd.to_timedelta(long["Hour"].astype(int), unit="h")
    hour_ts = local.dt.tz_localize(MELBOURNE, nonexistent="NaT", ambiguous="NaT").dt.as_unit("ms").astype("int64")
    hourly = pd.DataFrame(
        {"sensor_id": long["sensor_id"], "hour_ts": hour_ts, "people": long["people"].astype("int64")}
    )
    hourly.attrs["sensors"] = list(wide.columns[2:])
    return hourly


def test_melbourne_weekday_morning_against_its_normal(melbourne_hourly):
    thursday_8am = local_ms(date(2019, 1, 31), 8, tz=MELBOURNE)
    verdict = now_versus_normal(
        melbourne_hourly,
        thursday_8am,
        tz="Australia/Melbourne",
        holidays=MELBOURNE_HOLIDAYS,
        keys=melbourne_hourly.attrs["sensors"],
    ).set_index("sensor_id")
    station = verdict.loc["Flinders Street Station Underpass"]
    assert station["people"] == 3964
    assert station["history_days"] == 19
    assert 3800 <= station["baseline"] <= 3900
    assert station["flag"] == "normal"
    # Sensors that only ever reported -1 have no history to judge by.
    assert verdict.loc["Flagstaff Station", "flag"] == "no_history"
    assert (verdict["flag"] == "normal").mean() > 0.5


def test_melbourne_public_holiday_is_normal_for_a_holiday_and_unusual_for_a_monday(melbourne_hourly):
    holiday_8am = local_ms(date(2019, 1, 28), 8, tz=MELBOURNE)
    as_holiday = now_versus_normal(
        melbourne_hourly, holiday_8am, tz="Australia/Melbourne", holidays=MELBOURNE_HOLIDAYS
    ).set_index("sensor_id")
    as_monday = now_versus_normal(melbourne_hourly, holiday_8am, tz="Australia/Melbourne").set_index("sensor_id")
    station = "Flinders Street Station Underpass"
    assert as_holiday.loc[station, "people"] == 404
    assert as_holiday.loc[station, "flag"] == "normal"
    assert as_monday.loc[station, "flag"] == "unusual"
    assert as_monday.loc[station, "ratio"] < 0.2
