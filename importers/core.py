"""The importers' shared core: a file's columns read through a mapping (times, points, value maps, free
text, tokens), the events each kind makes checked by the schema's own validation, numbered, and written
to the streams by the simulators' producer; a summary of what happened to every row.

An imported event's producer id is ``import-<kind>-<digest>``, the digest that of the file's bytes,
and its sequence number is its rank among the file's valid events of its stream, in file order: importing a file
twice gives every event the same ``src:seq``, the idempotency key the aggregator dedupes by. Before
writing, the importer leaves out the events whose numbers the aggregator already recorded for that
producer (its per-producer sequence bitmaps), so a second import writes nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import pandas as pd
import redis
import shapely

from data import schema
from data.keys import Keys
from importers.mapping import Spec, TimeSpec, WhereSpec
from importers.table import SourceTable, read_table
from settings import Settings

Mode = Literal["as-is", "replay"]
PRODUCER_PREFIX = "import-"
PROBLEMS_SHOWN = 20  # refused rows listed one by one in the printed summary; all are counted
NO_POINT = "bad_coordinates:no coordinates"


@dataclass(frozen=True)
class Draft:
    """An event a row makes, before it is numbered: its row, its key in the file, type, time and fields."""

    row: int
    key: tuple
    type: str
    ts: int
    fields: dict


@dataclass(frozen=True)
class Refusal:
    """A row (or one cell of a wide row) that makes no event, and why, in the schema's words."""

    row: int
    reason: str


@dataclass
class Built:
    """What a kind made of a table: events, refusals, and counts of its own (cells not counted...)."""

    drafts: list[Draft] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    unmatched: list[str] = field(default_factory=list)


@dataclass
class Summary:
    """What an import did with a file: every row accounted for."""

    file: str
    kind: str
    src: str
    mode: str
    dry_run: bool
    rows_read: int = 0
    blank_rows: int = 0
    events: int = 0  # valid events made from the file
    written: int = 0
    already_imported: int = 0
    duplicates: int = 0  # rows (or cells) repeating a key seen earlier in the file
    without_coordinates: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason (the dead-letter reasons) -> events or rows
    notes: Counter = field(default_factory=Counter)
    unmatched: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where in the file, reason)
    first_ts: int | None = None
    last_ts: int | None = None

    @property
    def outside_city(self) -> int:
        return self.rejected["outside_city"]

    def lines(self) -> list[str]:
        """The summary as printed at the end of an import."""
        verb = "would write" if self.dry_run else "written"
        out = [
            f"{self.file} ({self.kind}, {self.mode}{', dry run' if self.dry_run else ''}; producer {self.src})",
            f"  rows read: {self.rows_read}"
            + (f" (and {self.blank_rows} blank rows skipped)" if self.blank_rows else ""),
            f"  events {verb}: {self.written}",
            f"  already imported (skipped): {self.already_imported}",
            f"  duplicates in the file (skipped): {self.duplicates}",
            f"  rows without coordinates: {self.without_coordinates}",
            f"  points outside the city: {self.outside_city}",
        ]
        if self.first_ts is not None:
            out.append(f"  event times: {_iso(self.first_ts)} to {_iso(self.last_ts)}")
        for name, n in sorted(self.notes.items()):
            out.append(f"  {name}: {n}")
        if self.unmatched:
            out.append(f"  unmatched names ({len(self.unmatched)}): {', '.join(self.unmatched[:PROBLEMS_SHOWN])}")
        out.append(
            "  rejected by reason: " + (", ".join(f"{k}={v}" for k, v in sorted(self.rejected.items())) or "none")
        )
        for where, reason in self.problems[:PROBLEMS_SHOWN]:
            out.append(f"    {where}: {reason}")
        if len(self.problems) > PROBLEMS_SHOWN:
            out.append(f"    ... and {len(self.problems) - PROBLEMS_SHOWN} more")
        return out


# ---------------------------------------------------------------------------- reading columns


def file_digest(path: Path) -> str:
    """A short digest of a file's bytes: the same file, the same producer id."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def times(table: SourceTable, spec: TimeSpec) -> np.ndarray:
    """Each row's time in ms since the epoch (UTC), -1 where blank or unreadable."""
    raw = table.frame[spec.column].str.strip()
    if spec.format:
        parsed = pd.to_datetime(raw, format=spec.format, errors="coerce")
    else:
        parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    if spec.hour:
        hours = pd.to_numeric(table.frame[spec.hour].str.strip(), errors="coerce")
        hours = hours.where((hours >= 0) & (hours < 24))
        parsed = parsed + pd.to_timedelta(hours, unit="h")
    if getattr(parsed.dt, "tz", None) is None:
        # A wall time the clocks repeat is read as its first occurrence, one they skip as the end of the gap:
        # a publisher's local time is never refused for the clock change.
        first = np.ones(len(parsed), dtype=bool)
        parsed = parsed.dt.tz_localize(spec.timezone, ambiguous=first, nonexistent="shift_forward")
    ms = parsed.dt.tz_convert("UTC").dt.as_unit("ms")
    out = np.full(len(raw), -1, dtype=np.int64)
    ok = ms.notna().to_numpy()
    out[ok] = ms[ok].astype("int64").to_numpy()
    return out


def points(table: SourceTable, where: WhereSpec) -> tuple[np.ndarray, np.ndarray]:
    """Each row's lon and lat, NaN where the row has no usable point (blank, unreadable, a placeholder)."""
    n = len(table)
    if where.lon:
        lon = pd.to_numeric(table.frame[where.lon].str.strip(), errors="coerce").to_numpy(dtype=float)
        lat = pd.to_numeric(table.frame[where.lat].str.strip(), errors="coerce").to_numpy(dtype=float)
    elif where.wkt:
        shapes = shapely.from_wkt(table.frame[where.wkt].replace("", None).to_numpy(), on_invalid="ignore")
        lon, lat = _representative(shapes)
    elif where.geometry:
        if table.geometry is None:
            raise ValueError(f"{table.path}: the mapping reads the geometry, and the file has none")
        lon, lat = _representative(table.geometry)
    else:
        return np.full(n, math.nan), np.full(n, math.nan)
    for p_lon, p_lat in where.placeholders:
        # Publishers round their placeholder pin; compare to about a metre.
        at = (np.abs(lon - p_lon) < 1e-5) & (np.abs(lat - p_lat) < 1e-5)
        lon, lat = np.where(at, math.nan, lon), np.where(at, math.nan, lat)
    return lon, lat


def _representative(shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shapes = np.asarray(shapes, dtype=object)
    empty = shapely.is_missing(shapes) | shapely.is_empty(shapes)
    pts = shapely.point_on_surface(np.where(empty, None, shapes))
    return shapely.get_x(pts), shapely.get_y(pts)


def normalised(name: str) -> str:
    """A name as joins compare it: letter case, spacing and punctuation ignored."""
    return re.sub(r"[\W_]+", " ", name.casefold()).strip()


def values(table: SourceTable, spec: Spec, name: str, salt: str = "") -> list[str | None]:
    """An event field's value in each row: its column (or columns joined with ':') through the field's
    value map, else the field's constant; None where blank or mapped to nothing.

    A field read from several columns looks its value map up by the columns' values joined with '|',
    then by fewer of them (the first columns'): the most specific entry wins.
    """
    source = spec.fields.get(name)
    n = len(table)
    table_map = spec.value_map(name)
    if source is None:
        constant = spec.constants.get(name)
        out = [None if constant is None else str(constant)] * n
        lookups = [[v] for v in out]
    else:
        columns = [source] if isinstance(source, str) else list(source)
        rows = list(zip(*(table.frame[c].str.strip() for c in columns)))
        out = [":".join(parts) if all(parts) else None for parts in rows]
        lookups = [["|".join(parts[:k]) for k in range(len(parts), 0, -1) if all(parts[:k])] for parts in rows]
        if name in spec.constants:
            out = [str(spec.constants[name]) if v is None else v for v in out]
            lookups = [keys or [out[i]] for i, keys in enumerate(lookups)]
    if table_map:
        other = table_map.get("*")
        mapped = []
        for v, keys in zip(out, lookups):
            found = next((table_map[k.casefold()] for k in keys if k is not None and k.casefold() in table_map), None)
            mapped.append(found if found is not None else None if v is None and not keys else other or v)
        out = mapped
    if name in spec.pseudonymous:
        out = [None if v is None else token(v, salt) for v in out]
    return out


def token(value: str, salt: str) -> str:
    """A pseudonymous token for a person's id: the same id and salt, the same token."""
    return "p" + hashlib.sha256(f"{salt}\x1f{value}".encode()).hexdigest()[:16]


def free_text(table: SourceTable, spec: Spec) -> list[str | None]:
    """The free-text columns of each row joined with ' / ', None where all are blank."""
    if not spec.text:
        return [None] * len(table)
    parts = [table.frame[c].str.strip() for c in spec.text]
    return [" / ".join(p for p in row if p) or None for row in zip(*parts)]


def row_keys(table: SourceTable, spec: Spec) -> list[tuple]:
    """Each row's key: its key columns, or every cell when the mapping names none."""
    columns = list(spec.key) or table.columns
    return list(zip(*(table.frame[c].str.strip() for c in columns)))


# ---------------------------------------------------------------------------- importing


@dataclass(frozen=True)
class Options:
    """How an import runs: the time mode, the replay's speed, whether to write at all."""

    mode: Mode = "as-is"
    speed: float = 1.0
    dry_run: bool = False
    lookup: Path | None = None  # overrides the mapping's [lookup] file


TIME_FIELDS = {t.name: [f.name for f in t.fields if f.kind == "ts"] for t in schema.EVENT_TYPES}


def replayed(drafts: Sequence[Draft], now_ms: int, speed: float) -> list[Draft]:
    """The drafts moved to end at now_ms, their times since the first compressed ``speed`` times."""
    if not drafts:
        return []
    last = max(d.ts for d in drafts)

    def move(t: int) -> int:
        return now_ms - round((last - t) / speed)

    out = []
    for d in drafts:
        fields = dict(d.fields)
        for name in TIME_FIELDS[d.type]:
            if fields.get(name) is not None:
                fields[name] = move(int(fields[name]))
        out.append(Draft(d.row, d.key, d.type, move(d.ts), fields))
    return out


@dataclass
class Prepared:
    """A file read, checked and judged: its summary so far and the valid events, in file order."""

    summary: Summary
    events: list[Draft]


def prepare(
    kind: ModuleType, path: str | Path, spec: Spec, options: Options, settings: Settings, city, now_ms: int
) -> Prepared:
    """Read a file of a kind through a mapping and judge its events as the aggregator would; write nothing."""
    path = Path(path)
    table = read_table(path)
    src = f"{PRODUCER_PREFIX}{kind.KIND}-{file_digest(path)}"
    summary = Summary(str(path), kind.KIND, src, options.mode, options.dry_run, len(table), table.blank_rows)
    built = kind.build(table, spec, Context(city, options, str(spec.options.get("pseudonym_salt", "citydeck"))))
    summary.notes.update(built.notes)
    summary.unmatched = built.unmatched
    for r in built.refusals:
        summary.rejected[r.reason.split(":", 1)[0]] += 1
        summary.problems.append((table.where(r.row), r.reason))
    summary.without_coordinates = sum(1 for r in built.refusals if r.reason.startswith(NO_POINT))

    drafts, seen = [], set()
    for d in built.drafts:
        if (d.type, d.key) in seen:
            summary.duplicates += 1
            continue
        seen.add((d.type, d.key))
        drafts.append(d)
    if options.mode == "replay":
        drafts = replayed(drafts, now_ms, options.speed)
    valid = validated(drafts, table, summary, settings, city, src, now_ms)
    summary.problems.sort(key=lambda p: int(p[0].split()[-1]))
    summary.events = len(valid)
    if valid:
        summary.first_ts = min(d.ts for d in valid)
        summary.last_ts = max(d.ts for d in valid)
    return Prepared(summary, valid)


def run(
    kind: ModuleType,
    path: str | Path,
    spec: Spec,
    options: Options,
    settings: Settings,
    city,
    connect: Callable[[], redis.Redis] | None = None,
    *,
    now_ms: int | None = None,
    progress: bool = False,
) -> Summary:
    """Import one file of a kind through a mapping; write unless a dry run; return the summary."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    prepared = prepare(kind, path, spec, options, settings, city, now_ms)
    summary = prepared.summary
    if options.dry_run:
        summary.written = len(prepared.events)
        return summary
    if connect is None:
        raise ValueError("an import that writes needs a Redis connection")
    write(prepared.events, summary.src, settings, connect, summary, progress)
    return summary


@dataclass(frozen=True)
class Context:
    """What a kind may need besides the table and the mapping: the city, the options, the token salt."""

    city: object
    options: Options
    salt: str


def validated(
    drafts: list[Draft], table: SourceTable, summary: Summary, settings: Settings, city, src: str, now_ms: int
) -> list[Draft]:
    """The drafts the schema accepts, as the aggregator would judge them; the others counted by reason."""
    bounds = schema.city_bounds(city.bounds, settings.city_margin_km) if city is not None else None
    by_source: dict[str, list[int]] = {}
    encoded: list[dict[str, str] | None] = []
    for i, d in enumerate(drafts):
        try:
            encoded.append(schema.encode(d.type, src=src, seq=i, ts=d.ts, **d.fields))
        except schema.SchemaError as error:
            encoded.append(None)
            summary.rejected[error.reason.split(":", 1)[0]] += 1
            summary.problems.append((table.where(d.row), error.reason))
            continue
        by_source.setdefault(schema.event_type(d.type).source, []).append(i)
    good = np.zeros(len(drafts), dtype=bool)
    for source, rows in by_source.items():
        decoded, rejected = schema.decode_batch(
            source,
            [{k.encode(): v.encode() for k, v in encoded[i].items()} for i in rows],
            now_ms=now_ms,
            future_tolerance_ms=settings.future_tolerance_seconds * 1000,
            max_text_length=settings.max_text_length,
            max_fields=settings.max_event_fields,
            max_bytes=settings.max_event_bytes,
            bounds=bounds,
        )
        for dec in decoded:
            good[np.asarray(rows)[dec.rows]] = True
        for r in rejected:
            d = drafts[rows[r.row]]
            summary.rejected[r.kind] += 1
            summary.problems.append((table.where(d.row), r.reason))
    return [d for i, d in enumerate(drafts) if good[i]]


def write(
    drafts: list[Draft],
    src: str,
    settings: Settings,
    connect: Callable[[], redis.Redis],
    summary: Summary,
    progress: bool = False,
) -> None:
    """Number each source's drafts in file order, leave out those the aggregator already recorded, and write
    the rest in time order through the producer."""
    from data.aggregator import SEQ_BLOCK
    from simulators.producer import StreamProducer
    from simulators.source import Event

    keys = Keys(settings.key_prefix)
    by_source: dict[str, list[tuple[int, Draft]]] = {}
    for d in drafts:
        # Numbered per stream: the aggregator counts a producer's numbers per source, and a gap is a loss.
        items = by_source.setdefault(schema.event_type(d.type).source, [])
        items.append((len(items), d))
    client = connect()
    try:
        recorded = {
            s: _recorded(client, keys, s, src, [q for q, _ in items], SEQ_BLOCK) for s, items in by_source.items()
        }
    finally:
        client.close()
    bar = _bar(len(drafts), progress)
    try:
        for source, items in by_source.items():
            todo = [(q, d) for q, d in items if q not in recorded[source]]
            summary.already_imported += len(items) - len(todo)
            bar.update(len(items) - len(todo))
            # Written in time order: the aggregator closes minutes behind the newest event it has seen.
            todo.sort(key=lambda item: (item[1].ts, item[0]))
            producer = StreamProducer(
                connect, keys.stream(source), source=source, maxlen=settings.stream_maxlen, src=src
            )
            for seq, d in todo:
                producer.seq = seq
                producer.add(Event(d.type, d.ts, d.fields))
                bar.update(1)
            if not producer.flush():
                raise RuntimeError(f"{source}: Redis did not take the last {producer.unsent} events")
            summary.written += sum(producer.sent.values())
    finally:
        bar.close()


def _recorded(client: redis.Redis, keys: Keys, source: str, src: str, seqs: list[int], block_size: int) -> set[int]:
    """The sequence numbers of a producer the aggregator has already recorded (its per-block bitmaps)."""
    found = set()
    for block in sorted({q // block_size for q in seqs}):
        bitmap = client.get(keys.producer_seqs(source, src, block)) or b""
        for q in seqs:
            if q // block_size != block:
                continue
            offset = q % block_size
            byte = offset >> 3
            if byte < len(bitmap) and bitmap[byte] >> (7 - (offset & 7)) & 1:
                found.add(q)
    return found


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="event", disable=not enabled, leave=False)


def _iso(ts_ms: int) -> str:
    return pd.Timestamp(ts_ms, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%SZ")
