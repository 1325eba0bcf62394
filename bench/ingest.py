"""Ingest benchmark: the full aggregator against the raw ceiling of a Python consumer.

Both read the very same entries from the same Redis, each in its own consumer group: first a
bare ``XREADGROUP`` + ``XACK`` loop (the most any Python consumer can do), then the aggregator
(decode, validate, place, fold, one atomic commit per batch). It prints events per second for
both and their ratio; the target is a ratio of at least 0.5.

Then it drains one backlog (the same events, under a key prefix per run) with 1, 2, 4... worker
processes started together, and prints events per second for each, the scaling against one worker,
and whether every run left exactly the aggregates of the one-worker run (the digest of every key).

    python -m bench.ingest [--events N] [--batch N] [--rounds N] [--workers 1,2,4]   (uses REDIS_URL when set)
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
import uuid

import numpy as np

from bench import redis_for
from data import aggregator as aggregator_module
from data.aggregator import Aggregator, CityMap
from data.connection import client_from_url
from data.keys import SOURCES, Keys
from data.ledger import digest
from data.schema import encode
from geo.demo import demo_city
from settings import Settings

# Share of each event type in the mix, roughly as the simulators produce them at scale 1.
MIX = {
    "checkin": 0.40,
    "declaration": 0.15,
    "reading": 0.15,
    "application": 0.12,
    "appointment": 0.05,
    "complaint": 0.06,
    "complaint_update": 0.04,
    "case_visit": 0.02,
    "case_report": 0.01,
}


def city_events(city, n: int, seed: int, now_ms: int):
    """Yield (source, fields) for n events of the mix, at the demo city's places, within the last hour."""
    rng = np.random.default_rng(seed)
    places = city.places
    venues = places[places.kind == "venue"].reset_index(drop=True)
    sensors = places[places.kind.isin(["metro_station", "mall", "park"])].reset_index(drop=True)
    centers = places[places.kind == "service_center"].reset_index(drop=True)
    types = list(MIX)
    kinds = rng.choice(len(types), size=n, p=np.array(list(MIX.values())) / sum(MIX.values()))
    ts = now_ms - np.sort(rng.integers(0, 3_600_000, size=n))[::-1]
    lon0, lat0, lon1, lat1 = city.bounds
    for seq in range(n):
        t = types[kinds[seq]]
        at = int(ts[seq])
        common = {"src": "bench", "seq": seq, "ts": at}
        if t in ("checkin", "case_visit"):
            v = venues.iloc[int(rng.integers(len(venues)))]
            extra = {"venue_id": v.place_id, "lon": v.lon, "lat": v.lat}
            if t == "checkin":
                yield "cases", encode(t, **common, person_id=f"p{rng.integers(1e7)}", stay_s=1800, **extra)
            else:
                yield "cases", encode(t, **common, case_id="c1", arrive_ts=at - 3_600_000, leave_ts=at, **extra)
        elif t == "case_report":
            yield "cases", encode(t, **common, case_id=f"c{seq}", status="confirmed", lon=lon0 + 0.3, lat=lat0 + 0.2)
        elif t == "declaration":
            lon, lat = rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)
            yield (
                "cases",
                encode(t, **common, person_id=f"p{seq}", health_code="green", symptom="none", lon=lon, lat=lat),
            )
        elif t == "reading":
            s = sensors.iloc[int(rng.integers(len(sensors)))]
            yield "foot", encode(
                t, **common, sensor_id=f"S-{s.place_id}", sensor_kind="infrared", place_id=s.place_id,
                place_kind=s.kind, interval_s=60, people=int(rng.integers(0, 500)), fever=int(rng.integers(0, 2)),
                occupancy=int(rng.integers(0, 2000)), capacity=int(s.capacity), lon=s.lon, lat=s.lat,
            )  # fmt: skip
        elif t == "application":
            lon, lat = rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)
            yield "services", encode(
                t, **common, application_id=f"a{seq}", service_code=f"svc{rng.integers(60)}",
                channel=["app", "web", "kiosk", "counter"][rng.integers(4)], decision="approved",
                automatic=bool(rng.integers(2)), processing_s=float(rng.exponential(3600)), lon=lon, lat=lat,
            )  # fmt: skip
        elif t == "appointment":
            c = centers.iloc[int(rng.integers(len(centers)))]
            yield "services", encode(
                t, **common, appointment_id=f"ap{seq}", center_id=c.place_id, service_code="id_card",
                action="served", slot_ts=at, wait_s=float(rng.exponential(600)), lon=c.lon, lat=c.lat,
            )  # fmt: skip
        elif t == "complaint":
            lon, lat = rng.uniform(lon0, lon1), rng.uniform(lat0, lat1)
            yield "complaints", encode(
                t, **common, complaint_id=f"k{seq}", channel="hotline", category="noise",
                text="loud construction noise at night on the street", lon=lon, lat=lat,
            )  # fmt: skip
        else:
            yield "complaints", encode(t, **common, complaint_id=f"k{seq}", action="escalated", level="district")


def fill(client, keys: Keys, city, n: int, seed: int, now_ms: int | None = None) -> None:
    """Write n events of the mix to the four streams, pipelined."""
    pipe = client.pipeline(transaction=False)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    for i, (source, fields) in enumerate(city_events(city, n, seed, now_ms)):
        pipe.xadd(keys.stream(source), fields)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()


def raw_ceiling(client, keys: Keys, batch: int, group: str) -> tuple[int, float]:
    """Consume every entry with a bare XREADGROUP + XACK loop; return (entries, seconds)."""
    streams = {keys.stream(s): ">" for s in SOURCES}
    for stream in streams:
        client.xgroup_create(stream, group, id="0")
    done = 0
    start = time.perf_counter()
    while True:
        reply = client.xreadgroup(group, "raw-1", streams, count=batch)
        if not reply:
            break
        for stream, entries in reply:
            client.xack(stream, group, *[e[0] for e in entries])
            done += len(entries)
    return done, time.perf_counter() - start


def aggregator_run(client, settings: Settings, city_map: CityMap) -> tuple[int, float]:
    """Consume every entry with one aggregator worker; return (entries, seconds)."""
    worker = Aggregator(client, settings, city_map, name="bench")
    worker.ensure_groups()
    done = 0
    start = time.perf_counter()
    while handled := worker.step(block_ms=None):
        done += handled
    worker.close()
    return done, time.perf_counter() - start


def _drain_in_process(settings: Settings, city_map: CityMap, name: str, now_ms: int, ready, start, handled) -> None:
    """One worker process of a shared drain: wait for the start, read until the streams are empty, commit."""
    # Hours close and keepers tick once, after the drain, not when a worker's timer says so: when a
    # roll-up runs is up to the clock, and it is what makes an event late.
    aggregator_module.ROLL_UP_EVERY_S = aggregator_module.TICK_EVERY_S = 10**9
    client = client_from_url(settings.redis_url)
    worker = Aggregator(client, settings, city_map, name=name, clock=lambda: now_ms / 1000)
    worker.ensure_groups()
    ready.put(name)
    start.wait()
    done = 0
    while step := worker.step(block_ms=None):
        done += step
    worker.close()
    client.close()
    handled.put(done)


def shared_drain(client, settings: Settings, city_map: CityMap, workers: int, now_ms: int) -> tuple[int, float]:
    """Drain the streams under ``settings.key_prefix`` with ``workers`` processes started together;
    then close the hours and tick the keepers once. Return (entries, seconds of the drain)."""
    context = multiprocessing.get_context("fork")  # the children inherit the city, built once
    ready, start, handled = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=_drain_in_process, args=(settings, city_map, f"bench-{i}", now_ms, ready, start, handled)
        )
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:  # the clock starts when every worker is connected and waiting
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    counts = [handled.get(timeout=600) for _ in processes]
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(timeout=60)
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker processes exited with {failed}")
    after = Aggregator(client, settings, city_map, name="bench-after", clock=lambda: now_ms / 1000)
    after.tick_keepers()
    after.roll_up()
    after.publish()
    return sum(counts), seconds


def compare_workers(client, url: str, city, city_map: CityMap, counts: list[int], events: int, batch: int, seed: int):
    """Drain one backlog with each number of workers; return ({workers: events/s}, keys that differ from
    the first run's, keys compared)."""
    now_ms = int(time.time() * 1000)
    rates: dict[int, float] = {}
    digests: dict[int, dict] = {}
    print(f"{'workers':<9}{'events':>10}{'seconds':>10}{'events/s':>12}{'vs first':>10}")
    for n in counts:
        prefix = f"bench-w{n}-{uuid.uuid4().hex[:6]}"
        settings = Settings.from_env({}, redis_url=url, key_prefix=prefix, batch_size=batch)
        fill(client, Keys(prefix), city, events, seed, now_ms)
        done, seconds = shared_drain(client, settings, city_map, n, now_ms)
        assert done == events, (n, done, events)
        rates[n] = done / seconds
        digests[n] = digest(client, Keys(prefix))
        print(f"{n:<9}{done:>10,}{seconds:>10.2f}{rates[n]:>12,.0f}{rates[n] / rates[counts[0]]:>10.2f}")
        for key in client.scan_iter(match=f"{{{prefix}:*", count=5000):
            client.unlink(key)
        client.unlink(Keys(prefix).workers())
    first = digests[counts[0]]
    differ = sorted({k for d in digests.values() for k in d.keys() ^ first.keys()})
    differ += sorted({k for d in digests.values() for k in d.keys() & first.keys() if d[k] != first[k]})
    return rates, differ, len(first)


def forget_aggregates(client, settings: Settings) -> int:
    """Delete everything the aggregator wrote (not the streams), so the next round starts afresh."""
    keys = Keys(settings.key_prefix)
    streams = {keys.stream(s).encode() for s in SOURCES}
    gone = 0
    for s in SOURCES:
        for key in client.scan_iter(match=f"{{{settings.key_prefix}:{s}}}*", count=5000):
            if key not in streams:
                gone += client.unlink(key)
    return gone


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=Settings().batch_size)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each; medians are reported")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", default="1,2,4", help="worker processes that drain one backlog together, one run per number"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    if not counts or min(counts) < 1:
        parser.error("--workers takes positive numbers, e.g. 1,2,4")

    url, server = redis_for(Settings.from_env().redis_url, "bench")
    try:
        client = client_from_url(url)
        prefix = f"bench-{uuid.uuid4().hex[:8]}"
        keys = Keys(prefix)
        city = demo_city(7)
        city_map = CityMap.of(city, 8)
        t = time.perf_counter()
        fill(client, keys, city, args.events, args.seed)
        print(f"wrote {args.events:,} events of {len(MIX)} types in {time.perf_counter() - t:.1f}s to {url}")
        print(f"{'round':<7}{'consumer':<36}{'events':>10}{'seconds':>10}{'events/s':>12}")
        ceilings, aggregated, counted = [], [], 0
        for r in range(args.rounds):
            # The same entries each round, read afresh by a new consumer group on each side.
            raw_n, raw_s = raw_ceiling(client, keys, args.batch, group=f"raw-{r}")
            settings = Settings.from_env(
                {}, redis_url=url, key_prefix=prefix, batch_size=args.batch, consumer_group=f"aggregators-{r}"
            )
            agg_n, agg_s = aggregator_run(client, settings, city_map)
            assert raw_n == agg_n == args.events, (raw_n, agg_n)
            counted = sum(int(client.hget(keys.meta(s), "events") or 0) for s in SOURCES)
            ceilings.append(raw_n / raw_s)
            aggregated.append(agg_n / agg_s)
            print(f"{r + 1:<7}{'raw XREADGROUP + XACK (ceiling)':<36}{raw_n:>10,}{raw_s:>10.2f}{ceilings[-1]:>12,.0f}")
            print(
                f"{r + 1:<7}{'aggregator (validate, place, fold)':<36}{agg_n:>10,}{agg_s:>10.2f}{aggregated[-1]:>12,.0f}"
            )
            forget_aggregates(client, settings)
        ceiling, aggregator = statistics.median(ceilings), statistics.median(aggregated)
        print(f"events counted by the aggregator in the last round: {counted:,} (the rest dead-lettered)")
        print(f"medians: ceiling {ceiling:,.0f}/s, aggregator {aggregator:,.0f}/s")
        for key in client.scan_iter(match=f"{{{prefix}:*", count=5000):
            client.unlink(key)
        rates, differ, compared = compare_workers(
            client, url, city, city_map, counts, args.events, args.batch, args.seed
        )
        print(
            f"aggregates of every run identical to the {counts[0]}-worker run's: "
            + ("yes" if not differ else f"NO, {len(differ)} of {compared} keys differ, e.g. {differ[:5]}")
        )
        per_run = " ".join(f"eps_w{n}={rate:.0f}" for n, rate in rates.items())
        scaling = " ".join(f"scaling_w{n}={rates[n] / rates[counts[0]]:.2f}" for n in counts[1:])
        print(
            f"RESULT ceiling_eps={ceiling:.0f} aggregator_eps={aggregator:.0f} ratio={aggregator / ceiling:.3f} "
            f"events={args.events} batch={args.batch} rounds={args.rounds} "
            f"workers={','.join(map(str, counts))} {per_run} {scaling} "
            f"identical={'yes' if not differ else 'no'} keys_compared={compared} keys_differing={len(differ)}"
        )
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
