"""A seeded, known mix of events of all four sources, with the disorder a real city sends.

Events come roughly in time order, as producers send them, but not quite: some arrive a few
minutes out of order, some are sent twice (a producer retrying), some are malformed, and a
phase may carry stragglers for an hour long past. Complaints come with their updates before,
beside and after them in the stream; sensors cross their capacity and come back; confirmed
cases visit venues where people checked in. The same seed always gives the same entries.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from data.schema import encode

MINUTE_MS = 60_000
# Words whose triage gives no deadline shorter than a day: routes then do not move with the clock.
QUIET_COMPLAINTS = (
    ("loud construction noise at night on the street", "noise"),
    ("rubbish bins overflowing in the lane", "sanitation"),
    ("streetlight flickering on the corner", "streetlight"),
    ("water pressure low in the building", None),
)
BAD_FIELDS = (("ts", "yesterday"), ("seq", "-"), ("v", "7"), ("lat", "NaN"))


@dataclass
class CityMix:
    """A generator of entries (source, fields) over one city, keeping its state between phases."""

    city: object
    seed: int
    src: str = "mix"
    seq: int = 0
    rng: random.Random = field(init=False)
    complaints: list[tuple[str, int]] = field(default_factory=list)  # (id, ts) of complaints sent
    sent: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # every valid entry, for repeats

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        places = self.city.places
        self.venues = places[places.kind == "venue"].head(40).reset_index(drop=True)
        self.sensors = places[places.kind.isin(["metro_station", "mall", "park"])].head(30).reset_index(drop=True)
        self.centers = places[places.kind == "service_center"].head(5).reset_index(drop=True)
        self.bounds = self.city.bounds

    def phase(
        self,
        start_ms: int,
        end_ms: int,
        n: int,
        *,
        disorder_ms: int = 5 * MINUTE_MS,
        stragglers_from: int | None = None,
    ) -> list[tuple[str, dict[str, str]]]:
        """Return about ``n`` entries with event times from ``start_ms`` to ``end_ms``, in stream order.

        About one in seven is sent up to ``disorder_ms`` behind its neighbours, one in thirty is a
        repeat of an earlier entry and one in fifty malformed; with ``stragglers_from``, one in forty
        carries a time between that and ``start_ms`` (an hour that may be closed by then).
        """
        rng = self.rng
        out: list[tuple[str, dict[str, str]]] = []
        for i in range(n):
            ts = start_ms + (end_ms - start_ms) * i // max(n - 1, 1)
            roll = rng.random()
            if roll < 0.15:
                ts -= rng.randrange(1, disorder_ms)
            elif stragglers_from is not None and roll < 0.175:
                ts = rng.randrange(stragglers_from, start_ms)
            if self.sent and rng.random() < 0.033:
                out.append(rng.choice(self.sent))
                continue
            for source, fields in self._events(ts):
                if rng.random() < 0.02:
                    name, value = rng.choice(BAD_FIELDS)
                    fields = {**fields, name: value}
                else:
                    self.sent.append((source, fields))
                out.append((source, fields))
        return out

    def _next(self, type_name: str, ts: int, **values) -> dict[str, str]:
        self.seq += 1
        return encode(type_name, src=self.src, seq=self.seq, ts=ts, **values)

    def _point(self) -> tuple[float, float]:
        lon0, lat0, lon1, lat1 = self.bounds
        # A few points fall just outside the city.
        pad = 0.02 if self.rng.random() < 0.05 else -0.001
        return self.rng.uniform(lon0 - pad, lon1 + pad), self.rng.uniform(lat0 - pad, lat1 + pad)

    def _events(self, ts: int) -> Iterator[tuple[str, dict[str, str]]]:
        rng = self.rng
        kind = rng.choices(
            ("checkin", "declaration", "case", "reading", "application", "appointment", "complaint", "update"),
            weights=(30, 8, 2, 25, 12, 5, 10, 8),
        )[0]
        if kind == "checkin":
            v = self.venues.iloc[rng.randrange(len(self.venues))]
            person = f"p{rng.randrange(400)}"
            yield "cases", self._next(
                "checkin", ts, person_id=person, venue_id=v.place_id, stay_s=rng.choice((600, 1800, 3600)),
                lon=v.lon, lat=v.lat,
            )  # fmt: skip
        elif kind == "declaration":
            lon, lat = self._point()
            yield "cases", self._next(
                "declaration", ts, person_id=f"p{rng.randrange(400)}", health_code=rng.choice(("green", "yellow")),
                symptom=rng.choice(("none", "none", "cough", "fever")), temperature_c=36.5 + rng.random(),
                lon=lon, lat=lat,
            )  # fmt: skip
        elif kind == "case":
            case_id = f"c{rng.randrange(6)}"
            v = self.venues.iloc[rng.randrange(len(self.venues))]
            if rng.random() < 0.5:
                yield "cases", self._next(
                    "case_report", ts, case_id=case_id, status=rng.choice(("suspected", "confirmed", "confirmed")),
                    onset_ts=ts - 2 * 86_400_000, lon=v.lon, lat=v.lat,
                )  # fmt: skip
            else:
                yield "cases", self._next(
                    "case_visit", ts, case_id=case_id, venue_id=v.place_id, arrive_ts=ts - 50 * MINUTE_MS,
                    leave_ts=ts - 10 * MINUTE_MS, lon=v.lon, lat=v.lat,
                )  # fmt: skip
        elif kind == "reading":
            s = self.sensors.iloc[rng.randrange(len(self.sensors))]
            capacity = int(s.capacity) or 1000
            yield "foot", self._next(
                "reading", ts, sensor_id=f"S-{s.place_id}", sensor_kind="infrared", place_id=s.place_id,
                place_kind=s.kind, interval_s=60, people=rng.randrange(0, 400), fever=rng.randrange(0, 3),
                occupancy=int(capacity * rng.uniform(0.5, 1.2)), capacity=capacity, lon=s.lon, lat=s.lat,
            )  # fmt: skip
        elif kind == "application":
            lon, lat = self._point()
            decision = rng.choice(("approved", "approved", "rejected", "pending"))
            yield "services", self._next(
                "application", ts, application_id=f"a{self.seq}", service_code=f"svc{rng.randrange(12)}",
                channel=rng.choice(("app", "web", "kiosk", "counter")), decision=decision,
                automatic=rng.random() < 0.5, processing_s=rng.expovariate(1 / 600), lon=lon, lat=lat,
            )  # fmt: skip
        elif kind == "appointment":
            c = self.centers.iloc[rng.randrange(len(self.centers))]
            served = rng.random() < 0.6
            yield "services", self._next(
                "appointment", ts, appointment_id=f"ap{self.seq}", center_id=c.place_id, service_code="id_card",
                action="served" if served else rng.choice(("booked", "cancelled", "arrived")),
                slot_ts=ts + rng.randrange(0, 3) * 3_600_000, wait_s=rng.expovariate(1 / 600) if served else None,
                walk_in=rng.random() < 0.2, lon=c.lon, lat=c.lat,
            )  # fmt: skip
        elif kind == "complaint" or not self.complaints:
            complaint_id = f"k{self.seq}"
            text, category = rng.choice(QUIET_COMPLAINTS)
            lon, lat = self._point()
            complaint = self._next(
                "complaint", ts, complaint_id=complaint_id, channel=rng.choice(("hotline", "app", "web")),
                text=text, category=category, lon=lon, lat=lat,
            )  # fmt: skip
            self.complaints.append((complaint_id, ts))
            roll = rng.random()
            if roll < 0.2:
                # Its closure written before it: the update reaches a worker first.
                yield "complaints", self._update(complaint_id, ts + 1000, "closed")
                yield "complaints", complaint
            elif roll < 0.4:
                # Opened and closed at once: most likely in one batch.
                yield "complaints", complaint
                yield "complaints", self._update(complaint_id, ts + 1000, "resolved")
                yield "complaints", self._update(complaint_id, ts + 2000, "closed")
            else:
                yield "complaints", complaint
        else:
            complaint_id, opened = rng.choice(self.complaints)
            action = rng.choice(("escalated", "resolved", "closed", "reopened"))
            yield "complaints", self._update(complaint_id, max(ts, opened + 1000), action)

    def _update(self, complaint_id: str, ts: int, action: str) -> dict[str, str]:
        level = self.rng.choice(("neighbourhood", "district")) if action == "escalated" else "community"
        return self._next("complaint_update", ts, complaint_id=complaint_id, action=action, level=level)
