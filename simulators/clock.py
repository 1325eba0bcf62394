"""The simulated clock: compressed time from a start in the past that never runs ahead of the wall clock.

The clock runs ``speed`` simulated seconds per real second until it catches up with the present,
then follows the wall clock, so no event ever carries a time in the future.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DEFAULT_BACKFILL_HOURS = 3.0


def run_start_ms(now_ms: int, speed: float, duration_s: float | None, backfill_hours: float) -> int:
    """Return where simulated time starts: so a bounded run ends about now, or a backfill before going live."""
    if duration_s is not None:
        return int(now_ms - duration_s * speed * 1000)
    if speed > 1:
        return int(now_ms - backfill_hours * 3_600_000)
    return int(now_ms)


class SimulatedClock:
    """Simulated time that runs at ``speed`` from ``start_ms`` and is capped at the wall clock."""

    def __init__(
        self,
        start_ms: int,
        speed: float,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start_ms = start_ms
        self.speed = speed
        self._wall = wall
        self._monotonic = monotonic
        self._began = monotonic()

    def now_ms(self) -> int:
        """Return the current simulated time (ms since the epoch), never ahead of the wall clock."""
        compressed = self.start_ms + (self._monotonic() - self._began) * self.speed * 1000
        return int(min(compressed, self._wall() * 1000))

    def caught_up(self) -> bool:
        """Whether simulated time has reached the present and now runs in real time."""
        return self.now_ms() >= int(self._wall() * 1000) - 1
