"""The simulators' scenarios exercise the engines end to end: events through a real aggregator and Redis."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader, Window
from data.read.complaints import complaint_table
from data.schema import encode
from engines.hotspots import cell_hotspots, city_cells
from simulators.generate import generate

pytestmark = [pytest.mark.redis, pytest.mark.slow]
HOUR_MS = 3_600_000


def feed(client, settings, city_map, source: str, events) -> Aggregator:
    """Write simulated events the way a producer does and let one worker take them all."""
    keys = Keys(settings.key_prefix)
    pipe = client.pipeline(transaction=False)
    for seq, e in enumerate(events):
        pipe.xadd(keys.stream(source), encode(e.type, src="scenario", seq=seq, ts=e.ts, **e.fields))
    pipe.execute()
    worker = Aggregator(client, settings, city_map, name="scenario")
    worker.ensure_groups()
    worker.drain()
    return worker


def test_a_storm_brings_escalations_and_a_detected_complaint_hotspot(client, settings, city_map, demo_city):
    end = int(time.time() * 1000) - 60_000
    start = end - 6 * HOUR_MS
    events = list(generate("complaints", demo_city, start_ms=start, end_ms=end, scenario="storm", scale=0.1, seed=3))
    worker = feed(client, settings, city_map, "complaints", events)
    worker.tick_keepers()

    reader = CityReader(client, settings)
    window = Window(start // 1000, end // 1000 + 60)
    assert reader.dead_letter_counts()["complaints"] == {}
    escalated = reader.counts("complaints", "escalations.level", window)
    routes = pd.DataFrame(complaint_table(CityReader(client, settings), end))
    assert sum(escalated.values()) > 10 and routes["escalations"].sum() > 10
    assert (routes["priority"] == 1).any() and routes["reason"].str.startswith("P").all()

    per_cell = pd.Series(reader.counts("complaints", "complaints.h3", window), dtype=float).drop(
        "outside", errors="ignore"
    )
    hot = cell_hotspots(per_cell, city_cells(demo_city, 8))
    assert hot["hotspot"].any() and hot["gi_z"].max() > 5 and hot["p_sim"].min() < 0.01


def test_a_normal_day_escalates_less_than_a_storm(client, settings, city_map, demo_city):
    end = int(time.time() * 1000) - 60_000
    start = end - 6 * HOUR_MS
    storm = list(generate("complaints", demo_city, start_ms=start, end_ms=end, scenario="storm", scale=0.1, seed=3))
    calm = list(generate("complaints", demo_city, start_ms=start, end_ms=end, scenario="normal", scale=0.1, seed=3))
    assert len([e for e in storm if e.type == "complaint"]) > 2 * len([e for e in calm if e.type == "complaint"])
