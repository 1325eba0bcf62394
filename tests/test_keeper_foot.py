"""The foot-traffic keeper's over-capacity stretches through the aggregator, against a real Redis."""

from __future__ import annotations

import json
import random
import time

import pytest

from data import aggregator
from data.aggregator import Aggregator
from data.keepers.foot import READINGS
from data.keys import Keys
from data.read import CityReader
from data.read.foot import over_capacity
from engines.foot import CrowdingRule
from tests.events import raw_event

pytestmark = pytest.mark.redis
MINUTE_MS = 60_000


def reading(seq: int, ts: int, occupancy: int) -> dict[str, str]:
    return raw_event("reading", seq=seq, ts=ts, sensor_id="S-1", occupancy=occupancy, capacity=1000)


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([[0, 1, 2, 3, 4]], id="one-batch"),
        pytest.param([[0], [1], [2], [3], [4]], id="in-order"),
        pytest.param([[3, 4], [0, 1, 2]], id="the-newest-first"),
        pytest.param([[4], [2], [0], [3], [1]], id="shuffled"),
    ],
)
def test_a_stretch_over_capacity_is_the_same_however_its_readings_are_batched(client, settings, city_map, batches):
    t = int(time.time() * 1000) - 10 * MINUTE_MS
    # Over, over, under, over, over: the stretch began with the fourth reading.
    readings = [reading(i, t + i * MINUTE_MS, occupancy) for i, occupancy in enumerate((950, 990, 400, 960, 999))]
    worker = Aggregator(client, settings, city_map, name="crowd")
    worker.ensure_groups()
    for batch in batches:
        for i in batch:
            client.xadd(Keys(settings.key_prefix).stream("foot"), readings[i])
        worker.drain()
    stretch = over_capacity(CityReader(client, settings))
    assert {s: v["since_ms"] for s, v in stretch.items()} == {"S-1": t + 3 * MINUTE_MS}


def expected_stretch(readings: list[tuple[int, bool]], gap_ms: float) -> tuple[int, int] | None:
    """(since, last) of the crowded stretch still going at the newest reading, straight from every reading."""
    ordered = sorted(readings)
    if not ordered or not ordered[-1][1]:
        return None
    since = last = ordered[-1][0]
    for ts, crowded in reversed(ordered[:-1]):
        if not crowded or since - ts > gap_ms:
            break
        since = ts
    return since, last


@pytest.mark.parametrize(
    "minutes",
    [
        # Crowded for six hours with holes of up to four minutes: one stretch, begun long before the last three hours.
        pytest.param([(m, True) for m in range(360) if m % 7 not in (2, 3, 4, 5)], id="long-stretch-with-small-holes"),
        # A gap of eleven minutes, an under reading, then crowded for five hours: begun after the under reading.
        pytest.param(
            [(m, True) for m in range(30)] + [(50, False)] + [(m, True) for m in range(51, 360) if m % 5 != 1],
            id="begun-after-an-under-reading",
        ),
        # Crowded throughout but for eight unreported minutes two hours before the end: begun after the gap.
        pytest.param([(m, True) for m in range(360) if not 232 <= m < 240], id="begun-after-a-gap"),
        # Crowded, then under at the very end: no stretch.
        pytest.param([(m, True) for m in range(300)] + [(300, False)], id="ended-by-the-newest-reading"),
    ],
)
def test_a_long_stretch_is_the_one_its_readings_give_when_they_arrive_a_little_out_of_order(
    client, settings, city_map, minutes
):
    start = int(time.time() * 1000) - 400 * MINUTE_MS
    events = [
        (start + m * MINUTE_MS, crowded, reading(i, start + m * MINUTE_MS, 990 if crowded else 100))
        for i, (m, crowded) in enumerate(minutes)
    ]
    worker = Aggregator(client, settings, city_map, name="long")
    worker.ensure_groups()
    stream = Keys(settings.key_prefix).stream("foot")
    rng = random.Random(len(minutes))
    chunks = [
        [e for e in events if start + k * 5 * MINUTE_MS <= e[0] < start + (k + 1) * 5 * MINUTE_MS] for k in range(72)
    ]
    for k in range(0, len(chunks) - 1, 2):  # pairs of chunks swapped: up to ten minutes late, inside the lateness
        if rng.random() < 0.5:
            chunks[k], chunks[k + 1] = chunks[k + 1], chunks[k]
    for chunk in chunks:
        rng.shuffle(chunk)
        for _, _, event in chunk:
            client.xadd(stream, event)
        worker.drain()
    gap_ms = CrowdingRule.of(settings).gap_s(60) * 1000
    expected = expected_stretch([(ts, crowded) for ts, crowded, _ in events], gap_ms)
    stretch = over_capacity(CityReader(client, settings)).get("S-1")
    assert (None if stretch is None else (stretch["since_ms"], stretch["last_ms"])) == expected


def test_a_backfill_of_older_readings_after_the_newest_joins_the_stretch_they_begin(
    client, settings, city_map, monkeypatch
):
    """Readings days older than the newest are not late while the horizon has not passed them (a backfill,
    or a worker racing others): they must join the stretch, not be forgotten as too old to matter."""
    monkeypatch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)  # the horizon stays where it is until asked
    start = int(time.time() * 1000) - 8 * 60 * MINUTE_MS
    minutes = list(range(0, 8 * 60, 2))  # crowded every two minutes for eight hours
    worker = Aggregator(client, settings, city_map, name="backfill")
    worker.ensure_groups()
    stream = Keys(settings.key_prefix).stream("foot")
    # The last hour first, then the seven before it, oldest first, an hour at a time.
    for hour in (7, 0, 1, 2, 3, 4, 5, 6):
        for m in minutes:
            if hour * 60 <= m < (hour + 1) * 60:
                client.xadd(stream, reading(m, start + m * MINUTE_MS, 990))
        while worker.step(block_ms=None):
            pass
        worker.flush()
    stretch = over_capacity(CityReader(client, settings))["S-1"]
    assert (stretch["since_ms"], stretch["last_ms"]) == (start, start + minutes[-1] * MINUTE_MS)
    # Once the horizon passes them, the old readings are folded into where their run began, and it holds.
    worker.roll_up()
    client.xadd(stream, reading(10_000, start + 8 * 60 * MINUTE_MS, 990))
    worker.drain()
    stretch = over_capacity(CityReader(client, settings))["S-1"]
    assert (stretch["since_ms"], stretch["last_ms"]) == (start, start + 8 * 60 * MINUTE_MS)
    kept = json.loads(client.hget(Keys(settings.key_prefix).state("foot", READINGS), "S-1"))
    assert len(kept["over"]) < len(minutes) / 2 and kept["anchor"] == start
