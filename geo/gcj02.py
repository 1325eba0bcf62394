"""Convert coordinates between WGS-84 and GCJ-02, the obfuscated datum of Chinese map sources."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import shapely

__all__ = [
    "gcj02_to_wgs84",
    "geometry_gcj02_to_wgs84",
    "geometry_wgs84_to_gcj02",
    "wgs84_to_gcj02",
]

# Krasovsky 1940 ellipsoid, as used by the published GCJ-02 offset formula.
_SEMI_MAJOR_AXIS = 6378245.0
_ECCENTRICITY_SQ = 0.00669342162296594323

# The offset is only applied inside this rough box around China; sources outside it are
# published unshifted.
_CHINA_LON = (72.004, 137.8347)
_CHINA_LAT = (0.8293, 55.8271)

# 1e-10 degrees is about 0.01 mm; the inverse reaches it in a handful of iterations.
_INVERSE_TOLERANCE_DEG = 1e-10
_INVERSE_MAX_ITERATIONS = 30

FloatArray = npt.NDArray[np.float64]
LonLatConverter = Callable[[npt.ArrayLike, npt.ArrayLike], tuple[FloatArray, FloatArray]]
Geometries = shapely.Geometry | npt.NDArray[np.object_]


def _in_china(lon: FloatArray, lat: FloatArray) -> npt.NDArray[np.bool_]:
    """Return where the GCJ-02 offset applies."""
    return (lon >= _CHINA_LON[0]) & (lon <= _CHINA_LON[1]) & (lat >= _CHINA_LAT[0]) & (lat <= _CHINA_LAT[1])


def _offset(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return the GCJ-02 offset (dlon, dlat) in degrees at WGS-84 points."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    periodic = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0

    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat += periodic
    dlat += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0

    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon += periodic
    dlon += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    dlon += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0

    rad_lat = np.radians(lat)
    magic = 1.0 - _ECCENTRICITY_SQ * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_SEMI_MAJOR_AXIS * (1.0 - _ECCENTRICITY_SQ)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (_SEMI_MAJOR_AXIS / sqrt_magic * np.cos(rad_lat) * np.pi)
    inside = _in_china(lon, lat)
    return np.where(inside, dlon, 0.0), np.where(inside, dlat, 0.0)


def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Shift WGS-84 lon/lat to GCJ-02; points outside China are returned unchanged."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Recover WGS-84 lon/lat from GCJ-02 by fixed-point iteration of the forward offset."""
    gcj_lon = np.asarray(lon, dtype=np.float64)
    gcj_lat = np.asarray(lat, dtype=np.float64)
    wgs_lon = gcj_lon.copy()
    wgs_lat = gcj_lat.copy()
    for _ in range(_INVERSE_MAX_ITERATIONS):
        fwd_lon, fwd_lat = wgs84_to_gcj02(wgs_lon, wgs_lat)
        err_lon = fwd_lon - gcj_lon
        err_lat = fwd_lat - gcj_lat
        wgs_lon = wgs_lon - err_lon
        wgs_lat = wgs_lat - err_lat
        worst = np.nanmax(np.abs(np.concatenate([err_lon.ravel(), err_lat.ravel()])), initial=0.0)
        if worst < _INVERSE_TOLERANCE_DEG:
            break
    return wgs_lon, wgs_lat


def _apply(func: LonLatConverter, coords: FloatArray) -> FloatArray:
    """Apply a lon/lat converter to an (N, 2) coordinate array."""
    lon, lat = func(coords[:, 0], coords[:, 1])
    return np.column_stack([lon, lat])


def geometry_gcj02_to_wgs84(geometry: Geometries) -> Geometries:
    """Convert a shapely geometry, or an array of them, from GCJ-02 to WGS-84."""
    return shapely.transform(geometry, lambda coords: _apply(gcj02_to_wgs84, coords))


def geometry_wgs84_to_gcj02(geometry: Geometries) -> Geometries:
    """Convert a shapely geometry, or an array of them, from WGS-84 to GCJ-02."""
    return shapely.transform(geometry, lambda coords: _apply(wgs84_to_gcj02, coords))
