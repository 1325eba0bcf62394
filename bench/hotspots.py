"""Time Getis-Ord Gi* with permutations over every H3 res-8 cell of the demo city, with planted clusters.

Run ``python -m bench.hotspots``; the last line is ``RESULT seconds=... cells=... permutations=... hotspots=...``.
"""

from __future__ import annotations

import time

import h3
import numpy as np
import pandas as pd

from engines.hotspots import HotspotParams, cell_hotspots, city_cells, ring_weights
from geo.demo import demo_city

BACKGROUND_PER_CELL = 2.0  # complaints per cell in the noise
PLANTED = 4  # clusters: a cell and its ring, each cell with this many extra complaints
EXTRA = 12


def planted_counts(cells: list[str], seed: int = 7) -> tuple[pd.Series, list[str]]:
    """Return Poisson background counts per cell with a few planted clusters, and the clusters' centres."""
    rng = np.random.default_rng(seed)
    counts = pd.Series(rng.poisson(BACKGROUND_PER_CELL, len(cells)).astype(float), index=cells)
    centres = [cells[i] for i in rng.choice(len(cells), PLANTED, replace=False)]
    for centre in centres:
        ring = [c for c in h3.grid_disk(centre, 1) if c in counts.index]
        counts[ring] += rng.poisson(EXTRA, len(ring))
    return counts, centres


def main() -> None:
    """Print timings of each step and the RESULT line."""
    params = HotspotParams()
    city = demo_city(7)
    started = time.perf_counter()
    cells = city_cells(city, params.resolution)
    covered = time.perf_counter()
    counts, centres = planted_counts(cells)
    weights_start = time.perf_counter()
    ring_weights(cells, params.ring)
    weights_done = time.perf_counter()
    gi_start = time.perf_counter()
    result = cell_hotspots(counts, cells, params)
    gi_done = time.perf_counter()
    hot = result[result["hotspot"]].set_index("cell")
    found = sum(c in hot.index for c in centres)
    print(f"{'step':<34}{'seconds':>10}")
    print(f"{'cover city with res-8 cells':<34}{covered - started:>10.3f}")
    print(f"{'ring weights (k=1)':<34}{weights_done - weights_start:>10.3f}")
    print(f"{'Gi* incl. weights, permutations':<34}{gi_done - gi_start:>10.3f}")
    print(f"cells={len(cells)} complaints={int(counts.sum())} planted centres found={found}/{len(centres)}")
    near = {c for centre in centres for c in h3.grid_disk(centre, 2)}
    print(
        f"hotspot cells={len(hot)}: {len(near & set(hot.index))} within two steps of a planted centre, "
        f"{len(set(hot.index) - near)} elsewhere (chance at alpha={params.alpha:g})"
    )
    top = result.nlargest(5, "gi_z")[["cell", "count", "gi_z", "p_sim"]]
    print(top.to_string(index=False))
    print(
        f"RESULT seconds={gi_done - gi_start:.3f} cells={len(cells)} permutations={params.permutations} "
        f"hotspots={len(hot)}"
    )


if __name__ == "__main__":
    main()
