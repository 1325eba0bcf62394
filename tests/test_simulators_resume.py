"""Restarting the simulators never writes an event twice: a run stopped in its backfill and started
again leaves exactly the streams and aggregates of one run that never stopped."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keys import Keys
from data.schema import encode
from simulators.generate import generate
from simulators.resume import (
    REPLAY_LIMIT_MS,
    Written,
    newest_written,
    parse_producer_id,
    plan_start,
    producer_id,
    story,
)
from simulators.runner import RunOptions, run
from simulators.world import World
from tests.test_exactly_once import snapshot

pytestmark = [pytest.mark.redis, pytest.mark.slow]
MINUTE_MS = 60_000
SOURCES = ("cases", "services", "complaints")
SCALE = 0.2


def run_until(settings, city, options: RunOptions, done) -> None:
    """Run the simulators in a thread until ``done()`` holds (polled), then stop them cleanly."""
    stop = threading.Event()
    result = []
    runner = threading.Thread(
        target=lambda: result.append(run(options, settings, lambda: client_from_url(settings.redis_url), city, stop))
    )
    runner.start()
    deadline = time.monotonic() + 120
    while not done() and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(60)
    assert result == [0]


def complaint_ids(client, keys: Keys) -> list[str]:
    return [
        f[b"complaint_id"].decode() for _, f in client.xrange(keys.stream("complaints")) if f[b"type"] == b"complaint"
    ]


def drain(client, settings, city_map) -> None:
    worker = Aggregator(client, settings, city_map, name="resume-test")
    worker.ensure_groups()
    worker.drain()


def test_a_restart_in_the_backfill_resumes_the_run_and_counts_nothing_twice(client, settings, city_map, demo_city):
    keys = Keys(settings.key_prefix)
    start = int(time.time() * 1000) // 1000 * 1000 - 60 * MINUTE_MS
    options = RunOptions(sources=SOURCES, speed=900, scale=SCALE, seed=4, start_ms=start, flush_seconds=0.05)

    def written_until(ms: int):
        return lambda: all((w := newest_written(client, keys.stream(s))) and w.ts >= ms for s in SOURCES)

    # Stopped twenty simulated minutes into its backfill...
    run_until(settings, demo_city, options, written_until(start + 20 * MINUTE_MS))
    first_run = newest_written(client, keys.stream("complaints"))
    # ...and started again as the demo does a little later: its backfill now begins ten minutes on.
    again = RunOptions(**{**options.__dict__, "start_ms": start + 10 * MINUTE_MS})
    run_until(settings, demo_city, again, written_until(first_run.ts + 15 * MINUTE_MS))
    drain(client, settings, city_map)

    # One run that never stopped, over the same span of each stream.
    calm = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-calm"})
    calm_keys = Keys(calm.key_prefix)
    world = World(demo_city, scale=SCALE, seed=4)
    pipe = client.pipeline(transaction=False)
    for source in SOURCES:
        end = newest_written(client, keys.stream(source)).ts + 1
        for seq, e in enumerate(generate(source, world, start_ms=start, end_ms=end, seed=4)):
            pipe.xadd(calm_keys.stream(source), encode(e.type, src="calm", seq=seq, ts=e.ts, **e.fields))
    pipe.execute()
    drain(client, calm, city_map)

    ids, calm_ids = complaint_ids(client, keys), complaint_ids(client, calm_keys)
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert sorted(ids) == sorted(calm_ids)
    assert {s: client.xlen(keys.stream(s)) for s in SOURCES} == {s: client.xlen(calm_keys.stream(s)) for s in SOURCES}
    restarted, never = snapshot(client, keys), snapshot(client, calm_keys)
    assert all(not restarted[f"{s}:dead"] for s in SOURCES), {s: restarted[f"{s}:dead"] for s in SOURCES}
    assert {k: v for k, v in restarted.items() if k.split(":")[0] in SOURCES} == {
        k: v for k, v in never.items() if k.split(":")[0] in SOURCES
    }


def test_a_restart_with_another_story_starts_where_the_stream_ends(client, settings, demo_city):
    keys = Keys(settings.key_prefix)
    start = int(time.time() * 1000) // 1000 * 1000 - 60 * MINUTE_MS
    options = RunOptions(sources=("services",), speed=900, scale=SCALE, seed=4, start_ms=start, flush_seconds=0.05)
    stream = keys.stream("services")
    run_until(settings, demo_city, options, lambda: client.xlen(stream) > 200)
    before = newest_written(client, stream)
    stormy = RunOptions(**{**options.__dict__, "scenario": "storm", "start_ms": start + 5 * MINUTE_MS})
    run_until(settings, demo_city, stormy, lambda: newest_written(client, stream).src != before.src)
    entries = client.xrange(stream)
    second = [int(f[b"ts"]) for _, f in entries if f[b"src"].decode() != before.src]
    assert second and min(second) > before.ts
    assert {int(f[b"seq"]) for _, f in entries if f[b"src"].decode() != before.src} == set(range(len(second)))


def test_a_run_is_resumed_only_over_its_own_story_and_only_when_a_new_start_would_overlap():
    digest = story("foot", seed=0, scenario="normal", scale=0.05, timezone="Asia/Shanghai", city="demo")
    origin = 1_715_000_000_000
    src = producer_id("foot", origin, digest)
    assert parse_producer_id(src, "foot") == (origin, digest)
    written = Written(src, 99, origin + 30 * MINUTE_MS, "reading")
    # A restart whose backfill overlaps what was written resumes it.
    assert plan_start("foot", origin + 10 * MINUTE_MS, digest, written) == (origin, src)
    # Nothing written over the new span: a new run where it wants to start.
    assert plan_start("foot", origin + 31 * MINUTE_MS, digest, written) == (origin + 31 * MINUTE_MS, None)
    # Another story, a producer id of another form, or too long a replay: a new run after the stream's end.
    other = story("foot", seed=0, scenario="storm", scale=0.05, timezone="Asia/Shanghai", city="demo")
    assert plan_start("foot", origin + 10 * MINUTE_MS, other, written) == (written.ts + 1, None)
    foreign = Written("sim-foot-1a2b3c4d", 99, written.ts, "reading")
    assert plan_start("foot", origin + 10 * MINUTE_MS, digest, foreign) == (written.ts + 1, None)
    late = Written(src, 99, origin + REPLAY_LIMIT_MS + 1, "reading")
    assert plan_start("foot", origin + 10 * MINUTE_MS, digest, late) == (late.ts + 1, None)
