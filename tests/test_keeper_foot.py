"""The foot-traffic keeper's over-capacity stretches through the aggregator, against a real Redis."""

from __future__ import annotations

import time

import pytest

from data.aggregator import Aggregator
from data.keepers.foot import over_capacity
from data.keys import Keys
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
    stretch = over_capacity(client, Keys(settings.key_prefix))
    assert {s: v["since_ms"] for s, v in stretch.items()} == {"S-1": t + 3 * MINUTE_MS}
