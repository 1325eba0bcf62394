"""The mapping file (TOML) that says how a file's columns become an event's fields, and its checks."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAPPINGS_DIR = Path(__file__).parent / "mappings"


class MappingError(ValueError):
    """A mapping file that cannot be used with a file: unreadable, or naming what is not there."""


@dataclass(frozen=True)
class TimeSpec:
    """Where an event's time is and how it is written."""

    column: str
    format: str | None = None  # strptime format; None: ISO 8601 and the like
    timezone: str = "UTC"  # the zone of times written without an offset
    hour: str | None = None  # a column of hours (0-23) added to a date


@dataclass(frozen=True)
class WhereSpec:
    """Where an event's point is: lon/lat columns, a WKT column or the file's geometry."""

    lon: str | None = None
    lat: str | None = None
    wkt: str | None = None
    geometry: bool = False
    # Points a publisher writes for "somewhere in the city" (a city-centre pin): read as no point at all.
    placeholders: tuple[tuple[float, float], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.lon, self.lat, self.wkt) if c)


@dataclass(frozen=True)
class Table:
    """A second table a mapping joins by normalised name: sensor locations, a geocode table."""

    file: Path
    name: str
    lon: str
    lat: str
    area: str | None = None
    aliases: Mapping[str, str] = field(default_factory=dict)  # a name in the main file -> its name here


@dataclass(frozen=True)
class Spec:
    """A whole mapping: which columns fill which fields, with value maps, constants and free text."""

    path: Path | None
    kind: str | None
    key: tuple[str, ...]
    time: TimeSpec | None
    where: WhereSpec
    fields: Mapping[str, str | tuple[str, ...]]  # event field -> column (or columns joined with ':')
    constants: Mapping[str, object]
    values: Mapping[str, Mapping[str, str]]  # event field -> {source value (casefolded) -> ours}
    text: tuple[str, ...]  # columns joined into the event's free text
    pseudonymous: tuple[str, ...]  # event fields whose values are replaced by a token
    options: Mapping[str, object]  # what one kind alone reads (a wide table's columns, a visit's length...)
    lookup: Table | None = None

    def columns(self) -> list[str]:
        """Every column of the main file this mapping names."""
        named = list(self.key) + list(self.where.columns) + list(self.text)
        if self.time is not None:
            named += [self.time.column] + ([self.time.hour] if self.time.hour else [])
        for source in self.fields.values():
            named += [source] if isinstance(source, str) else list(source)
        return list(dict.fromkeys(named))

    def check_columns(self, available: Iterable[str], what: str, also: Iterable[str] = ()) -> None:
        """Raise MappingError when the mapping names a column the file lacks, listing the file's columns."""
        available = list(available)
        missing = [c for c in [*self.columns(), *also] if c not in available]
        if missing:
            raise MappingError(
                f"{self.path or 'the mapping'} names column(s) {missing} that {what} lacks;"
                f" its columns are: {', '.join(repr(c) for c in available)}"
            )

    def value_map(self, name: str) -> Mapping[str, str]:
        """The value map of an event field, its keys casefolded ('*' for any other value)."""
        return self.values.get(name, {})


def resolve(name_or_path: str) -> Path:
    """The path of a mapping: a file, or the name of one shipped in importers/mappings."""
    path = Path(name_or_path)
    if path.exists():
        return path
    shipped = MAPPINGS_DIR / f"{name_or_path.removesuffix('.toml')}.toml"
    if shipped.exists():
        return shipped
    names = ", ".join(sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml")))
    raise MappingError(f"no mapping file {name_or_path!r} (shipped mappings: {names})")


def load(name_or_path: str) -> Spec:
    """Read and check a mapping file (or a shipped mapping's name)."""
    path = resolve(name_or_path)
    return parse(_document(path), path)


def _document(path: Path, depth: int = 0) -> dict:
    """A mapping file's TOML, laid over the mapping its ``base`` names (tables merged, values replaced)."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise MappingError(f"{path}: cannot read the mapping ({error})") from error
    # Files a mapping names are relative to it, whichever mapping is later laid over it.
    for source in doc.get("value_files", {}).values():
        if isinstance(source, dict) and "file" in source:
            source["file"] = str(path.parent / source["file"])
    if isinstance(doc.get("lookup"), dict) and "file" in doc["lookup"]:
        doc["lookup"]["file"] = str(path.parent / doc["lookup"]["file"])
    base = doc.pop("base", None)
    if base is None:
        return doc
    if depth > 4:
        raise MappingError(f"{path}: mappings based on each other too deep (a loop?)")
    return _merged(_document(resolve(base), depth + 1), doc)


def _merged(under: dict, over: dict) -> dict:
    out = dict(under)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


KNOWN_SECTIONS = {
    "kind", "key", "time", "where", "fields", "constants", "values", "value_files", "text", "pseudonymous",
    "options", "lookup",
}  # fmt: skip


def _value_file(source: Mapping, path: Path | None, where_: str) -> dict[str, str]:
    """A value map kept in a JSON file shared with other code: the named tables of it, merged in order."""
    try:
        file = (path.parent if path is not None else Path.cwd()) / source["file"]
        doc = json.loads(file.read_text(encoding="utf-8"))
        merged = {}
        for table in source.get("tables", [None]):
            merged.update(doc if table is None else doc[table])
    except (KeyError, OSError, ValueError) as error:
        raise MappingError(f"{where_}: cannot read the value file {source!r} ({error!r})") from None
    return {str(k).strip().casefold(): str(v) for k, v in merged.items()}


def parse(doc: Mapping, path: Path | None = None) -> Spec:
    """Build a mapping from a parsed TOML document."""
    where_ = f"{path or 'mapping'}"
    unknown = set(doc) - KNOWN_SECTIONS
    if unknown:
        raise MappingError(f"{where_}: unknown key(s) {sorted(unknown)}; expected some of {sorted(KNOWN_SECTIONS)}")
    time = doc.get("time")
    if time is not None:
        if "column" not in time:
            raise MappingError(f"{where_}: [time] needs a column")
        time = TimeSpec(time["column"], time.get("format"), time.get("timezone", "UTC"), time.get("hour"))
        for name in ("column", "format", "timezone", "hour"):
            if getattr(time, name) is not None and not isinstance(getattr(time, name), str):
                raise MappingError(f"{where_}: [time] {name} must be text, not {getattr(time, name)!r}")
        try:
            ZoneInfo(time.timezone)
        except (ValueError, ZoneInfoNotFoundError):
            raise MappingError(
                f"{where_}: [time] timezone {time.timezone!r} is not a time zone (an IANA name like 'America/New_York')"
            ) from None
    w = doc.get("where", {})
    where = WhereSpec(
        lon=w.get("lon"),
        lat=w.get("lat"),
        wkt=w.get("wkt"),
        geometry=bool(w.get("geometry", False)),
        placeholders=tuple((float(lon), float(lat)) for lon, lat in w.get("placeholders", ())),
    )
    if bool(where.lon) != bool(where.lat):
        raise MappingError(f"{where_}: [where] needs both lon and lat columns, or neither")
    # A field set to "" in a mapping laid over a base reads no column (its constant, if any, applies).
    fields = {k: v if isinstance(v, str) else tuple(v) for k, v in doc.get("fields", {}).items() if v != ""}
    values: dict[str, dict[str, str]] = {}
    for name, source in doc.get("value_files", {}).items():
        values[name] = _value_file(source, path, where_)
    for name, table in doc.get("values", {}).items():
        values.setdefault(name, {}).update((str(k).strip().casefold(), str(v)) for k, v in table.items())
    text = doc.get("text", {})
    lookup = doc.get("lookup")
    if lookup is not None:
        base = path.parent if path is not None else Path.cwd()
        try:
            lookup = Table(
                file=base / lookup["file"] if "file" in lookup else None,
                name=lookup["name"],
                lon=lookup["lon"],
                lat=lookup["lat"],
                area=lookup.get("area"),
                aliases=dict(lookup.get("aliases", {})),
            )
        except KeyError as error:
            raise MappingError(f"{where_}: [lookup] needs {error.args[0]!r}") from None
    key = doc.get("key", ())
    return Spec(
        path=path,
        kind=doc.get("kind"),
        key=(key,) if isinstance(key, str) else tuple(key),
        time=time,
        where=where,
        fields=fields,
        constants=dict(doc.get("constants", {})),
        values=values,
        text=tuple(text.get("columns", ())) if isinstance(text, Mapping) else tuple(text),
        pseudonymous=tuple(doc.get("pseudonymous", ())),
        options=dict(doc.get("options", {})),
        lookup=lookup,
    )
