"""Load a user's own city from a GeoJSON or GeoPackage file and a mapping of its property names."""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.city import (
    WGS84,
    City,
    CityError,
    GeometryRepair,
    empty_places,
    polygonal_part,
    synthesized_neighbourhood_id,
)
from geo.gcj02 import geometry_gcj02_to_wgs84

__all__ = ["LevelFields", "load_city"]

CrsSource = Literal["wgs84", "gcj02"]


@dataclass(frozen=True)
class LevelFields:
    """Which feature properties hold one level's name and, optionally, its stable id.

    Without ``id`` the level's ids are made from its parent's id and the rank of the name
    (``D03``, ``D03-N02``, ``D03-N02-C011``), stable for a given file. ``path`` gives the level a
    boundary file of its own (see ``geo.boundary_set``); ``load_city`` reads every level from one file.
    """

    name: str
    id: str | None = None
    path: str | PathLike[str] | None = None


def load_city(
    path: str | PathLike[str],
    *,
    district: str | LevelFields,
    neighbourhood: str | LevelFields | None = None,
    community: str | LevelFields | None = None,
    population: str | None = None,
    city_name_field: str | None = None,
    crs_source: CrsSource = "wgs84",
    name: str | None = None,
    layer: str | None = None,
) -> City:
    """Load a city from a GeoJSON or GeoPackage whose features are its finest level.

    Each level argument names the properties that hold that level (a plain string is the
    name property). Levels above the finest are dissolved from it. Without a neighbourhood
    level each district gets one neighbourhood ``<district_id>-N00``; without a community
    level (a file of districts) each neighbourhood is also its own single community
    ``<neighbourhood_id>-C00``. ``crs_source="gcj02"`` says the lon/lat values are GCJ-02
    whatever CRS the file declares. Invalid polygons are repaired with ``shapely.make_valid``
    and listed in ``City.repairs``; features that cannot be used raise :class:`CityError`.
    """
    if crs_source not in ("wgs84", "gcj02"):
        raise CityError(f"crs_source must be 'wgs84' or 'gcj02', not {crs_source!r}")
    path = Path(path)
    own = [f for f in (district, neighbourhood, community) if isinstance(f, LevelFields) and f.path is not None]
    if own:
        raise CityError(
            f"load_city reads every level from {path}; a level with a file of its own ({own[0].path}) needs load_boundary_set"
        )
    levels = {
        "district": _fields(district),
        "neighbourhood": _fields(neighbourhood),
        "community": _fields(community),
    }
    features = _read(path, layer)
    _check_properties(features, levels, population, city_name_field, path)
    features = _to_wgs84(features, path)
    if crs_source == "gcj02":
        features = features.set_geometry(geometry_gcj02_to_wgs84(features.geometry.to_numpy()), crs=WGS84)
    geometry, repairs = _checked_geometry(features, levels)

    district_ids = _level_ids(features, levels["district"], parent=None, prefix="D", width=2)
    if levels["neighbourhood"] is None:
        neighbourhood_ids = pd.Series([synthesized_neighbourhood_id(d) for d in district_ids], index=features.index)
    else:
        neighbourhood_ids = _level_ids(features, levels["neighbourhood"], parent=district_ids, prefix="N", width=2)
    if levels["community"] is None:
        community_ids = neighbourhood_ids + "-C00"
    else:
        community_ids = _level_ids(features, levels["community"], parent=neighbourhood_ids, prefix="C", width=3)

    finest = gpd.GeoDataFrame(
        {
            "community_id": community_ids,
            "community_name": _names(features, levels, "community"),
            "neighbourhood_id": neighbourhood_ids,
            "neighbourhood_name": _names(features, levels, "neighbourhood"),
            "district_id": district_ids,
            "district_name": features[levels["district"].name].astype(str),
            "population": _population(features, population),
        },
        geometry=geometry,
        crs=WGS84,
    )
    _check_nesting(finest, "community_id", "neighbourhood_id")
    _check_nesting(finest, "neighbourhood_id", "district_id")

    communities = _dissolve(
        finest, "community_id", {"name": "community_name", "neighbourhood_id": None, "district_id": None}
    )
    communities["population"] = finest.groupby("community_id", sort=False)["population"].sum().to_numpy()
    neighbourhoods = _dissolve(finest, "neighbourhood_id", {"name": "neighbourhood_name", "district_id": None})
    districts = _dissolve(finest, "district_id", {"name": "district_name"})
    return City(
        name=name or _city_name(features, city_name_field, path),
        districts=districts,
        neighbourhoods=neighbourhoods,
        communities=communities[["community_id", "name", "neighbourhood_id", "district_id", "population", "geometry"]],
        places=empty_places(),
        repairs=tuple(repairs),
    )


def _fields(level: str | LevelFields | None) -> LevelFields | None:
    """Normalise a level argument to LevelFields."""
    return LevelFields(name=level) if isinstance(level, str) else level


def _read(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    """Read the features of a GeoJSON or GeoPackage file."""
    if not path.exists():
        raise CityError(f"{path}: no such file")
    try:
        features = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as error:  # pyogrio raises several unrelated types for unreadable files
        raise CityError(f"{path}: cannot read boundaries ({error})") from error
    if features.empty:
        raise CityError(f"{path}: the file has no features")
    return features.reset_index(drop=True)


def _check_properties(
    features: gpd.GeoDataFrame,
    levels: dict[str, LevelFields | None],
    population: str | None,
    city_name_field: str | None,
    path: Path,
) -> None:
    """Raise CityError naming the first feature that lacks a mapped property."""
    wanted = [f for fields in levels.values() if fields for f in (fields.name, fields.id) if f]
    wanted += [f for f in (population, city_name_field) if f]
    absent = [f for f in wanted if f not in features.columns]
    if absent:
        raise CityError(
            f"{path}: no feature has the property {absent[0]!r} (properties: {list(features.columns.drop(features.geometry.name))})"
        )
    for fields in levels.values():
        for prop in (fields.name, fields.id) if fields else ():
            if prop is None:
                continue
            values = features[prop]
            missing = values.isna() | (values.astype(str).str.strip() == "")
            if missing.any():
                first = int(np.flatnonzero(missing.to_numpy())[0])
                raise CityError(
                    f"{path}: {_label(features, first, levels)} has no value for the property {prop!r}"
                    f" ({int(missing.sum())} feature(s) in all)"
                )


def _label(features: gpd.GeoDataFrame, row: int, levels: dict[str, LevelFields | None]) -> str:
    """Describe a feature by its position and whatever mapped properties it has."""
    known = []
    for fields in levels.values():
        for prop in (fields.id, fields.name) if fields else ():
            if prop and prop in features.columns and pd.notna(features.at[row, prop]):
                known.append(f"{prop}={features.at[row, prop]!r}")
    return f"feature #{row}" + (f" ({', '.join(known)})" if known else "")


def _to_wgs84(features: gpd.GeoDataFrame, path: Path) -> gpd.GeoDataFrame:
    """Reproject to EPSG:4326, assuming WGS-84 for a CRS-less file only if it fits lon/lat ranges."""
    if features.crs is None:
        minx, miny, maxx, maxy = features.total_bounds
        if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
            raise CityError(
                f"{path}: the file declares no CRS and its bounds ({minx:.6g}, {miny:.6g}, {maxx:.6g}, {maxy:.6g})"
                " are not lon/lat; write the CRS into the file"
            )
        return features.set_crs(WGS84)
    if features.crs.equals(WGS84):
        return features
    return features.to_crs(WGS84)


def _checked_geometry(
    features: gpd.GeoDataFrame, levels: dict[str, LevelFields | None]
) -> tuple[np.ndarray, list[GeometryRepair]]:
    """Return polygonal geometry per feature, repairing invalid ones and raising on unusable ones."""
    geometry = features.geometry.to_numpy().copy()
    repairs = []
    for row, shape in enumerate(geometry):
        if shape is None or shape.is_empty:
            raise CityError(f"{_label(features, row, levels)} has an empty geometry")
        polygonal = polygonal_part(shape)
        if polygonal.is_empty:
            raise CityError(f"{_label(features, row, levels)} has a non-polygonal geometry ({shape.geom_type})")
        if polygonal.is_valid:
            geometry[row] = polygonal
            continue
        reason = shapely.is_valid_reason(polygonal)
        repaired = polygonal_part(shapely.make_valid(polygonal))
        if repaired.is_empty or repaired.area == 0:
            raise CityError(
                f"{_label(features, row, levels)} has an invalid geometry that repairs to nothing ({reason})"
            )
        geometry[row] = repaired
        repairs.append(GeometryRepair(feature=_label(features, row, levels), reason=reason))
    return geometry, repairs


def _level_ids(
    features: gpd.GeoDataFrame, fields: LevelFields, *, parent: pd.Series | None, prefix: str, width: int
) -> pd.Series:
    """Return each feature's id at one level, from its id property or made from parent and name rank."""
    if fields.id is not None:
        return _as_id_strings(features[fields.id])
    names = features[fields.name].astype(str)
    parents = pd.Series("", index=features.index) if parent is None else parent
    ids = pd.Series("", index=features.index, dtype=object)
    for parent_id, group in names.groupby(parents, sort=True):
        ranks = {n: k + 1 for k, n in enumerate(sorted(set(group)))}
        stem = f"{parent_id}-" if parent_id else ""
        ids[group.index] = [f"{stem}{prefix}{ranks[n]:0{width}d}" for n in group]
    return ids.astype(str)


def _as_id_strings(values: pd.Series) -> pd.Series:
    """Turn id property values into strings, whole floats without a trailing '.0'."""
    if pd.api.types.is_float_dtype(values) and np.all(np.mod(values.to_numpy(), 1) == 0):
        values = values.astype(np.int64)
    return values.astype(str).str.strip()


def _names(features: gpd.GeoDataFrame, levels: dict[str, LevelFields | None], level: str) -> pd.Series:
    """Return each feature's name at a level, borrowing the nearest mapped parent's for a missing level."""
    chain = ("community", "neighbourhood", "district")
    fields = next(levels[c] for c in chain[chain.index(level) :] if levels[c] is not None)
    return features[fields.name].astype(str)


def _population(features: gpd.GeoDataFrame, population: str | None) -> np.ndarray:
    """Return residents per feature from the population property, or zeros."""
    if population is None:
        return np.zeros(len(features), dtype=np.int64)
    values = pd.to_numeric(features[population], errors="coerce")
    return values.fillna(0).round().astype(np.int64).to_numpy()


def _check_nesting(finest: gpd.GeoDataFrame, child: str, parent: str) -> None:
    """Raise CityError when one area id falls under two different parents."""
    parents = finest.groupby(child, sort=False)[parent].nunique()
    split = parents[parents > 1]
    if not split.empty:
        area = split.index[0]
        found = sorted(finest.loc[finest[child] == area, parent].unique())
        raise CityError(f"{child} {area!r} lies in more than one {parent.removesuffix('_id')}: {found}")


def _dissolve(finest: gpd.GeoDataFrame, key: str, columns: dict[str, str | None]) -> gpd.GeoDataFrame:
    """Merge features that share an id into one area per id, in order of first appearance."""
    positions = finest.groupby(key, sort=False).indices
    area_ids = pd.unique(finest[key].to_numpy())
    shapes = finest.geometry.to_numpy()
    merged = [
        shapes[positions[a][0]] if len(positions[a]) == 1 else shapely.union_all(shapes[positions[a]]) for a in area_ids
    ]
    first = finest.iloc[[positions[a][0] for a in area_ids]]
    frame = pd.DataFrame({key: area_ids})
    for column, source in columns.items():
        frame[column] = first[source or column].to_numpy()
    return gpd.GeoDataFrame(frame, geometry=[polygonal_part(g) for g in merged], crs=WGS84)


def _city_name(features: gpd.GeoDataFrame, city_name_field: str | None, path: Path) -> str:
    """Name the city from its property (the most common value) or else from the file name."""
    if city_name_field is not None:
        return str(features[city_name_field].mode().iloc[0])
    return path.stem
