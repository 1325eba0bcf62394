"""Loading a user's city: mappings, CRS checks, GCJ-02 sources, repaired and rejected geometry."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from geo.city import CityError
from geo.loader import LevelFields, load_city
from geo.placement import Placer

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "boundaries"
TAIPEI = REAL_DATA / "taipei_villages_derived.geojson"
SHENZHEN = REAL_DATA / "shenzhen_440300_full.json"
GEOD = Geod(ellps="WGS84")


def _real(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real boundary file {path} is absent (it lives in the sibling ../shared checkout)")
    return path


def _village_grid(crs: str = "EPSG:4326", *, origin=(121.50, 25.00), size=0.01) -> gpd.GeoDataFrame:
    """Build 2 towns x 2 villages as squares, with town and village properties."""
    x0, y0 = origin
    rows = []
    for t, town in enumerate(["East", "West"]):
        for v, village in enumerate(["Hill", "Lake"]):
            rows.append(
                {
                    "TOWN": town,
                    "VILLAGE": village,
                    "VID": f"{t}{v}",
                    "POP": 1_000 * (t + 1) + v,
                    "geometry": shapely.box(x0 + t * size, y0 + v * size, x0 + (t + 1) * size, y0 + (v + 1) * size),
                }
            )
    return gpd.GeoDataFrame(rows, crs=crs)


def _write(frame: gpd.GeoDataFrame, path: Path) -> Path:
    frame.to_file(path, engine="pyogrio")
    return path


def test_taipei_villages_load_as_a_three_level_city():
    city = load_city(
        _real(TAIPEI),
        district="TOWNNAME",
        community=LevelFields(id="VILLAGEID", name="VILLAGENAM"),
        city_name_field="COUNTYNAME",
    )
    assert city.name == "台北市"
    assert len(city.districts) == 12
    assert len(city.neighbourhoods) == 12
    assert (city.neighbourhoods["neighbourhood_id"] == city.neighbourhoods["district_id"] + "-N00").all()
    # 448 features: 三犁里 (VILLAGEID 6300002031) comes as two features and becomes one community.
    assert len(city.communities) == 447
    sanli = city.communities.loc[city.communities["community_id"] == "6300002031"].geometry.iloc[0]
    assert sanli.geom_type == "MultiPolygon"
    assert city.communities.is_valid.all()
    assert [r.feature for r in city.repairs] == [
        "feature #391 (TOWNNAME='南港區', VILLAGEID='6300009018', VILLAGENAM='九如里')"
    ]
    assert "Self-intersection" in city.repairs[0].reason
    shilin = city.districts.loc[city.districts["name"] == "士林區", "district_id"].iloc[0]
    assert city.district_of("6300011033") == shilin
    placer = Placer(city)
    # Taipei City Hall, in 信義區.
    assert (
        placer.district_ids(placer.place([121.5645], [25.0375]))[0]
        == city.districts.set_index("name").loc["信義區", "district_id"]
    )


def test_taipei_loads_with_every_feature_as_its_own_community_when_ids_say_so():
    city = load_city(_real(TAIPEI), district="TOWNNAME", community=LevelFields(id="VILLAGESN", name="VILLAGENAM"))
    assert len(city.communities) == 448
    assert city.name == "taipei_villages_derived"


def test_shenzhen_districts_load_from_gcj02_as_one_neighbourhood_and_community_each():
    mapping = {"district": LevelFields(id="adcode", name="name"), "name": "Shenzhen"}
    raw = load_city(_real(SHENZHEN), **mapping)
    city = load_city(_real(SHENZHEN), crs_source="gcj02", **mapping)
    assert len(city.districts) == len(city.neighbourhoods) == len(city.communities) == 9
    assert "440304" in set(city.districts["district_id"])  # Futian
    assert city.neighbourhood_of("440304-N00-C00") == "440304-N00"
    assert city.district_of("440304-N00-C00") == "440304"
    before = shapely.get_coordinates(raw.districts.geometry.to_numpy())
    after = shapely.get_coordinates(city.districts.geometry.to_numpy())
    shift = GEOD.inv(before[:, 0], before[:, 1], after[:, 0], after[:, 1])[2]
    assert 300 < np.median(shift) < 800
    # In Shenzhen GCJ-02 lies east and south of WGS-84, so converting moves west and north.
    assert (after[:, 0] < before[:, 0]).all()
    assert (after[:, 1] > before[:, 1]).all()


def test_bowtie_polygon_is_repaired_and_reported(tmp_path):
    frame = _village_grid()
    x0, y0, x1, y1 = frame.geometry.iloc[0].bounds
    frame.loc[0, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    city = load_city(_write(frame, tmp_path / "bowtie.geojson"), district="TOWN", community="VILLAGE")
    assert len(city.communities) == 4
    assert city.communities.is_valid.all()
    assert len(city.repairs) == 1
    assert "feature #0" in city.repairs[0].feature and "VILLAGE='Hill'" in city.repairs[0].feature
    assert "Self-intersection" in city.repairs[0].reason
    repaired = city.communities.geometry.iloc[0]
    assert repaired.geom_type == "MultiPolygon" and repaired.area > 0


def test_feature_missing_a_level_property_raises_city_error_naming_it(tmp_path):
    frame = _village_grid()
    frame["TOWN"] = frame["TOWN"].astype(object)
    frame.loc[2, "TOWN"] = None
    path = _write(frame, tmp_path / "missing.geojson")
    with pytest.raises(CityError, match=r"feature #2 \(VILLAGE='Hill'\) has no value for the property 'TOWN'"):
        load_city(path, district="TOWN", community="VILLAGE")


def test_mapping_to_an_absent_property_raises_city_error(tmp_path):
    path = _write(_village_grid(), tmp_path / "grid.geojson")
    with pytest.raises(CityError, match="'TOWNNAME'"):
        load_city(path, district="TOWNNAME", community="VILLAGE")


def test_non_polygonal_feature_raises_city_error_naming_it(tmp_path):
    frame = _village_grid()
    frame.loc[3, "geometry"] = shapely.LineString([(121.5, 25.0), (121.51, 25.01)])
    path = _write(frame, tmp_path / "line.geojson")
    with pytest.raises(CityError, match=r"feature #3 .*non-polygonal geometry \(LineString\)"):
        load_city(path, district="TOWN", community="VILLAGE")


def test_geopackage_in_web_mercator_round_trips_to_wgs84(tmp_path):
    wgs84 = _village_grid()
    path = _write(wgs84.to_crs("EPSG:3857"), tmp_path / "city.gpkg")
    city = load_city(
        path, district="TOWN", community=LevelFields(id="VID", name="VILLAGE"), population="POP", name="Grid"
    )
    assert city.communities.crs.equals("EPSG:4326")
    np.testing.assert_allclose(city.communities.total_bounds, wgs84.total_bounds, atol=1e-9)
    assert city.communities["community_id"].tolist() == ["00", "01", "10", "11"]
    assert city.communities["population"].tolist() == [1_000, 1_001, 2_000, 2_001]
    assert city.population("district").tolist() == [2_001, 4_001]
    east = city.districts.loc[city.districts["name"] == "East"].geometry.iloc[0]
    assert east.area == pytest.approx(0.01 * 0.02, rel=1e-6)


def test_names_only_mapping_makes_hierarchical_ids(tmp_path):
    frame = _village_grid()
    frame["AREA"] = ["North", "North", "South", "South"]
    path = _write(frame, tmp_path / "three.geojson")
    city = load_city(path, district="TOWN", neighbourhood="AREA", community="VILLAGE")
    assert city.districts["district_id"].tolist() == ["D01", "D02"]
    assert sorted(city.neighbourhoods["neighbourhood_id"]) == ["D01-N01", "D02-N01"]
    assert sorted(city.communities["community_id"]) == ["D01-N01-C001", "D01-N01-C002", "D02-N01-C001", "D02-N01-C002"]


def test_area_id_under_two_parents_raises_city_error(tmp_path):
    frame = _village_grid()
    frame["VID"] = ["A", "B", "A", "C"]
    path = _write(frame, tmp_path / "split.geojson")
    with pytest.raises(CityError, match="community_id 'A' lies in more than one neighbourhood"):
        load_city(path, district="TOWN", community=LevelFields(id="VID", name="VILLAGE"))


def test_file_without_crs_in_lon_lat_range_is_taken_as_wgs84(tmp_path):
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = _write(_village_grid().set_crs(None, allow_override=True), tmp_path / "nocrs.gpkg")
    city = load_city(path, district="TOWN", community="VILLAGE")
    assert city.districts.crs.equals("EPSG:4326")


def test_file_without_crs_in_projected_coordinates_is_rejected(tmp_path):
    projected = _village_grid().to_crs("EPSG:3826").set_crs(None, allow_override=True)
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = _write(projected, tmp_path / "nocrs_projected.gpkg")
    with pytest.raises(CityError, match="declares no CRS"):
        load_city(path, district="TOWN", community="VILLAGE")
