"""The simulated residents of a city and the spots they live at, derived once from a ``geo`` City.

A run at ``scale`` 1 has as many residents as Shenzhen; they are spread over the city's
communities in proportion to each community's population. Residents are numbered, and each
number has a stable pseudonymous token (never a name) that depends on the seed.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import shapely

from geo.city import City

# Shenzhen's resident population (2020 census, rounded): what ``scale`` 1 means.
SHENZHEN_POPULATION = 17_560_000
SPOTS_PER_COMMUNITY = 32
# About 20 m: spreads events of one spot apart without leaving the neighbourhood.
SPOT_JITTER_DEG = 0.0002


class World:
    """Residents, homes and places of a city, ready for fast sampling."""

    def __init__(self, city: City, scale: float = 1.0, seed: int = 0):
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        communities = city.communities.reset_index(drop=True)
        self.city = city
        self.scale = scale
        self.seed = seed
        self.community_ids = communities["community_id"].to_numpy(dtype=object)
        self.community_names = communities["name"].to_numpy(dtype=object)
        self.community_neighbourhoods = communities["neighbourhood_id"].to_numpy(dtype=object)
        self.community_districts = communities["district_id"].to_numpy(dtype=object)
        population = communities["population"].to_numpy(dtype=float).clip(min=1)
        self.population_share = population / population.sum()
        self.residents = max(1, round(scale * SHENZHEN_POPULATION))
        self._resident_bounds = np.round(np.cumsum(self.population_share) * self.residents).astype(np.int64)
        self._resident_bounds[-1] = self.residents
        self.spots = _spots_inside(communities.geometry.to_numpy(), np.random.default_rng([seed, 1]))
        self.places = city.places.reset_index(drop=True).copy()
        self.places["capacity"] = pd.to_numeric(self.places["capacity"], errors="coerce").fillna(0).astype(int)
        self.district_ids = city.districts["district_id"].to_numpy(dtype=object)
        self.neighbourhood_names = dict(zip(city.neighbourhoods["neighbourhood_id"], city.neighbourhoods["name"]))
        self.district_names = dict(zip(city.districts["district_id"], city.districts["name"]))
        self._community_index = {c: i for i, c in enumerate(self.community_ids)}

    def random_residents(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw residents (by number) uniformly from the whole city."""
        return rng.integers(0, self.residents, size=count)

    def home_of(self, residents: np.ndarray | int) -> np.ndarray | int:
        """Return the community index where each resident lives."""
        return np.searchsorted(self._resident_bounds, residents, side="right")

    def resident_token(self, resident: int) -> str:
        """Return the pseudonymous, seed-dependent token of a resident."""
        digest = hashlib.blake2b(int(resident).to_bytes(8, "little"), digest_size=8, key=self._token_key)
        return "p" + digest.hexdigest()

    @property
    def _token_key(self) -> bytes:
        return f"citydeck-{self.seed}".encode()

    def home_spot(self, resident: int) -> tuple[float, float]:
        """Return the (lon, lat) of a resident's home: a fixed spot in their community."""
        community = int(self.home_of(resident))
        lon, lat = self.spots[community, int(resident) % SPOTS_PER_COMMUNITY]
        return float(lon), float(lat)

    def spot_in(self, community: int, rng: np.random.Generator) -> tuple[float, float]:
        """Return a random (lon, lat) inside a community, slightly jittered."""
        lon, lat = self.spots[community, int(rng.integers(SPOTS_PER_COMMUNITY))]
        jitter = rng.normal(0, SPOT_JITTER_DEG, 2)
        return float(lon + jitter[0]), float(lat + jitter[1])

    def community_index(self, community_id: str) -> int:
        """Return the row of a community by its id."""
        return self._community_index[community_id]

    def random_communities(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Draw communities in proportion to their population."""
        return rng.choice(len(self.community_ids), size=count, p=self.population_share)


def _spots_inside(geometries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample SPOTS_PER_COMMUNITY points inside each polygon, as an array (community, spot, lon/lat)."""
    spots = np.empty((len(geometries), SPOTS_PER_COMMUNITY, 2))
    for i, geometry in enumerate(geometries):
        xmin, ymin, xmax, ymax = geometry.bounds
        xs = rng.uniform(xmin, xmax, SPOTS_PER_COMMUNITY * 6)
        ys = rng.uniform(ymin, ymax, SPOTS_PER_COMMUNITY * 6)
        inside = shapely.contains_xy(geometry, xs, ys)
        if not inside.any():
            point = geometry.representative_point()
            spots[i] = (point.x, point.y)
            continue
        chosen = np.flatnonzero(inside)
        chosen = np.resize(chosen, SPOTS_PER_COMMUNITY)
        spots[i, :, 0] = xs[chosen]
        spots[i, :, 1] = ys[chosen]
    return spots
