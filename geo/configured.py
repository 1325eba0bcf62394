"""The city a citydeck deployment runs on, chosen by settings: the demo city or a user's boundary files."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from geo.city import LEVELS, City, CityError
from geo.loader import LevelFields

log = logging.getLogger(__name__)


def parse_levels(spec: str) -> dict[str, LevelFields]:
    """Parse 'district=NAME[:ID][@PATH],neighbourhood=...,community=...' into level fields.

    ``@PATH`` gives a level a boundary file of its own; a level without one is read from the city file.
    """
    levels: dict[str, LevelFields] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        level, sep, fields = part.partition("=")
        fields, _, path = fields.partition("@")
        if not sep or level not in LEVELS or not fields:
            raise CityError(f"bad city level mapping {part!r}: expected level=name_property[:id_property][@file]")
        name, _, id_ = fields.partition(":")
        levels[level] = LevelFields(name, id_ or None, path.strip() or None)
    if "district" not in levels:
        raise CityError("the city level mapping must name the district property (CITYDECK_CITY_LEVELS)")
    return levels


def city_for(settings) -> City:
    """Return the city named by ``settings.city``: 'demo' (seeded), a GeoJSON/GeoPackage path, or a boundary
    set when some level of ``settings.city_levels`` names a file of its own. A city from files whose place
    keeps another clock than ``CITYDECK_CITY_TIMEZONE`` is warned of, with the zone to set."""
    if settings.city == "demo":
        from geo.demo import demo_city

        return demo_city(settings.city_seed)
    city = _loaded(settings)
    if (local := zone_unlike(city, settings.city_timezone)) is not None:
        log.warning(
            "the city lies in the time zone %s, whose clock is not that of CITYDECK_CITY_TIMEZONE=%s: every "
            "clock, hour of day and working day shown will be off; set CITYDECK_CITY_TIMEZONE=%s",
            local,
            settings.city_timezone,
            local,
        )
    return city


def _loaded(settings) -> City:
    levels = parse_levels(settings.city_levels)
    if all(fields.path is None for fields in levels.values()):
        from geo.loader import load_city

        return load_city(settings.city, crs_source=settings.city_crs, **levels)
    from geo.boundary_set import load_boundary_set

    finest = next(level for level in reversed(LEVELS) if level in levels)
    if levels[finest].path is None:
        levels[finest] = dataclasses.replace(levels[finest], path=settings.city)
    city = load_boundary_set(crs_source=settings.city_crs, **levels)
    # Whoever runs it learns, by the areas' own names, where the levels did not nest and what was decided.
    for repair in city.nesting:
        log.warning("the city's levels do not nest: %s", repair)
    return city


def zone_unlike(city: City, configured: str) -> str | None:
    """The time zone at the city's centre if its clock differs from ``configured``'s at some time of the
    year (a zone of another name but the same clock, Asia/Chongqing for Asia/Shanghai, is alike); None when
    alike, or at sea where no zone is known."""
    from timezonefinder import TimezoneFinder

    west, south, east, north = city.bounds
    local = TimezoneFinder().timezone_at(lng=(west + east) / 2, lat=(south + north) / 2)
    if local is None or local == configured:
        return None
    year = datetime.now(ZoneInfo("UTC")).replace(month=1, day=1, hour=12, minute=0, second=0, microsecond=0)
    days = [year + timedelta(days=d) for d in range(0, 366, 7)]  # weekly: daylight saving starts and ends
    mine, theirs = ZoneInfo(local), ZoneInfo(configured)
    return None if all(d.astimezone(mine).utcoffset() == d.astimezone(theirs).utcoffset() for d in days) else local
