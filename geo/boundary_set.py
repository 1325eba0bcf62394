"""Load a city from a boundary set: a polygon file per level whose levels need not nest. Each lower area is
put in the upper area it overlaps most, and every area that crossed into another is reported by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.city import (
    LEVELS,
    WGS84,
    City,
    CityError,
    GeometryRepair,
    Level,
    NestingRepair,
    empty_places,
    polygonal_part,
    synthesized_neighbourhood_id,
)
from geo.gcj02 import geometry_gcj02_to_wgs84
from geo.loader import (
    CrsSource,
    LevelFields,
    _as_id_strings,
    _check_properties,
    _checked_geometry,
    _population,
    _read,
    _to_wgs84,
)

__all__ = ["SLIVER_M2", "load_boundary_set"]

# Overlaps smaller than this are the rounding of an edge two files share, not an area that crossed over.
SLIVER_M2 = 1.0
ID_PREFIX = {"district": ("D", 2), "neighbourhood": ("N", 2), "community": ("C", 3)}


@dataclass
class _Areas:
    """One level's areas: a key per area, its name, its polygon (EPSG:4326) and, once put in place, its ids."""

    level: Level
    fields: LevelFields
    keys: list
    names: list[str]
    geometry: np.ndarray
    population: np.ndarray
    ids: list[str] | None = None
    parent: np.ndarray | None = None  # position of each area's upper area


def load_boundary_set(
    district: LevelFields,
    neighbourhood: LevelFields | None = None,
    community: LevelFields | None = None,
    *,
    population: str | None = None,
    crs_source: CrsSource = "wgs84",
    name: str | None = None,
    sliver_m2: float = SLIVER_M2,
) -> City:
    """Load a city whose levels come from their own boundary files (``LevelFields.path``) and need not nest.

    A level with a path has the polygons of that file, features sharing an id (or, without an id property,
    a name) merged into one area. A level without a path has no polygons of its own: it is given by a label
    column (``name``, ``id``) of the nearest lower level that has a file, each area the union of the features
    labelled with it. The finest level given must have a file. Each area is put in the area of the level above
    that it overlaps most (measured in a local metric CRS); an area that overlaps more than one by at least
    ``sliver_m2`` is listed in ``City.nesting``, one that overlaps none raises :class:`CityError`. Upper
    areas that receive nothing are left out. A missing neighbourhood level gives one ``<district_id>-N00`` per
    district (a two-level city); a missing community level, one ``<neighbourhood_id>-C00`` per neighbourhood.
    Without an id property, ids are made from the parent's id and the rank of the name (``D03-N02-C011``).
    """
    if crs_source not in ("wgs84", "gcj02"):
        raise CityError(f"crs_source must be 'wgs84' or 'gcj02', not {crs_source!r}")
    given: list[tuple[Level, LevelFields]] = [
        (level, fields) for level, fields in zip(LEVELS, (district, neighbourhood, community)) if fields is not None
    ]
    finest_level, finest = given[-1]
    if finest.path is None:
        raise CityError(f"the finest level given ({finest_level}) needs a boundary file of its own")

    carrier_of: dict[Level, Path] = {}
    carrier = Path(finest.path)
    for level, fields in reversed(given):
        carrier = Path(fields.path) if fields.path is not None else carrier
        carrier_of[level] = carrier
    finest_path = Path(finest.path)
    features = {
        path: _features(
            path,
            {lv: f for lv, f in given if carrier_of[lv] == path},
            population if path == finest_path else None,
            crs_source,
        )
        for path in dict.fromkeys(carrier_of.values())
    }
    repairs = [r for _, found in features.values() for r in found]

    levels: list[_Areas] = []
    for level, fields in given:
        frame = features[carrier_of[level]][0]
        above = [lv for lv, f in given[: LEVELS.index(level)] if f.path is None and carrier_of[lv] == carrier_of[level]]
        counted = population if (level == finest_level and population) else None
        levels.append(_areas(level, fields, frame, [dict(given)[lv] for lv in above], counted))

    metric = gpd.GeoSeries(levels[-1].geometry, crs=WGS84).estimate_utm_crs()
    _name_ids(levels[0], None)
    nesting: list[NestingRepair] = []
    for upper, lower in zip(levels, levels[1:]):
        lower.parent, crossed = _put_in(lower, upper, metric, sliver_m2)
        _name_ids(lower, upper)
        nesting += [
            NestingRepair(
                level=lower.level,
                area_id=lower.ids[i],
                area_name=lower.names[i],
                upper_level=upper.level,
                assigned_id=upper.ids[lower.parent[i]],
                assigned_name=upper.names[lower.parent[i]],
                overlaps=tuple((upper.ids[u], upper.names[u], m2, share) for u, m2, share in shares),
            )
            for i, shares in crossed
        ]
    return _city(levels, name or Path(finest.path).stem, tuple(repairs), tuple(nesting))


def _features(
    path: Path, levels: dict[Level, LevelFields], population: str | None, crs_source: CrsSource
) -> tuple[gpd.GeoDataFrame, list[GeometryRepair]]:
    """Read one file of the set in EPSG:4326 with polygonal, valid geometry, its mapped properties checked."""
    frame = _read(path, None)
    named = {lv: levels.get(lv) for lv in LEVELS}
    _check_properties(frame, named, population, None, path)
    frame = _to_wgs84(frame, path)
    if crs_source == "gcj02":
        frame = frame.set_geometry(geometry_gcj02_to_wgs84(frame.geometry.to_numpy()), crs=WGS84)
    geometry, repairs = _checked_geometry(frame, named)
    return frame.set_geometry(geometry, crs=WGS84), repairs


def _areas(
    level: Level, fields: LevelFields, frame: gpd.GeoDataFrame, above: list[LevelFields], population: str | None
) -> _Areas:
    """Merge a file's features into one level's areas by their id (or their name under the labels above)."""
    if fields.id is not None:
        keys = list(_as_id_strings(frame[fields.id]))
    else:
        # The same name under two labelled parents is two areas: 東區 of 新竹市 is not 東區 of 嘉義市.
        columns = [frame[f.id if f.id else f.name].astype(str) for f in above] + [frame[fields.name].astype(str)]
        keys = list(zip(*columns, strict=True))
    residents = _population(frame, population)
    groups = pd.Series(range(len(frame))).groupby(pd.Series(keys, dtype=object), sort=False).indices
    shapes = frame.geometry.to_numpy()
    names = frame[fields.name].astype(str).to_numpy()
    order = list(groups)
    return _Areas(
        level=level,
        fields=fields,
        keys=order,
        names=[str(names[groups[k][0]]) for k in order],
        geometry=np.array(
            [
                polygonal_part(shapes[groups[k][0]] if len(groups[k]) == 1 else shapely.union_all(shapes[groups[k]]))
                for k in order
            ],
            dtype=object,
        ),
        population=np.array([int(residents[groups[k]].sum()) for k in order], dtype=np.int64),
    )


def _put_in(
    lower: _Areas, upper: _Areas, metric, sliver_m2: float
) -> tuple[np.ndarray, list[tuple[int, list[tuple[int, float, float]]]]]:
    """Return the upper area each lower area overlaps most, and for each lower area that overlaps more than
    one, its position and every (upper position, overlap in m², share of its own area), largest first."""
    low = gpd.GeoSeries(lower.geometry, crs=WGS84).to_crs(metric).to_numpy()
    up = gpd.GeoSeries(upper.geometry, crs=WGS84).to_crs(metric).to_numpy()
    pairs_low, pairs_up = shapely.STRtree(up).query(low, predicate="intersects")
    shared = shapely.area(shapely.intersection(low[pairs_low], up[pairs_up]))
    keep = shared >= sliver_m2
    pairs_low, pairs_up, shared = pairs_low[keep], pairs_up[keep], shared[keep]
    outside = sorted(set(range(len(low))) - set(pairs_low.tolist()))
    if outside:
        listed = ", ".join(f"{lower.names[i]} ({_key_text(lower, i)})" for i in outside[:5])
        raise CityError(
            f"{len(outside)} {lower.level} area(s) of {lower.fields.path or 'the set'} lie outside every"
            f" {upper.level} of {upper.fields.path or 'the set'}: {listed}"
        )
    parent = np.empty(len(low), dtype=np.int64)
    crossed = []
    own_area = shapely.area(low)
    by_lower = np.argsort(pairs_low, kind="stable")
    starts = np.searchsorted(pairs_low[by_lower], np.arange(len(low) + 1))
    for i in range(len(low)):
        mine = by_lower[starts[i] : starts[i + 1]]
        candidates, areas = pairs_up[mine], shared[mine]
        ranked = np.lexsort((candidates, -areas))  # largest first; a tie goes to the upper area listed first
        parent[i] = candidates[ranked[0]]
        if len(candidates) > 1:
            crossed.append((i, [(int(candidates[k]), float(areas[k]), float(areas[k] / own_area[i])) for k in ranked]))
    return parent, crossed


def _key_text(areas: _Areas, i: int) -> str:
    key = areas.keys[i]
    return " / ".join(key) if isinstance(key, tuple) else str(key)


def _name_ids(areas: _Areas, upper: _Areas | None) -> None:
    """Give each area its id: its id property, or its parent's id and the rank of its name among siblings."""
    if areas.fields.id is not None:
        areas.ids = [str(k) for k in areas.keys]
        return
    prefix, width = ID_PREFIX[areas.level]
    parents = [""] * len(areas.keys) if upper is None else [upper.ids[p] + "-" for p in areas.parent]
    ids = [""] * len(areas.keys)
    siblings: dict[str, list[int]] = {}
    for i, parent in enumerate(parents):
        siblings.setdefault(parent, []).append(i)
    for parent, members in siblings.items():
        for rank, i in enumerate(sorted(members, key=lambda i: (areas.names[i], _key_text(areas, i))), 1):
            ids[i] = f"{parent}{prefix}{rank:0{width}d}"
    areas.ids = ids


def _city(levels: list[_Areas], name: str, repairs: tuple, nesting: tuple) -> City:
    """Build the City from the placed levels, leaving out upper areas nothing was put in."""
    finest = levels[-1]
    # Each finest area's position at every level given; nesting is settled, so one member tells an area's parents.
    at = {finest.level: np.arange(len(finest.ids))}
    for upper, lower in reversed(list(zip(levels, levels[1:]))):
        at[upper.level] = lower.parent[at[lower.level]]
    by_level = {a.level: a for a in levels}

    def frame(level: Level, parents: tuple[Level, ...] = ()) -> gpd.GeoDataFrame:
        areas = by_level[level]
        rows, member = np.unique(at[level], return_index=True)
        data = {f"{level}_id": [areas.ids[r] for r in rows], "name": [areas.names[r] for r in rows]}
        for upper in parents:
            data[f"{upper}_id"] = [by_level[upper].ids[at[upper][m]] for m in member]
        data["population"] = areas.population[rows] if areas is finest else 0
        return gpd.GeoDataFrame(data, geometry=list(areas.geometry[rows]), crs=WGS84)

    districts = frame("district")
    if finest.level == "district":
        communities = districts.assign(
            community_id=[f"{synthesized_neighbourhood_id(d)}-C00" for d in districts["district_id"]]
        )
        return City.two_level(name, districts.drop(columns="population"), communities, repairs=repairs, nesting=nesting)
    if "neighbourhood" not in by_level:
        communities = frame("community", ("district",))
        return City.two_level(name, districts.drop(columns="population"), communities, repairs=repairs, nesting=nesting)
    neighbourhoods = frame("neighbourhood", ("district",))
    if finest.level == "neighbourhood":
        communities = neighbourhoods.assign(community_id=neighbourhoods["neighbourhood_id"] + "-C00")
    else:
        communities = frame("community", ("neighbourhood", "district"))
    return City(
        name,
        districts.drop(columns="population"),
        neighbourhoods.drop(columns="population"),
        communities[["community_id", "name", "neighbourhood_id", "district_id", "population", "geometry"]],
        empty_places(),
        repairs,
        nesting,
    )
