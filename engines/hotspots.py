"""Complaint hotspots: places where complaints cluster beyond chance, by the Getis-Ord Gi* statistic.

Gi* compares the complaints in a cell and its neighbours with the city-wide mean. We use binary
weights (a cell and its H3 ring) and ``esda.G_Local`` with ``star=True``, which puts the focal area in its own
neighbourhood. The z-score is the analytic one; the p-value comes from conditional permutations
(each area's neighbours redrawn from the rest of the map), so it holds whatever the skew of the
counts; it is one-sided in the direction the area deviates (esda's folded, "directed" pseudo p). A hotspot is an area with a positive z and a pseudo p-value under ``alpha``. With thousands
of areas, about ``alpha``/2 of them pass by chance in pure noise: read a lone hot cell with care,
a compact group of them is the signal.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass

import h3
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from esda import G_Local
from libpysal.weights import WSP, W

from geo.city import City

# esda seeds numpy's global generator for each call and draws its permutations from it: two threads
# drawing at once would interleave their draws, and the same counts would give two answers.
_DRAWS = threading.Lock()


@dataclass(frozen=True)
class HotspotParams:
    """Parameters of hotspot detection (name, default, unit)."""

    resolution: int = 8  # H3 resolution: res 8 cells are about 0.74 km² (edge ≈ 0.53 km)
    ring: int = 1  # cells: neighbours are the cells within this grid distance (1 = the six touching)
    permutations: int = 999  # draws: conditional permutations for the pseudo p-value (p ≥ 1/1000)
    alpha: float = 0.05  # probability: pseudo p-value under which a positive z is a hotspot
    seed: int = 12345  # random seed of the permutations: any worker, given the same counts, finds the same cells
    # points: a hotspot needs at least this many in its neighbourhood (the area and its ring). In a
    # quiet hour nearly every area is empty, and Gi* then calls any area with one point significant.
    min_points: int = 3


def city_cells(city: City, resolution: int = 8) -> list[str]:
    """Return every H3 cell (hex id) whose centre lies in the city, sorted."""
    outline = shapely.union_all(city.districts.geometry.to_numpy())
    polygons = getattr(outline, "geoms", [outline])
    cells: set[str] = set()
    for polygon in polygons:
        cells.update(h3.geo_to_cells(polygon.__geo_interface__, resolution))
    return sorted(cells)


def cell_centre(cell: str) -> tuple[float, float]:
    """(lon, lat) of an H3 cell's centre, rounded to 5 decimals (about a metre): where its marker is drawn."""
    lat, lon = h3.cell_to_latlng(cell)
    return round(lon, 5), round(lat, 5)


def ring_weights(cells: list[str], ring: int = 1) -> W:
    """Return binary weights linking each cell to the cells within ``ring`` steps that are in the list."""
    position = {cell: i for i, cell in enumerate(cells)}
    rows: list[int] = []
    cols: list[int] = []
    for i, cell in enumerate(cells):
        for other in h3.grid_disk(cell, ring):
            j = position.get(other)
            if j is not None and j != i:
                rows.append(i)
                cols.append(j)
    n = len(cells)
    adjacency = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return WSP(adjacency, id_order=list(range(n))).to_W(silence_warnings=True)


def getis_ord(counts: np.ndarray, weights: W, params: HotspotParams = HotspotParams()) -> pd.DataFrame:
    """Return Gi* per area, in the weights' order: ``count``, ``gi_z``, ``p_sim``, ``hotspot``, ``coldspot``."""
    y = np.asarray(counts, dtype=np.float64)
    columns = ["count", "gi_z", "p_sim", "hotspot", "coldspot"]
    if len(y) == 0 or y.sum() == 0 or np.all(y == y[0]):
        return pd.DataFrame({"count": y, "gi_z": 0.0, "p_sim": 1.0, "hotspot": False, "coldspot": False})[columns]
    with _DRAWS, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # esda warns that its default alternative will change; we rely on today's folded (directed) p.
        warnings.filterwarnings("ignore", message="The alternative hypothesis", category=DeprecationWarning)
        g = G_Local(
            y,
            weights,
            transform="B",
            permutations=params.permutations,
            star=True,
            keep_simulations=False,
            n_jobs=1,
            seed=params.seed,
        )
    z = np.nan_to_num(np.asarray(g.Zs, dtype=np.float64))
    p = np.asarray(g.p_sim, dtype=np.float64) if params.permutations else np.asarray(g.p_norm, dtype=np.float64)
    significant = p < params.alpha
    around = y + (weights.sparse > 0).astype(np.float64) @ y  # the points in each area's neighbourhood
    hot = significant & (z > 0) & (around >= params.min_points)
    return pd.DataFrame({"count": y, "gi_z": z, "p_sim": p, "hotspot": hot, "coldspot": significant & (z < 0)})[columns]


def cell_hotspots(
    counts: pd.Series, cells: list[str], params: HotspotParams = HotspotParams(), weights: W | None = None
) -> pd.DataFrame:
    """Return Gi* hotspots over H3 cells: one row per cell of ``cells`` (zero where ``counts`` has none).

    ``counts`` is indexed by hex cell id (e.g. the aggregator's ``complaints.h3`` facet). ``weights`` are
    ``ring_weights(cells, params.ring)``, built here when not given (a caller asking again keeps them).
    Columns: ``cell``, ``count``, ``gi_z``, ``p_sim``, ``hotspot``, ``coldspot``.
    """
    y = counts.reindex(cells, fill_value=0).to_numpy(np.float64)
    result = getis_ord(y, ring_weights(cells, params.ring) if weights is None else weights, params)
    result.insert(0, "cell", cells)
    return result
