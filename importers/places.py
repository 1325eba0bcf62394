"""Official lists of places visited by cases: a place's name, its area and a date, placed by a separate
geocode table joined by normalised name. A name the table lacks is reported; its row is kept at the
level of its area (the point of the city's area of that name) where the area is known, else refused
(``python -m importers places``)."""

from __future__ import annotations

import hashlib

from importers.core import NO_POINT, Built, Context, Draft, Refusal, normalised, row_keys, times, values
from importers.lookup import load_places
from importers.mapping import MappingError, Spec
from importers.routes import HOUR_MS, confirmed_reports
from importers.table import SourceTable

KIND = "places"
HELP = "lists of places visited by cases: name, area, date; points from a geocode table (--lookup)"
DEFAULT_MAPPING = "exposure_places_example"


def area_points(city) -> dict[str, tuple[float, float]]:
    """A point inside each of the city's areas, by normalised name (the finer level wins a shared name)."""
    out: dict[str, tuple[float, float]] = {}
    for level in ("district", "neighbourhood", "community"):
        frame = city.level(level)
        for name, shape in zip(frame["name"], frame.geometry):
            p = shape.representative_point()
            out[normalised(str(name))] = (float(p.x), float(p.y))
    return out


def build(table: SourceTable, spec: Spec, ctx: Context) -> Built:
    """One visit per listed place and date; a case token per row unless the list names its cases."""
    name_column = spec.options.get("name")
    area_column = spec.options.get("area")
    if not name_column:
        raise MappingError(f"{spec.path}: options.name must name the column of the places' names")
    spec.check_columns(table.columns, str(table.path), also=[c for c in (name_column, area_column) if c])
    places = load_places(spec, ctx.options.lookup)
    areas = area_points(ctx.city) if ctx.city is not None else {}
    out = Built()
    arrive = times(table, spec.time)
    stay_ms = int(float(spec.options.get("visit_hours", 24)) * HOUR_MS)
    keys = row_keys(table, spec)
    cases = values(table, spec, "case_id", ctx.salt) if "case_id" in spec.fields else None
    names = table.frame[name_column].str.strip().to_numpy()
    area_names = table.frame[area_column].str.strip().to_numpy() if area_column else [""] * len(table)
    for i in range(len(table)):
        if arrive[i] < 0:
            out.refusals.append(Refusal(i, f"missing_field:arrive_ts ({spec.time.column} blank or not a time)"))
            continue
        point = places.find(names[i]) if names[i] else None
        venue = "site-" + normalised(names[i]).replace(" ", "-")[:100]
        if point is None:
            if names[i] not in out.unmatched:
                out.unmatched.append(names[i] or "(blank)")
            point = areas.get(normalised(area_names[i])) if area_names[i] else None
            if point is None:
                out.refusals.append(Refusal(i, f"{NO_POINT} (no geocode for {names[i][:60]!r}, no known area)"))
                continue
            out.notes["rows kept at area level (name not geocoded)"] += 1
            venue = "area-" + normalised(area_names[i]).replace(" ", "-")[:100]
        # A list names no case: each listed visit is its own pseudonymous case.
        case = cases[i] if cases is not None else "l" + hashlib.sha256(repr(keys[i]).encode()).hexdigest()[:16]
        event = {
            "case_id": case,
            "venue_id": venue,
            "arrive_ts": int(arrive[i]),
            "leave_ts": int(arrive[i]) + stay_ms,
            "lon": point[0],
            "lat": point[1],
        }
        out.drafts.append(Draft(i, keys[i], "case_visit", int(arrive[i]), event))
    if spec.options.get("confirmed"):
        out.drafts += confirmed_reports(out.drafts)
    return out
