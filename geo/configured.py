"""The city a citydeck deployment runs on, chosen by settings: the demo city or a user's file."""

from __future__ import annotations

from geo.city import City, CityError
from geo.loader import LevelFields


def parse_levels(spec: str) -> dict[str, LevelFields]:
    """Parse 'district=NAME[:ID],neighbourhood=...,community=...' into level fields."""
    levels: dict[str, LevelFields] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        level, sep, fields = part.partition("=")
        if not sep or level not in ("district", "neighbourhood", "community") or not fields:
            raise CityError(f"bad city level mapping {part!r}: expected level=name_property[:id_property]")
        name, _, id_ = fields.partition(":")
        levels[level] = LevelFields(name, id_ or None)
    if "district" not in levels:
        raise CityError("the city level mapping must name the district property (CITYDECK_CITY_LEVELS)")
    return levels


def city_for(settings) -> City:
    """Return the city named by ``settings.city``: 'demo' (seeded) or a GeoJSON/GeoPackage path."""
    if settings.city == "demo":
        from geo.demo import demo_city

        return demo_city(settings.city_seed)
    from geo.loader import load_city

    return load_city(settings.city, crs_source=settings.city_crs, **parse_levels(settings.city_levels))
