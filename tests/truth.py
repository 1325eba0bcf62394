"""The ground truth of the views: a seeded, known set of events of all four sources, written as producers
write them and drained through the real aggregator, and every figure a page shows recomputed from those
raw events with plain pandas.

Nothing here calls the aggregator's folding or placing, the keepers, the read API, the engines or the
views: the only shared code is the schema's encoder and decoder and the city's polygons. The rules a
figure obeys are spelt out here again, on purpose, from what the page claims to show:

- a window of W seconds at ``now`` holds the events of the W / bucket whole buckets that end with the
  bucket holding ``now`` (aggregates are kept per bucket: a window cannot cut one);
- a point belongs to the community whose closed polygon covers it; on an edge shared by two, to the one
  listed first (the city's documented rule); a point no polygon covers is outside the city;
- an event repeated under the same ``src:seq`` counts once; an event older than the newest event of its
  source written before it, minus the allowed lateness, is not counted;
- a complaint's category is the one triage gives its words (labelled by hand in the events below);
- the complaint hotspots a page shows are the workers' statistic over the counts per cell (the heat, checked
  here), published at the tick for that page's window: their window and moment are checked, not the model;
- on a shared screen a health count under the threshold is hidden ('<3') and a total of hidden counts
  is a lower bound;
- the judgements (a sensor's hour against its normal, fever rises, crowding, alarms, stale sources) follow
  the rules' documented numbers, stated below as constants that a test holds equal to those in force.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import shapely

from data.schema import SchemaError, decode, encode

BUCKET_S = 60
HOUR_S = 3600
DAY_S = 86_400
LATENESS_S = 900  # the settings' default, which the harness runs with
CROWDING_SHARE = 0.9  # the settings' default: a place at or over this share of its capacity is crowded
SMALL = 3  # the small-cell threshold of shared screens
# The tracing rules in force (the settings' defaults, and the tracer's own margins), restated as numbers:
INFECTIOUS_DAYS = 2.0  # a case is infectious from this long before onset (before confirmation when unknown)
CONTACT_WINDOW_MIN = 30.0  # a check-in of unknown stay this close to a case's visit is a contact
QUARANTINE_DAYS = 14.0  # a contact's code is yellow this long from when they were last flagged
ISOLATION_DAYS = 14.0  # a case's code is red this long from its confirmation
WINDOWS = {"15m": 15 * 60, "1h": HOUR_S, "24h": DAY_S}
SENSOR_KINDS = ("metro_station", "mall", "park")
NEIGHBOURHOOD = "D-FT-N01"  # the neighbourhood the harness drills into
PAST_DAYS = 14  # days before the last one that hold readings in the ticks' hours: a normal to judge against
FEVER_RISING = 3  # the sensor whose fever readings rise after the first tick
NEW_SENSOR = 4  # the sensor with no readings on the days before
URGENT_SURGE = 6  # urgent complaints filed in one community between the second and third ticks

# The rules of the judgements and alarms, as the settings and the rules' documentation state them.
NORMAL_DAYS = 28  # 'now versus normal' looks at the same hour on up to this many days before
NORMAL_MIN_DAYS = 3  # with fewer comparable days a sensor has no normal
NORMAL_TZ = "Asia/Shanghai"  # whose days are weekdays or weekend days
UNUSUAL_Z, BUSY_RATIO, QUIET_RATIO, SPREAD_FLOOR_SHARE, MAD_TO_SD = 3.5, 1.3, 0.7, 0.15, 1.4826
FEVER_WINDOW_S, FEVER_BASELINE_S = 3600, 86_400  # fevers of the last hour against the rate of the day before
FEVER_PRIOR_RATE, FEVER_ALERT_P, FEVER_MIN = 0.001, 0.001, 3
CROWDING_GRACE_S = 600.0  # crowded reading after reading for longer than this: an alarm
CROWDING_GAP_S, CROWDING_GAP_INTERVALS = 300.0, 3.0  # readings further apart break a crowded stretch
ALARM_CLUSTER_CASES = 3  # cases at one venue, the newest visit within a day, that take over the wall
ALARM_URGENT_COMPLAINTS = 5  # urgent complaints in one community in the last hour that take over the wall
ALARM_WAIT_TARGET_S = 900.0  # a service center's mean wait in the last hour over this takes over the wall
URGENT_CATEGORIES = ("manhole", "public_safety", "water", "drainage")
STALE_AFTER_S = 120.0  # the shortest silence that is stale ...
SILENCE_GAPS = 10.0  # ... when it is also this many of the source's usual gaps between events now
RATE_DAYS = 7  # the days whose same clock hour tell a source's usual rate

# (words, the category triage gives them): the expected answer is part of the fixture.
COMPLAINT_WORDS = (
    ("manhole cover missing on the road", "manhole"),
    ("street light out all night", "streetlight"),
    ("loud noise from construction at night", "noise"),
    ("garbage not collected for days", "sanitation"),
    ("no water since morning", "water"),
    ("blocked drain smells", "drainage"),
    ("rubbish piling up", "sanitation"),
    ("please help me", None),  # no keyword: the intake category, or 'other' when none was chosen
)
INTAKE = ("road", "noise", "housing", None)


# ---------------------------------------------------------------------------- the events


@dataclass
class Written:
    """Events in the order they are written, each group drained before the next is written."""

    groups: list[list[tuple[str, dict[str, str]]]] = field(default_factory=list)

    def group(self) -> list[tuple[str, dict[str, str]]]:
        self.groups.append([])
        return self.groups[-1]


class Producer:
    """Numbers the events of one producer (``src``), as a simulator would."""

    def __init__(self, src: str):
        self.src, self.seq = src, 0

    def __call__(self, type_name: str, ts: int, **values) -> dict[str, str]:
        self.seq += 1
        return encode(type_name, src=self.src, seq=self.seq, ts=int(ts), **values)


class CityPoints:
    """Points to place events at: inside communities, on shared edges, on the city's edge, outside it."""

    def __init__(self, city, rng: np.random.Generator):
        self.city, self.rng = city, rng
        self.communities = city.communities.reset_index(drop=True)
        self.drilled = np.flatnonzero(self.communities["neighbourhood_id"] == NEIGHBOURHOOD).tolist()
        inner = self.communities.geometry.representative_point()
        self.inner = list(zip(inner.x, inner.y))
        minx, miny, maxx, maxy = city.bounds
        # Outside every area, yet nearer the city's box than CITYDECK_CITY_MARGIN_KM (20 km): folded as outside,
        # not refused as outside_city.
        self.far_outside = (minx - 0.1, miny - 0.1)
        self.shared_edges = self._shared_edge_points()
        outline = shapely.union_all(city.districts.geometry.to_numpy())
        edge = shapely.get_coordinates(outline.boundary)
        self.city_edge = [tuple(edge[i]) for i in (0, len(edge) // 3)]
        # A point a few metres beyond the city's edge, straight out from its centroid.
        cx, cy = outline.centroid.x, outline.centroid.y
        ex, ey = self.city_edge[0]
        scale = 1 + 0.0005 / max(np.hypot(ex - cx, ey - cy), 1e-9)
        self.just_outside = (cx + (ex - cx) * scale, cy + (ey - cy) * scale)

    def _shared_edge_points(self) -> list[tuple[float, float]]:
        """Vertices shared by communities of two different districts."""
        frame = self.communities
        out = []
        for i in range(0, len(frame), 37):
            geom = frame.geometry.iloc[i]
            others = frame[frame.geometry.touches(geom) & (frame["district_id"] != frame["district_id"].iloc[i])]
            if len(others):
                shared = shapely.get_coordinates(geom.boundary.intersection(others.geometry.iloc[0].boundary))
                if len(shared):
                    out.append(tuple(shared[len(shared) // 2]))
            if len(out) >= 4:
                break
        return out

    def random_inside(self, communities: list[int] | None = None) -> tuple[float, float]:
        if communities is None and self.rng.random() < 0.3:
            communities = self.drilled  # the drilled neighbourhood gets enough to count in every window
        i = int(self.rng.choice(communities)) if communities else int(self.rng.integers(len(self.inner)))
        x, y = self.inner[i]
        return x + self.rng.normal(0, 0.0015), y + self.rng.normal(0, 0.0015)


@dataclass(frozen=True)
class Ticks:
    """The instants the views are looked at: before an hour's end, a bucket later, past the hour, and once
    the hour before has rolled up (the newest event more than the lateness past its end)."""

    hour: int

    @property
    def times(self) -> tuple[float, ...]:
        h = self.hour
        return (h - 150.5, h - 89.5, h + 100.5, h + LATENESS_S + 100.5)


def scenario(city, hour: int, seed: int = 11) -> tuple[Written, list[list[list[tuple[str, dict[str, str]]]]]]:
    """The events, as groups to write before the first tick, and per later tick the groups before it.

    Returns (history, per_tick) where per_tick[k] is a list of groups written before tick k+1.
    """
    rng = np.random.default_rng(seed)
    points = CityPoints(city, rng)
    ticks = Ticks(hour).times
    start_ms = (hour - 25 * HOUR_S) * 1000
    places = city.places.reset_index(drop=True)
    sensors = places[places["kind"].isin(SENSOR_KINDS)].sample(12, random_state=seed)
    centers = places[places["kind"] == "service_center"].sample(6, random_state=seed)
    foot, services, complaints, cases = (
        Producer("foot-1"),
        Producer("services-1"),
        Producer("hotline-1"),
        Producer("cdc-1"),
    )
    busy = rng.choice(len(points.inner), 6, replace=False).tolist()  # communities with many cases

    def readings(
        t0_ms: int, t1_ms: int, every_s: int, silent_after_ms: int | None = None, fever_rise: bool = False, draw=rng
    ) -> list:
        out = []
        for k, place in enumerate(sensors.itertuples(index=False)):
            interval = every_s
            stop = silent_after_ms if k < 2 and silent_after_ms is not None else t1_ms  # two fall silent
            capacity = int(place.capacity) or 500
            for ts in range(t0_ms + k * 7_000, min(t1_ms, stop), every_s * 1000):
                crowded = k == 2 and draw is rng  # one place stays near capacity (not on the days before)
                people = int(draw.integers(0, 400))
                fever = int(draw.random() < 0.1) if k % 2 else None
                if fever_rise and k == FEVER_RISING:
                    fever += 2  # a rise no screening rate explains
                out.append(
                    (
                        "foot",
                        foot(
                            "reading", ts, sensor_id=f"S-{place.place_id}", sensor_kind="infrared" if k % 2 else "counter",
                            place_id=place.place_id, place_kind=place.kind, interval_s=interval,
                            people=people, fever=fever,
                            occupancy=int(capacity * (0.95 if crowded else draw.uniform(0.1, 0.6))), capacity=capacity,
                            lon=place.lon, lat=place.lat,
                        ),
                    )
                )  # fmt: skip
        return out

    def application(ts: int, where: tuple[float, float]) -> tuple[str, dict]:
        decision = str(rng.choice(["approved", "rejected", "pending"], p=[0.7, 0.1, 0.2]))
        return (
            "services",
            services(
                "application", ts, application_id=f"a{services.seq}", service_code=str(rng.choice(["hukou", "id", "tax"])),
                channel=str(rng.choice(["app", "web", "kiosk", "counter"])), decision=decision,
                automatic=bool(rng.random() < 0.5), processing_s=float(rng.exponential(200)), lon=where[0], lat=where[1],
            ),
        )  # fmt: skip

    def appointments(ts: int) -> list:
        center = centers.iloc[int(rng.integers(len(centers)))]
        ident = f"ap{services.seq}"
        common = {
            "appointment_id": ident,
            "center_id": center.place_id,
            "service_code": "id",
            "lon": center.lon,
            "lat": center.lat,
        }
        walk_in = rng.random() < 0.3
        out = []
        if not walk_in:
            out.append(("services", services("appointment", ts - 3_600_000, action="booked", slot_ts=ts, **common)))
        outcome = str(rng.choice(["served", "no_show", "waiting"], p=[0.6, 0.2, 0.2]))
        if outcome == "no_show":
            out.append(("services", services("appointment", ts + 900_000, action="no_show", slot_ts=ts, **common)))
            return out
        out.append(("services", services("appointment", ts, action="arrived", slot_ts=ts, walk_in=walk_in, **common)))
        if outcome == "served":
            wait = float(rng.uniform(60, 1800))
            out.append(("services", services("appointment", ts + int(wait * 1000), action="served", slot_ts=ts, wait_s=wait, **common)))  # fmt: skip
        return out

    def complaint(ts: int, where: tuple[float, float]) -> tuple[str, dict]:
        words, _ = COMPLAINT_WORDS[int(rng.integers(len(COMPLAINT_WORDS)))]
        intake = INTAKE[int(rng.integers(len(INTAKE)))]
        return (
            "complaints",
            complaints(
                "complaint", ts, complaint_id=f"k{complaints.seq}", channel=str(rng.choice(["hotline", "app", "web", "wechat"])),
                text=words, category=intake, lon=where[0], lat=where[1],
            ),
        )  # fmt: skip

    def update(ts: int, complaint_id: str, action: str, level: str) -> tuple[str, dict]:
        return ("complaints", complaints("complaint_update", ts, complaint_id=complaint_id, action=action, level=level))

    def case(ts: int, status: str, where: tuple[float, float], case_id: str | None = None) -> tuple[str, dict]:
        return (
            "cases",
            cases("case_report", ts, case_id=case_id or f"c{cases.seq}", status=status, lon=where[0], lat=where[1]),
        )

    # -------------------------------------------------------------- history, up to the first tick
    history: list[tuple[str, dict]] = []
    first_ms = int(ticks[0] * 1000)
    history += readings(start_ms, first_ms, 600, silent_after_ms=first_ms - 2 * HOUR_S * 1000)
    # The hours the ticks fall in, on the days before the last one: the normal each sensor is judged against.
    # Drawn from a generator of their own, so the rest of the scenario stays as it was. One sensor is new:
    # it has no days before, so no normal.
    past = np.random.default_rng(seed + 1)
    newcomer = f"S-{sensors.iloc[NEW_SENSOR]['place_id']}"
    for days in range(2, PAST_DAYS + 2):
        t0 = (hour - HOUR_S - days * DAY_S) * 1000
        history += [e for e in readings(t0, t0 + 2 * HOUR_S * 1000, 600, draw=past) if e[1]["sensor_id"] != newcomer]
    recent_ms = first_ms - 70 * 60_000
    stamps = np.sort(np.concatenate([rng.integers(start_ms, first_ms, 300), rng.integers(recent_ms, first_ms, 120)]))
    for ts in stamps.tolist():
        history.append(application(ts, points.random_inside()))
    for ts in np.sort(rng.integers(start_ms, first_ms - HOUR_S * 1000, 60)).tolist():
        history += appointments(ts)
    for ts in np.sort(rng.integers(recent_ms, first_ms - 1_800_000, 25)).tolist():
        history += appointments(ts)
    opened = []
    stamps = np.sort(np.concatenate([rng.integers(start_ms, first_ms, 90), rng.integers(recent_ms, first_ms, 40)]))
    for ts in stamps.tolist():
        history.append(complaint(ts, points.random_inside()))
        opened.append((history[-1][1]["complaint_id"], ts))
    for complaint_id, ts in opened[::3]:
        history.append(update(ts + 120_000, complaint_id, "assigned", "community"))
    for complaint_id, ts in opened[1::4]:
        history.append(update(ts + 300_000, complaint_id, "escalated", "neighbourhood"))
    for complaint_id, ts in opened[2::5]:
        history.append(update(ts + 600_000, complaint_id, "closed", "community"))
    for ts in np.sort(rng.integers(start_ms, first_ms, 40)).tolist():
        history.append(case(ts, "suspected", points.random_inside(busy)))
    for ts in np.sort(rng.integers(start_ms, first_ms, 45)).tolist():
        history.append(case(ts, "confirmed", points.random_inside(busy)))
    for ts in np.sort(rng.integers(recent_ms, first_ms, 5)).tolist():
        history.append(case(ts, "confirmed", points.random_inside()))  # lone cases: small cells
    # Confirmed cases and the venues they visited while infectious (after onset, before confirmation):
    # three cases together at one venue, two at another (a small cell), one alone at a third.
    venues = places[places["kind"] == "venue"]
    first_venue = venues[venues["neighbourhood_id"] == NEIGHBOURHOOD].iloc[0]
    others = venues[venues["district_id"] != first_venue["district_id"]].sample(2, random_state=seed)
    visited = []
    for v, (venue, together, ago_h) in enumerate(
        zip([first_venue, *others.itertuples(index=False)], (3, 2, 1), (6, 10, 30))
    ):
        venue = pd.Series(venue._asdict()) if hasattr(venue, "_asdict") else venue
        visited.append((venue, ago_h))
        for i in range(together):
            case_id = f"cv{v}-{i}"
            history.append(("cases", cases(
                "case_report", first_ms - 3 * HOUR_S * 1000, case_id=case_id, status="confirmed",
                onset_ts=first_ms - (ago_h + 20) * HOUR_S * 1000, lon=venue["lon"], lat=venue["lat"],
            )))  # fmt: skip
            history.append(("cases", cases(
                "case_visit", first_ms - 2 * HOUR_S * 1000, case_id=case_id, venue_id=venue["place_id"],
                arrive_ts=first_ms - ago_h * HOUR_S * 1000 + i * 60_000, leave_ts=first_ms - (ago_h - 1) * HOUR_S * 1000,
                lon=venue["lon"], lat=venue["lat"],
            )))  # fmt: skip
    # People who checked in at those venues: beside the cases (close contacts: yellow), before they came or
    # long after they left (no contact), at two of them (one contact, under the first link) and one contact
    # who falls ill (red, not yellow).
    scans = Producer("venues-1")

    def checkin(person: str, venue: pd.Series, ts: int, stay_s: int | None) -> tuple[str, dict]:
        return ("cases", scans(
            "checkin", ts, person_id=person, venue_id=venue["place_id"], stay_s=stay_s, lon=venue["lon"], lat=venue["lat"],
        ))  # fmt: skip

    for v, ((venue, ago_h), diners) in enumerate(zip(visited, (4, 2, 1))):
        arrive, leave = first_ms - ago_h * HOUR_S * 1000, first_ms - (ago_h - 1) * HOUR_S * 1000
        history += [checkin(f"p{v}-{k}", venue, arrive + (10 + k) * 60_000, 1800) for k in range(diners)]
        if v == 0:
            history.append(checkin("p-gone-before", venue, arrive - 60 * 60_000, 600))
            history.append(checkin("p-just-after", venue, leave + 20 * 60_000, None))
            history.append(checkin("p-long-after", venue, leave + 40 * 60_000, None))
        if v < 2:
            history.append(checkin("p-at-two", venue, arrive + 5 * 60_000, 3600))
        if v == 1:
            history.append(checkin("p-falls-ill", venue, arrive + 15 * 60_000, 1200))
            history.append(case(first_ms - 150 * 60_000, "confirmed", points.inner[busy[4]], case_token("p-falls-ill")))
    # Points on shared edges, on the city's edge and outside it, for every source that has a place.
    edge_ms = first_ms - 5 * 60_000
    for i, where in enumerate([*points.shared_edges, *points.city_edge, points.just_outside, points.far_outside]):
        history.append(application(edge_ms + i, where))
        history.append(complaint(edge_ms + i, where))
        opened.append((history[-1][1]["complaint_id"], edge_ms + i))
        history.append(case(edge_ms + i, "confirmed", where))
    # Events at the edges of each window at the first tick, in a busy community: the first millisecond
    # inside and the last one outside.
    end_ms = (int(ticks[0]) // BUCKET_S + 1) * BUCKET_S * 1000
    for seconds in WINDOWS.values():
        for ts in (end_ms - seconds * 1000, end_ms - seconds * 1000 - 1):
            history.append(application(ts, points.inner[busy[0]]))
            history.append(complaint(ts, points.inner[busy[0]]))
            history.append(case(ts, "confirmed", points.inner[busy[0]]))
    history = [e for e in history if int(e[1]["ts"]) < first_ms]
    history.sort(key=lambda e: int(e[1]["ts"]))

    written = Written()
    written.group().extend(history)
    newest_ms = max(int(e[1]["ts"]) for e in history)
    # Late, repeated, malformed; an update before its complaint.
    extras = written.group()
    # Lateness is judged per source, against the newest event of that source.
    newest = {source: max(int(f["ts"]) for src, f in history if src == source) for source in ("services", "complaints")}
    extras.append(application(newest["services"] - 600_000, points.inner[busy[1]]))  # late, within the lateness
    extras.append(application(newest["services"] - (LATENESS_S + 100) * 1000, points.inner[busy[1]]))  # too late
    extras.append(complaint(newest["complaints"] - (LATENESS_S + 100) * 1000, points.inner[busy[1]]))  # too late
    for source in ("cases", "foot", "services", "complaints"):
        # An exact repeat of an event counted in an earlier batch, of every source ...
        extras.append(next(e for e in reversed(history) if e[0] == source))
    extras.append(extras[-2])  # ... and once more within this batch
    bad = dict(application(newest_ms, points.inner[busy[2]])[1], lat="NaN")
    extras.append(("services", bad))
    early = f"k{complaints.seq + 100}"
    extras.append(update(newest_ms + 30_000, early, "assigned", "community"))
    late_comer = written.group()
    late_comer.append(
        (
            "complaints",
            complaints(
                "complaint", newest_ms + 10_000, complaint_id=early, channel="app", text="street light out all night",
                lon=points.inner[busy[3]][0], lat=points.inner[busy[3]][1],
            ),
        )
    )  # fmt: skip
    late_comer.append(update(newest_ms + 40_000, opened[-1][0], "closed", "community"))  # after its complaint

    # -------------------------------------------------------------- between the ticks
    per_tick = []
    for before, after in zip(ticks, ticks[1:]):
        t0, t1 = int(before * 1000) + 1, int(after * 1000)
        group: list[tuple[str, dict]] = []
        group += readings(t0, t1, 60, silent_after_ms=t0, fever_rise=True)
        for ts in np.sort(rng.integers(t0, t1, 25)).tolist():
            group.append(application(ts, points.random_inside()))
            group.append(complaint(ts, points.random_inside()))
        for ts in np.sort(rng.integers(t0, t1, 4)).tolist():
            group.append(case(ts, "confirmed", points.random_inside(busy)))
        group.append(update(t1 - 1000, opened[3][0], "resolved", "community"))
        group.append(update(t1 - 500, opened[6][0], "closed", "community"))
        if before == ticks[1]:
            # A surge of urgent complaints in one community, enough for the wall's alarm.
            where = points.inner[busy[4]]
            for i in range(URGENT_SURGE):
                group.append(
                    ("complaints", complaints(
                        "complaint", t0 + 5_000 * (i + 1), complaint_id=f"k{complaints.seq}", channel="hotline",
                        text="manhole cover missing on the road", lon=where[0], lat=where[1],
                    ))
                )  # fmt: skip
        group.sort(key=lambda e: int(e[1]["ts"]))
        group.append(group[0])  # a repeat in every tick
        per_tick.append([group])
    return written, per_tick


# ---------------------------------------------------------------------------- the raw events as a table


def raw_frame(
    groups: Iterable[list[tuple[str, dict[str, str]]]], now_ms: int, drained_at: Sequence[float] | None = None
) -> pd.DataFrame:
    """Decode every written event (in writing order) with the schema's decoder; judge repeats and lateness.

    Columns: the event's fields, ``source``, ``group`` (the drain it was written before), ``drained_ms``
    (when that drain ran, given ``drained_at`` per group in s), ``counted`` and ``why`` (the reason it is
    not counted, else '').
    """
    rows = []
    for g, group in enumerate(groups):
        drained_ms = None if drained_at is None else drained_at[g] * 1000
        for source, fields in group:
            raw = {k.encode(): str(v).encode() for k, v in fields.items()}
            try:
                row = decode(source, raw, now_ms=now_ms)
                why = ""
            except SchemaError as e:
                row, why = {"type": fields.get("type"), "src": fields.get("src"), "seq": int(fields["seq"])}, e.reason
            rows.append({**row, "source": source, "group": g, "drained_ms": drained_ms, "why": why})
    frame = pd.DataFrame(rows)
    frame["key"] = frame["src"].astype(str) + ":" + frame["seq"].astype(str)
    counted = np.zeros(len(frame), dtype=bool)
    seen: set[str] = set()
    newest: dict[str, int] = {}
    for g in sorted(frame["group"].unique()):
        rows_g = frame.index[frame["group"] == g]
        before = dict(newest)  # lateness is judged against what was written before this group
        for i in rows_g:
            if frame.at[i, "why"]:
                continue
            source, ts, key = frame.at[i, "source"], int(frame.at[i, "ts"]), frame.at[i, "key"]
            if key in seen:
                frame.at[i, "why"] = "duplicate"
                continue
            if ts < before.get(source, 0) - LATENESS_S * 1000:
                frame.at[i, "why"] = "late"
                continue
            seen.add(key)
            counted[i] = True
            newest[source] = max(newest.get(source, 0), ts)
    frame["counted"] = counted
    return frame


# ---------------------------------------------------------------------------- the city, independently


class Areas:
    """The city's areas from its polygons: where a point lies, and which areas a drilled view shows."""

    def __init__(self, city):
        self.city = city
        self.communities = city.communities.reset_index(drop=True)
        self.parents = self.communities.set_index("community_id")[["neighbourhood_id", "district_id"]]
        self.names = {}
        for level in ("district", "neighbourhood", "community"):
            frame = city.level(level)
            self.names.update(zip(frame[f"{level}_id"], frame["name"]))

    def community_of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The community of each point (None outside): covering polygon, the first listed on a shared edge."""
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=self.communities.crs)
        joined = gpd.sjoin(points, self.communities[["community_id", "geometry"]], predicate="intersects", how="left")
        joined["row"] = joined["index_right"]
        first = joined.sort_values("row").groupby(level=0)["community_id"].first()
        out = np.full(len(lon), None, dtype=object)
        out[first.index.to_numpy()] = first.to_numpy()
        return out

    def level_of(self, state) -> str:
        return "community" if state.neighbourhood else ("neighbourhood" if state.district else "district")

    def area_of(self, communities: pd.Series, level: str) -> pd.Series:
        """Each community's area at a level (NaN outside the city)."""
        if level == "community":
            return communities.where(communities.isin(self.parents.index))
        return communities.map(self.parents[f"{level}_id"])

    def in_scope(self, communities: pd.Series, state) -> pd.Series:
        if state.neighbourhood:
            return communities.map(self.parents["neighbourhood_id"]) == state.neighbourhood
        if state.district:
            return communities.map(self.parents["district_id"]) == state.district
        return communities.isin(self.parents.index)

    def areas_shown(self, state) -> list[str]:
        level = self.level_of(state)
        frame = self.city.level(level)
        if state.neighbourhood and level == "community":
            frame = frame[frame["neighbourhood_id"] == state.neighbourhood]
        elif state.district and level != "district":
            frame = frame[frame["district_id"] == state.district]
        return frame[f"{level}_id"].tolist()

    def communities_in(self, state) -> list[str]:
        """The communities of a view's scope, in the city's order."""
        frame = self.city.level("community")
        if state.neighbourhood:
            frame = frame[frame["neighbourhood_id"] == state.neighbourhood]
        elif state.district:
            frame = frame[frame["district_id"] == state.district]
        return frame["community_id"].tolist()

    def scope_polygon(self, state):
        if state.neighbourhood:
            frame = self.city.neighbourhoods[self.city.neighbourhoods["neighbourhood_id"] == state.neighbourhood]
        elif state.district:
            frame = self.city.districts[self.city.districts["district_id"] == state.district]
        else:
            frame = self.city.districts
        return shapely.union_all(frame.geometry.to_numpy())


# ---------------------------------------------------------------------------- the figures, recomputed


def case_token(person_id: str) -> str:
    """The case token the registry reports a person under once they are a case (its pseudonymisation rule)."""
    return "c" + hashlib.blake2b(person_id.encode(), digest_size=8).hexdigest()


def window_of(now: float, seconds: int) -> tuple[int, int]:
    """[start, end) in ms of the window of ``seconds`` at ``now``: whole buckets ending with now's bucket."""
    end = (int(now) // BUCKET_S + 1) * BUCKET_S
    return (end - seconds) * 1000, end * 1000


def duration(seconds: float) -> str:
    """How long, as the wall says it: seconds under two minutes, minutes under two hours, then hours."""
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def hidden_text(n: int) -> str:
    return f"<{SMALL}" if 0 < n < SMALL else str(n)


def hidden_total(counts: Iterable[int]) -> str:
    """A shared-screen total: exact, or the sum of the shown counts and how many areas hold a few more."""
    counts = list(counts)
    shown = sum(n for n in counts if n >= SMALL)
    few = sum(1 for n in counts if 0 < n < SMALL)
    return f"{shown:,}" if not few else f"{shown:,}+ · {few} area{'s' if few != 1 else ''} <{SMALL}"


class Truth:
    """Every figure of every page, from the raw events, for one instant."""

    def __init__(self, events: pd.DataFrame, areas: Areas, now: float, h3_resolution: int = 8):
        self.all = events
        self.areas = areas
        self.now = now
        counted = events[events["counted"]].copy()
        placed = counted["lon"].notna() if "lon" in counted else pd.Series(False, index=counted.index)
        counted["community"] = None
        if placed.any():
            lon = counted.loc[placed, "lon"].to_numpy(float)
            lat = counted.loc[placed, "lat"].to_numpy(float)
            counted.loc[placed, "community"] = areas.community_of(lon, lat)
            counted.loc[placed, "cell"] = [h3.latlng_to_cell(y, x, h3_resolution) for x, y in zip(lon, lat)]
        self.events = counted

    def of(self, type_name: str, window: tuple[int, int] | None = None) -> pd.DataFrame:
        e = self.events[self.events["type"] == type_name]
        if window is not None:
            e = e[(e["ts"] >= window[0]) & (e["ts"] < window[1])]
        return e

    def scoped(self, frame: pd.DataFrame, state) -> pd.DataFrame:
        return frame[self.areas.in_scope(frame["community"], state)]

    def per_community(self, frame: pd.DataFrame, communities: list[str]) -> dict[str, int]:
        """Events per community of a list, zeros included."""
        n = frame["community"].value_counts()
        return {c: int(n.get(c, 0)) for c in communities}

    def per_area(self, frame: pd.DataFrame, state, weight: str | None = None) -> dict[str, int]:
        """Counts (or sums of a column) per area the drilled map shows, zeros included."""
        frame = self.scoped(frame, state)
        level = self.areas.level_of(state)
        area = self.areas.area_of(frame["community"], level)
        sums = (frame[weight] if weight else pd.Series(1, index=frame.index)).groupby(area).sum()
        return {a: int(sums.get(a, 0)) for a in self.areas.areas_shown(state)}

    # ------------------------------------------------------------------ cases

    def cases(self, state, window_s: int) -> dict:
        w = window_of(self.now, window_s)
        reports = self.of("case_report", w)
        # The small-cell rule holds in each community; an area's figure is made of its communities' cells.
        communities = self.areas.communities_in(state)
        confirmed = self.per_community(reports[reports["status"] == "confirmed"], communities)
        suspected = self.per_community(reports[reports["status"] == "suspected"], communities)
        level = self.areas.level_of(state)
        area_of = dict(zip(communities, self.areas.area_of(pd.Series(communities), level)))
        cells: dict[str, list[int]] = {a: [] for a in self.areas.areas_shown(state)}
        for c, n in confirmed.items():
            cells[area_of[c]].append(n)
        sites, clusters = self.exposure(state)
        codes = self.codes
        shown: dict[str, dict[str, str]] = {}
        counts: dict[str, list[int]] = {}
        value = {}
        for colour in ("yellow", "red"):
            mine = codes[codes["colour"] == colour]["community"].value_counts()
            counts[colour] = [int(mine.get(c, 0)) for c in self.areas.communities_in(state)]
            shown[colour] = dict(zip(self.areas.communities_in(state), map(hidden_text, counts[colour])))
        for c, y, r in zip(self.areas.communities_in(state), counts["yellow"], counts["red"]):
            # A community's colour: the sum of its shown counts, or nothing when all it has is hidden.
            visible = sum(n for n in (y, r) if not 0 < n < SMALL)
            value[c] = None if visible == 0 and (0 < y < SMALL or 0 < r < SMALL) else visible
        return {
            "sites": sites,
            "clusters": clusters,
            "headline.sites": len(sites),
            "headline.clusters": len(clusters),
            "areas.shown": {a: hidden_text(ns[0]) if len(ns) == 1 else hidden_total(ns) for a, ns in cells.items()},
            "headline.confirmed": hidden_total(confirmed.values()),
            "headline.suspected": hidden_total(suspected.values()),
            "codes.yellow": shown["yellow"],
            "codes.red": shown["red"],
            "codes.value": value,
            "headline.yellow": hidden_total(counts["yellow"]),
            "headline.red": hidden_total(counts["red"]),
        }

    def confirmations(self) -> pd.DataFrame:
        """Each confirmed case's earliest confirmation (of two equally early, the first community by name):
        ``case_id``, ``confirmed_ts``, ``community``; and its infectious window, ``start_ts`` to ``end_ts``:
        from INFECTIOUS_DAYS before the onset its newest report gives (of two equally new, the later onset;
        the confirmation when none gives one) to its confirmation, when it is isolated."""
        reports = self.of("case_report").assign(community=lambda f: f["community"].fillna("outside"))
        confirmed = reports[reports["status"] == "confirmed"].sort_values(["ts", "community"])
        first = confirmed.drop_duplicates("case_id")[["case_id", "ts", "community"]]
        first = first.rename(columns={"ts": "confirmed_ts"}).set_index("case_id")
        onsets = reports[reports["onset_ts"] >= 0].sort_values(["ts", "onset_ts"]).groupby("case_id")["onset_ts"]
        opens = onsets.last().reindex(first.index).fillna(first["confirmed_ts"])
        first["start_ts"] = opens - INFECTIOUS_DAYS * DAY_S * 1000
        first["end_ts"] = first["confirmed_ts"]
        return first.reset_index()

    @cached_property
    def codes(self) -> pd.DataFrame:
        """The active health codes, one row per holder: ``holder``, ``colour`` and ``community``.

        A confirmed case is red from its earliest confirmation, in that report's community, for ISOLATION_DAYS.
        A person who checked in at a venue a confirmed case visited while infectious is a close contact: a
        known stay that overlaps the visit, or an unknown one that begins within CONTACT_WINDOW_MIN of it
        (a case's own check-in aside). They are flagged at the check-in, or at the confirmation when that came
        later; yellow from the first flag (then by venue and check-in), in that venue's community, until
        QUARANTINE_DAYS after the last case's first flag. Red beats yellow.
        """
        now_ms = self.now * 1000
        cases = self.confirmations()
        red = cases[cases["confirmed_ts"] + ISOLATION_DAYS * DAY_S * 1000 > now_ms]
        visits = self.of("case_visit").merge(cases, on="case_id", suffixes=("", "_case"))
        leave = np.maximum(visits["leave_ts"], visits["arrive_ts"])
        visits = visits[(visits["arrive_ts"] <= visits["end_ts"]) & (leave >= visits["start_ts"])].assign(
            arrive_ts=lambda f: np.maximum(f["arrive_ts"], f["start_ts"]),
            leave_ts=lambda f: np.minimum(np.maximum(f["leave_ts"], f["arrive_ts"]), f["end_ts"]),
        )
        scans = self.of("checkin")[["person_id", "venue_id", "ts", "stay_s"]]
        met = scans.merge(visits[["case_id", "venue_id", "arrive_ts", "leave_ts", "confirmed_ts", "community"]])
        window = CONTACT_WINDOW_MIN * 60_000
        known = met["stay_s"] >= 0
        overlaps = (met["ts"] <= met["leave_ts"]) & (met["ts"] + met["stay_s"] * 1000 >= met["arrive_ts"])
        near = (met["ts"] >= met["arrive_ts"] - window) & (met["ts"] <= met["leave_ts"] + window)
        met = met[np.where(known, overlaps, near) & (met["person_id"].map(case_token) != met["case_id"])]
        met = met.assign(flagged=np.maximum(met["ts"], met["confirmed_ts"]))
        links = met.sort_values(["flagged", "venue_id", "ts", "community"]).drop_duplicates(["person_id", "case_id"])
        until = links.groupby("person_id")["flagged"].max() + QUARANTINE_DAYS * DAY_S * 1000
        first = links.drop_duplicates("person_id").set_index("person_id")
        yellow = first[(until.reindex(first.index) > now_ms) & ~first.index.map(case_token).isin(cases["case_id"])]
        return pd.concat(
            [
                pd.DataFrame({"holder": red["case_id"], "colour": "red", "community": red["community"]}),
                pd.DataFrame({"holder": yellow.index, "colour": "yellow", "community": yellow["community"].to_numpy()}),
            ],
            ignore_index=True,
        )

    def exposure(self, state) -> tuple[dict, list]:
        """Exposure sites in scope (name -> hours since the last visit, cases shown) and clusters of cases
        that were at one venue at once, as (cases shown, site names), largest first.

        Every visit of the fixture lies in its case's infectious window (after onset, before
        confirmation), and cases at one venue are there together: no window rule is needed here.
        """
        confirmed = set(self.of("case_report").query("status == 'confirmed'")["case_id"])
        visits = self.of("case_visit")
        visits = visits[visits["case_id"].isin(confirmed)]
        names = self.areas.city.places.set_index("place_id")["name"]
        now_ms = self.now * 1000
        sites, clusters = {}, []
        for venue, at in visits.groupby("venue_id"):
            in_scope = bool(self.areas.in_scope(at["community"], state).any())
            n = at["case_id"].nunique()
            if in_scope:
                sites[names[venue]] = (round((now_ms - at["leave_ts"].max()) / 3_600_000, 1), hidden_text(n))
                if n > 1:
                    clusters.append((hidden_text(n), names[venue]))
        return sites, sorted(clusters, reverse=True)

    # ------------------------------------------------------------------ foot traffic

    def foot(self, state, window_s: int) -> dict:
        w = window_of(self.now, window_s)
        readings = self.of("reading", w)
        scoped = self.scoped(readings, state)
        before = (w[0] - DAY_S * 1000, w[1] - DAY_S * 1000)
        yesterday = self.of("reading", before)
        latest = self.of("reading").sort_values("ts").groupby("sensor_id").last()
        latest = latest[self.areas.in_scope(latest["community"], state)]
        now_ms = self.now * 1000
        sensors = {}
        for sensor, row in latest.iterrows():
            mine = readings[readings["sensor_id"] == sensor]
            fever = mine["fever"].where(mine["fever"] > 0, 0).sum() if "fever" in mine else 0
            sensors[sensor] = {
                "now": int(mine["people"].sum()),
                "fever": int(fever),
                "occupancy": int(row["occupancy"]),
                "capacity": int(row["capacity"]),
                "silent": bool((now_ms - row["ts"]) / 1000 > 3 * row["interval_s"]),
            }
        heat = readings[readings["cell"].notna()].groupby("cell")["people"].sum()
        polygon = self.areas.scope_polygon(state)
        heat = {
            c: int(n) for c, n in heat.items() if n > 0 and polygon.covers(shapely.Point(h3.cell_to_latlng(c)[::-1]))
        }
        normal = self.normal
        return {
            "ratio": {s: normal.get(s, (None, "no_data"))[0] for s in sensors},
            "normal": {s: normal.get(s, (None, "no_data"))[1] for s in sensors},
            "fever": sorted(s for s in self.fever_alerts if s in sensors),
            "headline.people": int(scoped["people"].sum()),
            "headline.people_yesterday": int(self.scoped(yesterday, state)["people"].sum()) if len(yesterday) else None,
            "headline.sensors": len(sensors),
            "sensors": sensors,
            "silent_count": sum(s["silent"] for s in sensors.values()),
            "crowded": sorted(
                s for s, v in sensors.items() if v["capacity"] and v["occupancy"] / v["capacity"] >= CROWDING_SHARE
            ),
            "heat": heat,
        }

    @cached_property
    def normal(self) -> dict[str, tuple[float | None, str]]:
        """Each sensor that read this hour: its people so far, scaled to the whole hour, over the median of the
        same hour on the comparable days before (weekdays with weekdays, weekend days with weekend days, in
        the city's time zone, up to NORMAL_DAYS back), and the verdict; no ratio with fewer such days."""
        hour = int(self.now) // HOUR_S * HOUR_S
        elapsed = max(int(self.now) - hour, 60)
        readings = self.of("reading")

        def people_in(start: int, end_ms: int) -> pd.Series:
            inside = readings[(readings["ts"] >= start * 1000) & (readings["ts"] < end_ms)]
            return inside.groupby("sensor_id")["people"].sum()

        def weekend(t: int) -> bool:
            return pd.Timestamp(t, unit="s", tz="UTC").tz_convert(NORMAL_TZ).day_of_week >= 5

        past: dict[str, list[int]] = {}
        for days in range(1, NORMAL_DAYS + 1):
            start = hour - days * DAY_S
            if weekend(start) == weekend(hour):
                for sensor, n in people_in(start, (start + HOUR_S) * 1000).items():
                    past.setdefault(sensor, []).append(int(n))
        out: dict[str, tuple[float | None, str]] = {}
        for sensor, people in people_in(hour, window_of(self.now, BUCKET_S)[1]).items():
            history = np.array(past.get(sensor, []), dtype=float)
            if len(history) < NORMAL_MIN_DAYS:
                out[sensor] = (None, "no_history")
                continue
            rate = people * HOUR_S / elapsed
            median = float(np.median(history))
            spread = max(
                MAD_TO_SD * float(np.median(np.abs(history - median))),
                math.sqrt(median),
                SPREAD_FLOOR_SHARE * median,
                1,
            )
            ratio, z = rate / median, (rate - median) / spread
            verdict = (
                "unusual" if abs(z) >= UNUSUAL_Z
                else "busy" if ratio >= BUSY_RATIO
                else "quiet" if ratio <= QUIET_RATIO
                else "normal"
            )  # fmt: skip
            out[sensor] = (round(ratio, 2), verdict)
        return out

    @cached_property
    def fever_alerts(self) -> dict[str, int]:
        """Sensors whose fevers in the last hour are improbably many for the people they counted (a Poisson
        tail under FEVER_ALERT_P, and at least FEVER_MIN), at their rate per person over the day before that
        hour (with one prior fever at FEVER_PRIOR_RATE); with their fevers."""
        recent = window_of(self.now, FEVER_WINDOW_S)
        before = (recent[0] - FEVER_BASELINE_S * 1000, recent[0])
        readings = self.of("reading")
        readings = readings.assign(fever=readings["fever"].where(readings["fever"] > 0, 0))

        def sums(w: tuple[int, int]) -> pd.DataFrame:
            inside = readings[(readings["ts"] >= w[0]) & (readings["ts"] < w[1])]
            return inside.groupby("sensor_id")[["fever", "people"]].sum()

        now, earlier = sums(recent), sums(before)
        out = {}
        for sensor, row in now[now["fever"] > 0].iterrows():
            fevers = int(row["fever"])
            base = earlier.loc[sensor] if sensor in earlier.index else {"fever": 0, "people": 0}
            expected = (base["fever"] + 1) / (base["people"] + 1 / FEVER_PRIOR_RATE) * row["people"]
            below = sum(math.exp(-expected) * expected**i / math.factorial(i) for i in range(fevers))
            tail = 1 - below if expected > 0 else 0.0
            if fevers >= FEVER_MIN and tail < FEVER_ALERT_P:
                out[sensor] = fevers
        return out

    # ------------------------------------------------------------------ the wall

    def wall(self) -> dict:
        return {"alarms": self.alarms(), "freshness": self.freshness()}

    def _where(self, name: str, community) -> str:
        """A place named with its district, as an alarm says where."""
        district = self.areas.parents["district_id"].get(community) if isinstance(community, str) else None
        return str(name) if district is None else f"{name} · {self.areas.names[district]}"

    def alarms(self) -> dict[str, tuple[str, str, str]]:
        """What takes over the wall, by alarm: (kind, what, where)."""
        places = self.areas.city.places.set_index("place_id")
        out: dict[str, tuple[str, str, str]] = {}
        # A place crowded reading after reading (none under the share since, none further apart than the gap
        # of the sensor's newest cadence) for longer than the grace, and still reading.
        readings = self.of("reading").sort_values("ts", kind="stable")
        measured = readings[(readings["capacity"] > 0) & (readings["occupancy"] >= 0)]
        for _sensor, mine in measured.groupby("sensor_id"):
            newest = mine.iloc[-1]
            crowded = mine["occupancy"] >= CROWDING_SHARE * mine["capacity"]
            under = mine.loc[~crowded, "ts"].max() if (~crowded).any() else -1
            run = mine.loc[crowded & (mine["ts"] > under), "ts"].tolist()
            if not run:
                continue
            gap_s = max(CROWDING_GAP_S, CROWDING_GAP_INTERVALS * newest["interval_s"])
            s = len(run) - 1
            while s > 0 and run[s] - run[s - 1] <= gap_s * 1000:
                s -= 1
            over_s = self.now - run[s] / 1000
            if over_s >= CROWDING_GRACE_S and self.now - run[-1] / 1000 <= gap_s:
                what = f"Crowding: {int(newest['occupancy']):,} people for {int(newest['capacity']):,} places"
                out[f"crowding:{newest['place_id']}"] = (
                    "crowding",
                    f"{what}, for {duration(over_s)}",
                    self._where(places.at[newest["place_id"], "name"], newest["community"]),
                )
        # A venue where enough confirmed cases were, the last of them within a day.
        confirmed = set(self.of("case_report").query("status == 'confirmed'")["case_id"])
        visits = self.of("case_visit")
        for venue, at in visits[visits["case_id"].isin(confirmed)].groupby("venue_id"):
            n = at["case_id"].nunique()
            if n >= ALARM_CLUSTER_CASES and at["leave_ts"].max() >= (self.now - DAY_S) * 1000:
                place = places.loc[venue]
                out[f"cases:cluster:{venue}"] = (
                    "cases",
                    f"New case cluster: {hidden_text(n)} cases linked at 1 site",
                    self._where(place["name"], place["community_id"]),
                )
        # Urgent complaints piling up in one community within the last hour.
        hour = window_of(self.now, HOUR_S)
        filed = self.of("complaint", hour).assign(triaged=self.triaged())
        urgent = filed[filed["triaged"].isin(URGENT_CATEGORIES) & filed["community"].notna()]
        for community, n in urgent.groupby("community").size().items():
            if n >= ALARM_URGENT_COMPLAINTS:
                out[f"complaints:{community}"] = (
                    "complaints",
                    f"Urgent complaints surge: {n} in the last hour",
                    self._where(self.areas.names[community], community),
                )
        # A service center whose people waited too long on average within the last hour.
        served = self.of("appointment", hour)
        served = served[(served["action"] == "served") & (served["wait_s"] >= 0)]
        for center, waits in served.groupby("center_id")["wait_s"]:
            mean_s = waits.sum() / len(waits)
            if mean_s > ALARM_WAIT_TARGET_S:
                out[f"services:{center}"] = (
                    "services",
                    f"Service center over its wait target: {mean_s / 60:.0f} min mean wait",
                    self._where(places.at[center, "name"], places.at[center, "community_id"]),
                )
        return out

    def freshness(self) -> dict[str, dict]:
        """Per source: seconds since a worker last took its events in, and whether that silence is stale: longer
        than STALE_AFTER_S and than SILENCE_GAPS of its usual gaps now (the lower of its rate over the last hour
        and its mean rate in this clock hour on the RATE_DAYS days before that had any), with the events it
        would have sent meanwhile."""
        hour = int(self.now) // HOUR_S * HOUR_S
        last_hour = window_of(self.now, HOUR_S)
        out = {}
        for source in ("cases", "foot", "services", "complaints"):
            mine = self.all[self.all["source"] == source]
            age = max(0.0, self.now - mine["drained_ms"].max() / 1000)
            ts = mine.loc[mine["counted"], "ts"]
            recent = int(((ts >= last_hour[0]) & (ts < last_hour[1])).sum())
            past = [
                int(((ts >= (hour - d * DAY_S) * 1000) & (ts < (hour - d * DAY_S + HOUR_S) * 1000)).sum())
                for d in range(1, RATE_DAYS + 1)
            ]
            busy = [n for n in past if n]
            known = [r for r in (recent / HOUR_S, sum(busy) / len(busy) / HOUR_S if busy else 0.0) if r > 0]
            rate = min(known) if known else None
            stale = rate is not None and age > max(STALE_AFTER_S, SILENCE_GAPS / rate)
            out[source] = {"age_s": round(age, 1), "stale": stale, "expected": round(rate * age) if stale else None}
        return out

    # ------------------------------------------------------------------ services

    def services(self, state, window_s: int, centers: dict[str, dict]) -> dict:
        w = window_of(self.now, window_s)
        apps = self.scoped(self.of("application", w), state)
        hour = self.scoped(self.of("application", window_of(self.now, HOUR_S)), state)

        def share_auto(frame: pd.DataFrame):
            decided = frame[frame["decision"] != "pending"]
            return round(float(decided["automatic"].sum()) / len(decided), 3) if len(decided) else None

        decided = apps[apps["decision"] != "pending"]
        visits = self.of("appointment", w)
        rows = {}
        hours = window_s / HOUR_S
        for center, place in centers.items():
            if not self.areas.in_scope(pd.Series([place["community_id"]]), state).iloc[0]:
                continue
            mine = visits[visits["center_id"] == center]
            n = mine["action"].value_counts()
            arrived, served = int(n.get("arrived", 0)), int(n.get("served", 0))
            waits = mine.loc[mine["action"] == "served", "wait_s"]
            rows[center] = {
                "booked": int(n.get("booked", 0)),
                "arrived": arrived,
                "served": served,
                "no_show": int(n.get("no_show", 0)),
                "queue": max(arrived - served, 0),
                # The counters needed are an Erlang C result: its input, the arrivals per hour, is checked.
                "arrivals_per_h": round(max(arrived, served) / hours, 1),
                "mean_wait_s": round(float(waits.mean())) if len(waits) else None,
            }
        channels = apps["channel"].value_counts()
        return {
            "volumes": self.per_area(self.of("application", w), state),
            "headline.applications": len(apps),
            "headline.applications_hour": len(hour),
            "headline.share_auto_hour": share_auto(hour),
            "share_auto": share_auto(apps),
            "channels": {c: int(n) for c, n in channels.items()},
            "modes.decided": {
                ("auto" if a else "manual"): int(n) for a, n in decided["automatic"].value_counts().items()
            },
            "centers": rows,
        }

    # ------------------------------------------------------------------ complaints

    def triaged(self) -> pd.Series:
        """Each counted complaint's category, by the labels of the words in the fixture."""
        filed = self.of("complaint")
        by_words = dict(COMPLAINT_WORDS)
        return pd.Series(
            [by_words[t] or (c if isinstance(c, str) else "other") for t, c in zip(filed["text"], filed["category"])],
            index=filed.index,
        )

    def closed_with_their_complaint(self) -> pd.DataFrame:
        """Complaints whose closing update was written in the same drain as the complaint."""
        filed = self.of("complaint")
        updates = self.of("complaint_update")
        closing = updates[updates["action"] == "closed"]
        same = filed.merge(closing[["complaint_id", "group"]], on=["complaint_id", "group"])
        return filed[filed["complaint_id"].isin(same["complaint_id"])]

    def open_complaints(self) -> pd.DataFrame:
        """Complaints filed (counted) and not closed by a later update (by event time)."""
        filed = self.of("complaint").assign(triaged=self.triaged())
        filed = filed.drop_duplicates("complaint_id")
        updates = self.of("complaint_update").sort_values("ts", kind="stable")
        last = updates[updates["action"].isin(["closed", "reopened"])].groupby("complaint_id")["action"].last()
        closed = set(last[last == "closed"].index)
        return filed[~filed["complaint_id"].isin(closed)]

    def complaints(self, state, window_s: int) -> dict:
        w = window_of(self.now, window_s)
        filed = self.of("complaint", w).assign(triaged=self.triaged())
        scoped = self.scoped(filed, state)
        updates = self.of("complaint_update", w)
        if state.district:
            # An update belongs where its complaint is.
            where = self.of("complaint").drop_duplicates("complaint_id").set_index("complaint_id")["community"]
            updates = updates[self.areas.in_scope(updates["complaint_id"].map(where), state)]
        routing: dict[str, dict[str, int]] = {}
        for (level, action), n in updates.groupby(["level", "action"]).size().items():
            routing.setdefault(level, {})[action] = int(n)
        open_ = self.open_complaints()
        if state.district:
            open_ = self.scoped(open_, state)
        heat = filed[filed["cell"].notna()].groupby("cell").size()
        polygon = self.areas.scope_polygon(state)
        return {
            "headline.filed": len(scoped),
            "areas": self.per_area(filed, state),
            "categories": {c: int(n) for c, n in scoped["triaged"].value_counts().items()},
            "routing": routing,
            "headline.escalated": int((updates["action"] == "escalated").sum()),
            "headline.open": len(open_),
            "table": sorted(open_["complaint_id"]),
            "table.rows": {
                r.complaint_id: (r.triaged, self.areas.names.get(r.community, "outside the city"))
                for r in (self.scoped(self.of("complaint"), state) if state.district else self.of("complaint"))
                .assign(triaged=self.triaged())
                .itertuples()
            },
            "heat": {c: int(n) for c, n in heat.items() if polygon.covers(shapely.Point(h3.cell_to_latlng(c)[::-1]))},
            # The hotspots are published at the tick by the workers (whose clock is now), for the window asked.
            "hotspots.as_of": (w[0] // 1000, w[1] // 1000, int(self.now * 1000)),
        }

    # ------------------------------------------------------------------ health

    def health(self) -> dict:
        w = window_of(self.now, 300)
        out = {}
        for source in ("cases", "foot", "services", "complaints"):
            mine = self.all[self.all["source"] == source]
            counted = mine[mine["counted"]]
            dead = mine.loc[~mine["counted"], "why"].str.split(":").str[0].value_counts()
            recent = counted[(counted["ts"] >= w[0]) & (counted["ts"] < w[1])]
            out[source] = {
                "events": len(counted),
                "stream_length": len(mine),
                "dead": {k: int(v) for k, v in dead.items()},
                "rate_per_s": round(len(recent) / 300, 2),
            }
        return out
