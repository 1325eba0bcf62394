"""Placer answers exactly what a brute-force point-in-polygon test answers, only faster."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely

from geo.demo import demo_city
from geo.placement import OUTSIDE, Placer


@pytest.fixture(scope="module")
def city():
    return demo_city(7)


@pytest.fixture(scope="module")
def placer(city):
    return Placer(city)


def _brute_force(city, lon: np.ndarray, lat: np.ndarray) -> list[set[int]]:
    """Return, for each point, the set of communities that contain it or have it on their edge."""
    covering: list[set[int]] = [set() for _ in lon]
    for row, geometry in enumerate(city.communities.geometry):
        shapely.prepare(geometry)
        for point in np.flatnonzero(shapely.intersects_xy(geometry, lon, lat)):
            covering[point].add(row)
    return covering


def _assert_agrees(placed: np.ndarray, covering: list[set[int]]) -> None:
    for point, (answer, expected) in enumerate(zip(placed, covering, strict=True)):
        if expected:
            assert answer == min(expected), f"point {point}: placed in {answer}, covered by {sorted(expected)}"
        else:
            assert answer == OUTSIDE, f"point {point}: placed in {answer}, covered by none"


def test_placer_agrees_with_brute_force_on_random_points_inside_and_outside(city, placer):
    rng = np.random.default_rng(11)
    min_lon, min_lat, max_lon, max_lat = city.bounds
    lon = rng.uniform(min_lon - 0.05, max_lon + 0.05, 20_000)
    lat = rng.uniform(min_lat - 0.05, max_lat + 0.05, 20_000)
    lon[:50] = np.nan
    lat[25:75] = np.nan
    placed = placer.place(lon, lat)
    assert placed.dtype == np.int32
    _assert_agrees(placed, _brute_force(city, lon, lat))
    assert (placed[:75] == OUTSIDE).all()
    assert (placed >= 0).mean() > 0.3
    assert (placed == OUTSIDE).mean() > 0.2


def test_placer_agrees_with_brute_force_right_next_to_boundaries(city, placer):
    rng = np.random.default_rng(12)
    vertices = shapely.get_coordinates(shapely.boundary(city.communities.geometry.to_numpy()))
    picks = vertices[rng.integers(0, len(vertices), 5_000)]
    # Offsets of 1 mm to 10 m put points on both sides of edges and in the grid's mixed cells.
    offsets = rng.normal(size=picks.shape) * np.exp(rng.uniform(np.log(1e-8), np.log(1e-4), (len(picks), 1)))
    lon, lat = (picks + offsets).T
    _assert_agrees(placer.place(lon, lat), _brute_force(city, lon, lat))


def test_point_on_a_shared_edge_goes_to_the_same_neighbour_every_time(city, placer):
    shared = shapely.get_coordinates(city.communities.geometry.iloc[0].boundary)[:5]
    lon, lat = np.repeat(shared[:, 0], 3), np.repeat(shared[:, 1], 3)
    placed = placer.place(lon, lat)
    covering = _brute_force(city, lon, lat)
    _assert_agrees(placed, covering)
    assert (placed.reshape(-1, 3) == placed.reshape(-1, 3)[:, :1]).all()


def test_places_of_the_demo_city_are_placed_in_their_own_community(city, placer):
    placed = placer.place(city.places["lon"], city.places["lat"])
    assert (placer.community_ids(placed) == city.places["community_id"].to_numpy()).all()
    assert (placer.neighbourhood_ids(placed) == city.places["neighbourhood_id"].to_numpy()).all()
    assert (placer.district_ids(placed) == city.places["district_id"].to_numpy()).all()


def test_outside_points_map_to_no_ids(placer):
    placed = placer.place(np.array([0.0, np.nan]), np.array([0.0, 22.5]))
    assert placed.tolist() == [OUTSIDE, OUTSIDE]
    assert placer.community_ids(placed).tolist() == [None, None]
    assert placer.district_ids(placed).tolist() == [None, None]


def test_place_accepts_empty_input(placer):
    assert placer.place(np.array([]), np.array([])).shape == (0,)


def test_h3_cells_match_h3_and_are_zero_for_nan(placer):
    lon = np.array([114.05, 113.93, np.nan, 114.2])
    lat = np.array([22.54, 22.52, 22.5, np.nan])
    cells = placer.h3_cells(lon, lat)
    assert cells.dtype == np.uint64
    assert cells[2] == 0 and cells[3] == 0
    assert h3.int_to_str(int(cells[0])) == h3.latlng_to_cell(22.54, 114.05, placer.h3_resolution)
    coarse = placer.h3_cells(lon, lat, resolution=6)
    assert h3.get_resolution(h3.int_to_str(int(coarse[1]))) == 6
