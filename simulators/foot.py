"""Foot-traffic sensors: people counters and infrared (thermal) cameras at metro stations, malls,
parks, hospitals, schools, service centers and residential compound gates.

The sensor list is derived deterministically from the city's places: one to three per metro
station and mall (by capacity), one or two per park, one at each hospital, school and service
center, and an infrared camera at the gate of about one community in ten. Each sensor reports once
a minute; main-entrance sensors also report the place's occupancy and capacity. A few sensors
are flaky and go silent for hours at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulators import rhythm
from simulators.cases import outbreak_plan
from simulators.source import MINUTE_MS, SourceModel

INTERVAL_S = 60

# People passing per minute per unit of capacity, at an average weekday level (scale 1).
TURNOVER_PER_MINUTE = {
    "metro_station": 0.016,
    "mall": 0.0036,
    "park": 0.0017,
    "hospital": 0.0022,
    "service_center": 0.008,
    "school": 0.0012,
}
GATE_PEOPLE_PER_MINUTE = 3.0
# Mean stay (minutes): by Little's law occupancy = arrivals per minute x stay.
STAY_MINUTES = {"metro_station": 8, "mall": 100, "park": 90, "hospital": 120, "service_center": 45, "school": 400}
RHYTHMS = {
    "metro_station": rhythm.METRO,
    "mall": rhythm.MALL,
    "park": rhythm.PARK,
    "hospital": rhythm.HOSPITAL,
    "service_center": rhythm.OFFICE_HOURS,
    "school": rhythm.SCHOOL,
    "gate": rhythm.RESIDENTIAL_GATE,
}
# Fraction of people an infrared camera flags as over 37.3 °C on an ordinary day (mostly false alarms).
FEVER_RATE = 0.0006
GATED_COMMUNITY_SHARE = 0.1
FLAKY_SENSOR_SHARE = 0.03
FLAKY_SILENT_HOUR_CHANCE = 0.25
# Entrances sit some tens of metres from the place's point.
ENTRANCE_OFFSET_DEG = 0.0004


@dataclass(frozen=True)
class Sensors:
    """The city's foot-traffic sensors, as aligned arrays."""

    sensor_id: np.ndarray
    sensor_kind: np.ndarray  # "counter" or "infrared"
    place_id: np.ndarray
    place_kind: np.ndarray
    district_id: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    people_per_minute: np.ndarray  # at an average weekday level, scale 1
    capacity: np.ndarray  # 0 where the sensor does not report occupancy
    flaky: np.ndarray

    def __len__(self) -> int:
        return len(self.sensor_id)


def city_sensors(world, seed: int) -> Sensors:
    """Derive the sensor list from the city's places and communities, deterministically."""
    rng = np.random.default_rng([seed, 2024])
    rows: list[tuple] = []
    places = world.places
    median_capacity = places.groupby("kind")["capacity"].median().to_dict()
    for place in places.itertuples(index=False):
        kind = place.kind
        if kind not in TURNOVER_PER_MINUTE:
            continue
        capacity = int(place.capacity) or int(median_capacity.get(kind, 0)) or 500
        if kind in ("metro_station", "mall"):
            count = 1 + (capacity > 4_000) + (capacity > 9_000)
        elif kind == "park":
            count = 1 + (capacity > 15_000)
        else:
            count = 1
        # Thermal screening sat at the main entrance of stations, hospitals, schools and centers.
        infrared_first = kind in ("metro_station", "hospital", "school", "service_center", "mall")
        flow = capacity * TURNOVER_PER_MINUTE[kind] / count
        for i in range(count):
            offset = rng.normal(0, ENTRANCE_OFFSET_DEG, 2) if i else np.zeros(2)
            rows.append(
                (
                    f"{place.place_id}-S{i + 1}",
                    "infrared" if (i == 0 and infrared_first) else "counter",
                    place.place_id,
                    kind,
                    place.district_id,
                    place.lon + offset[0],
                    place.lat + offset[1],
                    flow * rng.uniform(0.8, 1.25),
                    capacity if i == 0 else 0,
                )
            )
    gated = rng.random(len(world.community_ids)) < GATED_COMMUNITY_SHARE
    for c in np.flatnonzero(gated):
        lon, lat = world.spots[c, 0]
        community_id = world.community_ids[c]
        rows.append(
            (
                f"GATE-{community_id}-S1",
                "infrared",
                f"GATE-{community_id}",
                "gate",
                world.community_districts[c],
                lon,
                lat,
                GATE_PEOPLE_PER_MINUTE * rng.uniform(0.5, 2.0),
                0,
            )
        )
    columns = list(zip(*rows))
    return Sensors(
        sensor_id=np.array(columns[0], dtype=object),
        sensor_kind=np.array(columns[1], dtype=object),
        place_id=np.array(columns[2], dtype=object),
        place_kind=np.array(columns[3], dtype=object),
        district_id=np.array(columns[4], dtype=object),
        lon=np.array(columns[5], dtype=float),
        lat=np.array(columns[6], dtype=float),
        people_per_minute=np.array(columns[7], dtype=float),
        capacity=np.array(columns[8], dtype=np.int64),
        flaky=rng.random(len(rows)) < FLAKY_SENSOR_SHARE,
    )


class FootTraffic(SourceModel):
    """People counted by the city's sensors, minute by minute."""

    source = "foot"

    def prepare(self, rng: np.random.Generator) -> None:
        self.sensors = city_sensors(self.world, self.seed)
        self.kinds = sorted(set(self.sensors.place_kind))
        self._kind_of = {k: self.sensors.place_kind == k for k in self.kinds}
        self._place_flow = (
            pd.Series(self.sensors.people_per_minute).groupby(self.sensors.place_id).transform("sum").to_numpy()
        )
        self._silent_hour: tuple[int, np.ndarray] = (-1, np.zeros(0, dtype=bool))
        # The holiday's festival crowd gathers in the largest park whose main sensor (the one reporting occupancy)
        # is never silent.
        parks = np.flatnonzero((self.sensors.place_kind == "park") & (self.sensors.capacity > 0) & ~self.sensors.flaky)
        self.festival_place = (
            self.sensors.place_id[parks[np.argmax(self.sensors.capacity[parks])]]
            if self.scenario.festival and len(parks)
            else None
        )
        # Where the outbreak spreads, thermal cameras flag more people from two days in.
        self.outbreak_district = None
        if self.scenario.outbreak:
            plan = outbreak_plan(self.world, self.start_ms, self.seed, self.calendar)
            self.outbreak_district = plan.district_id
            self.outbreak_fever_from_ms = plan.index_visit_ms + 2 * 86_400_000

    def crowd_factor(self, kind: str, ts_ms: int) -> float:
        """Return how the scenario changes crowds at a kind of place."""
        factor = 1.0
        if self.calendar.local(ts_ms).date() in self.calendar.holidays:
            factor *= {"mall": 1.8, "park": 2.4, "metro_station": 1.3, "gate": 1.2}.get(kind, 1.0)
        storm = self.scenario.storm_intensity(ts_ms, self.start_ms)
        if storm:
            factor *= 1 - storm * {"park": 0.9, "mall": 0.3, "school": 0.2, "gate": 0.4}.get(kind, 0.1)
        return factor

    def expected_level(self, kind: str, ts_ms: int) -> float:
        """Return the expected activity level of a kind of place at an event time, scenario included."""
        hour, day = self.calendar.hour_and_day(ts_ms)
        return RHYTHMS[kind].level(hour, day) * self.crowd_factor(kind, ts_ms)

    def silent(self, minute_start: int) -> np.ndarray:
        """Return which sensors are silent in this minute's hour (flaky ones, a quarter of hours)."""
        hour = minute_start // 3_600_000
        if self._silent_hour[0] != hour:
            draw = np.random.default_rng([self.seed, 77, hour]).random(len(self.sensors))
            self._silent_hour = (hour, self.sensors.flaky & (draw < FLAKY_SILENT_HOUR_CHANCE))
        return self._silent_hour[1]

    def minute(self, start_ms: int, rng: np.random.Generator) -> None:
        s = self.sensors
        end_ms = start_ms + MINUTE_MS
        level = np.zeros(len(s))
        occupancy = np.zeros(len(s))
        for kind in self.kinds:
            mask = self._kind_of[kind]
            level[mask] = self.expected_level(kind, start_ms)
            if kind in STAY_MINUTES:
                stay = STAY_MINUTES[kind]
                # People inside now arrived over the last `stay` minutes: use the level half a stay ago.
                past = self.expected_level(kind, start_ms - stay * MINUTE_MS // 2)
                occupancy[mask] = past * stay
        scale = self.world.scale
        people = rng.poisson(s.people_per_minute * level * scale)
        fever_rate = np.full(len(s), FEVER_RATE)
        if self.outbreak_district is not None and start_ms >= self.outbreak_fever_from_ms:
            fever_rate[s.district_id == self.outbreak_district] *= 5
        fever = rng.binomial(people, fever_rate)
        # Whole-place occupancy: the main sensor carries its place's total flow (all sensors).
        inside = np.round(occupancy * self._place_flow * scale * rng.lognormal(0, 0.05, len(s))).astype(np.int64)
        fill = self.scenario.festival_fill(start_ms, self.start_ms)
        if fill and self.festival_place is not None:
            at_park = s.place_id == self.festival_place
            crowd = fill * s.capacity[at_park].max()
            inside[at_park & (s.capacity > 0)] = np.maximum(
                inside[at_park & (s.capacity > 0)], round(crowd * rng.lognormal(0, 0.03))
            )
            # By Little's law the crowd inside is kept up by this many arrivals a minute, over the park's gates.
            people[at_park] += rng.poisson(crowd / STAY_MINUTES["park"] / at_park.sum(), at_park.sum())
        silent = self.silent(start_ms)
        report_ts = end_ms - rng.integers(0, 3_000, len(s))
        for i in np.flatnonzero(~silent):
            fields = {
                "sensor_id": s.sensor_id[i],
                "sensor_kind": s.sensor_kind[i],
                "place_id": s.place_id[i],
                "place_kind": s.place_kind[i],
                "interval_s": INTERVAL_S,
                "people": int(people[i]),
                "lon": s.lon[i],
                "lat": s.lat[i],
            }
            if s.sensor_kind[i] == "infrared":
                fields["fever"] = int(fever[i])
            if s.capacity[i]:
                fields["occupancy"] = int(inside[i])
                fields["capacity"] = int(s.capacity[i])
            self.emit("reading", report_ts[i] - 1, **fields)
