"""The four simulated sources by name, and one call that generates a source's events for a window."""

from __future__ import annotations

from geo.city import City
from simulators.cases import CaseTracing
from simulators.complaints import Complaints
from simulators.foot import FootTraffic
from simulators.scenarios import scenario_named
from simulators.services import Services
from simulators.source import Event, SourceModel
from simulators.world import World

MODELS: dict[str, type[SourceModel]] = {
    "cases": CaseTracing,
    "foot": FootTraffic,
    "services": Services,
    "complaints": Complaints,
}


def source_model(
    source: str,
    world: World,
    *,
    start_ms: int,
    scenario: str = "normal",
    seed: int = 0,
    timezone: str = "Asia/Shanghai",
) -> SourceModel:
    """Build the model of one source, starting its simulated clock at start_ms."""
    try:
        model = MODELS[source]
    except KeyError:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(MODELS)}") from None
    return model(world, scenario_named(scenario), start_ms, seed=seed, timezone=timezone)


def generate(
    source: str,
    city: City | World,
    *,
    start_ms: int,
    end_ms: int,
    scenario: str = "normal",
    scale: float = 1.0,
    seed: int = 0,
    timezone: str = "Asia/Shanghai",
) -> list[Event]:
    """Return every event of a source with start_ms <= ts < end_ms, in event-time order."""
    world = city if isinstance(city, World) else World(city, scale=scale, seed=seed)
    model = source_model(source, world, start_ms=start_ms, scenario=scenario, seed=seed, timezone=timezone)
    return model.advance(end_ms)
