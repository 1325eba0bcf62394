"""The common engine of every simulated source: a clock of whole simulated minutes and a
schedule of future events, released in event-time order.

Each minute draws from its own random generator, seeded by (seed, source, minute), so the events
of a run depend only on the seed, the scenario, the scale and the start, never on how often the
runner asks for more.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import timedelta
from typing import ClassVar, NamedTuple

import numpy as np

from data.keys import SOURCES
from simulators.rhythm import Calendar
from simulators.scenarios import Scenario
from simulators.world import World

MINUTE_MS = 60_000


class Event(NamedTuple):
    """One simulated event: its type, its event time (ms, UTC) and its fields for ``data.schema.encode``."""

    type: str
    ts: int
    fields: dict


class SourceModel:
    """A source of events that advances through simulated time, minute by minute."""

    source: ClassVar[str]

    def __init__(self, world: World, scenario: Scenario, start_ms: int, seed: int = 0, timezone: str = "Asia/Shanghai"):
        self.world = world
        self.scenario = scenario
        self.start_ms = int(start_ms)
        self.seed = seed
        start_day = Calendar(timezone).local(self.start_ms).date()
        holidays = frozenset(start_day + timedelta(days=d) for d in range(scenario.holiday_days))
        self.calendar = Calendar(timezone, holidays)
        self._schedule: list[tuple[int, int, str, dict]] = []
        self._order = itertools.count()
        self._next_minute = self.start_ms // MINUTE_MS
        self._floor_ms = self.start_ms
        self.prepare(np.random.default_rng([seed, SOURCES.index(self.source) + 1, 1 << 40]))

    def prepare(self, rng: np.random.Generator) -> None:
        """Set up what the run's story needs before the first minute (clusters, an index case...)."""

    def minute(self, start_ms: int, rng: np.random.Generator) -> None:
        """Emit (or schedule) the events that begin in the simulated minute starting at start_ms."""
        raise NotImplementedError

    def emit(self, type_name: str, ts: float, **fields) -> None:
        """Schedule an event; it is released once simulated time passes its event time."""
        # Nothing may land before the minute that caused it: it would come out of order.
        ts = max(int(ts), self._floor_ms)
        heapq.heappush(self._schedule, (ts, next(self._order), type_name, fields))

    def advance(self, until_ms: int) -> list[Event]:
        """Return, in event-time order, every event with start <= ts < until_ms not returned before."""
        while self._next_minute * MINUTE_MS < until_ms:
            minute_start = self._next_minute * MINUTE_MS
            self._floor_ms = max(minute_start, self.start_ms)
            rng = np.random.default_rng([self.seed, SOURCES.index(self.source) + 1, self._next_minute])
            self.minute(minute_start, rng)
            self._next_minute += 1
        released = []
        while self._schedule and self._schedule[0][0] < until_ms:
            ts, _, type_name, fields = heapq.heappop(self._schedule)
            released.append(Event(type_name, ts, fields))
        return released

    @property
    def scheduled(self) -> int:
        """Number of future events waiting in the schedule."""
        return len(self._schedule)
