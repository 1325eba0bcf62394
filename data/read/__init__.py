"""The read API: every question a dashboard asks of the aggregates and the keepers' state.

A snapshot builder is handed a :class:`CityReader` and asks through the modules here (windows of
counters, foot traffic, cases, complaints, services, health); it never sees a Redis client or a key.
"""

from data.keys import SOURCE_TITLES, SOURCES
from data.read.reader import CityReader
from data.read.windows import HOUR_S, Window, cover, rollup

__all__ = ["HOUR_S", "SOURCES", "SOURCE_TITLES", "CityReader", "Window", "cover", "rollup"]
