"""The city model: districts, neighbourhoods and communities as nested polygons, plus places."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

__all__ = [
    "COMMUNITY_COLUMNS",
    "DISTRICT_COLUMNS",
    "LEVELS",
    "NEIGHBOURHOOD_COLUMNS",
    "NestingRepair",
    "PLACE_COLUMNS",
    "City",
    "CityError",
    "GeometryRepair",
    "Level",
    "empty_places",
    "polygonal_part",
    "synthesized_neighbourhood_id",
]

Level = Literal["district", "neighbourhood", "community"]
LEVELS: tuple[Level, ...] = ("district", "neighbourhood", "community")

DISTRICT_COLUMNS = ("district_id", "name")
NEIGHBOURHOOD_COLUMNS = ("neighbourhood_id", "name", "district_id")
COMMUNITY_COLUMNS = ("community_id", "name", "neighbourhood_id", "district_id", "population")
PLACE_COLUMNS = (
    "place_id",
    "kind",
    "category",
    "name",
    "lon",
    "lat",
    "community_id",
    "neighbourhood_id",
    "district_id",
    "capacity",
)

WGS84 = "EPSG:4326"

# 1e-6 degrees is about 0.1 m: finer than any boundary we draw, and it shortens the JSON.
_GEOJSON_DECIMALS = 6


class CityError(ValueError):
    """A city cannot be built from the given boundaries."""


@dataclass(frozen=True)
class GeometryRepair:
    """One source feature whose invalid geometry was repaired with ``shapely.make_valid``."""

    feature: str
    reason: str


@dataclass(frozen=True)
class NestingRepair:
    """A lower area whose polygon overlaps more than one upper area, and the one it was put in: the one it
    overlaps most.

    ``overlaps`` holds ``(upper_id, upper_name, area_m2, share)`` for every upper area it overlaps by at
    least the sliver tolerance, largest first: the area of the lower area inside that upper one (in a local
    metric CRS) and the part of the lower area's own area that is.
    """

    level: Level
    area_id: str
    area_name: str
    upper_level: Level
    assigned_id: str
    assigned_name: str
    overlaps: tuple[tuple[str, str, float, float], ...]

    def __str__(self) -> str:
        shares = "; ".join(
            f"{name} ({upper_id}) {m2:,.0f} m² ({share:.2%})" for upper_id, name, m2, share in self.overlaps
        )
        return (
            f"{self.level} {self.area_name} ({self.area_id}) overlaps {len(self.overlaps)} {self.upper_level}s:"
            f" {shares}; put in {self.assigned_name} ({self.assigned_id})"
        )


def synthesized_neighbourhood_id(district_id: str) -> str:
    """Return the id of the single neighbourhood made up for a district that has none."""
    return f"{district_id}-N00"


def polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """Return only the polygons of a geometry, as a Polygon or MultiPolygon (maybe empty)."""
    if geometry is None or geometry.is_empty:
        return shapely.Polygon()
    if isinstance(geometry, shapely.Polygon | shapely.MultiPolygon):
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if isinstance(p, shapely.Polygon | shapely.MultiPolygon)]
    polygons = [q for p in parts for q in shapely.get_parts(p)]
    if not polygons:
        return shapely.Polygon()
    return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)


def empty_places() -> pd.DataFrame:
    """Return a places frame with the right columns and no rows."""
    return pd.DataFrame(
        {
            "place_id": pd.Series(dtype=str),
            "kind": pd.Series(dtype=str),
            "category": pd.Series(dtype=str),
            "name": pd.Series(dtype=str),
            "lon": pd.Series(dtype=np.float64),
            "lat": pd.Series(dtype=np.float64),
            "community_id": pd.Series(dtype=str),
            "neighbourhood_id": pd.Series(dtype=str),
            "district_id": pd.Series(dtype=str),
            "capacity": pd.Series(dtype=np.int64),
        }
    )


@dataclass(frozen=True, eq=False)
class City:
    """A city as three nested levels of polygons in EPSG:4326, plus the places in it.

    Every community lies in exactly one neighbourhood and every neighbourhood in exactly one
    district; ids are stable strings such as ``D-FT``, ``D-FT-N03``, ``D-FT-N03-C07``.
    A city whose source has no neighbourhood level gets one neighbourhood per district with
    id ``<district_id>-N00`` (see :meth:`two_level`). ``repairs`` lists the source features
    whose geometry was repaired when the city was loaded; ``nesting`` the areas of a boundary set whose
    levels did not nest, and where each was put.
    """

    name: str
    districts: gpd.GeoDataFrame
    neighbourhoods: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    places: pd.DataFrame = field(default_factory=empty_places)
    repairs: tuple[GeometryRepair, ...] = ()
    nesting: tuple[NestingRepair, ...] = ()

    def __post_init__(self) -> None:
        self._check_columns()
        self._check_hierarchy()

    @classmethod
    def two_level(
        cls,
        name: str,
        districts: gpd.GeoDataFrame,
        communities: gpd.GeoDataFrame,
        places: pd.DataFrame | None = None,
        repairs: tuple[GeometryRepair, ...] = (),
        nesting: tuple[NestingRepair, ...] = (),
    ) -> City:
        """Build a city from districts and communities, one ``<district_id>-N00`` neighbourhood per district.

        ``communities`` needs ``community_id``, ``name``, ``district_id``, ``population`` and
        geometry; its ``neighbourhood_id`` is set to the synthesized neighbourhood.
        """
        neighbourhoods = gpd.GeoDataFrame(
            {
                "neighbourhood_id": [synthesized_neighbourhood_id(d) for d in districts["district_id"]],
                "name": districts["name"].to_numpy(),
                "district_id": districts["district_id"].to_numpy(),
            },
            geometry=districts.geometry.to_numpy(),
            crs=districts.crs,
        )
        communities = communities.copy()
        communities["neighbourhood_id"] = [synthesized_neighbourhood_id(d) for d in communities["district_id"]]
        communities = communities[[*COMMUNITY_COLUMNS, "geometry"]]
        return cls(
            name=name,
            districts=districts,
            neighbourhoods=neighbourhoods,
            communities=communities,
            places=empty_places() if places is None else places,
            repairs=repairs,
            nesting=nesting,
        )

    def _check_columns(self) -> None:
        """Raise CityError when a frame lacks a column, is not in EPSG:4326 or repeats an id."""
        frames = {
            "district": (self.districts, DISTRICT_COLUMNS),
            "neighbourhood": (self.neighbourhoods, NEIGHBOURHOOD_COLUMNS),
            "community": (self.communities, COMMUNITY_COLUMNS),
        }
        for level, (frame, columns) in frames.items():
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise CityError(f"{level} frame lacks column(s) {missing}")
            if frame.crs is None or not frame.crs.equals(WGS84):
                raise CityError(f"{level} frame must be in {WGS84}, not {frame.crs}")
            ids = frame[f"{level}_id"]
            if ids.duplicated().any():
                raise CityError(f"{level} ids are not unique: {sorted(set(ids[ids.duplicated()]))[:5]}")
        missing = [c for c in PLACE_COLUMNS if c not in self.places.columns]
        if missing:
            raise CityError(f"places frame lacks column(s) {missing}")

    def _check_hierarchy(self) -> None:
        """Raise CityError when a child names a parent that does not exist or disagrees with it."""
        district_ids = set(self.districts["district_id"])
        orphans = set(self.neighbourhoods["district_id"]) - district_ids
        if orphans:
            raise CityError(f"neighbourhoods name unknown districts {sorted(orphans)[:5]}")
        parent = dict(zip(self.neighbourhoods["neighbourhood_id"], self.neighbourhoods["district_id"], strict=True))
        for community_id, neighbourhood_id, district_id in zip(
            self.communities["community_id"],
            self.communities["neighbourhood_id"],
            self.communities["district_id"],
            strict=True,
        ):
            if parent.get(neighbourhood_id) != district_id:
                raise CityError(
                    f"community {community_id} names neighbourhood {neighbourhood_id} and district "
                    f"{district_id}, which do not nest"
                )

    @property
    def community_ids(self) -> np.ndarray:
        """Return community ids in row order, the order placement indexes refer to."""
        return self.communities["community_id"].to_numpy(dtype=object)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Return (min_lon, min_lat, max_lon, max_lat) of the whole city."""
        minx, miny, maxx, maxy = self.communities.total_bounds
        return float(minx), float(miny), float(maxx), float(maxy)

    @cached_property
    def _neighbourhood_of_community(self) -> dict[str, str]:
        return dict(zip(self.communities["community_id"], self.communities["neighbourhood_id"], strict=True))

    @cached_property
    def _district_of_area(self) -> dict[str, str]:
        districts = dict(zip(self.communities["community_id"], self.communities["district_id"], strict=True))
        districts.update(zip(self.neighbourhoods["neighbourhood_id"], self.neighbourhoods["district_id"], strict=True))
        districts.update((d, d) for d in self.districts["district_id"])
        return districts

    def neighbourhood_of(self, community_id: str) -> str:
        """Return the neighbourhood id a community belongs to."""
        try:
            return self._neighbourhood_of_community[community_id]
        except KeyError:
            raise CityError(f"unknown community {community_id!r}") from None

    def district_of(self, area_id: str) -> str:
        """Return the district id of a community, neighbourhood or district id."""
        try:
            return self._district_of_area[area_id]
        except KeyError:
            raise CityError(f"unknown area {area_id!r}") from None

    def level(self, level: Level) -> gpd.GeoDataFrame:
        """Return the frame of one level: district, neighbourhood or community."""
        frames = {"district": self.districts, "neighbourhood": self.neighbourhoods, "community": self.communities}
        if level not in frames:
            raise CityError(f"unknown level {level!r}; expected one of {LEVELS}")
        return frames[level]

    def population(self, level: Level) -> pd.Series:
        """Return residents per area of a level, indexed by its id, in the level's row order."""
        frame = self.level(level)
        key = f"{level}_id"
        totals = self.communities.groupby(key, sort=False)["population"].sum()
        return totals.reindex(frame[key]).fillna(0).astype(np.int64)

    def to_geojson(self, level: Level, simplify_tolerance_m: float | None = None) -> dict[str, Any]:
        """Return a level as a GeoJSON FeatureCollection, ids in ``feature.id`` and properties.

        With ``simplify_tolerance_m`` the polygons are simplified together in a local metric
        CRS, so neighbours keep sharing their edges (no slivers in a choropleth).
        """
        frame = self.level(level)
        geometries = frame.geometry.to_numpy()
        if simplify_tolerance_m:
            geometries = _simplified(frame.geometry, simplify_tolerance_m)
        geometries = shapely.transform(geometries, lambda xy: np.round(xy, _GEOJSON_DECIMALS))
        properties = frame.drop(columns=frame.geometry.name).copy()
        properties["population"] = self.population(level).to_numpy()
        records = properties.to_dict(orient="records")
        key = f"{level}_id"
        features = [
            {
                "type": "Feature",
                "id": record[key],
                "properties": {k: _json_scalar(v) for k, v in record.items()},
                "geometry": shapely.geometry.mapping(geometry),
            }
            for record, geometry in zip(records, geometries, strict=True)
        ]
        return {"type": "FeatureCollection", "features": features}


def _json_scalar(value: Any) -> Any:
    """Return a JSON-native version of a numpy or pandas scalar."""
    return value.item() if isinstance(value, np.generic) else value


def _simplified(geometry: gpd.GeoSeries, tolerance_m: float) -> np.ndarray:
    """Simplify polygons as one coverage in a local UTM CRS and return them in EPSG:4326."""
    metric_crs = geometry.estimate_utm_crs()
    metric = geometry.to_crs(metric_crs).to_numpy()
    if shapely.coverage_is_valid(metric):
        simplified = shapely.coverage_simplify(metric, tolerance_m)
    else:
        # Overlapping or unmatched edges break coverage simplification; fall back to shapes
        # simplified one by one, which can open hairline gaps but never fails.
        simplified = shapely.simplify(metric, tolerance_m, preserve_topology=True)
    return gpd.GeoSeries(simplified, crs=metric_crs).to_crs(WGS84).to_numpy()
