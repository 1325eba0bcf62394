"""Daily and weekly rhythms of the city: how busy each kind of place or channel is at a local hour.

A rhythm holds 24 hourly levels for a weekday and for a weekend day (a public holiday counts as a
weekend day). Levels are read at minute resolution by linear interpolation between hour midpoints,
and are normalised so that a weekday's levels sum to one day: ``share_of_day`` is the fraction of a
weekday's total that falls in one minute.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

WEEKDAY, WEEKEND = "weekday", "weekend"


@dataclass(frozen=True)
class Rhythm:
    """Hourly activity levels of one kind of place or channel, on weekdays and weekends."""

    weekday: tuple[float, ...]
    weekend: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.weekday) != 24 or len(self.weekend) != 24:
            raise ValueError("a rhythm needs 24 hourly levels for weekdays and for weekends")

    def level(self, hour: float, day_kind: str) -> float:
        """Return the activity level at a local hour (0-24, fractional), relative to a weekday's mean."""
        levels = self.weekday if day_kind == WEEKDAY else self.weekend
        # Hourly levels describe the middle of each hour; interpolate between neighbouring hours.
        position = (hour - 0.5) % 24
        low = int(position)
        frac = position - low
        value = levels[low] * (1 - frac) + levels[(low + 1) % 24] * frac
        return value * 24 / sum(self.weekday)

    def share_of_day(self, hour: float, day_kind: str) -> float:
        """Return the fraction of a weekday's total that happens in the minute at this local hour."""
        return self.level(hour, day_kind) / 1440


def _hours(night: float = 0.0, **levels: float) -> tuple[float, ...]:
    """Build 24 hourly levels from ``h7=2.0``-style keywords, other hours at ``night``."""
    out = [night] * 24
    for key, value in levels.items():
        out[int(key[1:])] = value
    return tuple(out)


METRO = Rhythm(
    weekday=(
        0,
        0,
        0,
        0,
        0,
        0,
        0.3,
        2.2,
        3.2,
        1.6,
        0.9,
        0.8,
        0.9,
        0.8,
        0.8,
        0.9,
        1.2,
        2.4,
        3.0,
        1.6,
        1.0,
        0.8,
        0.5,
        0.2,
    ),
    weekend=(
        0,
        0,
        0,
        0,
        0,
        0,
        0.15,
        0.5,
        0.8,
        1.1,
        1.4,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
        1.5,
        1.4,
        1.2,
        0.9,
        0.6,
        0.2,
    ),
)
MALL = Rhythm(
    weekday=_hours(
        0.02, h10=0.5, h11=0.8, h12=1.1, h13=0.9, h14=0.8, h15=0.8, h16=0.9, h17=1.1, h18=1.5, h19=1.9, h20=1.9,
        h21=1.4, h22=0.4, h23=0.05,
    ),
    weekend=_hours(
        0.02, h10=1.2, h11=1.8, h12=2.3, h13=2.5, h14=2.7, h15=2.8, h16=2.8, h17=2.7, h18=2.8, h19=3.0, h20=2.8,
        h21=1.9, h22=0.6, h23=0.1,
    ),
)  # fmt: skip
PARK = Rhythm(
    weekday=_hours(
        0.02, h5=0.3, h6=1.6, h7=1.8, h8=1.0, h9=0.7, h10=0.6, h11=0.5, h12=0.4, h13=0.4, h14=0.5, h15=0.6,
        h16=0.8, h17=1.1, h18=1.5, h19=2.0, h20=1.9, h21=1.2, h22=0.5, h23=0.1,
    ),
    weekend=_hours(
        0.02, h5=0.3, h6=1.4, h7=1.8, h8=1.9, h9=2.2, h10=2.6, h11=2.6, h12=2.4, h13=2.8, h14=3.4, h15=3.8,
        h16=3.8, h17=3.2, h18=2.6, h19=2.4, h20=2.0, h21=1.2, h22=0.5, h23=0.1,
    ),
)  # fmt: skip
HOSPITAL = Rhythm(
    weekday=_hours(
        0.15, h7=0.8, h8=2.4, h9=2.8, h10=2.6, h11=2.0, h12=0.9, h13=0.9, h14=2.0, h15=2.0, h16=1.6, h17=0.9,
        h18=0.6, h19=0.5, h20=0.4, h21=0.3,
    ),
    weekend=_hours(0.15, h7=0.5, h8=1.3, h9=1.6, h10=1.6, h11=1.3, h12=0.7, h13=0.7, h14=1.1, h15=1.1, h16=0.9, h17=0.6),
)  # fmt: skip
OFFICE_HOURS = Rhythm(
    weekday=_hours(0.0, h9=2.2, h10=2.6, h11=2.3, h12=0.6, h13=0.8, h14=2.0, h15=2.2, h16=2.0, h17=1.3),
    weekend=_hours(0.0),
)
SCHOOL = Rhythm(
    weekday=_hours(0.05, h6=0.4, h7=3.0, h8=1.5, h9=0.3, h10=0.3, h11=0.6, h12=1.0, h13=0.8, h14=0.3, h15=0.4, h16=2.0, h17=1.8, h18=0.4),
    weekend=_hours(0.05, h9=0.2, h10=0.2, h14=0.2, h15=0.2),
)  # fmt: skip
RESIDENTIAL_GATE = Rhythm(
    weekday=(0.1, 0.1, 0.05, 0.05, 0.05, 0.1, 0.6, 2.2, 2.6, 1.2, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.9, 1.4, 2.4, 2.2, 1.5, 1.0, 0.6, 0.3),
    weekend=(0.15, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.7, 1.2, 1.5, 1.6, 1.4, 1.2, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.5, 1.3, 1.0, 0.7, 0.4),
)  # fmt: skip
RESTAURANT = Rhythm(
    weekday=_hours(0.05, h6=0.4, h7=0.9, h8=0.8, h9=0.3, h10=0.4, h11=2.0, h12=3.2, h13=1.4, h14=0.4, h15=0.3, h16=0.4, h17=1.2, h18=3.0, h19=2.8, h20=1.4, h21=0.8, h22=0.6, h23=0.3),
    weekend=_hours(0.1, h7=0.6, h8=1.0, h9=1.2, h10=1.0, h11=2.4, h12=3.6, h13=2.0, h14=0.8, h15=0.6, h16=0.7, h17=1.6, h18=3.6, h19=3.4, h20=1.8, h21=1.0, h22=0.8, h23=0.4),
)  # fmt: skip
SHOP = Rhythm(
    weekday=_hours(0.02, h7=0.5, h8=0.8, h9=0.9, h10=1.0, h11=1.1, h12=1.2, h13=1.0, h14=0.9, h15=0.9, h16=1.1, h17=1.6, h18=2.0, h19=1.9, h20=1.5, h21=1.0, h22=0.4),
    weekend=_hours(0.02, h7=0.6, h8=1.0, h9=1.5, h10=1.9, h11=2.0, h12=1.8, h13=1.6, h14=1.6, h15=1.7, h16=1.9, h17=2.1, h18=2.1, h19=1.9, h20=1.5, h21=1.0, h22=0.4),
)  # fmt: skip
MORNING_MARKET = Rhythm(
    weekday=_hours(0.02, h5=0.5, h6=2.0, h7=3.0, h8=2.8, h9=2.0, h10=1.4, h11=1.0, h12=0.5, h15=0.6, h16=1.0, h17=1.4, h18=1.0, h19=0.3),
    weekend=_hours(0.02, h5=0.5, h6=2.2, h7=3.2, h8=3.2, h9=2.6, h10=1.8, h11=1.2, h12=0.5, h15=0.6, h16=1.0, h17=1.4, h18=1.0, h19=0.3),
)  # fmt: skip
OFFICE_ARRIVALS = Rhythm(
    weekday=_hours(0.0, h7=1.0, h8=4.0, h9=5.0, h10=1.5, h11=0.6, h12=0.4, h13=1.8, h14=0.8, h15=0.4, h16=0.3, h17=0.2),
    weekend=_hours(0.0, h9=0.3, h10=0.3, h14=0.2),
)  # fmt: skip
GYM = Rhythm(
    weekday=_hours(0.02, h6=1.5, h7=1.6, h8=0.6, h9=0.3, h10=0.3, h11=0.3, h12=0.8, h13=0.5, h14=0.3, h15=0.3, h16=0.4, h17=0.8, h18=2.2, h19=2.8, h20=2.4, h21=1.2, h22=0.3),
    weekend=_hours(0.02, h8=0.8, h9=1.4, h10=1.8, h11=1.6, h12=0.9, h13=0.8, h14=1.0, h15=1.3, h16=1.5, h17=1.5, h18=1.4, h19=1.2, h20=0.9, h21=0.4),
)  # fmt: skip
CINEMA = Rhythm(
    weekday=_hours(0.02, h11=0.3, h12=0.4, h13=0.5, h14=0.5, h15=0.5, h16=0.6, h17=0.8, h18=1.6, h19=2.6, h20=2.4, h21=1.4, h22=0.5, h23=0.1),
    weekend=_hours(0.02, h10=0.6, h11=1.0, h12=1.4, h13=2.0, h14=2.6, h15=2.6, h16=2.4, h17=2.2, h18=2.6, h19=3.2, h20=3.0, h21=1.8, h22=0.6, h23=0.2),
)  # fmt: skip
HOTEL = Rhythm(
    weekday=_hours(0.3, h7=0.6, h8=0.6, h9=0.5, h11=0.6, h12=1.0, h13=1.2, h14=1.6, h15=1.8, h16=1.8, h17=1.7, h18=1.6, h19=1.4, h20=1.3, h21=1.1, h22=0.9, h23=0.6),
    weekend=_hours(0.3, h7=0.6, h8=0.6, h9=0.6, h11=0.8, h12=1.2, h13=1.5, h14=2.0, h15=2.1, h16=2.0, h17=1.9, h18=1.8, h19=1.5, h20=1.3, h21=1.1, h22=0.9, h23=0.6),
)  # fmt: skip
APP_ONLINE = Rhythm(
    weekday=(0.25, 0.12, 0.06, 0.04, 0.04, 0.08, 0.25, 0.6, 1.0, 1.4, 1.6, 1.5, 1.2, 1.2, 1.4, 1.4, 1.3, 1.2, 1.1, 1.2, 1.4, 1.4, 1.1, 0.6),
    weekend=(0.3, 0.15, 0.07, 0.05, 0.05, 0.07, 0.15, 0.35, 0.6, 0.9, 1.1, 1.1, 1.0, 0.9, 1.0, 1.0, 1.0, 0.9, 0.9, 1.0, 1.2, 1.2, 1.0, 0.6),
)  # fmt: skip
WEB_ONLINE = Rhythm(
    weekday=(0.1, 0.05, 0.03, 0.02, 0.02, 0.03, 0.1, 0.3, 1.2, 2.2, 2.4, 2.1, 1.0, 1.4, 2.2, 2.3, 2.1, 1.6, 0.8, 0.6, 0.6, 0.5, 0.3, 0.2),
    weekend=(0.08, 0.04, 0.02, 0.02, 0.02, 0.02, 0.05, 0.1, 0.2, 0.4, 0.5, 0.5, 0.4, 0.4, 0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4, 0.3, 0.15),
)  # fmt: skip
KIOSK = Rhythm(
    weekday=_hours(0.02, h7=0.5, h8=1.2, h9=1.8, h10=2.0, h11=1.9, h12=1.4, h13=1.4, h14=1.8, h15=1.9, h16=1.8, h17=1.6, h18=1.5, h19=1.2, h20=0.9, h21=0.5),
    weekend=_hours(0.02, h8=0.6, h9=1.0, h10=1.3, h11=1.3, h12=1.0, h13=1.0, h14=1.2, h15=1.2, h16=1.1, h17=1.0, h18=0.8, h19=0.6, h20=0.4),
)  # fmt: skip
MORNING_DECLARATION = Rhythm(
    weekday=(0.2, 0.1, 0.05, 0.05, 0.1, 0.4, 2.0, 4.0, 4.5, 3.0, 1.6, 1.0, 0.8, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.6, 0.6, 0.5, 0.3),
    weekend=(0.3, 0.15, 0.05, 0.05, 0.05, 0.2, 0.8, 2.0, 3.0, 3.0, 2.4, 1.6, 1.0, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.4),
)  # fmt: skip
HOTLINE = Rhythm(
    weekday=(0.3, 0.2, 0.12, 0.08, 0.08, 0.12, 0.3, 0.7, 1.3, 1.7, 1.8, 1.6, 1.2, 1.2, 1.5, 1.6, 1.5, 1.4, 1.2, 1.2, 1.3, 1.2, 0.9, 0.5),
    weekend=(0.35, 0.22, 0.14, 0.1, 0.08, 0.12, 0.25, 0.5, 0.9, 1.2, 1.3, 1.2, 1.0, 1.0, 1.1, 1.2, 1.2, 1.1, 1.1, 1.2, 1.3, 1.2, 0.9, 0.6),
)  # fmt: skip
NIGHT_NOISE = Rhythm(
    weekday=(2.4, 1.6, 0.8, 0.3, 0.1, 0.1, 0.4, 0.6, 0.6, 0.5, 0.4, 0.4, 0.6, 0.6, 0.4, 0.4, 0.4, 0.5, 0.6, 0.9, 1.4, 2.0, 2.8, 3.0),
    weekend=(3.0, 2.0, 1.0, 0.4, 0.1, 0.1, 0.3, 0.6, 0.8, 0.8, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.8, 1.1, 1.6, 2.4, 3.2, 3.4),
)  # fmt: skip


class Calendar:
    """Local time in the city, and which days are weekdays, weekends or public holidays."""

    def __init__(self, timezone: str = "Asia/Shanghai", holidays: frozenset[date] = frozenset()):
        self.zone = ZoneInfo(timezone)
        self.holidays = holidays

    def local(self, ts_ms: int) -> datetime:
        """Return the local date and time of an event time."""
        return datetime.fromtimestamp(ts_ms / 1000, self.zone)

    def day_kind(self, moment: datetime) -> str:
        """Return WEEKDAY or WEEKEND (public holidays are weekends) for a local moment."""
        return WEEKEND if moment.weekday() >= 5 or moment.date() in self.holidays else WEEKDAY

    def hour_and_day(self, ts_ms: int) -> tuple[float, str]:
        """Return the fractional local hour and the kind of day of an event time."""
        moment = self.local(ts_ms)
        return moment.hour + moment.minute / 60 + moment.second / 3600, self.day_kind(moment)

    def is_working_time(self, ts_ms: int) -> bool:
        """Whether offices are open: a working day between 9:00 and 18:00."""
        hour, day = self.hour_and_day(ts_ms)
        return day == WEEKDAY and 9 <= hour < 18

    def next_working_time(self, ts_ms: int, rng: np.random.Generator) -> int:
        """Return ts if offices are open then, else a moment in the first working hour after it."""
        if self.is_working_time(ts_ms):
            return ts_ms
        moment = self.local(ts_ms)
        day = moment.date() if moment.hour < 9 else moment.date() + timedelta(days=1)
        while True:
            opening = datetime(day.year, day.month, day.day, 9, tzinfo=self.zone)
            if self.day_kind(opening) == WEEKDAY:
                return int(opening.timestamp() * 1000) + int(rng.integers(0, 3_600_000))
            day += timedelta(days=1)

    def working_days_after(self, ts_ms: int, count: int) -> list[date]:
        """Return the next ``count`` working days strictly after the local day of ts."""
        day = self.local(ts_ms).date()
        out = []
        while len(out) < count:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in self.holidays:
                out.append(day)
        return out

    def at(self, day: date, hour: float) -> int:
        """Return the event time (ms) of a local hour on a local day."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        # Add the hours to midnight's instant, not its wall time, so a DST day stays exact.
        return int(midnight.timestamp() * 1000 + hour * 3_600_000)
