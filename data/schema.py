"""Every citydeck event type: its fields, their types and units, and the one encoder and
decoder that producers and aggregator workers share.

An event on a stream is a flat hash of readable strings (inspect it with ``redis-cli XRANGE``).
Every event carries the envelope: schema version ``v``, ``type``, source id ``src``, the
source's sequence number ``seq`` (``src:seq`` is the event's idempotency key) and the event
time ``ts`` in milliseconds since the Unix epoch, UTC.

Decoding is columnar: a batch of entries becomes one numpy array per field and event type,
and every entry that breaks a rule is set aside with the reason, never raised. Whatever bytes an
entry holds, it decodes or is refused: ids are printable UTF-8 without the separators aggregates
and keepers join them with, free text is UTF-8, integers are canonical decimals (so one number
has one spelling, and an idempotency key one form), and an entry has bounded fields and bytes.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

import numpy as np

SCHEMA_VERSION = 1

# The reasons an entry is rejected; the part of a detailed reason before ':' is one of these.
REJECT_REASONS: dict[str, str] = {
    "unknown_version": "schema version this worker does not know",
    "unknown_type": "event type not defined for this stream",
    "missing_field": "a required field is absent or empty",
    "bad_type": "a field's value does not parse as its type",
    "out_of_range": "a number outside its allowed range",
    "bad_coordinates": "longitude/latitude missing, NaN or outside the globe",
    "null_island": "longitude and latitude both 0: a placeholder for an unknown place, not a place",
    "outside_city": "a point further outside the city's bounds than the configured margin",
    "unknown_enum": "a value not among the field's allowed choices",
    "text_too_long": "free text longer than the configured limit",
    "future_time": "event time further in the future than the tolerance",
    "duplicate": "an event with the same idempotency key was already counted",
    "late": "event time behind the source's closed horizon (the newest event minus the allowed lateness, as last rolled up)",
    "too_large": "an entry with more fields or bytes than the configured limits",
}


@dataclass(frozen=True)
class Bounds:
    """The box of lon/lat an event's point must fall in: the city's bounds widened by a margin."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Whether each point lies in the box (NaN does not)."""
        return (lon >= self.min_lon) & (lon <= self.max_lon) & (lat >= self.min_lat) & (lat <= self.max_lat)


KM_PER_DEGREE = 111.32  # along a meridian, and along the equator


def city_bounds(bounds: tuple[float, float, float, float], margin_km: float) -> Bounds:
    """Widen a city's (min_lon, min_lat, max_lon, max_lat) by ``margin_km`` on every side."""
    min_lon, min_lat, max_lon, max_lat = bounds
    dlat = margin_km / KM_PER_DEGREE
    # A degree of longitude shortens towards the poles: widen by the shortest one in the box.
    widest_lat = min(max(abs(min_lat), abs(max_lat)) + dlat, 89.0)
    dlon = min(margin_km / (KM_PER_DEGREE * math.cos(math.radians(widest_lat))), 360.0)
    return Bounds(min_lon - dlon, min_lat - dlat, max_lon + dlon, max_lat + dlat)


class SchemaError(ValueError):
    """An event that breaks its schema; ``reason`` is one of REJECT_REASONS (with detail)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Field:
    """One field of an event: how it is written and what it means."""

    name: str
    kind: str  # str, text, int, float, bool, ts, lon, lat, enum
    unit: str
    help: str
    required: bool = True
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class EventType:
    """A kind of event on one source's stream."""

    name: str
    source: str
    help: str
    fields: tuple[Field, ...]
    field_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "field_names", frozenset(f.name for f in ENVELOPE + self.fields))


ENVELOPE: tuple[Field, ...] = (
    Field("v", "int", "version", "schema version of this event", low=1),
    Field("type", "str", "name", "event type, one of the types of the stream"),
    Field("src", "str", "id", "producer (simulator, importer, device) that wrote the event"),
    Field("seq", "int", "count", "sequence number of the event at its producer", low=0),
    Field("ts", "ts", "ms since epoch (UTC)", "event time: when it happened in the city", low=0),
)

_LON = Field("lon", "lon", "degrees east (WGS-84)", "longitude of where it happened")
_LAT = Field("lat", "lat", "degrees north (WGS-84)", "latitude of where it happened")

CHANNELS_SERVICES = ("app", "web", "kiosk", "counter")
CHANNELS_COMPLAINTS = ("hotline", "app", "web", "wechat")
HEALTH_CODES = ("green", "yellow", "red")
COMPLAINT_CATEGORIES = (
    "road",
    "streetlight",
    "manhole",
    "noise",
    "sanitation",
    "water",
    "drainage",
    "housing",
    "traffic",
    "environment",
    "public_safety",
    "health",
    "other",
)
ROUTING_LEVELS = ("community", "neighbourhood", "district", "department")
PLACE_KINDS = ("metro_station", "mall", "park", "gate", "hospital", "school", "service_center", "venue")

EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        "case_report",
        "cases",
        "A person's case status changes: suspected, confirmed, recovered.",
        (
            Field("case_id", "str", "token", "pseudonymous case token"),
            Field("status", "enum", "status", "case status", choices=("suspected", "confirmed", "recovered")),
            Field("onset_ts", "ts", "ms since epoch", "symptom onset, when known", required=False, low=0),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "case_visit",
        "cases",
        "A place a case visited, from the case interview or travel records.",
        (
            Field("case_id", "str", "token", "pseudonymous case token"),
            Field("venue_id", "str", "id", "place code of the venue"),
            Field("arrive_ts", "ts", "ms since epoch", "arrival at the venue", low=0),
            Field("leave_ts", "ts", "ms since epoch", "departure from the venue", low=0),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "checkin",
        "cases",
        "A person scanned a venue's place code (event time = check-in time).",
        (
            Field("person_id", "str", "token", "pseudonymous person token"),
            Field("venue_id", "str", "id", "place code of the venue"),
            Field("stay_s", "int", "s", "length of stay when known", required=False, low=0, high=86_400),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "declaration",
        "cases",
        "A daily health self-declaration, with the health code the person's app shows.",
        (
            Field("person_id", "str", "token", "pseudonymous person token"),
            Field("health_code", "enum", "colour", "health code shown", choices=HEALTH_CODES),
            Field(
                "symptom",
                "enum",
                "symptom",
                "main declared symptom",
                choices=("none", "fever", "cough", "breathless", "other"),
            ),
            Field("temperature_c", "float", "°C", "declared body temperature", required=False, low=30, high=45),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "reading",
        "foot",
        "A people-counting or infrared sensor's count for one interval.",
        (
            Field("sensor_id", "str", "id", "sensor id"),
            Field("sensor_kind", "enum", "kind", "how it counts", choices=("counter", "infrared")),
            Field("place_id", "str", "id", "place the sensor watches"),
            Field("place_kind", "enum", "kind", "kind of place", choices=PLACE_KINDS),
            Field("interval_s", "int", "s", "length of the counting interval", low=1, high=86_400),
            Field("people", "int", "persons", "people passing in the interval", low=0, high=10_000_000),
            Field("fever", "int", "persons", "people over the fever threshold (infrared)", required=False, low=0),
            Field("occupancy", "int", "persons", "people inside at the end of the interval", required=False, low=0),
            Field("capacity", "int", "persons", "safe capacity of the place", required=False, low=0),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "application",
        "services",
        "An application to an e-government service and its decision.",
        (
            Field("application_id", "str", "id", "application number"),
            Field("service_code", "str", "code", "service applied for"),
            Field("channel", "enum", "channel", "how it was filed", choices=CHANNELS_SERVICES),
            Field("decision", "enum", "decision", "outcome", choices=("approved", "rejected", "pending")),
            Field("automatic", "bool", "0/1", "decided by rules with no clerk"),
            Field("processing_s", "float", "s", "time from filing to decision", low=0, high=90 * 86_400),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "appointment",
        "services",
        "A step of an appointment at an administrative service center.",
        (
            Field("appointment_id", "str", "id", "appointment number"),
            Field("center_id", "str", "id", "service center (place id)"),
            Field("service_code", "str", "code", "service the visit is for"),
            Field(
                "action",
                "enum",
                "step",
                "what happened",
                choices=("booked", "cancelled", "arrived", "served", "no_show"),
            ),
            Field("slot_ts", "ts", "ms since epoch", "start of the booked slot", low=0),
            Field("wait_s", "float", "s", "time waited before a counter (served)", required=False, low=0),
            Field("walk_in", "bool", "0/1", "arrived without a booking", required=False),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "complaint",
        "complaints",
        "A citizen complaint from the hotline or an app, with its words and place.",
        (
            Field("complaint_id", "str", "id", "complaint number"),
            Field("channel", "enum", "channel", "how it came in", choices=CHANNELS_COMPLAINTS),
            Field("text", "text", "words", "what the citizen said"),
            Field(
                "category",
                "enum",
                "category",
                "category chosen at intake",
                required=False,
                choices=COMPLAINT_CATEGORIES,
            ),
            Field(
                "address",
                "text",
                "words",
                "where it is, as the citizen gave it (Open311 address_string)",
                required=False,
            ),
            Field("media_url", "text", "URL", "a photo or other media of it the citizen gave", required=False),
            _LON,
            _LAT,
        ),
    ),
    EventType(
        "complaint_update",
        "complaints",
        "A later step in a complaint's life: assigned, escalated, resolved...",
        (
            Field("complaint_id", "str", "id", "complaint number"),
            Field(
                "action",
                "enum",
                "step",
                "what happened",
                choices=("assigned", "escalated", "bounced", "resolved", "reopened", "closed"),
            ),
            Field("level", "enum", "level", "routing level now holding it", choices=ROUTING_LEVELS),
            Field("department", "str", "name", "department, at the department level", required=False),
            Field("note", "text", "words", "what the handler wrote", required=False),
        ),
    ),
)

TYPES: dict[tuple[str, str], EventType] = {(t.source, t.name): t for t in EVENT_TYPES}
TYPES_BY_SOURCE: dict[str, dict[str, EventType]] = {}
for _t in EVENT_TYPES:
    TYPES_BY_SOURCE.setdefault(_t.source, {})[_t.name] = _t


def event_type(name: str) -> EventType:
    """Return the event type with that name, whatever its source."""
    for t in EVENT_TYPES:
        if t.name == name:
            return t
    raise KeyError(f"unknown event type {name!r}")


# ---------------------------------------------------------------------------- encoding


def _format(f: Field, value) -> str:
    if f.kind in ("lon", "lat"):
        return f"{float(value):.6f}"
    if f.kind == "float":
        return f"{float(value):.3f}".rstrip("0").rstrip(".") if math.isfinite(float(value)) else str(value)
    if f.kind == "bool":
        return "1" if value else "0"
    if f.kind in ("int", "ts"):
        return str(int(value))
    return str(value)


def encode(type_name: str, *, src: str, seq: int, ts: int, **values) -> dict[str, str]:
    """Encode one event as the flat string fields written to its stream.

    Raises SchemaError for an unknown field or a missing required one, so a producer's bug
    shows at the producer; values are not range-checked here (the worker does that).
    """
    t = event_type(type_name)
    unknown = set(values) - t.field_names
    if unknown:
        raise SchemaError(f"bad_type:unknown field(s) {sorted(unknown)} for {type_name}")
    out = {"v": str(SCHEMA_VERSION), "type": type_name, "src": src, "seq": str(int(seq)), "ts": str(int(ts))}
    for f in t.fields:
        value = values.get(f.name)
        if value is None:
            if f.required:
                raise SchemaError(f"missing_field:{f.name}")
            continue
        out[f.name] = _format(f, value)
    return out


# ---------------------------------------------------------------------------- decoding


@dataclass
class Decoded:
    """The valid events of one type from a batch, as columns.

    ``rows`` are positions in the batch given to ``decode_batch``; every column is aligned with
    them. Ids and names are bytes; numbers, times (int64 ms), booleans and coordinates are
    numpy arrays; enum columns are int codes into the field's choices (-1 for an absent
    optional value); absent optional numbers are NaN (float) or -1 (int).
    """

    type: EventType
    rows: np.ndarray
    columns: dict[str, object]

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self, name: str) -> list[str | None]:
        """Return a bytes column as str (None where absent)."""
        return [None if v is None else v.decode() for v in self.columns[name]]


@dataclass
class Rejected:
    """An entry set aside, with the reason it was rejected."""

    row: int
    reason: str

    @property
    def kind(self) -> str:
        return self.reason.split(":", 1)[0]


_CURRENT_VERSION = str(SCHEMA_VERSION).encode()
_FIELDS_AFTER_TYPE = {t.name: ENVELOPE[2:] + t.fields for t in EVENT_TYPES}


def decode_batch(
    source: str,
    entries: Sequence[Sequence[bytes] | Mapping[bytes, bytes]],
    *,
    now_ms: int,
    future_tolerance_ms: int,
    max_text_length: int,
    max_fields: int | None = None,
    max_bytes: int | None = None,
    bounds: Bounds | None = None,
) -> tuple[list[Decoded], list[Rejected]]:
    """Decode a batch of raw stream entries of one source into columns per event type.

    An entry is either the flat ``[name, value, ...]`` list a stream read returns or a mapping of
    names to values; a name given twice counts with its last value, as in a mapping. An entry with
    more than ``max_fields`` fields or ``max_bytes`` bytes of names and values is refused unread.
    A point at (0, 0) is refused, and with ``bounds`` (the city's, widened by the margin:
    :func:`city_bounds`) a point outside them.
    """
    oversize = _oversize(entries, max_fields, max_bytes)
    if oversize:
        keep = [i for i in range(len(entries)) if i not in oversize]
        decoded, rejected = decode_batch(
            source,
            [entries[i] for i in keep],
            now_ms=now_ms,
            future_tolerance_ms=future_tolerance_ms,
            max_text_length=max_text_length,
            bounds=bounds,
        )
        for d in decoded:
            d.rows = np.asarray(keep, dtype=np.int64)[d.rows]
        rejected = [Rejected(keep[r.row], r.reason) for r in rejected]
        rejected += [Rejected(i, reason) for i, reason in oversize.items()]
        return decoded, sorted(rejected, key=lambda r: r.row)
    types = TYPES_BY_SOURCE[source]
    rejected: list[Rejected] = []
    decoded = []
    for type_name, rows, column in _columns_by_type(entries):
        t = types.get(type_name.decode(errors="replace")) if type_name else None
        if t is None:
            reason = (
                "missing_field:type" if not type_name else f"unknown_type:{type_name[:40].decode(errors='replace')}"
            )
            rejected.extend(Rejected(r, reason) for r in rows)
            continue
        d, rej = _decode_group(t, rows, column, now_ms, future_tolerance_ms, max_text_length, bounds)
        rejected.extend(rej)
        if len(d):
            decoded.append(d)
    return decoded, rejected


def _oversize(entries: Sequence, max_fields: int | None, max_bytes: int | None) -> dict[int, str]:
    """The rows of entries wider or bigger than the limits, with the reason each is refused."""
    if max_fields is None and max_bytes is None:
        return {}
    if set(map(type, entries)) <= {list, tuple}:
        # The whole batch at once when every entry is a flat list, as a stream read returns them.
        widths = [n // 2 for n in map(len, entries)]
        sizes = list(map(len, map(b"".join, entries)))
    else:
        flat = [list(chain.from_iterable(e.items())) if isinstance(e, Mapping) else e for e in entries]
        widths = [len(e) // 2 for e in flat]
        sizes = [sum(len(x) for x in e if x is not None) for e in flat]
    out = {}
    for i, (width, size) in enumerate(zip(widths, sizes)):
        if max_fields is not None and width > max_fields:
            out[i] = f"too_large:{width} fields"
        elif max_bytes is not None and size > max_bytes:
            out[i] = f"too_large:{size} bytes"
    return out


Column = Callable[[bytes], Sequence]


def _columns_by_type(
    entries: Sequence[Sequence[bytes] | Mapping[bytes, bytes]],
) -> list[tuple[bytes | None, list[int], Column]]:
    """Group a batch by event type, in order of first appearance: (type, rows, the raw column of a name).

    Producers write every event of a type with the same names in the same order (``encode``), so
    the flat entries of one type and length are read by position, a whole column at once, once
    their names are checked to line up; any other entry is read by name.
    """
    layouts, by_name = _layouts(entries)
    parts: dict[bytes | None, list[tuple[list[int], Column]]] = {}
    for (_, type_name), rows in layouts.items():
        transposed = list(zip(*map(entries.__getitem__, rows)))
        names = [c[0] for c in transposed[0::2]]
        n = len(rows)
        if len(set(names)) == len(names) and all(c.count(c[0]) == n for c in transposed[0::2]):
            values = dict(zip(names, transposed[1::2]))
            absent = (None,) * n
            parts.setdefault(type_name, []).append((rows, lambda name, v=values, a=absent: v.get(name, a)))
        else:
            by_name.extend(rows)
    if by_name:
        named: dict[bytes | None, tuple[list[int], list[Mapping[bytes, bytes]]]] = {}
        for r in sorted(by_name):
            e = entries[r]
            fields = e if isinstance(e, Mapping) else dict(zip(e[0::2], e[1::2]))
            rows, mappings = named.setdefault(fields.get(b"type"), ([], []))
            rows.append(r)
            mappings.append(fields)
        for type_name, (rows, mappings) in named.items():
            parts.setdefault(type_name, []).append((rows, lambda name, m=mappings: [f.get(name) for f in m]))
    out = []
    for type_name, group in sorted(parts.items(), key=lambda kv: min(rows[0] for rows, _ in kv[1])):
        if len(group) == 1:
            out.append((type_name, *group[0]))
            continue
        # Several layouts of one type (an optional field here and not there): merged back into batch order.
        rows = [r for part_rows, _ in group for r in part_rows]
        order = sorted(range(len(rows)), key=rows.__getitem__)

        def column(name: bytes, group=group, order=order) -> list:
            merged = [v for _, part in group for v in part(name)]
            return [merged[i] for i in order]

        out.append((type_name, [rows[i] for i in order], column))
    return out


def _layouts(entries: Sequence) -> tuple[dict[tuple[int, bytes], list[int]], list[int]]:
    """The rows of each (length, type) of the flat entries whose second name is ``type``; the other rows."""
    n = len(entries)
    try:
        # The whole batch at once, without a Python step per entry: a mapping or a short entry
        # fails here and the batch is grouped one entry at a time instead.
        if list(map(itemgetter(2), entries)).count(b"type") != n:
            raise LookupError
        shapes = list(zip(map(len, entries), map(itemgetter(3), entries)))
    except (LookupError, TypeError):
        layouts: dict[tuple[int, bytes], list[int]] = {}
        by_name: list[int] = []
        for i, e in enumerate(entries):
            if isinstance(e, list | tuple) and len(e) > 3 and e[2] == b"type":
                layouts.setdefault((len(e), e[3]), []).append(i)
            else:
                by_name.append(i)
        return layouts, by_name
    code_of = {shape: code for code, shape in enumerate(dict.fromkeys(shapes))}
    if len(code_of) == 1:
        return {shapes[0]: list(range(n))}, []
    codes = np.fromiter(map(code_of.__getitem__, shapes), dtype=np.int64, count=n)
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(code_of))).tolist()
    starts = [0, *ends[:-1]]
    return {shape: order[a:b].tolist() for shape, a, b in zip(code_of, starts, ends)}, []


def decode(
    source: str,
    fields: Mapping[bytes, bytes],
    *,
    now_ms: int,
    future_tolerance_ms: int = 300_000,
    max_text_length: int = 2000,
) -> dict:
    """Decode one entry into a plain dict, raising SchemaError with the reason if it is bad."""
    decoded, rejected = decode_batch(
        source, [fields], now_ms=now_ms, future_tolerance_ms=future_tolerance_ms, max_text_length=max_text_length
    )
    if rejected:
        raise SchemaError(rejected[0].reason)
    d = decoded[0]
    out = {"type": d.type.name}
    for f in ENVELOPE[2:] + d.type.fields:
        v = d.columns[f.name][0]
        if f.kind == "enum":
            v = f.choices[v] if v >= 0 else None
        elif isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, np.generic):
            v = v.item()
        out[f.name] = v
    return out


def _decode_group(
    t: EventType,
    rows: list[int],
    column: Column,
    now_ms: int,
    future_tolerance_ms: int,
    max_text_length: int,
    bounds: Bounds | None = None,
) -> tuple[Decoded, list[Rejected]]:
    n = len(rows)
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}

    def reject(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask & ~bad):
            reasons[int(i)] = reason
        bad[mask] = True

    columns: dict[str, object] = {}
    version = column(b"v")
    if version.count(_CURRENT_VERSION) == n:
        columns["v"] = np.full(n, SCHEMA_VERSION, dtype=np.int64)  # the usual case, without parsing
    for f in _FIELDS_AFTER_TYPE[t.name] if "v" in columns else ENVELOPE + t.fields:
        if f.name == "type":
            continue  # the batch was grouped by it
        key = f.name.encode()
        raw = column(key)
        # An empty number or choice fails to parse and is found missing on the slow path.
        if None in raw or (f.kind in ("str", "text") and b"" in raw):
            missing = np.fromiter((v is None or v == b"" for v in raw), dtype=bool, count=n)
            if f.required:
                reject(missing, "bad_coordinates" if f.kind in ("lon", "lat") else f"missing_field:{f.name}")
            raw = [None if m else v for v, m in zip(raw, missing)]
        else:
            missing = None
        columns[f.name] = _parse_column(f, raw, missing, reject, max_text_length)

    version = columns["v"]
    reject((version != SCHEMA_VERSION) & ~bad, f"unknown_version:{t.name}")
    ts = columns["ts"]
    reject(ts > now_ms + future_tolerance_ms, "future_time")
    if "lon" in columns:
        lon, lat = columns["lon"], columns["lat"]
        # Publishers write (0, 0) for "no location": a point in the Gulf of Guinea, in no city.
        reject((lon == 0) & (lat == 0), "null_island")
        if bounds is not None:
            with np.errstate(invalid="ignore"):
                reject(~bounds.contains(lon, lat), "outside_city")

    keep = np.flatnonzero(~bad)
    rejected = [Rejected(rows[i], reasons[i]) for i in sorted(reasons)]
    if len(keep) < n:
        columns = {k: _take(v, keep) for k, v in columns.items()}
    return Decoded(t, np.asarray(rows, dtype=np.int64)[keep], columns), rejected


def _take(column, keep: np.ndarray):
    if isinstance(column, np.ndarray):
        return column[keep]
    return [column[i] for i in keep]


def _parse_column(f: Field, raw: list, missing: np.ndarray, reject, max_text_length: int):
    n = len(raw)
    if missing is not None and missing.all():
        return _absent(f, n)
    if f.kind == "str":
        present = raw if missing is None else [v for v in raw if v is not None]
        if not _plain_ids(present):
            unplain = np.fromiter((v is not None and not _plain_ids((v,)) for v in raw), dtype=bool, count=n)
            reject(unplain, f"bad_type:{f.name}")
        if max(map(len, present)) > MAX_ID_LENGTH:
            too_long = np.fromiter((v is not None and len(v) > MAX_ID_LENGTH for v in raw), dtype=bool, count=n)
            reject(too_long, f"text_too_long:{f.name}")
        return list(raw)
    if f.kind == "text":
        texts = []
        bad_utf8 = np.zeros(n, dtype=bool)
        too_long = np.zeros(n, dtype=bool)
        for i, v in enumerate(raw):
            if v is None:
                texts.append(None)
                continue
            try:
                s = v.decode()
            except UnicodeDecodeError:
                bad_utf8[i] = True
                texts.append(None)
                continue
            too_long[i] = len(s) > max_text_length
            texts.append(s)
        reject(bad_utf8, f"bad_type:{f.name}")
        reject(too_long, f"text_too_long:{f.name}")
        return texts
    if f.kind == "enum":
        codes = _parse_codes(raw, _enum_lookup(f), reject, f"unknown_enum:{f.name}")
    elif f.kind == "bool":
        codes = _parse_codes(raw, _BOOL_LOOKUP, reject, f"bad_type:{f.name}")
    if f.kind in ("enum", "bool"):
        if f.required:
            reject(codes == -1, f"missing_field:{f.name}")
        return codes
    integer = f.kind in ("int", "ts")
    if missing is None:
        missing = np.zeros(n, dtype=bool)
    values, unparsable = _parse_numbers(raw, missing, integer)
    if f.required:
        reject(missing, "bad_coordinates" if f.kind in ("lon", "lat") else f"missing_field:{f.name}")
    if f.kind in ("lon", "lat"):
        limit = 180.0 if f.kind == "lon" else 90.0
        with np.errstate(invalid="ignore"):
            reject(unparsable | ~np.isfinite(values) | (np.abs(values) > limit), "bad_coordinates")
        return values
    reject(unparsable, f"bad_type:{f.name}")
    present = ~missing & ~unparsable
    with np.errstate(invalid="ignore"):
        if not integer:
            reject(present & ~np.isfinite(values), f"bad_type:{f.name}")
        if f.low is not None:
            reject(present & (values < f.low), f"out_of_range:{f.name}")
        if f.high is not None:
            reject(present & (values > f.high), f"out_of_range:{f.name}")
    return values


MAX_ID_LENGTH = 128
# No id holds a control character (C0, DEL, C1) or the ``|`` that joins the dimensions of a counter:
# it would be read back as two ids, or break a keeper's record (whose parts are joined with \x1f).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CANONICAL_INTEGERS = re.compile(rb"(?:(?:0|-?[1-9][0-9]*)\n)*")


def _plain_ids(values: Sequence[bytes]) -> bool:
    """Whether every id is UTF-8 and holds no control character or ``|`` (the whole column at once)."""
    try:
        # Joined by a byte no multi-byte sequence holds, so one id's bytes cannot complete another's.
        text = b"|".join(values).decode()
    except UnicodeDecodeError:
        return False
    return text.count("|") == len(values) - 1 and _CONTROL.search(text) is None


def canonical_integers(values: Sequence[bytes]) -> bool:
    """Whether every value is an integer in canonical decimal: no sign but ``-``, no zero ahead, no space or ``_``."""
    joined = b"\n".join(values) + b"\n"
    return joined.count(b"\n") == len(values) and _CANONICAL_INTEGERS.fullmatch(joined) is not None


_BOOL_LOOKUP = {b"1": 1, b"0": 0, b"true": 1, b"false": 0, None: -1}


@functools.cache
def _enum_lookup(f: Field) -> dict:
    lookup: dict = {c.encode(): i for i, c in enumerate(f.choices)}
    lookup[None] = -1
    return lookup


def _parse_codes(raw: list, lookup: dict, reject, reason: str) -> np.ndarray:
    """Map a column through a lookup to int codes (-1 absent), rejecting values not in it."""
    n = len(raw)
    try:
        return np.fromiter(map(lookup.__getitem__, raw), dtype=np.int16, count=n)
    except (KeyError, TypeError):
        codes = np.fromiter((lookup.get(v or None, -2) for v in raw), dtype=np.int16, count=n)
        reject(codes == -2, reason)
        return codes


def _absent(f: Field, n: int):
    """The column of an optional field no entry in the group carries."""
    if f.kind in ("enum", "bool"):
        return np.full(n, -1, dtype=np.int16)
    if f.kind in ("int", "ts"):
        return np.full(n, -1, dtype=np.int64)
    if f.kind in ("float", "lon", "lat"):
        return np.full(n, math.nan)
    return [None] * n


def _parse_numbers(raw: list, missing: np.ndarray, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Parse a column of numbers; absent ones become -1 (int) or NaN, unparsable ones are flagged."""
    n = len(raw)
    dtype, filler = (np.int64, -1) if integer else (np.float64, math.nan)
    convert = int if integer else float
    if not missing.any() and (not integer or canonical_integers(raw)):
        try:
            return np.fromiter(map(convert, raw), dtype=dtype, count=n), np.zeros(n, dtype=bool)
        except (ValueError, OverflowError):
            pass
    values = np.full(n, filler, dtype=dtype)
    unparsable = np.zeros(n, dtype=bool)
    for i, v in enumerate(raw):
        if v is None or v == b"":
            missing[i] = True
            continue
        if integer and not canonical_integers((v,)):
            unparsable[i] = True
            continue
        try:
            values[i] = convert(v)
        except (ValueError, OverflowError):
            unparsable[i] = True
    return values, unparsable
