"""The city as the dashboard needs it: names and parents of areas, centres of areas and H3 cells,
places of interest, and simplified GeoJSON per level (serialised once, served at a static URL).
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property

import h3
import numpy as np
import shapely

from engines.hotspots import cell_centre, city_cells
from geo.city import LEVELS, City

GEOJSON_URL = "/geo/{level}.json"


def name_key(name: str) -> str:
    """A name as looked up: case and runs of spaces do not count."""
    return " ".join(name.split()).casefold()


class CityGeography:
    """Lookups over one city, computed on first use and kept for the life of the process."""

    def __init__(self, city: City, h3_resolution: int = 8, simplify_m: float = 25.0):
        self.city = city
        self.h3_resolution = h3_resolution
        self.simplify_m = simplify_m

    @cached_property
    def names(self) -> dict[str, str]:
        """Area id -> name, over all three levels."""
        out: dict[str, str] = {}
        for level in LEVELS:
            frame = self.city.level(level)
            out.update(zip(frame[f"{level}_id"], frame["name"]))
        return out

    @cached_property
    def named_points(self) -> dict[str, tuple[float, float]]:
        """A place's or community's name (as ``name_key`` spells it) -> a point of it: the place itself, or a point
        inside the community. A name two of them share is left out: it does not say which one."""
        frame = self.city.communities
        inside = shapely.point_on_surface(frame.geometry.to_numpy())
        named = [*zip(frame["name"], shapely.get_x(inside), shapely.get_y(inside))]
        named += zip(self.city.places["name"], self.city.places["lon"], self.city.places["lat"])
        points: dict[str, tuple[float, float]] = {}
        shared: set[str] = set()
        for name, lon, lat in named:
            key = name_key(str(name))
            if key in points:
                shared.add(key)
            points[key] = (round(float(lon), 6), round(float(lat), 6))
        return {k: v for k, v in points.items() if k not in shared}

    @cached_property
    def districts(self) -> list[tuple[str, str]]:
        """(id, name) of every district, by name."""
        frame = self.city.districts
        return sorted(zip(frame["district_id"], frame["name"]), key=lambda p: p[1])

    @cached_property
    def district_ids(self) -> frozenset[str]:
        return frozenset(self.city.districts["district_id"])

    @cached_property
    def neighbourhood_district(self) -> dict[str, str]:
        frame = self.city.neighbourhoods
        return dict(zip(frame["neighbourhood_id"], frame["district_id"]))

    @cached_property
    def community_parents(self) -> dict[str, tuple[str, str]]:
        """Community id -> (neighbourhood id, district id)."""
        frame = self.city.communities
        return {c: (n, d) for c, n, d in zip(frame["community_id"], frame["neighbourhood_id"], frame["district_id"])}

    def parent_map(self, level: str) -> dict[str, str]:
        """Community id -> its area at a level (district, neighbourhood or itself)."""
        if level == "community":
            return {c: c for c in self.community_parents}
        index = 0 if level == "neighbourhood" else 1
        return {c: parents[index] for c, parents in self.community_parents.items()}

    def areas_of(self, level: str, district: str | None, neighbourhood: str | None) -> list[str]:
        """Ids of the areas a drilled map shows, in the city's order."""
        frame = self.city.level(level)
        if neighbourhood and level == "community":
            frame = frame[frame["neighbourhood_id"] == neighbourhood]
        elif district and level != "district":
            frame = frame[frame["district_id"] == district]
        return frame[f"{level}_id"].tolist()

    def in_scope(self, community: str, district: str | None, neighbourhood: str | None) -> bool:
        """Whether a community lies in the drilled area (everything when nothing is drilled)."""
        parents = self.community_parents.get(community)
        if parents is None:
            return False
        if neighbourhood:
            return parents[0] == neighbourhood
        return district is None or parents[1] == district

    @cached_property
    def centres(self) -> dict[str, tuple[float, float]]:
        """Area id -> (lon, lat) of a point inside it, over all three levels."""
        out: dict[str, tuple[float, float]] = {}
        for level in LEVELS:
            frame = self.city.level(level)
            points = frame.geometry.representative_point()
            out.update(zip(frame[f"{level}_id"], zip(points.x.round(5), points.y.round(5))))
        return out

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        return self.city.bounds

    def bounds_of(self, district: str | None, neighbourhood: str | None) -> tuple[float, float, float, float]:
        """(min lon, min lat, max lon, max lat) of the drilled area."""
        if neighbourhood:
            frame = self.city.neighbourhoods[self.city.neighbourhoods["neighbourhood_id"] == neighbourhood]
        elif district:
            frame = self.city.districts[self.city.districts["district_id"] == district]
        else:
            return self.bounds
        minx, miny, maxx, maxy = frame.total_bounds
        return float(minx), float(miny), float(maxx), float(maxy)

    @cached_property
    def cells(self) -> list[str]:
        """The H3 cells of the city (hex ids), sorted."""
        return city_cells(self.city, self.h3_resolution)

    def cells_in(self, district: str | None, neighbourhood: str | None) -> frozenset[str]:
        """The H3 cells whose centre lies in the drilled area (the city's cells when nothing is drilled)."""
        if not district:
            return self._city_cells
        key = (district, neighbourhood)
        known = self._area_cells.get(key)
        if known is None:
            if neighbourhood:
                frame = self.city.neighbourhoods[self.city.neighbourhoods["neighbourhood_id"] == neighbourhood]
            else:
                frame = self.city.districts[self.city.districts["district_id"] == district]
            outline = shapely.union_all(frame.geometry.to_numpy())
            found: set[str] = set()
            for polygon in getattr(outline, "geoms", [outline]):
                found.update(h3.geo_to_cells(polygon.__geo_interface__, self.h3_resolution))
            known = self._area_cells[key] = frozenset(found)
        return known

    @cached_property
    def _city_cells(self) -> frozenset[str]:
        return frozenset(self.cells)

    @cached_property
    def _area_cells(self) -> dict[tuple[str, str | None], frozenset[str]]:
        return {}

    @cached_property
    def _cell_centres(self) -> dict[str, tuple[float, float]]:
        return {cell: cell_centre(cell) for cell in self.cells}

    def cell_centre(self, cell: str) -> tuple[float, float] | None:
        """(lon, lat) of an H3 cell's centre (None for 'outside')."""
        known = self._cell_centres.get(cell)
        if known is not None:
            return known
        if not h3.is_valid_cell(cell):
            return None
        # Cells beyond the boundary (points just outside the city) are remembered too: few, and asked often.
        self._cell_centres[cell] = centre = cell_centre(cell)
        return centre

    def cell_points(self, cells: tuple[str, ...]) -> tuple[list[float], list[float], list[int]]:
        """The centres of some H3 cells as lon and lat lists, with the positions of the cells that have one.

        The same cells in the same order come back refresh after refresh (a window's counts keep their
        order), so the last few answers are kept: a map of thousands of cells is then laid out once.
        """
        known = self._cell_layouts.get(cells)
        if known is None:
            lon, lat, kept = [], [], []
            for i, cell in enumerate(cells):
                centre = self.cell_centre(cell)
                if centre is not None:
                    lon.append(centre[0])
                    lat.append(centre[1])
                    kept.append(i)
            known = (lon, lat, kept)
            if len(self._cell_layouts) >= 8:
                self._cell_layouts.pop(next(iter(self._cell_layouts)))
            self._cell_layouts[cells] = known
        return known

    @cached_property
    def _cell_layouts(self) -> dict[tuple[str, ...], tuple[list[float], list[float], list[int]]]:
        return {}

    @cached_property
    def places(self) -> dict[str, dict]:
        """Place id -> name, kind, lon, lat, community, district and capacity."""
        frame = self.city.places
        return {
            row.place_id: {
                "name": row.name,
                "kind": row.kind,
                "lon": float(row.lon),
                "lat": float(row.lat),
                "community_id": row.community_id,
                "district_id": row.district_id,
                "neighbourhood_id": row.neighbourhood_id,
                "capacity": int(row.capacity),
            }
            for row in frame.itertuples(index=False)
        }

    def places_of_kind(self, kind: str) -> list[str]:
        return [pid for pid, p in self.places.items() if p["kind"] == kind]

    def geojson(self, level: str) -> bytes:
        """The simplified GeoJSON of a level, serialised (raises CityError for an unknown level)."""
        return self._geojson[level][0]

    def geojson_etag(self, level: str) -> str:
        return self._geojson[level][1]

    @cached_property
    def _geojson(self) -> dict[str, tuple[bytes, str]]:
        out = {}
        for level in LEVELS:
            collection = self.city.to_geojson(level, self.simplify_m)
            for feature in collection["features"]:
                keep = {k: feature["properties"][k] for k in (f"{level}_id", "name") if k in feature["properties"]}
                feature["properties"] = keep
            body = json.dumps(collection, separators=(",", ":")).encode()
            out[level] = (body, hashlib.sha1(body).hexdigest()[:16])
        return out


def lonlat_arrays(points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Split (lon, lat) pairs into two arrays."""
    if not points:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(points, dtype=np.float64)
    return arr[:, 0], arr[:, 1]
