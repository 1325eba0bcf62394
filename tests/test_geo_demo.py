"""The demo city is deterministic, Shenzhen-shaped, properly nested and full of places."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import shapely

from geo.demo import METRIC_CRS, demo_city

SHENZHEN_DISTRICTS = {
    "Futian", "Luohu", "Nanshan", "Yantian", "Bao'an",
    "Longgang", "Longhua", "Pingshan", "Guangming", "Dapeng",
}  # fmt: skip


@pytest.fixture(scope="module")
def city():
    return demo_city(7)


def _geojson_bytes(city) -> bytes:
    return b"".join(
        json.dumps(city.to_geojson(level), sort_keys=True).encode()
        for level in ("district", "neighbourhood", "community")
    )


def test_demo_city_is_identical_for_the_same_seed(city):
    again = demo_city(7)
    assert _geojson_bytes(again) == _geojson_bytes(city)
    pd.testing.assert_frame_equal(again.places, city.places)


def test_demo_city_differs_for_another_seed(city):
    other = demo_city(8)
    assert _geojson_bytes(other) != _geojson_bytes(city)
    assert not other.places[["lon", "lat"]].equals(city.places[["lon", "lat"]])


def test_demo_city_has_ten_districts_sixty_neighbourhoods_five_hundred_communities(city):
    assert len(city.districts) >= 10
    assert len(city.neighbourhoods) >= 60
    assert len(city.communities) >= 500
    assert set(city.districts["name"]) == SHENZHEN_DISTRICTS


def test_districts_contain_the_real_centres_they_grew_from(city):
    futian = city.districts.loc[city.districts["name"] == "Futian"].geometry.iloc[0]
    dapeng = city.districts.loc[city.districts["name"] == "Dapeng"].geometry.iloc[0]
    # Futian's civic centre and Dapeng's town, WGS-84.
    assert futian.contains(shapely.Point(114.055, 22.540))
    assert dapeng.contains(shapely.Point(114.48, 22.59))


def test_every_community_lies_in_exactly_one_neighbourhood_and_district(city):
    communities = city.communities.to_crs(METRIC_CRS)
    neighbourhoods = city.neighbourhoods.to_crs(METRIC_CRS).set_index("neighbourhood_id")
    districts = city.districts.to_crs(METRIC_CRS).set_index("district_id")
    nb_parent = neighbourhoods["district_id"]
    assert (communities["district_id"].to_numpy() == nb_parent[communities["neighbourhood_id"]].to_numpy()).all()

    inner = shapely.point_on_surface(communities.geometry.to_numpy())
    for frame, key in ((neighbourhoods, "neighbourhood_id"), (districts, "district_id")):
        point_idx, area_idx = shapely.STRtree(frame.geometry.to_numpy()).query(inner, predicate="within")
        assert np.array_equal(np.sort(point_idx), np.arange(len(communities))), f"a community is not in one {key}"
        assert (frame.index.to_numpy()[area_idx[np.argsort(point_idx)]] == communities[key].to_numpy()).all()
        parents = frame.geometry.loc[communities[key]].to_numpy()
        outside = shapely.area(shapely.difference(communities.geometry.to_numpy(), parents))
        assert outside.max() < 1.0, f"a community sticks out of its {key} by {outside.max():.1f} m²"


def test_communities_tile_the_city_without_overlaps(city):
    for level in ("district", "neighbourhood", "community"):
        assert shapely.coverage_is_valid(city.level(level).to_crs(METRIC_CRS).geometry.to_numpy()), level
    assert city.communities.is_valid.all()


def test_centre_communities_are_smaller_than_outer_ones(city):
    area_km2 = city.communities.to_crs(METRIC_CRS).area / 1e6
    median = area_km2.groupby(city.communities["district_id"]).median()
    assert median["D-FT"] < median["D-LG"] < median["D-DP"]
    assert median["D-LU"] < median["D-BA"]


def test_population_is_plausible_for_shenzhen(city):
    population = city.communities["population"]
    assert 16_000_000 < population.sum() < 19_000_000
    assert (population > 0).all()
    by_district = city.population("district").set_axis(city.districts["name"])
    assert by_district["Bao'an"] > by_district["Futian"] > by_district["Dapeng"]


def test_every_place_lies_inside_its_community(city):
    places = city.places
    geometry = city.communities.set_index("community_id").geometry
    inside = shapely.contains_xy(geometry.loc[places["community_id"]].to_numpy(), places["lon"], places["lat"])
    assert inside.all()
    lookup = city.communities.set_index("community_id")
    assert (lookup.loc[places["community_id"], "neighbourhood_id"].to_numpy() == places["neighbourhood_id"]).all()
    assert (lookup.loc[places["community_id"], "district_id"].to_numpy() == places["district_id"]).all()


def test_every_district_has_a_service_center(city):
    centers = city.places[city.places["kind"] == "service_center"]
    assert set(city.districts["district_id"]) <= set(centers["district_id"])
    assert set(city.neighbourhoods["neighbourhood_id"]) <= set(centers["neighbourhood_id"])


def test_demo_city_has_at_least_2000_venues_with_categories(city):
    venues = city.places[city.places["kind"] == "venue"]
    assert len(venues) >= 2000
    assert {"restaurant", "supermarket", "office", "gym", "cinema", "clinic", "market"} <= set(venues["category"])
    others = city.places[city.places["kind"] != "venue"]
    assert (others["category"] == others["kind"]).all()


def test_places_have_unique_ids_plausible_counts_and_capacities(city):
    places = city.places
    assert places["place_id"].is_unique
    counts = places["kind"].value_counts()
    assert 120 <= counts["metro_station"] <= 180
    assert counts["mall"] == 80
    assert counts["park"] == 60
    assert counts["hospital"] == 40
    assert counts["school"] == 200
    assert places["capacity"].dtype == np.int64
    assert (places["capacity"] > 0).all()
    capacity = places.groupby("kind")["capacity"].median()
    assert capacity["mall"] > capacity["school"] > capacity["service_center"]
