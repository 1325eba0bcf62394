"""E-government services: applications by channel with their decisions, and appointments at the
administrative service centers.

About a third of the catalogue is decided by rules in about a second; the rest waits for a clerk
(hours to days, within office hours) and some are rejected. Most applications come through the
app, then the web, self-service kiosks and the counter; counters only work office hours on working
days, while the app and web run all night at a lower rate. Residents book appointments a few
working days ahead; on the day most arrive, some never show, some cancel, and walk-ins join the
queue; waits follow the load of the hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from simulators import rhythm
from simulators.source import MINUTE_MS, SourceModel

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

APPLICATIONS_PER_RESIDENT_DAY = 0.01
BOOKINGS_PER_RESIDENT_DAY = 0.0015
WALK_INS_PER_RESIDENT_DAY = 0.0008
# Share of a weekday's applications by channel, and each channel's rhythm.
CHANNELS: dict[str, tuple[float, rhythm.Rhythm]] = {
    "app": (0.62, rhythm.APP_ONLINE),
    "web": (0.24, rhythm.WEB_ONLINE),
    "kiosk": (0.07, rhythm.KIOSK),
    "counter": (0.07, rhythm.OFFICE_HOURS),
}
NO_SHOW_SHARE = 0.08
CANCEL_SHARE = 0.06
SLOT_MINUTES = 30
FIRST_SLOT_HOUR, LAST_SLOT_HOUR = 9.0, 17.5
# Bookings made before the run started, for today and the next working days (share of a day's bookings).
BACKLOG_SHARES = (0.9, 0.7, 0.5, 0.3, 0.15)


@dataclass(frozen=True)
class Service:
    """One service of the e-government catalogue."""

    code: str
    share: float  # of all applications
    automatic: bool  # decided by rules with no clerk
    reject_share: float
    median_hours: float  # for clerk-decided services
    bookable: bool  # usually needs a visit to a service center


CATALOGUE: tuple[Service, ...] = (
    Service("social-security-record", 0.12, True, 0.01, 0, False),
    Service("housing-fund-balance-withdrawal", 0.09, True, 0.04, 0, False),
    Service("residence-permit-renewal", 0.08, True, 0.02, 0, True),
    Service("medical-insurance-transfer", 0.07, True, 0.03, 0, False),
    Service("tax-clearance-certificate", 0.05, True, 0.02, 0, False),
    Service("talent-housing-subsidy", 0.05, False, 0.18, 72, False),
    Service("business-licence-registration", 0.08, False, 0.12, 20, True),
    Service("food-business-licence", 0.04, False, 0.15, 48, True),
    Service("household-registration-transfer", 0.06, False, 0.10, 60, True),
    Service("school-enrolment-points", 0.07, False, 0.08, 96, False),
    Service("birth-registration", 0.04, False, 0.03, 24, True),
    Service("marriage-registration-appointment", 0.03, False, 0.01, 6, True),
    Service("elderly-care-allowance", 0.04, False, 0.10, 120, True),
    Service("construction-permit", 0.02, False, 0.22, 240, True),
    Service("vehicle-plate-lottery-entry", 0.09, True, 0.05, 0, False),
    Service("entry-exit-endorsement", 0.07, False, 0.04, 30, True),
)
_SHARES = np.array([s.share for s in CATALOGUE]) / sum(s.share for s in CATALOGUE)
_BOOKABLE = [i for i, s in enumerate(CATALOGUE) if s.bookable]


class Services(SourceModel):
    """Applications and appointments of a simulated city's e-government."""

    source = "services"

    def prepare(self, rng: np.random.Generator) -> None:
        places = self.world.places
        centers = places[places["kind"] == "service_center"]
        self.center_ids = centers["place_id"].to_numpy(dtype=object)
        self.center_lon = centers["lon"].to_numpy(dtype=float)
        self.center_lat = centers["lat"].to_numpy(dtype=float)
        capacity = centers["capacity"].to_numpy(dtype=float).clip(min=50)
        self.center_weight = capacity / capacity.sum() if len(capacity) else capacity
        district = centers["district_id"].to_numpy(dtype=object)
        self.district_centers = {d: np.flatnonzero(district == d) for d in set(district)}
        self._serial = 0
        if len(self.center_ids):
            self._book_backlog(rng)

    def minute(self, start_ms: int, rng: np.random.Generator) -> None:
        hour, day = self.calendar.hour_and_day(start_ms)
        residents = self.world.residents
        storm = self.scenario.storm_intensity(start_ms, self.start_ms)
        in_person = 1 - 0.5 * storm
        self._serial = 0
        for channel, (share, channel_rhythm) in CHANNELS.items():
            expected = residents * APPLICATIONS_PER_RESIDENT_DAY * share * channel_rhythm.share_of_day(hour, day)
            if channel in ("kiosk", "counter"):
                expected *= in_person
            for _ in range(rng.poisson(expected)):
                self.apply(channel, start_ms + int(rng.integers(MINUTE_MS)), rng)
        if not len(self.center_ids):
            return
        expected = residents * BOOKINGS_PER_RESIDENT_DAY * rhythm.APP_ONLINE.share_of_day(hour, day)
        for _ in range(rng.poisson(expected)):
            self.book(start_ms + int(rng.integers(MINUTE_MS)), rng)
        expected = residents * WALK_INS_PER_RESIDENT_DAY * rhythm.OFFICE_HOURS.share_of_day(hour, day) * in_person
        for _ in range(rng.poisson(expected)):
            self.walk_in(start_ms + int(rng.integers(MINUTE_MS)), rng)

    def _number(self, prefix: str, ts: int) -> str:
        self._serial += 1
        return f"{prefix}{datetime.fromtimestamp(ts // 1000, UTC):%Y%m%d%H%M}{self._serial:05d}"

    def apply(self, channel: str, ts: int, rng: np.random.Generator) -> None:
        """File an application; rule-based services decide in about a second, clerks take longer."""
        service = CATALOGUE[int(rng.choice(len(CATALOGUE), p=_SHARES))]
        application_id = self._number("SQ", ts)
        resident = int(rng.integers(self.world.residents))
        if channel in ("kiosk", "counter") and len(self.center_ids):
            center = self.center_for(resident, rng)
            lon, lat = self.center_lon[center], self.center_lat[center]
        else:
            lon, lat = self.world.home_spot(resident)
        common = dict(application_id=application_id, service_code=service.code, channel=channel, lon=lon, lat=lat)
        if service.automatic:
            seconds = float(np.clip(rng.lognormal(np.log(0.9), 0.35), 0.2, 5.0))
            decision = "rejected" if rng.random() < service.reject_share else "approved"
            self.emit(
                "application", ts + seconds * 1000, decision=decision, automatic=True, processing_s=seconds, **common
            )
            return
        self.emit("application", ts, decision="pending", automatic=False, processing_s=0, **common)
        waited = rng.lognormal(np.log(service.median_hours * HOUR_MS), 0.6)
        decided = self.calendar.next_working_time(ts + int(waited), rng)
        decision = "rejected" if rng.random() < service.reject_share else "approved"
        self.emit(
            "application", decided, decision=decision, automatic=False, processing_s=(decided - ts) / 1000, **common
        )

    def center_for(self, resident: int, rng: np.random.Generator) -> int:
        """Pick a service center in the resident's district (the district center more often)."""
        district = self.world.community_districts[self.world.home_of(resident)]
        local = self.district_centers.get(district)
        if local is None or not len(local):
            return int(rng.choice(len(self.center_ids), p=self.center_weight))
        weights = self.center_weight[local] / self.center_weight[local].sum()
        return int(local[rng.choice(len(local), p=weights)])

    def book(self, ts: int, rng: np.random.Generator, announce_at: int | None = None, days_ahead: int | None = None):
        """Book a slot one to five working days ahead, and play out what happens on the day."""
        resident = int(rng.integers(self.world.residents))
        center = self.center_for(resident, rng)
        service = CATALOGUE[_BOOKABLE[int(rng.integers(len(_BOOKABLE)))]]
        ahead = days_ahead if days_ahead is not None else int(rng.integers(1, 6))
        if ahead:
            day = self.calendar.working_days_after(ts, ahead)[-1]
        else:
            day = self.calendar.local(ts).date()
            if self.calendar.day_kind(self.calendar.local(ts)) != rhythm.WEEKDAY:
                return
        # Mornings fill first.
        slots = np.arange(FIRST_SLOT_HOUR, LAST_SLOT_HOUR + 0.01, SLOT_MINUTES / 60)
        weights = np.where(slots < 12, 1.4, 1.0) * np.where((slots >= 12) & (slots < 13.5), 0.2, 1.0)
        slot = self.calendar.at(day, float(rng.choice(slots, p=weights / weights.sum())))
        booked = announce_at if announce_at is not None else ts
        if slot <= booked:
            return
        appointment_id = self._number("YB" if announce_at is not None else "YY", booked)
        common = dict(
            appointment_id=appointment_id,
            center_id=self.center_ids[center],
            service_code=service.code,
            slot_ts=slot,
            lon=self.center_lon[center],
            lat=self.center_lat[center],
        )
        self.emit("appointment", booked, action="booked", **common)
        draw = rng.random()
        if draw < CANCEL_SHARE:
            self.emit("appointment", booked + rng.random() * (slot - booked), action="cancelled", **common)
        elif draw < CANCEL_SHARE + NO_SHOW_SHARE:
            self.emit("appointment", slot + 30 * MINUTE_MS, action="no_show", **common)
        else:
            arrived = max(booked + 1, slot + int(rng.normal(-8, 6) * MINUTE_MS))
            self.emit("appointment", arrived, action="arrived", walk_in=False, **common)
            wait = self.wait_seconds(slot, rng, walk_in=False)
            self.emit("appointment", arrived + wait * 1000, action="served", wait_s=wait, walk_in=False, **common)

    def walk_in(self, ts: int, rng: np.random.Generator) -> None:
        """A resident turns up at a center without a booking and waits longer."""
        resident = int(rng.integers(self.world.residents))
        center = self.center_for(resident, rng)
        service = CATALOGUE[_BOOKABLE[int(rng.integers(len(_BOOKABLE)))]]
        common = dict(
            appointment_id=self._number("WI", ts),
            center_id=self.center_ids[center],
            service_code=service.code,
            slot_ts=ts,
            walk_in=True,
            lon=self.center_lon[center],
            lat=self.center_lat[center],
        )
        self.emit("appointment", ts, action="arrived", **common)
        wait = self.wait_seconds(ts, rng, walk_in=True)
        self.emit("appointment", ts + wait * 1000, action="served", wait_s=wait, **common)

    def wait_seconds(self, ts: int, rng: np.random.Generator, walk_in: bool) -> float:
        """Return a wait before a counter: longer in busy hours and for walk-ins."""
        hour, day = self.calendar.hour_and_day(ts)
        load = rhythm.OFFICE_HOURS.level(hour, day)
        mean_minutes = 4 + 6 * load + (12 if walk_in else 0)
        return round(float(rng.exponential(mean_minutes * 60)), 1)

    def _book_backlog(self, rng: np.random.Generator) -> None:
        """Announce, at the start, the bookings made before the run for the coming working days."""
        per_day = self.world.residents * BOOKINGS_PER_RESIDENT_DAY
        for ahead, share in enumerate(BACKLOG_SHARES):
            for _ in range(rng.poisson(per_day * share)):
                self.book(
                    self.start_ms, rng, announce_at=self.start_ms + int(rng.integers(MINUTE_MS)), days_ahead=ahead
                )
