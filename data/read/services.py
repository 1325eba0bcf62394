"""Service reads: applications by channel, decision and processing time over an area, and the service
centers' flow and waits."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data.read.windows import Window, in_areas

if TYPE_CHECKING:
    from data.read.reader import CityReader

APPLICATIONS = ("channel", "decision_mode", "processing")  # kept per community and per district
CENTERS = ("center_action", "wait_ms", "waited")  # kept per service center


@dataclass(frozen=True)
class Area:
    """Where a figure counts: whole districts (the city, or one district), or some communities."""

    districts: Collection[str] = ()
    communities: Collection[str] = ()

    def facet(self, name: str) -> tuple[str, Collection[str]]:
        """The applications facet to read for this area, and the areas to sum in it: whole districts
        read the district facet, a few fields whatever the volume, not one per community and value."""
        if self.districts:
            return f"applications.district_{name}", frozenset(self.districts)
        return f"applications.community_{name}", frozenset(self.communities)


def service_counts(reader: CityReader, window: Window, area: Area) -> dict[str, dict[str, int]]:
    """Over one window: ``community``, applications per community (for the map); over the area,
    ``channel``, ``decision_mode`` ('decision|mode') and ``processing`` ('mode|bin'); per service center,
    ``center_action`` ('center|action'), ``wait_ms`` and ``waited``."""
    wanted = {name: area.facet(name) for name in APPLICATIONS}
    facets = [f for f, _ in wanted.values()]
    got = reader.counts_many(
        "services", ["applications.community", *facets, *(f"appointments.{name}" for name in CENTERS)], window
    )
    out = {"community": got["applications.community"]}
    out |= {name: in_areas(got[facet], areas) for name, (facet, areas) in wanted.items()}
    out |= {name: got[f"appointments.{name}"] for name in CENTERS}
    return out


def decision_modes(reader: CityReader, window: Window, area: Area) -> dict[str, int]:
    """Applications over the area in one window, per 'decision|mode'."""
    facet, areas = area.facet("decision_mode")
    return in_areas(reader.counts("services", facet, window), areas)
