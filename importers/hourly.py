"""Hourly people counts in wide tables: a row per hour and a column per sensor (or a row per sensor and day
and a column per hour), each count a ``reading``; sensors placed from a locations table joined by name
(``python -m importers hourly``)."""

from __future__ import annotations

import re

from importers.core import NO_POINT, Built, Context, Draft, Refusal, normalised, row_keys, times, values
from importers.lookup import load_places
from importers.mapping import MappingError, Spec
from importers.table import SourceTable

KIND = "hourly"
HELP = "hourly people counts, wide: a column per sensor (or per hour); sensors placed by a locations table"
DEFAULT_MAPPING = "melbourne_hourly"
NOT_COUNTED = ("", "-1", "undefined", "na", "n/a", "null")


def sensor_id(name: str) -> str:
    """A sensor's id from its column name: 'Collins Place (South)' -> 'collins-place-south'."""
    return normalised(name).replace(" ", "-")[:120]


def count_cell(raw: str, not_counted: frozenset[str]) -> int | None | str:
    """A cell's count; None when it means "not counted"; the raw text when it is no count at all."""
    text = raw.strip()
    if text.casefold() in not_counted:
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return text
    if value != int(value):
        return text
    return int(value)


def reading(sensor: str, people: int, interval_s: int, lon: float, lat: float, constants: dict) -> dict:
    """A reading's fields: the sensor is its own place, a counter unless the mapping says otherwise."""
    return {
        "sensor_id": sensor,
        "sensor_kind": str(constants.get("sensor_kind", "counter")),
        "place_id": sensor,
        "place_kind": str(constants.get("place_kind", "venue")),
        "interval_s": interval_s,
        "people": people,
        "lon": lon,
        "lat": lat,
    }


def build(table: SourceTable, spec: Spec, ctx: Context) -> Built:
    """One reading per counted cell; cells meaning "not counted" make nothing and are counted apart."""
    across = spec.options.get("across", "sensors")
    if across not in ("sensors", "hours"):
        raise MappingError(f"{spec.path}: options.across must be 'sensors' or 'hours', not {across!r}")
    spec.check_columns(table.columns, str(table.path))
    used = set(spec.columns())
    chosen = spec.options.get("columns", "*")
    if chosen == "*":
        wide = [c for c in table.columns if c not in used and c.strip()]
    else:
        spec.check_columns(table.columns, str(table.path), also=chosen)
        wide = list(chosen)
    interval_s = int(spec.options.get("interval_s", 3600))
    not_counted = frozenset(str(v).casefold() for v in spec.options.get("not_counted", NOT_COUNTED))
    places = load_places(spec, ctx.options.lookup)
    out = Built()
    ts = times(table, spec.time)
    keys = row_keys(table, spec)
    if across == "sensors":
        sensors = {c: c for c in wide}
        offsets = {c: 0 for c in wide}
    else:
        names = values(table, spec, "sensor_id")
        offsets = {}
        for c in wide:
            hour = re.match(r"\s*(\d{1,2})", c)
            if hour is None or int(hour.group(1)) > 23:
                raise MappingError(
                    f"{spec.path}: column {c!r} names no hour (0-23); list the hour columns in options.columns"
                )
            offsets[c] = int(hour.group(1)) * 3_600_000
    located = {}
    for c in wide:
        name = sensors[c] if across == "sensors" else None
        if name is not None:
            located[c] = places.find(name)
            if located[c] is None:
                out.unmatched.append(name)
    frame = table.frame
    for c in wide:
        cells = frame[c].to_numpy()
        for i in range(len(table)):
            count = count_cell(cells[i], not_counted)
            if count is None:
                out.notes["cells not counted (blank or a no-count mark)"] += 1
                continue
            if ts[i] < 0:
                out.refusals.append(Refusal(i, f"missing_field:ts ({spec.time.column} blank or not a time)"))
                continue
            if isinstance(count, str):
                out.refusals.append(Refusal(i, f"bad_type:people ({c}={count[:40]!r})"))
                continue
            sensor = c if across == "sensors" else names[i]
            if sensor is None:
                out.refusals.append(Refusal(i, "missing_field:sensor_id"))
                continue
            point = located[c] if across == "sensors" else places.find(sensor)
            if point is None:
                out.refusals.append(Refusal(i, NO_POINT))
                if across == "hours" and sensor not in out.unmatched:
                    out.unmatched.append(sensor)
                continue
            # A count is stamped at the end of its interval, as the sensors report it.
            end = int(ts[i]) + offsets[c] + interval_s * 1000 - 1
            event = reading(sensor_id(sensor), count, interval_s, *point, spec.constants)
            out.drafts.append(Draft(i, (*keys[i], c), "reading", end, event))
    return out
