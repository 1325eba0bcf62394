"""Foot-traffic engine: a count judged against the same hour on comparable days (the read side's
``data.read.foot.now_versus_normal`` reads the counts from the aggregates and applies these)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from engines.foot import NormalBands, hour_baseline, judge_against
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


def now_versus_normal(
    hourly: pd.DataFrame,
    hour_ts: int,
    bands: NormalBands | None = None,
    *,
    tz: str = "Asia/Shanghai",
    holidays=(),
    keys=None,
) -> pd.DataFrame:
    """Judge each sensor's count in one hour against its baseline from the days before, as the read side does."""
    bands = bands or NormalBands()
    normal = hour_baseline(hourly, hour_ts, bands, tz=tz, holidays=holidays)
    usable = hourly[hourly["coverage"] >= bands.min_coverage] if "coverage" in hourly else hourly
    now = usable[usable["hour_ts"] == hour_ts].groupby("sensor_id")["people"].sum()
    keys = pd.Index(hourly["sensor_id"].unique() if keys is None else list(keys)).sort_values()
    return judge_against(now, normal, keys, bands)


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


def test_fevers_improbable_for_the_people_counted_are_an_alert_and_usual_ones_are_not():
    from data.read.foot import judge_fevers
    from engines.foot import FeverRule

    # A day of many people and no fever at both; now S-hot reads 12 fevers in 1,000 people, S-calm 1.
    before = {"fever.sensor": {}, "people.sensor": {"S-hot": 48_000, "S-calm": 48_000}}
    now = {"fever.sensor": {"S-hot": 12, "S-calm": 1}, "people.sensor": {"S-hot": 1000, "S-calm": 1000}}
    alerts = judge_fevers(now, before, FeverRule())
    assert [a["sensor_id"] for a in alerts] == ["S-hot"]
    (hot,) = alerts
    assert hot["expected"] == pytest.approx(1000 / (48_000 + 1000)) and hot["p_value"] < 0.001
    # Fevers at a sensor that counted nobody were not to be expected at all; fewer than the minimum never alert.
    odd = judge_fevers({"fever.sensor": {"S-odd": 3, "S-few": 2}, "people.sensor": {}}, before, FeverRule())
    assert [(a["sensor_id"], a["p_value"]) for a in odd] == [("S-odd", 0.0)]
