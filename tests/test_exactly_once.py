"""A worker killed at any instant, again and again, leaves exactly the aggregates of one that never died."""

from __future__ import annotations

import random
import signal
import time

import pytest

from data.aggregator import Aggregator
from data.keys import SOURCES, Keys
from data.read import CityReader
from data.schema import EVENT_TYPES
from tests.events import raw_event
from tests.ledger import assert_settled
from tests.workers import worker_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]
BAD = [("ts", "yesterday"), ("seq", "-"), ("v", "7"), ("src", "")]  # fields every event has


def produce(client, keys: Keys, n: int, seed: int, now: int) -> tuple[dict[str, int], int]:
    """Write a seeded mix of valid and malformed events; return valid counts per source and the bad count."""
    rng = random.Random(seed)
    types = [t for t in EVENT_TYPES]
    valid = dict.fromkeys(SOURCES, 0)
    bad = 0
    pipe = client.pipeline(transaction=False)
    for seq in range(n):
        t = rng.choice(types)
        fields = raw_event(t.name, seq=seq, ts=now - rng.randrange(600_000), src="kill-test")
        if t.name == "reading":
            fields["sensor_id"] = f"S-{rng.randrange(50)}"
            fields["lon"] = f"{113.9 + rng.random() * 0.4:.6f}"
        if rng.random() < 0.03:
            name, value = rng.choice(BAD)
            fields[name] = value
            bad += 1
        else:
            valid[t.source] += 1
        pipe.xadd(keys.stream(t.source), fields)
        if seq % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return valid, bad


def snapshot(client, keys: Keys) -> dict[str, dict]:
    """Every aggregate and latest-state hash under a prefix, keyed without the prefix."""
    out = {}
    for source in SOURCES:
        tag = keys.stream(source).removesuffix(":events")
        # Fine buckets are the truth; hourly ones are rolled up from them when an hour closes.
        for key in client.scan_iter(match=f"{tag}:agg:*:m:*", count=1000):
            out[key.decode().replace(tag, source)] = client.hgetall(key)
        for key in client.scan_iter(match=f"{tag}:latest:*", count=1000):
            out[key.decode().replace(tag, source)] = client.hgetall(key)
        meta = client.hgetall(keys.meta(source))
        out[f"{source}:meta"] = {k: meta.get(k) for k in (b"events", b"newest_ms")}
        out[f"{source}:dead"] = client.hgetall(keys.dead_counts(source))
    return out


def test_a_worker_killed_repeatedly_mid_stream_leaves_exactly_the_aggregates_of_a_run_that_never_died(
    client, settings, city_map
):
    killed_keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    valid, bad = produce(client, killed_keys, 30_000, seed=11, now=now)

    rng = random.Random(5)
    reader = CityReader(client, settings)
    kills = 0
    for _ in range(6):
        before = sum(f["events"] for f in reader.freshness().values())
        proc = worker_process(settings, 200)
        deadline = time.monotonic() + 30
        while sum(f["events"] for f in reader.freshness().values()) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "the worker finished before it could be killed often enough"

    final = worker_process(settings, 200)
    _, err = final.communicate(timeout=300)  # a bound on a hang, not a measure: a busy machine takes longer
    assert final.returncode == 0, err.decode()[-2000:]

    fresh = reader.freshness()
    assert {s: fresh[s]["events"] for s in SOURCES} == valid
    assert sum(sum(d.values()) for d in reader.dead_letter_counts().values()) == bad
    assert all(v["lag"] == 0 and v["pending"] == 0 for v in reader.consumer_lag().values())
    assert_settled(client, killed_keys)

    # The same events, folded by a worker that never died, give identical aggregates.
    calm = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-calm"})
    calm_keys = Keys(calm.key_prefix)
    produce(client, calm_keys, 30_000, seed=11, now=now)
    worker = Aggregator(client, calm, city_map, name="calm")
    worker.ensure_groups()
    while worker.step():
        pass
    killed, never = snapshot(client, killed_keys), snapshot(client, calm_keys)
    assert killed.keys() == never.keys()
    assert killed == never
