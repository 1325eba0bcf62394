"""Measure the event rates each source produces: the table of defaults documented in ``simulators``.

``python -m simulators.rates`` simulates one ordinary weekday (after a warm-up day, so that
follow-ups such as decisions and complaint updates are in steady state) and prints events per
second at scale 1, averaged over the day and in the busiest hour.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime

from geo.city import City
from simulators.generate import MODELS, source_model
from simulators.rhythm import Calendar
from simulators.world import World

DAY_MS = 86_400_000
# A Monday, preceded by a Sunday of warm-up.
MEASURED_DAY = (2024, 5, 6)


# Each source is simulated at a scale that is cheap yet shows its shape (foot does not depend on it).
MEASURE_SCALES = {"cases": 0.05, "foot": 0.01, "services": 0.2, "complaints": 1.0}


def measure_rates(city: City, seed: int = 0, timezone: str = "Asia/Shanghai") -> list[dict]:
    """Return, per source, weekday average and busiest-hour events/s scaled to scale 1."""
    calendar = Calendar(timezone)
    day_start = int(datetime(*MEASURED_DAY, tzinfo=calendar.zone).timestamp() * 1000)
    rows = []
    for source in MODELS:
        scale = MEASURE_SCALES[source]
        world = World(city, scale=scale, seed=seed)
        model = source_model(source, world, start_ms=day_start - DAY_MS, seed=seed, timezone=timezone)
        model.advance(day_start)
        events = model.advance(day_start + DAY_MS)
        hours = Counter((e.ts - day_start) // 3_600_000 for e in events)
        # Foot readings come once a minute from every sensor whatever the scale.
        factor = 1.0 if source == "foot" else 1 / scale
        rows.append(
            {
                "source": source,
                "average_per_s": len(events) / 86_400 * factor,
                "peak_per_s": max(hours.values(), default=0) / 3_600 * factor,
                "types": ", ".join(
                    f"{t} {n / len(events):.0%}" for t, n in Counter(e.type for e in events).most_common()
                ),
            }
        )
    return rows


def rates_table(rows: list[dict]) -> str:
    """Format measured rates as a Markdown table."""
    lines = [
        "| source | weekday average (events/s) | busiest hour (events/s) | mix |",
        "|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['source']} | {r['average_per_s']:.1f} | {r['peak_per_s']:.1f} | {r['types']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    from geo.configured import city_for
    from settings import Settings

    print(rates_table(measure_rates(city_for(Settings.from_env()))))
    sys.exit(0)
