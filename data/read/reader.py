"""The reader a dashboard is handed: windows of counters and the pipeline's health, over one client."""

from __future__ import annotations

from data.read.health import HealthReads
from data.read.windows import WindowCounts


class CityReader(WindowCounts, HealthReads):
    """Answers the dashboard's questions from Redis; the client is passed in."""
