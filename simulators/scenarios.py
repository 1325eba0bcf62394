"""The scenarios a simulation can play: a normal week, an outbreak, a storm, a holiday crowd.

Every scenario's timeline is anchored at the start of the simulated run, so a run with
``--duration D --speed S`` plays the same story wherever it sits on the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Scenario:
    """What happens to the city during a run, beyond its daily and weekly rhythm."""

    name: str
    help: str
    outbreak: bool = False
    storm: bool = False
    holiday_days: int = 0
    festival: bool = False

    def storm_intensity(self, ts_ms: int, start_ms: int) -> float:
        """Return the storm's strength (0 calm, 1 peak) at an event time."""
        if not self.storm:
            return 0.0
        hours = (ts_ms - start_ms - STORM_ONSET_MS) / HOUR_MS
        if hours < 0 or hours > STORM_HOURS:
            return 0.0
        # Rain builds over the first hour, peaks, and the aftermath (fallen trees, flooding) trails off.
        rise = min(1.0, hours / 1.0)
        fall = min(1.0, (STORM_HOURS - hours) / 4.0)
        return min(rise, fall)

    def festival_fill(self, ts_ms: int, start_ms: int) -> float:
        """Return how full the festival's park is (share of its capacity, 0 when there is no crowd) at an event time."""
        if not self.festival:
            return 0.0
        minutes = (ts_ms - start_ms - FESTIVAL_ONSET_MS) / 60_000
        if minutes < 0 or minutes > FESTIVAL_MINUTES:
            return 0.0
        # The crowd gathers over half an hour, stays for the show and disperses over the last half hour.
        return FESTIVAL_PEAK_FILL * min(1.0, minutes / 30, (FESTIVAL_MINUTES - minutes) / 30)


# The storm arrives soon after the run starts so that even a short run shows it.
STORM_ONSET_MS = 10 * 60_000
STORM_HOURS = 10.0
# The holiday's festival (a lantern show in the city's largest park) also starts soon after the run, whatever the
# hour, and fills the park past its capacity: the crowd is counted in people, not scaled down with the city.
FESTIVAL_ONSET_MS = 5 * 60_000
FESTIVAL_MINUTES = 4 * 60
FESTIVAL_PEAK_FILL = 1.3

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("normal", "an ordinary week: daily and weekly rhythms, a few complaint clusters"),
        Scenario(
            "outbreak",
            "a shift of workers at one workplace confirmed within the run's first hour (a case cluster at once); "
            "an index case at a restaurant about an hour into the run, whose contacts fall ill days later "
            "(play that with --speed 3600 and a few days of --backfill or --duration)",
            outbreak=True,
        ),
        Scenario(
            "storm",
            "a rainstorm from 10 minutes into the run for 10 hours: flooded streets reported by many, fallen trees, "
            "blocked drains, "
            "power cuts and dark streetlights; parks empty, counters quieter",
            storm=True,
        ),
        Scenario(
            "holiday",
            "a three-day public holiday from the first day of the run: crowded malls and parks, "
            "weekend metro, service centers closed; a lantern festival fills the largest park past its capacity "
            "from 5 minutes into the run for 4 hours",
            holiday_days=3,
            festival=True,
        ),
    )
}


def scenario_named(name: str) -> Scenario:
    """Return the scenario with that name, or raise ValueError listing the known ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}") from None
