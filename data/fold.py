"""How valid events become counters: the facets each event type is folded into, per time bucket.

A facet is one named counter family, e.g. ``people.community``: people counted by foot-traffic
sensors, per community. Its hash fields are dimension values joined by ``|`` and its values
integer sums. Folding is pure and vectorised: a batch of decoded events becomes, per facet and
per bucket, the sums to add; the worker applies them to Redis in one atomic script.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from data.schema import Decoded

OUTSIDE = "outside"  # the community key of an event placed outside the city
MISSING = "-"  # the key of an absent optional dimension

# Processing-time histogram bins (seconds, upper edges): fine near the one-second promise,
# coarse out to the days a clerk may take.
PROCESSING_BINS_S: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86_400, 3 * 86_400, 7 * 86_400, float("inf"),
)  # fmt: skip


@dataclass(frozen=True)
class Dimension:
    """Integer codes of one dimension of a batch, and how to label codes (vectorised)."""

    codes: np.ndarray
    size: int
    labels: np.ndarray | None = None  # object array: code -> label, for a simple dimension
    parts: tuple[Dimension, Dimension] | None = None  # for a crossed dimension

    def labels_of(self, codes: np.ndarray) -> list[str]:
        """Return the labels of many codes at once."""
        if self.parts is None:
            return self.labels[codes].tolist()
        left, right = self.parts
        k = right.size
        return [f"{a}|{b}" for a, b in zip(left.labels_of(codes // k), right.labels_of(codes % k))]

    def cross(self, other: Dimension) -> Dimension:
        """Return the combined dimension, labelled ``a|b``."""
        return Dimension(self.codes * other.size + other.codes, self.size * other.size, parts=(self, other))

    def take(self, rows: np.ndarray) -> Dimension:
        return Dimension(self.codes[rows], self.size, self.labels, self.parts)


def _labels(values: Sequence[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def constant(label: str, n: int) -> Dimension:
    """Return a dimension with one value for every row."""
    return Dimension(np.zeros(n, dtype=np.int64), 1, _labels([label]))


def labelled(values: Sequence[str]) -> Dimension:
    """Return a dimension from a column of strings (or bytes)."""
    arr = np.asarray(values, dtype=object)
    uniques, codes = np.unique(arr, return_inverse=True)
    labels = [u.decode() if isinstance(u, bytes) else str(u) for u in uniques]
    return Dimension(codes.astype(np.int64), len(labels), _labels(labels))


def enumerated(codes: np.ndarray, choices: Sequence[str]) -> Dimension:
    """Return a dimension from enum codes (-1, absent, labelled MISSING)."""
    c = codes.astype(np.int64)
    c[c < 0] = len(choices)
    return Dimension(c, len(choices) + 1, _labels([*choices, MISSING]))


def areas(codes: np.ndarray, labels: np.ndarray) -> Dimension:
    """Return a dimension of area codes into a fixed label array."""
    return Dimension(codes, len(labels), labels)


def cells(h3: np.ndarray) -> Dimension:
    """Return a dimension from H3 cell ids (0, outside, labelled OUTSIDE)."""
    uniques, codes = np.unique(h3, return_inverse=True)
    labels = [format(int(u), "x") if u else OUTSIDE for u in uniques.tolist()]
    return Dimension(codes.astype(np.int64), len(labels), _labels(labels))


@dataclass
class Folded:
    """The counters a batch adds, and the newest state it brings for each entity."""

    # (facet, bucket start in epoch s) -> {field: increment}
    counters: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    # facet -> {entity: (event time ms, state string)}
    latest: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)
    events: int = 0
    newest_ms: int = 0
    oldest_ms: int = 0

    def add(self, facet: str, buckets: np.ndarray, dim: Dimension, weights: np.ndarray | None = None) -> None:
        """Add counts (or sums of weights) per bucket and dimension value."""
        if len(buckets) == 0:
            return
        if buckets[0] == buckets[-1] and (buckets == buckets[0]).all():
            bucket_ids, combined = buckets[:1], dim.codes
        else:
            bucket_ids, bucket_codes = np.unique(buckets, return_inverse=True)
            combined = bucket_codes.astype(np.int64) * dim.size + dim.codes
        keys, inverse = np.unique(combined, return_inverse=True)
        sums = np.rint(np.bincount(inverse, weights=weights, minlength=len(keys))).astype(np.int64)
        nonzero = sums != 0
        keys, sums = keys[nonzero], sums[nonzero]
        labels = dim.labels_of(keys % dim.size)
        which = keys // dim.size
        for b in np.unique(which).tolist():
            rows = np.flatnonzero(which == b) if len(bucket_ids) > 1 else slice(None)
            part = dict(
                zip(labels[rows] if isinstance(rows, slice) else [labels[i] for i in rows], sums[rows].tolist())
            )
            slot = self.counters.get((facet, int(bucket_ids[b])))
            if slot is None:
                self.counters[(facet, int(bucket_ids[b]))] = part
            else:
                for k, v in part.items():
                    slot[k] = slot.get(k, 0) + v

    def keep_latest(self, facet: str, entities: Dimension, ts: np.ndarray, states: Callable[[int], str]) -> None:
        """Keep, per entity, the newest event's state (``states(row)`` renders it)."""
        order = np.lexsort((ts, entities.codes))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = entities.codes[order][1:] != entities.codes[order][:-1]
        rows = order[last]
        names = entities.labels_of(entities.codes[rows])
        slot = self.latest.setdefault(facet, {})
        for name, row in zip(names, rows.tolist()):
            t = int(ts[row])
            if name not in slot or slot[name][0] < t:
                slot[name] = (t, states(row))


@dataclass(frozen=True)
class Placement:
    """Where a batch's events are: community (and above) and H3 cell per row."""

    community: Dimension
    district: Dimension
    h3: Dimension


def processing_bins(seconds: np.ndarray) -> Dimension:
    """Return the processing-time histogram bin of each duration."""
    edges = np.asarray(PROCESSING_BINS_S)
    codes = np.searchsorted(edges, seconds, side="left").astype(np.int64)
    labels = [f"le{edge:g}" for edge in PROCESSING_BINS_S]
    return Dimension(np.minimum(codes, len(labels) - 1), len(labels), _labels(labels))


def fold(decoded: Decoded, where: Placement, bucket_s: int, into: Folded) -> None:
    """Fold one event type's valid events into counters (by event time) and latest states."""
    c = decoded.columns
    ts = c["ts"]
    buckets = (ts // (bucket_s * 1000)) * bucket_s
    into.events += len(decoded)
    into.newest_ms = max(into.newest_ms, int(ts.max()))
    into.oldest_ms = min(into.oldest_ms or int(ts.min()), int(ts.min()))
    into.add("events.type", buckets, constant(decoded.type.name, len(ts)))
    folder = _FOLDERS.get(decoded.type.name)
    if folder is not None:
        folder(decoded, where, buckets, into)


def _choices(decoded: Decoded, name: str) -> tuple[str, ...]:
    return decoded.type.fields[[f.name for f in decoded.type.fields].index(name)].choices


def _cases_report(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    status = enumerated(d.columns["status"], _choices(d, "status"))
    out.add("cases.status", b, status)
    out.add("cases.community_status", b, w.community.cross(status))


def _case_visit(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    out.add("visits.community", b, w.community)
    out.add("visits.h3", b, w.h3)
    out.add("visits.venue", b, labelled(d.columns["venue_id"]))


def _checkin(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    out.add("checkins.community", b, w.community)
    out.add("checkins.h3", b, w.h3)
    out.add("checkins.venue", b, labelled(d.columns["venue_id"]))


def _declaration(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    code = enumerated(d.columns["health_code"], _choices(d, "health_code"))
    out.add("declarations.code", b, code)
    out.add("declarations.community_code", b, w.community.cross(code))
    out.add("declarations.symptom", b, enumerated(d.columns["symptom"], _choices(d, "symptom")))


def _reading(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    c = d.columns
    people = c["people"].astype(np.float64)
    fever = np.where(c["fever"] > 0, c["fever"], 0).astype(np.float64)
    sensor = labelled(c["sensor_id"])
    out.add("people.community", b, w.community, people)
    out.add("people.h3", b, w.h3, people)
    out.add("people.sensor", b, sensor, people)
    out.add("readings.sensor", b, sensor)
    if fever.any():
        out.add("fever.community", b, w.community, fever)
        out.add("fever.sensor", b, sensor, fever)
    kinds = _choices(d, "place_kind")
    sensor_kinds = _choices(d, "sensor_kind")
    cols = [c[k] for k in ("ts", "people", "fever", "occupancy", "capacity", "interval_s", "lon", "lat")]
    place, place_kind, sensor_kind = c["place_id"], c["place_kind"], c["sensor_kind"]
    community = w.community.labels_of(w.community.codes)

    def state(row: int) -> str:
        t, p, f, occ, cap, interval, lon, lat = (x[row] for x in cols)
        return orjson.dumps(
            {
                "ts": int(t), "people": int(p), "fever": max(int(f), 0), "occupancy": int(occ), "capacity": int(cap),
                "interval_s": int(interval), "lon": round(float(lon), 6), "lat": round(float(lat), 6),
                "place_id": place[row].decode(errors="replace"), "place_kind": kinds[place_kind[row]],
                "sensor_kind": sensor_kinds[sensor_kind[row]], "community_id": community[row],
            }
        ).decode()  # fmt: skip

    out.keep_latest("sensor", sensor, c["ts"], state)


def _application(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    c = d.columns
    channel = enumerated(c["channel"], _choices(d, "channel"))
    decision = enumerated(c["decision"], _choices(d, "decision"))
    automatic = Dimension(np.maximum(c["automatic"], 0).astype(np.int64), 2, _labels(["manual", "auto"]))
    service = labelled(c["service_code"])
    decision_mode = decision.cross(automatic)
    # Only decisions time the process: a filing still pending says nothing about how long it takes.
    decided = np.flatnonzero(c["decision"] != _choices(d, "decision").index("pending"))
    mode_bin = automatic.take(decided).cross(processing_bins(c["processing_s"][decided]))
    out.add("applications.community", b, w.community)
    out.add("applications.service", b, service)
    # Per community, so every figure of a drilled page counts the applications of the same area; and
    # per district, so the city and a district read a few fields, not one per community and value.
    for level, area in (("community", w.community), ("district", w.district)):
        out.add(f"applications.{level}_channel", b, area.cross(channel))
        out.add(f"applications.{level}_decision_mode", b, area.cross(decision_mode))
        out.add(f"applications.{level}_processing", b[decided], area.take(decided).cross(mode_bin))
    out.add("applications.processing_ms", b[decided], automatic.take(decided), c["processing_s"][decided] * 1000.0)


def _appointment(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    c = d.columns
    center = labelled(c["center_id"])
    action = enumerated(c["action"], _choices(d, "action"))
    out.add("appointments.center_action", b, center.cross(action))
    # Bookings are counted by the hour of their slot too: that is the demand a center must meet.
    slot_hours = (c["slot_ts"] // 3_600_000) * 3600
    out.add("appointments.slot_center_action", slot_hours, center.cross(action))
    walk_ins = np.flatnonzero(c["walk_in"] == 1)
    if len(walk_ins):
        out.add("appointments.walk_ins", b[walk_ins], center.take(walk_ins))
    served = np.flatnonzero((c["wait_s"] >= 0) & np.isfinite(c["wait_s"]))
    if len(served):
        out.add("appointments.wait_ms", b[served], center.take(served), c["wait_s"][served] * 1000.0)
        out.add("appointments.waited", b[served], center.take(served))


def _complaint(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    # Categories are counted by the complaint keeper, as triaged: the category the citizen chose at
    # intake is only a hint triage may correct, and the pages show one definition.
    out.add("complaints.community", b, w.community)
    out.add("complaints.h3", b, w.h3)
    out.add("complaints.channel", b, enumerated(d.columns["channel"], _choices(d, "channel")))


def _complaint_update(d: Decoded, w: Placement, b: np.ndarray, out: Folded) -> None:
    action = enumerated(d.columns["action"], _choices(d, "action"))
    level = enumerated(d.columns["level"], _choices(d, "level"))
    out.add("updates.action_level", b, action.cross(level))


_FOLDERS: dict[str, Callable[[Decoded, Placement, np.ndarray, Folded], None]] = {
    "case_report": _cases_report,
    "case_visit": _case_visit,
    "checkin": _checkin,
    "declaration": _declaration,
    "reading": _reading,
    "application": _application,
    "appointment": _appointment,
    "complaint": _complaint,
    "complaint_update": _complaint_update,
}
