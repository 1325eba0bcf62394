"""The City model: nesting checks, id lookups, GeoJSON for browsers and two-level cities."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import shapely

from geo.city import City, CityError
from geo.demo import demo_city


@pytest.fixture(scope="module")
def city():
    return demo_city(7)


def _two_district_frames(crs: str = "EPSG:4326"):
    districts = gpd.GeoDataFrame(
        {"district_id": ["D-A", "D-B"], "name": ["Alpha", "Beta"]},
        geometry=[shapely.box(114.0, 22.5, 114.1, 22.6), shapely.box(114.1, 22.5, 114.2, 22.6)],
        crs=crs,
    )
    communities = gpd.GeoDataFrame(
        {
            "community_id": ["D-A-C1", "D-A-C2", "D-B-C1"],
            "name": ["North", "South", "Whole"],
            "district_id": ["D-A", "D-A", "D-B"],
            "population": [1_000, 2_000, 4_000],
        },
        geometry=[
            shapely.box(114.0, 22.55, 114.1, 22.6),
            shapely.box(114.0, 22.5, 114.1, 22.55),
            shapely.box(114.1, 22.5, 114.2, 22.6),
        ],
        crs=crs,
    )
    return districts, communities


def test_two_level_city_gets_one_n00_neighbourhood_per_district():
    districts, communities = _two_district_frames()
    city = City.two_level("Two levels", districts, communities)
    assert city.neighbourhoods["neighbourhood_id"].tolist() == ["D-A-N00", "D-B-N00"]
    assert city.neighbourhood_of("D-A-C2") == "D-A-N00"
    assert city.district_of("D-A-C2") == "D-A"
    assert city.population("district").tolist() == [3_000, 4_000]


def test_city_rejects_frames_not_in_wgs84():
    districts, communities = _two_district_frames(crs="EPSG:3857")
    with pytest.raises(CityError, match="EPSG:4326"):
        City.two_level("Wrong CRS", districts, communities)


def test_city_rejects_a_community_whose_parents_do_not_nest():
    districts, communities = _two_district_frames()
    city = City.two_level("Ok", districts, communities)
    broken = city.communities.copy()
    broken.loc[0, "district_id"] = "D-B"
    with pytest.raises(CityError, match="D-A-C1"):
        City(city.name, city.districts, city.neighbourhoods, broken)


def test_lookups_walk_from_community_to_district(city):
    community = city.communities.iloc[10]
    assert city.neighbourhood_of(community["community_id"]) == community["neighbourhood_id"]
    assert city.district_of(community["community_id"]) == community["district_id"]
    assert city.district_of(community["neighbourhood_id"]) == community["district_id"]
    assert city.district_of(community["district_id"]) == community["district_id"]
    with pytest.raises(CityError, match="nowhere"):
        city.district_of("nowhere")
    assert list(city.community_ids[:3]) == city.communities["community_id"].head(3).tolist()


def test_ids_follow_the_district_neighbourhood_community_pattern(city):
    assert city.districts["district_id"].str.fullmatch(r"D-[A-Z]{2}").all()
    assert city.neighbourhoods["neighbourhood_id"].str.fullmatch(r"D-[A-Z]{2}-N\d{2}").all()
    assert city.communities["community_id"].str.fullmatch(r"D-[A-Z]{2}-N\d{2}-C\d{2}").all()
    assert (city.communities["community_id"].str[:8] == city.communities["neighbourhood_id"]).all()


def test_bounds_cover_shenzhen(city):
    min_lon, min_lat, max_lon, max_lat = city.bounds
    assert 113.7 < min_lon < max_lon < 114.7
    assert 22.4 < min_lat < max_lat < 22.9


def test_geojson_puts_ids_in_feature_id_and_properties(city):
    collection = city.to_geojson("neighbourhood")
    json.dumps(collection)  # plain JSON types only
    features = collection["features"]
    assert len(features) == len(city.neighbourhoods)
    first = features[0]
    assert first["id"] == first["properties"]["neighbourhood_id"] == city.neighbourhoods["neighbourhood_id"].iloc[0]
    assert {"name", "district_id", "population"} <= set(first["properties"])


def test_simplified_geojson_keeps_every_area_with_fewer_vertices(city):
    raw = city.to_geojson("community")
    simplified = city.to_geojson("community", simplify_tolerance_m=200)
    assert [f["id"] for f in simplified["features"]] == [f["id"] for f in raw["features"]]
    shapes = [shapely.geometry.shape(f["geometry"]) for f in simplified["features"]]
    assert all(shape.is_valid and not shape.is_empty for shape in shapes)
    vertex_count = sum(len(shapely.get_coordinates(shapely.geometry.shape(f["geometry"]))) for f in raw["features"])
    assert sum(len(shapely.get_coordinates(s)) for s in shapes) < vertex_count


def test_geojson_rejects_an_unknown_level(city):
    with pytest.raises(CityError, match="street"):
        city.to_geojson("street")
