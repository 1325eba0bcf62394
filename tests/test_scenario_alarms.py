"""Each scenario shows what it is for on the wall within the demo's first two minutes: the simulators run
with the demo's own defaults (scale, backfill, seed) until they have caught up with now, a real aggregator
drains what they wrote, and the alarms the wall takes over with are built as the wall builds them."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from data.aggregator import Aggregator
from data.connection import client_from_url
from data.read import CityReader
from launcher import parse_args
from simulators.runner import RunOptions, run
from views.geography import CityGeography
from views.snapshots import alarms

pytestmark = [pytest.mark.redis, pytest.mark.slow]
PROMISED = {"complaints", "cases", "crowding"}


class _CaughtUp(logging.Handler):
    """Set when the runner says every source has reached the present."""

    def __init__(self):
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("caught up with the present"):
            self.event.set()


def caught_up_demo(settings, city, scenario: str) -> None:
    """Run the demo's simulators, fast, until they have caught up with the present."""
    demo = parse_args(["--scenario", scenario])
    options = RunOptions(scenario=demo.scenario, scale=demo.scale, backfill_hours=demo.backfill, speed=3600)
    caught_up = _CaughtUp()
    logger = logging.getLogger("simulators")
    logger.addHandler(caught_up)
    level = logger.level
    logger.setLevel(logging.INFO)
    stop = threading.Event()
    result = []
    runner = threading.Thread(
        target=lambda: result.append(run(options, settings, lambda: client_from_url(settings.redis_url), city, stop))
    )
    try:
        runner.start()
        caught_up.event.wait(180)
    finally:
        stop.set()
        runner.join(60)
        logger.removeHandler(caught_up)
        logger.setLevel(level)
    assert result == [0] and caught_up.event.is_set()


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [("storm", {"complaints"}), ("outbreak", {"cases"}), ("holiday", {"crowding"}), ("normal", set())],
)
def test_each_scenario_raises_its_alarm_at_the_demo_defaults(client, settings, city_map, demo_city, scenario, expected):
    caught_up_demo(settings, demo_city, scenario)
    worker = Aggregator(client, settings, city_map, name="scenario")
    worker.ensure_groups()
    worker.drain()
    worker.tick_keepers()

    raised = alarms(CityReader(client, settings), CityGeography(demo_city, 8, 25.0), settings, time.time())
    kinds = {a["kind"] for a in raised}
    assert kinds & PROMISED == expected, [a["what"] for a in raised]
