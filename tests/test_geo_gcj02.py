"""GCJ-02 conversion: the forward offset matches the published formula and the inverse undoes it."""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Geod

from geo.gcj02 import gcj02_to_wgs84, geometry_gcj02_to_wgs84, geometry_wgs84_to_gcj02, wgs84_to_gcj02

GEOD = Geod(ellps="WGS84")


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    return GEOD.inv(lon1, lat1, lon2, lat2)[2]


def test_known_point_shifts_by_a_few_hundred_metres():
    # Reference value of the standard GCJ-02 offset for a point in central Beijing.
    lon, lat = wgs84_to_gcj02(np.array([116.404]), np.array([39.915]))
    assert abs(lon[0] - 116.41024449916938) < 1e-9
    assert abs(lat[0] - 39.91640428150164) < 1e-9
    shift = _metres(116.404, 39.915, lon[0], lat[0])
    assert 300 < shift < 800


def test_round_trip_is_within_half_a_metre():
    rng = np.random.default_rng(3)
    lon = rng.uniform(74.0, 134.0, 20_000)
    lat = rng.uniform(18.0, 53.0, 20_000)
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    back_lon, back_lat = gcj02_to_wgs84(gcj_lon, gcj_lat)
    assert _metres(lon, lat, back_lon, back_lat).max() < 0.5
    assert _metres(lon, lat, gcj_lon, gcj_lat).min() > 10


def test_points_outside_china_are_unchanged():
    lon = np.array([-74.0, 2.35, 151.2])
    lat = np.array([40.7, 48.85, -33.87])
    assert np.array_equal(np.column_stack(wgs84_to_gcj02(lon, lat)), np.column_stack([lon, lat]))
    assert np.array_equal(np.column_stack(gcj02_to_wgs84(lon, lat)), np.column_stack([lon, lat]))


def test_nan_stays_nan_and_does_not_spoil_other_points():
    lon, lat = gcj02_to_wgs84(np.array([np.nan, 114.05]), np.array([np.nan, 22.54]))
    assert np.isnan(lon[0]) and np.isnan(lat[0])
    assert np.isfinite(lon[1]) and np.isfinite(lat[1])


def test_geometry_conversion_moves_every_vertex_and_round_trips():
    square = shapely.box(114.0, 22.5, 114.1, 22.6)
    shifted = geometry_wgs84_to_gcj02(square)
    moved = _metres(*shapely.get_coordinates(square).T, *shapely.get_coordinates(shifted).T)
    assert (moved > 100).all()
    back = geometry_gcj02_to_wgs84(shifted)
    np.testing.assert_allclose(shapely.get_coordinates(back), shapely.get_coordinates(square), atol=1e-8)
