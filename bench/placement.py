"""Benchmark placing points in the demo city's communities: lookup grid versus a plain STRtree."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import shapely

from geo.demo import demo_city
from geo.placement import Placer

POINTS = 2_000_000
SEED = 20_240_601
REPEATS = 3


def best_seconds(run: Callable[[], object], repeats: int = REPEATS) -> float:
    """Return the fastest wall time of several runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def strtree_place(tree: shapely.STRtree, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Place points the straightforward way: one STRtree query over all of them."""
    point_idx, community_idx = tree.query(shapely.points(lon, lat), predicate="intersects")
    # The lowest community index wins on shared edges, as in Placer.
    result = np.full(len(lon), np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(result, point_idx, community_idx.astype(np.int32))
    result[result == np.iinfo(np.int32).max] = -1
    return result


def main() -> None:
    """Time Placer.place, Placer.h3_cells and a plain STRtree on the same random points."""
    start = time.perf_counter()
    city = demo_city()
    city_seconds = time.perf_counter() - start
    start = time.perf_counter()
    placer = Placer(city)
    build_seconds = time.perf_counter() - start
    tree = shapely.STRtree(city.communities.geometry.to_numpy())

    rng = np.random.default_rng(SEED)
    min_lon, min_lat, max_lon, max_lat = city.bounds
    lon = rng.uniform(min_lon, max_lon, POINTS)
    lat = rng.uniform(min_lat, max_lat, POINTS)

    placed = placer.place(lon, lat)
    reference = strtree_place(tree, lon, lat)
    agreement = float(np.mean(placed == reference))

    place_s = best_seconds(lambda: placer.place(lon, lat))
    h3_s = best_seconds(lambda: placer.h3_cells(lon, lat), repeats=1)
    strtree_s = best_seconds(lambda: strtree_place(tree, lon, lat), repeats=1)

    points_per_s = int(POINTS / place_s)
    h3_points_per_s = int(POINTS / h3_s)
    strtree_points_per_s = int(POINTS / strtree_s)
    speedup = points_per_s / strtree_points_per_s

    print(f"demo city: {len(city.communities)} communities, built in {city_seconds:.2f} s")
    print(f"placer: built in {build_seconds:.2f} s, {placer.mixed_cell_share:.1%} of grid cells need the exact test")
    print(f"points: {POINTS:,} uniform over the city bbox, {np.mean(placed >= 0):.1%} inside the city")
    print(f"agreement with STRtree: {agreement:.4%}")
    print()
    print(f"{'method':<28}{'seconds':>10}{'points/s':>16}")
    print(f"{'Placer.place (grid+STRtree)':<28}{place_s:>10.3f}{points_per_s:>16,}")
    print(f"{'Placer.h3_cells':<28}{h3_s:>10.3f}{h3_points_per_s:>16,}")
    print(f"{'STRtree query (reference)':<28}{strtree_s:>10.3f}{strtree_points_per_s:>16,}")
    print()
    print(
        f"RESULT points_per_s={points_per_s} h3_points_per_s={h3_points_per_s} "
        f"strtree_points_per_s={strtree_points_per_s} speedup={speedup:.2f}"
    )


if __name__ == "__main__":
    main()
