"""Any number of aggregator workers draining the same events at once leave exactly the aggregates of one.

The same seeded entries of all four sources (out of order by minutes, repeated, malformed, with
complaints closed before, with and after they open, and stragglers for an hour already rolled up)
are written under one key prefix per run and drained by 1, 2 and 3 workers at once, each with its
own connection and small batches so their batches interleave. Every key the workers wrote is then
compared, whole: counters, hourly roll-ups, latest states, keeper states (the contact tracer's
exposures, contacts and health codes among them), dead letters. Likewise a
worker process killed again and again mid-stream, its entries claimed by the next, leaves what one
undisturbed worker leaves.
"""

from __future__ import annotations

import signal
import time

import pytest

from data import aggregator
from data.aggregator import Aggregator
from data.keys import SOURCES, Keys
from data.read import CityReader
from tests.event_mix import MINUTE_MS, CityMix
from tests.ledger import assert_settled, digest
from tests.workers import drain_at_once, worker_process

pytestmark = [pytest.mark.redis, pytest.mark.slow]
HOUR_MS = 3_600_000


def settings_for(settings, prefix: str):
    return type(settings)(**{**settings.__dict__, "key_prefix": prefix})


def write(client, keys: Keys, entries) -> None:
    pipe = client.pipeline(transaction=False)
    for source, fields in entries:
        pipe.xadd(keys.stream(source), fields)
    pipe.execute()


def run(client, settings, city_map, phases, workers: int, now_ms: int) -> dict[str, object]:
    keys = Keys(settings.key_prefix)
    for entries in phases:
        write(client, keys, entries)
        drain_at_once(settings, city_map, workers, now_ms)
        after = Aggregator(client, settings, city_map, name="after", clock=lambda: now_ms / 1000)
        # Cases traced by two batches in flight at once are traced again by the tick, as every few seconds.
        after.tick_keepers()
        # Hours close between the phases, as a worker's roll-up closes them while events flow.
        after.roll_up()
    lag = CityReader(client, settings).consumer_lag()
    assert all(v["lag"] == 0 and v["pending"] == 0 for v in lag.values()), lag
    assert_settled(client, keys)
    return digest(client, keys)


def test_one_two_and_three_workers_at_once_leave_identical_aggregates(
    client, settings, city_map, demo_city, monkeypatch
):
    # Hours close between the phases only, at the same place in the stream for every run: a roll-up
    # is the one thing that makes an event late, and when it runs is up to the clock, not the events.
    monkeypatch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)
    now_ms = int(time.time() * 1000)
    hour = now_ms // HOUR_MS * HOUR_MS - 2 * HOUR_MS  # an hour that closes during the run
    mix = CityMix(demo_city, seed=23)
    first = mix.phase(hour + 5 * MINUTE_MS, hour + 80 * MINUTE_MS, 2500)
    second = mix.phase(hour + 80 * MINUTE_MS, hour + 90 * MINUTE_MS, 1200, stragglers_from=hour + 20 * MINUTE_MS)
    # A lateness shorter than the disorder, and small batches: batches interleave and their events
    # lie minutes apart, which is what made two workers refuse each other's events as late.
    base = type(settings)(**{**settings.__dict__, "lateness_seconds": 120, "batch_size": 40})

    runs = {n: run(client, settings_for(base, f"{base.key_prefix}-{n}"), city_map, [first, second], n, now_ms)
            for n in (1, 2, 3)}  # fmt: skip

    one = runs[1]
    counted = sum(int(one[f"{{P:{s}}}:meta"][b"events"]) for s in SOURCES)
    dead = {s: one.get(f"{{P:{s}}}:dead:counts", {}) for s in SOURCES}
    assert counted > 3000 and all(b"duplicate" in d and b"late" in d for d in dead.values()), dead
    assert any(k.endswith(":h:" + str(hour // 1000)) for k in one), "the first hour was rolled up"
    for n in (2, 3):
        assert runs[n].keys() == one.keys(), (n, sorted(runs[n].keys() ^ one.keys())[:20])
        differ = sorted(k for k in one if runs[n][k] != one[k])
        assert not differ, (n, differ[:60], [(k, one[k], runs[n][k]) for k in differ[:2]])


def test_entries_claimed_from_a_killed_worker_are_folded_as_if_it_had_lived(client, settings, city_map, demo_city):
    now_ms = int(time.time() * 1000)
    hour = now_ms // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    entries = CityMix(demo_city, seed=31).phase(hour + 5 * MINUTE_MS, hour + 80 * MINUTE_MS, 3000)
    killed = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-killed"})
    keys = Keys(killed.key_prefix)
    write(client, keys, entries)
    reader = CityReader(client, killed)
    counted = lambda: sum(f["events"] for f in reader.freshness().values())  # noqa: E731
    orphaned = 0
    for pause in (0.0, 0.15, 0.3):
        before = counted()
        proc = worker_process(killed, 50)
        deadline = time.monotonic() + 60
        while counted() == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # What it read and never committed waits for another worker to claim it.
        orphaned += sum(v["pending"] for v in reader.consumer_lag().values())
    assert orphaned > 0, "no kill left entries pending: nothing was claimed"
    final = worker_process(killed, 50)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()[-2000:]
    assert all(v["lag"] == 0 and v["pending"] == 0 for v in reader.consumer_lag().values())

    calm = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-calm", "batch_size": 50})
    write(client, Keys(calm.key_prefix), entries)
    worker = Aggregator(client, calm, city_map, name="calm")
    worker.ensure_groups()
    while worker.step(block_ms=None):
        pass
    worker.close()
    # The workers published hotspots at their ticks, by the real clock, from what was folded by then: a tick
    # of both at one moment publishes those of everything folded, which must then be the same. A worker killed
    # while computing them held a window's lock: it is let go, as its expiry would.
    for lock in client.scan_iter(match=f"{{{killed.key_prefix}:complaints}}:*:lock"):
        client.delete(lock)
    at = time.time()
    for s in (killed, calm):
        Aggregator(client, s, city_map, name="tick", clock=lambda: at).publish()

    after_kills, undisturbed = (
        digest(client, keys),
        digest(client, Keys(calm.key_prefix)),
    )
    assert after_kills.keys() == undisturbed.keys(), sorted(after_kills.keys() ^ undisturbed.keys())[:20]
    assert [k for k in undisturbed if after_kills[k] != undisturbed[k]] == []


def test_entries_claimed_after_the_closed_horizon_moved_are_folded_as_if_their_worker_had_lived(
    client, settings, city_map, demo_city, monkeypatch
):
    # Roll-ups run where the test says: the survivor's, 30 s into its life, moves the closed horizon on
    # past the events of the dead worker's batch before anyone may claim it.
    monkeypatch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)
    now_ms = int(time.time() * 1000)
    hour = now_ms // HOUR_MS * HOUR_MS - 3 * HOUR_MS
    entries = CityMix(demo_city, seed=37).phase(hour + 5 * MINUTE_MS, hour + 150 * MINUTE_MS, 2400)
    clock = lambda: now_ms / 1000  # noqa: E731
    base = type(settings)(**{**settings.__dict__, "batch_size": 50})

    killed = settings_for(base, base.key_prefix + "-killed")
    keys = Keys(killed.key_prefix)
    write(client, keys, entries)
    dead = Aggregator(client, killed, city_map, name="dead", clock=clock)
    dead.ensure_groups()
    read = dead._read(">", None)  # its first batch of every source, read and never committed
    survivor = Aggregator(client, killed, city_map, name="survivor", clock=clock)
    survivor.ensure_groups()
    while survivor.step(block_ms=None):
        pass
    survivor.flush()
    survivor.roll_up()
    closed = {s: int(client.hget(keys.meta(s), "closed_ms") or 0) for s in SOURCES}
    pending = CityReader(client, killed).consumer_lag()
    assert all(pending[s]["pending"] == len(e) for s, e in read), pending
    # The dead worker restarted under a new name never asks for its old entries; another claims them.
    claimer = Aggregator(
        client, type(killed)(**{**killed.__dict__, "claim_idle_ms": 0}), city_map, name="restarted", clock=clock
    )
    claimer.ensure_groups()
    assert claimer.claim_stale() == sum(len(e) for _, e in read)
    claimer.flush()
    claimer.roll_up()
    claimer.publish()  # as its next tick does: the hotspots of everything folded, as the calm drain's end

    calm = settings_for(base, base.key_prefix + "-calm")
    write(client, Keys(calm.key_prefix), entries)
    worker = Aggregator(client, calm, city_map, name="calm", clock=clock)
    worker.ensure_groups()
    worker.drain()
    worker.close()

    assert any(closed[s] > 0 for s in SOURCES), closed
    assert_settled(client, keys)
    after_claim = digest(client, keys)
    undisturbed = digest(client, Keys(calm.key_prefix))
    assert after_claim.keys() == undisturbed.keys(), sorted(after_claim.keys() ^ undisturbed.keys())[:20]
    differ = [k for k in undisturbed if after_claim[k] != undisturbed[k]]
    assert differ == [], [(k, after_claim[k], undisturbed[k]) for k in differ[:2]]
