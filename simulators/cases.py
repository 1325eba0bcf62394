"""Case tracing: venue check-ins by pseudonymous residents, daily health declarations, and cases
with the places they visited.

On an ordinary day a handful of suspected cases appear (a quarter are confirmed). In the outbreak
scenario a cluster of workers of one shift at a workplace is confirmed within the run's first hour;
an index case dines at a busy restaurant about an hour into the run, among some forty
other diners who check in there; two days later the index case falls ill and is confirmed, the
diners' health codes turn red, and about a quarter of them become cases three to eight days after
the dinner, each with the places they visited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from simulators import rhythm
from simulators.rhythm import Calendar
from simulators.source import MINUTE_MS, SourceModel
from simulators.world import World

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

CHECKINS_PER_RESIDENT_DAY = 0.1
DECLARATIONS_PER_RESIDENT_DAY = 0.02
SUSPECTED_CASES_PER_DAY_AT_SCALE_1 = 4.0
SUSPECTED_CONFIRMED_SHARE = 0.25
CHECKIN_KINDS = ("venue", "mall", "hospital", "service_center")
# category: (share of check-ins, rhythm, median stay in minutes)
CHECKIN_CATEGORIES: dict[str, tuple[float, rhythm.Rhythm, float]] = {
    "restaurant": (0.27, rhythm.RESTAURANT, 50),
    "cafe": (0.06, rhythm.SHOP, 40),
    "supermarket": (0.13, rhythm.SHOP, 25),
    "market": (0.07, rhythm.MORNING_MARKET, 20),
    "office": (0.14, rhythm.OFFICE_ARRIVALS, 480),
    "mall": (0.10, rhythm.MALL, 90),
    "gym": (0.04, rhythm.GYM, 70),
    "cinema": (0.03, rhythm.CINEMA, 130),
    "clinic": (0.03, rhythm.HOSPITAL, 40),
    "hospital": (0.03, rhythm.HOSPITAL, 120),
    "bank": (0.03, rhythm.OFFICE_HOURS, 20),
    "hotel": (0.02, rhythm.HOTEL, 720),
    "service_center": (0.02, rhythm.OFFICE_HOURS, 45),
}
OTHER_CATEGORY = (0.02, rhythm.SHOP, 30)
HEALTH_CODE_WEIGHTS = {"green": 0.996, "yellow": 0.003, "red": 0.001}
SYMPTOM_WEIGHTS = {"none": 0.975, "cough": 0.012, "fever": 0.003, "other": 0.008, "breathless": 0.002}
OUTBREAK_DINERS = 40
OUTBREAK_ATTACK_RATE = 0.25
RED_CODE_DAYS = 14
YELLOW_CODE_DAYS = 7
YELLOW_CONTACTS = 60
# The outbreak is found at a workplace that runs round the clock: workers of one shift, infected there over
# the last days, are confirmed in the run's first hour, so their cluster is on the map as soon as it starts.
WORKPLACE_CASES = 5
WORKPLACE_SHIFTS = 3
WORKPLACE_SHIFT_HOURS = 10


@dataclass(frozen=True)
class OutbreakPlan:
    """Where and when the outbreak scenario's index case dines, and who they are."""

    venue: int
    venue_id: str
    district_id: str
    lon: float
    lat: float
    index_visit_ms: int
    index_resident: int


def outbreak_plan(world: World, start_ms: int, seed: int, calendar: Calendar) -> OutbreakPlan:
    """Choose the index venue (a restaurant in the most populous district) and the dinner time."""
    rng = np.random.default_rng([seed, 31337])
    places = world.places
    shares = {}
    for district, share in zip(world.community_districts, world.population_share):
        shares[district] = shares.get(district, 0.0) + share
    busiest = max(shares, key=shares.get)
    candidates = places.index[(places["category"] == "restaurant") & (places["district_id"] == busiest)]
    if len(candidates) == 0:
        candidates = places.index[places["kind"].isin(CHECKIN_KINDS)]
    if len(candidates) == 0:
        candidates = places.index
    venue = int(rng.choice(candidates))
    row = places.loc[venue]
    # Dinner (or lunch) at the first mealtime at least half an hour into the run.
    earliest = start_ms + 30 * MINUTE_MS
    day = calendar.local(earliest).date()
    meals = sorted(calendar.at(d, h) for d in (day, day.fromordinal(day.toordinal() + 1)) for h in (12.0, 18.5))
    visit = next(t for t in meals if t >= earliest)
    return OutbreakPlan(
        venue=venue,
        venue_id=str(row["place_id"]),
        district_id=str(row["district_id"]),
        lon=float(row["lon"]),
        lat=float(row["lat"]),
        index_visit_ms=visit,
        index_resident=int(world.random_residents(1, rng)[0]),
    )


class CaseTracing(SourceModel):
    """Check-ins, declarations and cases of a simulated city."""

    source = "cases"

    def prepare(self, rng: np.random.Generator) -> None:
        places = self.world.places
        venues = places[places["kind"].isin(CHECKIN_KINDS)]
        self.venue_lon = places["lon"].to_numpy(dtype=float)
        self.venue_lat = places["lat"].to_numpy(dtype=float)
        self.venue_ids = places["place_id"].to_numpy(dtype=object)
        self.venue_categories = places["category"].to_numpy(dtype=object)
        self.categories = sorted(set(venues["category"]))
        self.category_venues = {c: venues.index[venues["category"] == c].to_numpy() for c in self.categories}
        self.local_venues = {
            (d, c): idx.to_numpy() for (d, c), idx in venues.groupby(["district_id", "category"]).groups.items()
        }
        self.district_venues = {d: idx.to_numpy() for d, idx in venues.groupby("district_id").groups.items()}
        # resident -> (health code, until ms): whose code is not green because of tracing
        self.flagged: dict[int, tuple[str, int]] = {}
        self.plan = None
        if self.scenario.outbreak and len(venues):
            self.plan = outbreak_plan(self.world, self.start_ms, self.seed, self.calendar)
            self._play_outbreak(self.plan, rng)
            self._workplace_cluster(self.plan, rng)

    def category_profile(self, category: str) -> tuple[float, rhythm.Rhythm, float]:
        """Return (share of check-ins, rhythm, median stay minutes) of a venue category."""
        return CHECKIN_CATEGORIES.get(category, OTHER_CATEGORY)

    def minute(self, start_ms: int, rng: np.random.Generator) -> None:
        hour, day = self.calendar.hour_and_day(start_ms)
        storm = self.scenario.storm_intensity(start_ms, self.start_ms)
        residents = self.world.residents
        for category in self.categories:
            share, category_rhythm, stay = self.category_profile(category)
            expected = residents * CHECKINS_PER_RESIDENT_DAY * share * category_rhythm.share_of_day(hour, day)
            for _ in range(rng.poisson(expected * (1 - 0.6 * storm))):
                resident = int(rng.integers(residents))
                ts = start_ms + int(rng.integers(MINUTE_MS))
                venue = self.venue_near(resident, category, rng)
                self.checkin(resident, venue, ts, int(rng.lognormal(np.log(stay * 60), 0.5)))
        expected = residents * DECLARATIONS_PER_RESIDENT_DAY * rhythm.MORNING_DECLARATION.share_of_day(hour, day)
        for _ in range(rng.poisson(expected)):
            self.declare(int(rng.integers(residents)), start_ms + int(rng.integers(MINUTE_MS)), rng)
        expected = SUSPECTED_CASES_PER_DAY_AT_SCALE_1 * self.world.scale / 1440
        for _ in range(rng.poisson(expected)):
            self.sporadic_case(int(rng.integers(residents)), start_ms + int(rng.integers(MINUTE_MS)), rng)

    def venue_near(self, resident: int, category: str, rng: np.random.Generator) -> int:
        """Pick a venue of a category, in the resident's home district three times out of four."""
        district = self.world.community_districts[self.world.home_of(resident)]
        local = self.local_venues.get((district, category))
        pool = local if local is not None and rng.random() < 0.75 else self.category_venues[category]
        return int(pool[rng.integers(len(pool))])

    def checkin(self, resident: int, venue: int, ts: int, stay_s: int) -> None:
        """Emit a resident's scan of a venue's place code."""
        self.emit(
            "checkin",
            ts,
            person_id=self.world.resident_token(resident),
            venue_id=self.venue_ids[venue],
            stay_s=min(stay_s, 86_400),
            lon=self.venue_lon[venue],
            lat=self.venue_lat[venue],
        )

    def declare(self, resident: int, ts: int, rng: np.random.Generator, code: str | None = None) -> None:
        """Emit a resident's daily health declaration."""
        flagged = self.flagged.get(resident)
        if code is None:
            code = flagged[0] if flagged and flagged[1] > ts else _weighted(HEALTH_CODE_WEIGHTS, rng)
        symptom = _weighted(SYMPTOM_WEIGHTS, rng)
        temperature = rng.normal(38.1, 0.4) if symptom == "fever" else rng.normal(36.5, 0.25)
        lon, lat = self.world.home_spot(resident)
        self.emit(
            "declaration",
            ts,
            person_id=self.world.resident_token(resident),
            health_code=code,
            symptom=symptom,
            temperature_c=round(float(np.clip(temperature, 35.0, 41.5)), 1) if rng.random() < 0.85 else None,
            lon=lon,
            lat=lat,
        )

    def report(self, resident: int, status: str, ts: int, onset_ms: int | None = None) -> None:
        """Emit a change of a case's status, located at the case's home."""
        lon, lat = self.world.home_spot(resident)
        self.emit(
            "case_report",
            ts,
            case_id=_case_id(self.world, resident),
            status=status,
            onset_ts=onset_ms,
            lon=lon,
            lat=lat,
        )

    def visit(self, resident: int, venue: int, arrive_ms: int, leave_ms: int, ts: int) -> None:
        """Emit a place a case visited, as found by the case interview."""
        self.emit(
            "case_visit",
            ts,
            case_id=_case_id(self.world, resident),
            venue_id=self.venue_ids[venue],
            arrive_ts=arrive_ms,
            leave_ts=leave_ms,
            lon=self.venue_lon[venue],
            lat=self.venue_lat[venue],
        )

    def recent_visits(
        self, resident: int, since_ms: int, until_ms: int, count: int, rng: np.random.Generator
    ) -> list[tuple[int, int, int]]:
        """Return (venue, arrive, leave) for places a resident plausibly visited in a period."""
        district = self.world.community_districts[self.world.home_of(resident)]
        pool = self.district_venues.get(district)
        if pool is None or until_ms <= since_ms:
            return []
        visits = []
        for _ in range(count):
            venue = int(pool[rng.integers(len(pool))])
            day_start = since_ms + int(rng.integers(max(1, until_ms - since_ms)))
            # Visits happen in waking hours: snap to between 9:00 and 21:00 local on that day.
            local_day = self.calendar.local(day_start).date()
            arrive = self.calendar.at(local_day, float(rng.uniform(9, 21)))
            if not since_ms <= arrive < until_ms:
                continue
            stay = self.category_profile(self.venue_categories[venue])[2]
            visits.append((venue, arrive, arrive + int(rng.lognormal(np.log(stay * 60_000), 0.4))))
        return sorted(visits, key=lambda v: v[1])

    def sporadic_case(self, resident: int, ts: int, rng: np.random.Generator) -> None:
        """A suspected case (fever clinic, border screening); a quarter are later confirmed."""
        onset = ts - int(rng.uniform(6, 48) * HOUR_MS)
        self.report(resident, "suspected", ts, onset)
        if rng.random() < SUSPECTED_CONFIRMED_SHARE:
            confirmed = ts + int(rng.uniform(8, 36) * HOUR_MS)
            self.confirm(resident, onset, confirmed, self.recent_visits(resident, onset - 3 * DAY_MS, ts, 3, rng), rng)

    def confirm(
        self,
        resident: int,
        onset_ms: int,
        confirmed_ms: int,
        visits: list[tuple[int, int, int]],
        rng: np.random.Generator,
    ) -> None:
        """Confirm a case, publish the places it visited, and let it recover two to three weeks later."""
        self.report(resident, "confirmed", confirmed_ms, onset_ms)
        for k, (venue, arrive, leave) in enumerate(visits):
            self.visit(resident, venue, arrive, leave, confirmed_ms + (20 + 7 * k) * MINUTE_MS)
        self.report(resident, "recovered", confirmed_ms + int(rng.uniform(14, 21) * DAY_MS), onset_ms)
        self.flagged[resident] = ("red", confirmed_ms + 21 * DAY_MS)

    def _play_outbreak(self, plan: OutbreakPlan, rng: np.random.Generator) -> None:
        t0 = plan.index_visit_ms
        index = plan.index_resident
        self.checkin(index, plan.venue, t0, 2 * 3600)
        diners = np.unique(self.world.random_residents(OUTBREAK_DINERS * 2, rng))[:OUTBREAK_DINERS]
        diners = diners[diners != index]
        arrivals = {}
        for diner in diners:
            arrive = t0 + int(rng.uniform(-45, 75) * MINUTE_MS)
            stay = int(rng.uniform(40, 120) * 60)
            arrivals[int(diner)] = (arrive, stay)
            self.checkin(int(diner), plan.venue, arrive, stay)

        # Falls ill a day or so after the dinner, so the dinner lies in the usual 2-day infectious window.
        onset = t0 + DAY_MS + int(rng.uniform(0, 18) * HOUR_MS)
        suspected = onset + int(rng.uniform(4, 10) * HOUR_MS)
        confirmed = suspected + int(rng.uniform(8, 16) * HOUR_MS)
        self.report(index, "suspected", suspected, onset)
        visits = [(plan.venue, t0, t0 + 2 * HOUR_MS)]
        visits += self.recent_visits(index, t0 - 3 * DAY_MS, t0, 2, rng)
        visits += self.recent_visits(index, t0 + 3 * HOUR_MS, suspected, 3, rng)
        self.confirm(index, onset, confirmed, sorted(visits, key=lambda v: v[1]), rng)

        # Tracing: diners turn red, people at the index case's other places yellow; they declare daily.
        others = self.world.random_residents(YELLOW_CONTACTS, rng)
        for contacts, code, days in ((diners, "red", RED_CODE_DAYS), (others, "yellow", YELLOW_CODE_DAYS)):
            for contact in map(int, contacts):
                self.flagged[contact] = (code, confirmed + days * DAY_MS)
                for day in range(1, days + 1):
                    morning = self.calendar.local(confirmed + day * DAY_MS).date()
                    self.declare(contact, self.calendar.at(morning, float(rng.uniform(7, 10))), rng, code)

        for diner in map(int, diners):
            if rng.random() >= OUTBREAK_ATTACK_RATE:
                continue
            arrive, stay = arrivals[diner]
            onset = t0 + int(rng.uniform(3, 8) * DAY_MS)
            # Quarantined contacts are tested soon after symptoms start.
            suspected = max(onset, confirmed) + int(rng.uniform(2, 12) * HOUR_MS)
            self.report(diner, "suspected", suspected, onset)
            visits = [(plan.venue, arrive, arrive + stay * 1000)]
            visits += self.recent_visits(diner, t0 + 3 * HOUR_MS, confirmed, int(rng.integers(1, 4)), rng)
            self.confirm(diner, onset, suspected + int(rng.uniform(4, 12) * HOUR_MS), visits, rng)

    def _workplace_cluster(self, plan: OutbreakPlan, rng: np.random.Generator) -> None:
        """Workers of one shift, ill since yesterday or today, confirmed one after another in the first hour."""
        pool = self.local_venues.get((plan.district_id, "office"), self.category_venues.get("office"))
        if pool is None or len(pool) == 0:
            return
        workplace = int(pool[rng.integers(len(pool))])
        # The last shift ended a couple of hours before the run, on the hour; the ones before a day apart.
        last_end = (self.start_ms - 2 * HOUR_MS) // HOUR_MS * HOUR_MS
        shifts = [
            (last_end - d * DAY_MS - WORKPLACE_SHIFT_HOURS * HOUR_MS, last_end - d * DAY_MS)
            for d in range(WORKPLACE_SHIFTS)
        ]
        workers = np.unique(self.world.random_residents(WORKPLACE_CASES * 2, rng))[:WORKPLACE_CASES]
        for k, worker in enumerate(map(int, workers)):
            onset = self.start_ms - int(rng.uniform(4, 30) * HOUR_MS)
            # The first is confirmed about ten minutes in; tracing tests the shift and confirms the others.
            confirmed = self.start_ms + int((rng.uniform(8, 12) if k == 0 else rng.uniform(12, 30)) * MINUTE_MS)
            self.report(worker, "suspected", self.start_ms + int(rng.uniform(1, 6) * MINUTE_MS), onset)
            visits = [(workplace, begin + int(rng.uniform(-10, 10) * MINUTE_MS), end) for begin, end in shifts]
            self.confirm(worker, onset, confirmed, visits, rng)


def _case_id(world: World, resident: int) -> str:
    # A case token of its own: a shared screen showing cases must not reveal check-in tokens.
    return "c" + hashlib.blake2b(world.resident_token(resident).encode(), digest_size=8).hexdigest()


def _weighted(weights: dict[str, float], rng: np.random.Generator) -> str:
    draw = rng.random()
    for name, weight in weights.items():
        draw -= weight
        if draw < 0:
            return name
    return name
