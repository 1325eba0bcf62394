"""Generate the demo city: a deterministic Shenzhen-like city grown from its real district centres."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from geo.city import WGS84, City, polygonal_part

__all__ = ["demo_city"]

# UTM 50N: metric work (areas, spacing, Voronoi) happens here, WGS-84 only at the end.
METRIC_CRS = "EPSG:32650"

# Shenzhen's land outline, simplified to ~1.5 km from the DataV district boundaries
# (GCJ-02, converted to WGS-84). Lon, lat.
OUTLINE_LONLAT = (
    (113.972, 22.514), (113.877, 22.450), (113.852, 22.543), (113.830, 22.543),
    (113.748, 22.701), (113.795, 22.787), (113.832, 22.804), (113.837, 22.837),
    (113.886, 22.865), (113.925, 22.845), (113.986, 22.803), (113.998, 22.766),
    (114.044, 22.775), (114.140, 22.717), (114.163, 22.682), (114.168, 22.657),
    (114.211, 22.738), (114.174, 22.782), (114.221, 22.816), (114.247, 22.784),
    (114.280, 22.811), (114.343, 22.812), (114.351, 22.768), (114.384, 22.760),
    (114.400, 22.784), (114.418, 22.764), (114.399, 22.725), (114.440, 22.695),
    (114.427, 22.664), (114.598, 22.658), (114.554, 22.579), (114.610, 22.548),
    (114.624, 22.512), (114.527, 22.446), (114.485, 22.446), (114.463, 22.536),
    (114.422, 22.591), (114.384, 22.606), (114.228, 22.543), (114.161, 22.562),
    (114.052, 22.502),
)  # fmt: skip


@dataclass(frozen=True)
class _DistrictSpec:
    code: str
    name: str
    lon: float
    lat: float
    population: int
    communities: int
    neighbourhoods: tuple[str, ...]


# Centres are the area centroids of the real districts (DataV GeoAtlas, GCJ-02 converted to
# WGS-84); Dapeng, which that source folds into Longgang, is placed at its own centroid.
# Populations are the 2020 census (≈ 17.5 M in all). Neighbourhoods are the real subdistricts
# (jiedao). Community counts follow the real ones loosely, so the dense centre gets small
# communities and the outer districts large ones.
_DISTRICTS = (
    _DistrictSpec("FT", "Futian", 114.0415, 22.5462, 1_553_225, 92, (
        "Yuanling", "Nanyuan", "Shatou", "Xiangmihu", "Futian",
        "Huafu", "Meilin", "Huaqiangbei", "Lianhua", "Futianbao",
    )),
    _DistrictSpec("LU", "Luohu", 114.1431, 22.5776, 1_143_801, 83, (
        "Guiyuan", "Huangbei", "Dongmen", "Cuizhu", "Nanhu",
        "Sungang", "Dongxiao", "Donghu", "Liantang", "Qingshuihe",
    )),
    _DistrictSpec("NS", "Nanshan", 113.9357, 22.5486, 1_795_826, 90, (
        "Nantou", "Nanshan", "Shahe", "Shekou", "Zhaoshang", "Yuehai", "Taoyuan", "Xili",
    )),
    _DistrictSpec("YT", "Yantian", 114.2703, 22.5965, 214_225, 24, (
        "Meisha", "Yantian", "Shatoujiao", "Haishan",
    )),
    _DistrictSpec("BA", "Bao'an", 113.8514, 22.6792, 4_476_554, 110, (
        "Xin'an", "Xixiang", "Hangcheng", "Fuyong", "Fuhai",
        "Shajing", "Xinqiao", "Songgang", "Yanluo", "Shiyan",
    )),
    _DistrictSpec("LG", "Longgang", 114.2070, 22.6958, 3_979_037, 100, (
        "Pinghu", "Buji", "Bantian", "Nanwan", "Henggang", "Longgang",
        "Longcheng", "Baolong", "Jihua", "Yuanshan", "Pingdi",
    )),
    _DistrictSpec("LH", "Longhua", 114.0297, 22.6869, 2_528_872, 56, (
        "Guanhu", "Minzhi", "Dalang", "Longhua", "Fucheng", "Guanlan",
    )),
    _DistrictSpec("PS", "Pingshan", 114.3569, 22.6910, 551_333, 32, (
        "Pingshan", "Kengzi", "Shijing", "Longtian", "Biling", "Maluan",
    )),
    _DistrictSpec("GM", "Guangming", 113.9264, 22.7662, 1_095_289, 32, (
        "Guangming", "Gongming", "Xinhu", "Fenghuang", "Yutang", "Matian",
    )),
    _DistrictSpec("DP", "Dapeng", 114.4900, 22.5900, 156_236, 24, (
        "Dapeng", "Kuichong", "Nan'ao",
    )),
)  # fmt: skip

# Futian's centre: community density falls off with distance from it.
_CITY_CENTRE_LONLAT = (114.0415, 22.5462)
_DENSITY_FALLOFF_M = 12_000.0

# Rough real metro alignments through the centre (lon, lat anchors); stations are spaced
# evenly along them.
_METRO_LINES = (
    ("1", ((114.118, 22.532), (114.050, 22.535), (113.930, 22.520), (113.880, 22.560), (113.830, 22.650))),
    ("3", ((114.060, 22.520), (114.120, 22.550), (114.120, 22.600), (114.210, 22.650), (114.270, 22.730))),
    ("4", ((114.070, 22.510), (114.030, 22.610), (114.020, 22.660), (114.040, 22.730))),
    ("6", ((114.030, 22.610), (113.930, 22.750), (113.850, 22.800))),
    ("8", ((114.130, 22.550), (114.240, 22.560), (114.300, 22.600), (114.450, 22.600))),
    ("11", ((114.050, 22.530), (113.900, 22.540), (113.860, 22.580), (113.820, 22.640), (113.830, 22.760))),
    ("14", ((114.070, 22.550), (114.120, 22.610), (114.250, 22.700), (114.350, 22.690), (114.400, 22.720))),
)
_METRO_STATIONS = 150

# kind -> (how many, capacity range in people present at once)
_PLACE_KINDS = {
    "mall": (80, (3_000, 20_000)),
    "park": (60, (1_000, 30_000)),
    "hospital": (40, (500, 4_000)),
    "school": (200, (600, 3_000)),
}
_METRO_CAPACITY = (1_500, 8_000)
_DISTRICT_SERVICE_CENTER_CAPACITY = (300, 800)
_NEIGHBOURHOOD_SERVICE_CENTER_CAPACITY = (60, 250)

_VENUES = 2_400
# category -> (share of venues, capacity range)
_VENUE_CATEGORIES = {
    "restaurant": (0.30, (30, 250)),
    "supermarket": (0.10, (100, 600)),
    "office": (0.15, (200, 3_000)),
    "gym": (0.06, (50, 300)),
    "cinema": (0.03, (200, 1_200)),
    "clinic": (0.08, (20, 120)),
    "market": (0.06, (100, 800)),
    "cafe": (0.10, (20, 80)),
    "hotel": (0.06, (100, 1_000)),
    "bank": (0.06, (20, 80)),
}

_COMMUNITY_SUFFIXES = (
    "Garden", "Lake", "Hill", "Bay", "Village", "Park", "Harbour", "Grove", "Terrace",
    "Square", "Court", "Heights", "Riverside", "Orchard", "Meadow", "Bridge", "Gate",
    "Pine", "Bamboo", "Lotus", "Jade", "Pearl", "Spring", "Crescent", "Plaza", "Cloud",
    "Phoenix", "Lychee", "Banyan", "Sunrise",
)  # fmt: skip

_KIND_CODES = {
    "metro_station": "MTR",
    "mall": "MAL",
    "park": "PRK",
    "hospital": "HOS",
    "school": "SCH",
    "venue": "VEN",
}


def demo_city(seed: int = 7) -> City:
    """Generate the demo city; the same seed always gives the same city."""
    rng = np.random.default_rng(seed)
    to_metric = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
    outline = shapely.transform(shapely.Polygon(OUTLINE_LONLAT), to_metric.transform, interleaved=False)
    centre = np.array(to_metric.transform(*_CITY_CENTRE_LONLAT))
    district_seeds = np.column_stack(to_metric.transform([d.lon for d in _DISTRICTS], [d.lat for d in _DISTRICTS]))

    district_shapes = _voronoi_cells(district_seeds, outline)
    district_rows, neighbourhood_rows, community_rows = [], [], []
    for spec, district_shape in zip(_DISTRICTS, district_shapes, strict=True):
        district_id = f"D-{spec.code}"
        district_rows.append((district_id, spec.name, district_shape))
        nb_seeds = _spread_seeds(district_shape, len(spec.neighbourhoods), rng, centre=None, lloyd_rounds=3)
        nb_shapes = _voronoi_cells(nb_seeds, district_shape)
        nb_counts = _apportion(spec.communities, shapely.area(nb_shapes), minimum=3)
        district_communities = []
        for n, (nb_name, nb_shape, count) in enumerate(zip(spec.neighbourhoods, nb_shapes, nb_counts, strict=True)):
            neighbourhood_id = f"{district_id}-N{n + 1:02d}"
            neighbourhood_rows.append((neighbourhood_id, nb_name, district_id, nb_shape))
            seeds = _spread_seeds(nb_shape, count, rng, centre=centre, lloyd_rounds=1)
            shapes = _voronoi_cells(seeds, nb_shape)
            names = _community_names(nb_name, count, rng)
            for c, (shape, name) in enumerate(zip(shapes, names, strict=True)):
                district_communities.append(
                    [f"{neighbourhood_id}-C{c + 1:02d}", name, neighbourhood_id, district_id, shape]
                )
        areas = shapely.area([row[-1] for row in district_communities])
        distance = shapely.distance(shapely.centroid([row[-1] for row in district_communities]), shapely.Point(centre))
        weight = areas * np.exp(-distance / _DENSITY_FALLOFF_M) * rng.lognormal(0.0, 0.35, len(areas))
        populations = _apportion(spec.population, weight, minimum=500)
        for row, population in zip(district_communities, populations, strict=True):
            community_rows.append((*row[:4], int(population), row[4]))

    community_rows, neighbourhood_rows, district_rows = _as_coverage(community_rows, neighbourhood_rows, district_rows)
    to_wgs84 = Transformer.from_crs(METRIC_CRS, WGS84, always_xy=True)
    districts = _frame(["district_id", "name"], district_rows, to_wgs84)
    neighbourhoods = _frame(["neighbourhood_id", "name", "district_id"], neighbourhood_rows, to_wgs84)
    communities = _frame(
        ["community_id", "name", "neighbourhood_id", "district_id", "population"], community_rows, to_wgs84
    )
    places = _places(communities, neighbourhoods, districts, outline, to_wgs84, rng)
    return City(
        name="Shenzhen (demo)",
        districts=districts,
        neighbourhoods=neighbourhoods,
        communities=communities,
        places=places,
    )


def _as_coverage(
    community_rows: list[tuple], neighbourhood_rows: list[tuple], district_rows: list[tuple]
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """Rebuild every level from one set of noded faces, so neighbours share identical edges.

    Clipping Voronoi cells level by level leaves hairline overlaps and gaps along
    neighbourhood edges; rebuilding from common faces makes the communities an exact
    coverage and each parent exactly the union of its children.
    """
    shapes = np.array([row[-1] for row in community_rows], dtype=object)
    edges = shapely.get_parts(shapely.union_all(shapely.boundary(shapes)))
    faces = shapely.get_parts(shapely.polygonize(edges))
    tree = shapely.STRtree(shapes)
    face_idx, community_idx = tree.query(shapely.point_on_surface(faces), predicate="within")
    owner = np.full(len(faces), len(shapes), dtype=np.int64)
    np.minimum.at(owner, face_idx, community_idx)
    # Hairline gap faces belong to nobody; give them to the nearest community.
    orphans = np.flatnonzero(owner == len(shapes))
    if orphans.size:
        owner[orphans] = tree.query_nearest(faces[orphans], all_matches=False)[1]

    community_ids = np.array([row[0] for row in community_rows])
    parents = {row[0]: row[2] for row in community_rows}
    grandparents = {row[0]: row[3] for row in community_rows}

    def union_of(keys: np.ndarray, key: str) -> shapely.Geometry:
        return polygonal_part(shapely.union_all(faces[keys == key]))

    face_community = community_ids[owner]
    face_neighbourhood = np.array([parents[c] for c in face_community])
    face_district = np.array([grandparents[c] for c in face_community])
    return (
        [(*row[:-1], union_of(face_community, row[0])) for row in community_rows],
        [(*row[:-1], union_of(face_neighbourhood, row[0])) for row in neighbourhood_rows],
        [(*row[:-1], union_of(face_district, row[0])) for row in district_rows],
    )


def _frame(columns: list[str], rows: list[tuple], to_wgs84: Transformer) -> gpd.GeoDataFrame:
    """Build a WGS-84 GeoDataFrame from (attributes..., metric geometry) rows."""
    attributes = pd.DataFrame([row[:-1] for row in rows], columns=columns)
    geometry = shapely.transform(
        np.array([row[-1] for row in rows], dtype=object), to_wgs84.transform, interleaved=False
    )
    return gpd.GeoDataFrame(attributes, geometry=geometry, crs=WGS84)


def _voronoi_cells(seeds: np.ndarray, area: shapely.Geometry) -> np.ndarray:
    """Split an area into one polygon per seed (Voronoi, clipped), in seed order."""
    if len(seeds) == 1:
        return np.array([area], dtype=object)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=area, ordered=True))
    clipped = shapely.intersection(cells, area)
    return np.array([polygonal_part(c) for c in clipped], dtype=object)


def _spread_seeds(
    area: shapely.Geometry, count: int, rng: np.random.Generator, *, centre: np.ndarray | None, lloyd_rounds: int
) -> np.ndarray:
    """Scatter seed points over an area, denser near ``centre``, evened out by Lloyd relaxation."""
    points = _sample_in(area, count, rng, centre)
    for _ in range(lloyd_rounds if count > 1 else 0):
        cells = _voronoi_cells(points, area)
        moved = shapely.centroid(cells)
        # A cell clipped by a concave boundary can have its centroid outside; keep the seed then.
        inside = shapely.contains_xy(area, shapely.get_x(moved), shapely.get_y(moved))
        points = np.where(inside[:, None], shapely.get_coordinates(moved), points)
    return points


def _sample_in(area: shapely.Geometry, count: int, rng: np.random.Generator, centre: np.ndarray | None) -> np.ndarray:
    """Draw points inside an area, uniformly or weighted towards ``centre``."""
    minx, miny, maxx, maxy = area.bounds
    shapely.prepare(area)
    found: list[np.ndarray] = []
    total = 0
    while total < count:
        xy = rng.uniform((minx, miny), (maxx, maxy), size=(max(4 * count, 16), 2))
        keep = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
        if centre is not None:
            distance = np.hypot(xy[:, 0] - centre[0], xy[:, 1] - centre[1])
            weight = np.exp(-distance / _DENSITY_FALLOFF_M)
            keep &= rng.uniform(size=len(xy)) < weight / weight.max()
        found.append(xy[keep])
        total += int(keep.sum())
    return np.concatenate(found)[:count]


def _apportion(total: int, weights: np.ndarray, *, minimum: int) -> np.ndarray:
    """Split an integer total in proportion to weights, each share at least ``minimum``."""
    weights = np.asarray(weights, dtype=np.float64)
    spare = total - minimum * len(weights)
    exact = spare * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    # Largest remainders get the units lost to flooring, ties broken by position.
    leftover = spare - int(shares.sum())
    order = np.argsort(-(exact - shares), kind="stable")
    shares[order[:leftover]] += 1
    return shares + minimum


def _community_names(neighbourhood: str, count: int, rng: np.random.Generator) -> list[str]:
    """Name a neighbourhood's communities after it, each name distinct."""
    suffixes = [_COMMUNITY_SUFFIXES[i] for i in rng.permutation(len(_COMMUNITY_SUFFIXES))]
    names = []
    for k in range(count):
        suffix = suffixes[k % len(suffixes)]
        rounds = k // len(suffixes)
        names.append(f"{neighbourhood} {suffix}" + (f" {rounds + 1}" if rounds else ""))
    return names


def _places(
    communities: gpd.GeoDataFrame,
    neighbourhoods: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    outline: shapely.Geometry,
    to_wgs84: Transformer,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Generate metro stations, malls, parks, hospitals, schools, service centers and venues."""
    geometries = communities.geometry.to_numpy()
    population = communities["population"].to_numpy(dtype=np.float64)
    metric_centroids = communities.geometry.to_crs(METRIC_CRS).centroid
    centre = np.array(Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True).transform(*_CITY_CENTRE_LONLAT))
    centrality = np.exp(-metric_centroids.distance(shapely.Point(centre)).to_numpy() / _DENSITY_FALLOFF_M)
    area = communities.geometry.to_crs(METRIC_CRS).area.to_numpy()
    nb_name = dict(zip(neighbourhoods["neighbourhood_id"], neighbourhoods["name"], strict=True))

    blocks: list[pd.DataFrame] = [_metro_stations(communities, outline, to_wgs84, rng)]
    kind_weights = {
        "mall": population * centrality,
        "park": area,
        "hospital": population,
        "school": population,
    }
    for kind, (count, capacity) in _PLACE_KINDS.items():
        rows = _draw(kind_weights[kind], count, rng)
        blocks.append(
            _place_block(
                communities,
                rows,
                _random_points_in(geometries[rows], rng),
                kind=kind,
                category=np.full(count, kind),
                ids=[f"{_KIND_CODES[kind]}-{i + 1:04d}" for i in range(count)],
                names=[
                    f"{nb_name[n]} {kind.title()} {i + 1}"
                    for i, n in enumerate(communities["neighbourhood_id"].to_numpy()[rows])
                ],
                capacity=rng.integers(*capacity, size=count, endpoint=True),
            )
        )
    blocks.append(_service_centers(communities, neighbourhoods, districts, population, rng))
    blocks.append(_venues(communities, population * centrality, nb_name, rng))
    return pd.concat(blocks, ignore_index=True)


def _draw(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Pick community rows with probability proportional to weights, with replacement."""
    return rng.choice(len(weights), size=count, p=weights / weights.sum())


def _random_points_in(geometries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one point strictly inside each geometry, as an (N, 2) lon/lat array."""
    bounds = shapely.bounds(geometries)
    points = np.full((len(geometries), 2), np.nan)
    todo = np.arange(len(geometries))
    while len(todo):
        xy = rng.uniform(bounds[todo, :2], bounds[todo, 2:])
        inside = shapely.contains_xy(geometries[todo], xy[:, 0], xy[:, 1])
        points[todo[inside]] = xy[inside]
        todo = todo[~inside]
    return points


def _place_block(
    communities: gpd.GeoDataFrame,
    rows: np.ndarray,
    lonlat: np.ndarray,
    *,
    kind: str,
    category: np.ndarray,
    ids: list[str],
    names: list[str],
    capacity: np.ndarray,
) -> pd.DataFrame:
    """Assemble places of one kind located in the given community rows."""
    return pd.DataFrame(
        {
            "place_id": ids,
            "kind": kind,
            "category": category,
            "name": names,
            "lon": lonlat[:, 0],
            "lat": lonlat[:, 1],
            "community_id": communities["community_id"].to_numpy()[rows],
            "neighbourhood_id": communities["neighbourhood_id"].to_numpy()[rows],
            "district_id": communities["district_id"].to_numpy()[rows],
            "capacity": np.asarray(capacity, dtype=np.int64),
        }
    )


def _metro_stations(
    communities: gpd.GeoDataFrame, outline: shapely.Geometry, to_wgs84: Transformer, rng: np.random.Generator
) -> pd.DataFrame:
    """Space stations evenly along the metro lines, keeping those that fall in a community."""
    to_metric = Transformer.from_crs(WGS84, METRIC_CRS, always_xy=True)
    lines = [
        shapely.intersection(
            shapely.transform(shapely.LineString(anchors), to_metric.transform, interleaved=False), outline
        )
        for _, anchors in _METRO_LINES
    ]
    spacing = sum(line.length for line in lines) / _METRO_STATIONS
    labels, points = [], []
    for (line_name, _), line in zip(_METRO_LINES, lines, strict=True):
        for part in shapely.get_parts(line):
            stops = np.arange(spacing / 2, part.length, spacing)
            points.extend(shapely.get_coordinates(shapely.line_interpolate_point(part, stops)))
            labels.extend([line_name] * len(stops))
    lon, lat = to_wgs84.transform(*np.array(points).T)
    hits_point, hits_row = shapely.STRtree(communities.geometry.to_numpy()).query(
        shapely.points(lon, lat), predicate="within"
    )
    point_idx, first = np.unique(hits_point, return_index=True)
    rows = hits_row[first]
    names = communities["name"].to_numpy()[rows]
    count = len(point_idx)
    return _place_block(
        communities,
        rows,
        np.column_stack([lon[point_idx], lat[point_idx]]),
        kind="metro_station",
        category=np.full(count, "metro_station"),
        ids=[f"MTR-{i + 1:04d}" for i in range(count)],
        names=[f"{name} Station (Line {labels[p]})" for name, p in zip(names, point_idx, strict=True)],
        capacity=rng.integers(*_METRO_CAPACITY, size=count, endpoint=True),
    )


def _service_centers(
    communities: gpd.GeoDataFrame,
    neighbourhoods: gpd.GeoDataFrame,
    districts: gpd.GeoDataFrame,
    population: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Put one service center in each district and each neighbourhood, in its most populous community."""
    frame = pd.DataFrame(
        {
            "row": np.arange(len(communities)),
            "population": population,
            "neighbourhood_id": communities["neighbourhood_id"].to_numpy(),
            "district_id": communities["district_id"].to_numpy(),
        }
    )
    by_district = frame.loc[frame.groupby("district_id", sort=False)["population"].idxmax()]
    by_neighbourhood = frame.loc[frame.groupby("neighbourhood_id", sort=False)["population"].idxmax()]
    rows = np.concatenate([by_district["row"].to_numpy(), by_neighbourhood["row"].to_numpy()])
    area_ids = [*by_district["district_id"], *by_neighbourhood["neighbourhood_id"]]
    district_names = dict(zip(districts["district_id"], districts["name"], strict=True))
    nb_names = dict(zip(neighbourhoods["neighbourhood_id"], neighbourhoods["name"], strict=True))
    names = [
        *(f"{district_names[d]} District Administrative Service Center" for d in by_district["district_id"]),
        *(f"{nb_names[n]} Subdistrict Service Center" for n in by_neighbourhood["neighbourhood_id"]),
    ]
    capacity = np.concatenate(
        [
            rng.integers(*_DISTRICT_SERVICE_CENTER_CAPACITY, size=len(by_district), endpoint=True),
            rng.integers(*_NEIGHBOURHOOD_SERVICE_CENTER_CAPACITY, size=len(by_neighbourhood), endpoint=True),
        ]
    )
    return _place_block(
        communities,
        rows,
        _random_points_in(communities.geometry.to_numpy()[rows], rng),
        kind="service_center",
        category=np.full(len(rows), "service_center"),
        ids=[f"SVC-{area_id}" for area_id in area_ids],
        names=names,
        capacity=capacity,
    )


def _venues(
    communities: gpd.GeoDataFrame, weights: np.ndarray, nb_name: dict[str, str], rng: np.random.Generator
) -> pd.DataFrame:
    """Scatter venues where people check in with a place code, denser where people live and work."""
    categories = list(_VENUE_CATEGORIES)
    shares = np.array([_VENUE_CATEGORIES[c][0] for c in categories])
    category_idx = rng.choice(len(categories), size=_VENUES, p=shares / shares.sum())
    low = np.array([_VENUE_CATEGORIES[c][1][0] for c in categories])[category_idx]
    high = np.array([_VENUE_CATEGORIES[c][1][1] for c in categories])[category_idx]
    rows = _draw(weights, _VENUES, rng)
    category = np.array(categories, dtype=object)[category_idx]
    neighbourhood_ids = communities["neighbourhood_id"].to_numpy()[rows]
    return _place_block(
        communities,
        rows,
        _random_points_in(communities.geometry.to_numpy()[rows], rng),
        kind="venue",
        category=category,
        ids=[f"VEN-{i + 1:05d}" for i in range(_VENUES)],
        names=[
            f"{nb_name[n]} {c.title()} {i + 1}"
            for i, (n, c) in enumerate(zip(neighbourhood_ids, category, strict=True))
        ],
        capacity=rng.integers(low, high, endpoint=True),
    )
