"""Place lon/lat points in the city's communities and in H3 cells, vectorised over numpy arrays."""

from __future__ import annotations

import math
from itertools import repeat

import h3.api.numpy_int as h3
import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from geo.city import City

__all__ = ["OUTSIDE", "Placer"]

OUTSIDE = -1
# Grid value of a cell that a community boundary passes through: points there need the exact test.
_MIXED = -2

_METRES_PER_DEGREE = 111_320.0
# Cells are widened by this fraction of a cell when marking boundaries, so rounding in the
# cell arithmetic of ``place`` can never put a point on the wrong side of an edge.
_EDGE_SLACK_CELLS = 1e-6
# Above this many cells the grid is coarsened: memory stays bounded for very large cities.
_MAX_GRID_CELLS = 16_000_000


class Placer:
    """Find the community of each point: a lookup grid answers most, an STRtree the rest.

    The grid covers the city's bounding box in cells of about ``cell_size_m``. A cell that no
    community boundary touches lies wholly inside one community (or wholly outside the city),
    so its points are answered by one array read; only points in cells crossed by a boundary
    are tested exactly against the polygons. A point on an edge shared by two communities
    goes to the one with the lower row index, every time.
    """

    def __init__(self, city: City, *, h3_resolution: int = 9, cell_size_m: float = 25.0) -> None:
        communities = city.communities
        self.h3_resolution = h3_resolution
        self._geometries = communities.geometry.to_numpy()
        self._tree = shapely.STRtree(self._geometries)
        # Index -1 (outside) picks the trailing None.
        self._community_ids = np.append(communities["community_id"].to_numpy(dtype=object), None)
        self._neighbourhood_ids = np.append(communities["neighbourhood_id"].to_numpy(dtype=object), None)
        self._district_ids = np.append(communities["district_id"].to_numpy(dtype=object), None)
        self._build_grid(cell_size_m)

    def _build_grid(self, cell_size_m: float) -> None:
        """Label every grid cell with its community, OUTSIDE, or _MIXED where a boundary crosses it."""
        minx, miny, maxx, maxy = shapely.total_bounds(self._geometries)
        mid_lat = math.radians((miny + maxy) / 2)
        dy = cell_size_m / _METRES_PER_DEGREE
        dx = dy / max(math.cos(mid_lat), 0.01)
        while math.ceil((maxx - minx) / dx + 1) * math.ceil((maxy - miny) / dy + 1) > _MAX_GRID_CELLS:
            dx, dy = dx * 1.5, dy * 1.5
        self._x0, self._y0 = minx, miny
        self._inv_dx, self._inv_dy = 1.0 / dx, 1.0 / dy
        self._nx = int(math.ceil((maxx - minx) / dx)) + 1
        self._ny = int(math.ceil((maxy - miny) / dy)) + 1

        mixed = self._boundary_cells(min(dx, dy))
        # Cells no boundary touches form regions that each lie in a single community, so one
        # exact test per connected region labels all its cells.
        regions, region_count = ndimage.label(~mixed)
        flat_regions = regions.ravel()
        sample_cell = np.zeros(region_count + 1, dtype=np.int64)
        sample_cell[flat_regions] = np.arange(flat_regions.size)
        sample_cell = sample_cell[1:]
        iy, ix = np.divmod(sample_cell, self._nx)
        region_community = self._exact(minx + (ix + 0.5) * dx, miny + (iy + 0.5) * dy)

        dtype = np.int16 if len(self._geometries) < np.iinfo(np.int16).max else np.int32
        labels = np.concatenate([[_MIXED], region_community]).astype(dtype)
        self._grid = labels[flat_regions]
        self.mixed_cell_share = float(mixed.mean())

    def _boundary_cells(self, max_segment: float) -> npt.NDArray[np.bool_]:
        """Mark every cell whose closed box a community boundary touches (conservatively)."""
        rings = shapely.get_parts(shapely.boundary(self._geometries))
        # Segments no longer than a cell span at most two cells per axis, so marking each
        # segment's bounding box of cells covers every cell it crosses.
        coords, ring_of = shapely.get_coordinates(shapely.segmentize(rings, max_segment), return_index=True)
        same_ring = ring_of[1:] == ring_of[:-1]
        start, end = coords[:-1][same_ring], coords[1:][same_ring]
        fx = (np.stack([start[:, 0], end[:, 0]]) - self._x0) * self._inv_dx
        fy = (np.stack([start[:, 1], end[:, 1]]) - self._y0) * self._inv_dy
        ix_lo = np.floor(fx.min(axis=0) - _EDGE_SLACK_CELLS).astype(np.int64)
        ix_hi = np.floor(fx.max(axis=0) + _EDGE_SLACK_CELLS).astype(np.int64)
        iy_lo = np.floor(fy.min(axis=0) - _EDGE_SLACK_CELLS).astype(np.int64)
        iy_hi = np.floor(fy.max(axis=0) + _EDGE_SLACK_CELLS).astype(np.int64)
        mixed = np.zeros((self._ny, self._nx), dtype=bool)
        for ox in range(3):
            for oy in range(3):
                ix, iy = ix_lo + ox, iy_lo + oy
                take = (ix <= ix_hi) & (iy <= iy_hi) & (ix >= 0) & (iy >= 0) & (ix < self._nx) & (iy < self._ny)
                mixed[iy[take], ix[take]] = True
        return mixed

    def _exact(self, lon: np.ndarray, lat: np.ndarray) -> npt.NDArray[np.int32]:
        """Return the lowest-index community covering each point, or OUTSIDE."""
        point_idx, community_idx = self._tree.query(shapely.points(lon, lat), predicate="intersects")
        result = np.full(len(lon), np.iinfo(np.int32).max, dtype=np.int32)
        np.minimum.at(result, point_idx, community_idx.astype(np.int32))
        result[result == np.iinfo(np.int32).max] = OUTSIDE
        return result

    def place(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Return each point's row in ``city.communities``, or -1 outside the city or for NaN."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        fx = (lon - self._x0) * self._inv_dx
        fy = (lat - self._y0) * self._inv_dy
        # NaN fails every comparison, so it drops out here with the points off the grid.
        on_grid = (fx >= 0) & (fx < self._nx) & (fy >= 0) & (fy < self._ny)
        result = np.full(lon.shape, OUTSIDE, dtype=np.int32)
        cell = fy[on_grid].astype(np.intp) * self._nx + fx[on_grid].astype(np.intp)
        result[on_grid] = self._grid[cell]
        mixed = np.flatnonzero(result == _MIXED)
        if mixed.size:
            result[mixed] = self._exact(lon[mixed], lat[mixed])
        return result

    def community_ids(self, index: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Map placement indexes to community ids (None outside the city)."""
        return self._community_ids[np.asarray(index)]

    def neighbourhood_ids(self, index: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Map placement indexes to neighbourhood ids (None outside the city)."""
        return self._neighbourhood_ids[np.asarray(index)]

    def district_ids(self, index: npt.ArrayLike) -> npt.NDArray[np.object_]:
        """Map placement indexes to district ids (None outside the city)."""
        return self._district_ids[np.asarray(index)]

    def h3_cells(self, lon: npt.ArrayLike, lat: npt.ArrayLike, resolution: int | None = None) -> npt.NDArray[np.uint64]:
        """Return the H3 cell of each point as uint64, 0 for NaN or impossible coordinates."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        resolution = self.h3_resolution if resolution is None else resolution
        valid = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0)
        cells = np.zeros(lon.shape, dtype=np.uint64)
        count = int(valid.sum())
        # h3 has no vectorised lookup; map over plain floats is its fastest loop.
        cells[valid] = np.fromiter(
            map(h3.latlng_to_cell, lat[valid].tolist(), lon[valid].tolist(), repeat(resolution, count)),
            dtype=np.uint64,
            count=count,
        )
        return cells
