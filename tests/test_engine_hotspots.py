"""Getis-Ord Gi* hotspots: a cluster planted in noise is found, noise elsewhere is not, and a simulated
storm's complaints show one."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from engines.hotspots import cell_hotspots, city_cells

T0 = 1_704_675_600_000


@pytest.fixture(scope="module")
def cells(demo_city) -> list[str]:
    return city_cells(demo_city, 8)


def test_city_cells_cover_the_demo_city_with_a_few_thousand_res8_cells(cells):
    assert 2_000 < len(cells) < 5_000
    assert all(h3.get_resolution(c) == 8 for c in cells[:50])


def test_a_hotspot_planted_in_noise_is_found_and_a_cell_elsewhere_is_not(cells):
    rng = np.random.default_rng(42)
    counts = pd.Series(rng.poisson(2.0, len(cells)).astype(float), index=cells)
    centre = cells[len(cells) // 2]
    planted = [c for c in h3.grid_disk(centre, 1) if c in counts.index]
    counts[planted] += 12  # six times the background in the centre and its ring
    result = cell_hotspots(counts, cells).set_index("cell")
    assert result.loc[centre, "hotspot"]
    assert result.loc[centre, "gi_z"] > 5 and result.loc[centre, "p_sim"] < 0.05
    far = [c for c in cells if h3.grid_distance(centre, c) > 10]
    elsewhere = far[int(np.random.default_rng(7).integers(len(far)))]
    assert not result.loc[elsewhere, "hotspot"]
    assert abs(result.loc[elsewhere, "gi_z"]) < 1.96


def test_a_lone_high_count_among_quiet_neighbours_is_weaker_than_a_cluster(cells):
    counts = pd.Series(1.0, index=cells)
    centre = cells[100]
    counts[centre] = 13
    spread = counts.copy()
    spread[centre] = 1
    ring = [c for c in h3.grid_disk(cells[1000], 1) if c in counts.index]
    spread[ring] += 12 / len(ring) * 3
    lone = cell_hotspots(counts, cells).set_index("cell")
    cluster = cell_hotspots(spread, cells).set_index("cell")
    assert cluster.loc[cells[1000], "gi_z"] > lone.loc[centre, "gi_z"]


def test_flat_or_empty_counts_have_no_hotspot(cells):
    assert not cell_hotspots(pd.Series(dtype=float), cells)["hotspot"].any()
    assert not cell_hotspots(pd.Series(3.0, index=cells), cells)["hotspot"].any()


@pytest.mark.slow
def test_a_simulated_storm_shows_a_gi_star_hotspot(demo_city, cells):
    from simulators.generate import generate

    events = generate(
        "complaints", demo_city, start_ms=T0, end_ms=T0 + 6 * 3_600_000, scenario="storm", scale=0.1, seed=3
    )
    points = np.array([(e.fields["lon"], e.fields["lat"]) for e in events if e.type == "complaint"])
    placed = [h3.latlng_to_cell(lat, lon, 8) for lon, lat in points]
    result = cell_hotspots(pd.Series(placed).value_counts(), cells)
    hot = result[result["hotspot"]]
    assert len(hot) > 0
    assert hot["gi_z"].max() > 5 and hot["p_sim"].min() < 0.01


def test_scattered_single_points_in_a_quiet_hour_are_not_hotspots(cells):
    counts = pd.Series(0.0, index=cells)
    for cell in cells[::250][:20]:  # twenty lone points far apart
        counts[cell] = 1
    assert not cell_hotspots(counts, cells)["hotspot"].any()
    counts[cells[500]] = 4  # one place with several: that one is
    assert cell_hotspots(counts, cells).set_index("cell").loc[cells[500], "hotspot"]
