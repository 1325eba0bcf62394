"""Refresh benchmark: the server time of one dashboard refresh per view (snapshot + figures) and the
bytes it sends, with 10 thousand, 100 thousand and 1 million events in the window, and the Redis
commands 50 browsers cost when they refresh the same view in one tick (``reads_per_tick_50_clients``,
in builds' worth: the commands of one snapshot built alone count as 1).

Events are written as the simulators would and folded by the real aggregator; the refresh reads only
aggregates, so its time should not grow with the events in the window (flatness = ms_1m / ms_10k, worst
view, target ≤ 1.5). Every size is loaded first, each under its own key prefix, and then the sizes are
timed side by side, round after round (a refresh of each view at each size per round, medians), so a
machine busy for a while slows every size alike.

    python -m bench.refresh [--sizes 10000,100000,1000000] [--repeat 9] [--no-window-cache]
                                                                            (uses REDIS_URL when set)

It also says where a refresh's time goes at each size (``BREAKDOWN`` lines): reading the aggregates
(`CityReader`, Redis round trips and summing), the rest of the snapshot, each figure builder, and
the JSON encoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import plotly.io

from bench import redis_for
from bench.ingest import fill
from data.aggregator import Aggregator, CityMap
from data.connection import client_from_url
from data.keys import Keys
from data.read import CityReader
from geo.demo import demo_city
from settings import Settings
from views import figures, snapshots
from views.geography import CityGeography
from views.state import ViewState

VIEWS = ("overview", "cases", "foot-traffic", "services", "complaints", "health")
# The reader's methods that talk to Redis; `counts` goes through `counts_many`, so it is not listed.
READER_CALLS = (
    "counts_many",
    "counts_in_windows",
    "freshness",
    "stream_lengths",
    "consumer_lag",
    "dead_letter_counts",
    "dead_letters",
    "workers",
)


class Stopwatch:
    """Milliseconds spent per part of a refresh, summed over the refreshes it timed."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, part: str, ms: float) -> None:
        self.ms[part] = self.ms.get(part, 0.0) + ms

    def time(self, part: str, build: Callable[..., Any], *args, **kwargs) -> Any:
        start = time.perf_counter()
        try:
            return build(*args, **kwargs)
        finally:
            self.add(part, (time.perf_counter() - start) * 1000)


def time_reads(reader: CityReader, watch: Callable[[], Stopwatch]) -> None:
    """Charge the time of every Redis-reading call of the reader to ``reads`` of the current watch."""
    for name in READER_CALLS:
        method = getattr(reader, name)
        setattr(reader, name, lambda *a, _m=method, **k: watch().time("reads", _m, *a, **k))


def build_view(
    view: str,
    reader: CityReader,
    geo: CityGeography,
    state: ViewState,
    now: float,
    watch: Stopwatch | None = None,
) -> tuple[dict, list]:
    """One refresh of a view as the callbacks do it: the snapshot, then its figures (each timed on ``watch``)."""
    watch = watch or Stopwatch()
    rev = f"{view}:"

    def fig(build: Callable[..., dict], *args, **kwargs) -> dict:
        return watch.time(f"fig:{build.__name__}", build, *args, **kwargs)

    snap_of = {
        "overview": lambda: snapshots.overview_snapshot(reader, geo, state, now),
        "cases": lambda: snapshots.cases_snapshot(reader, geo, state, now),
        "foot-traffic": lambda: snapshots.foot_snapshot(reader, geo, state, now),
        "services": lambda: snapshots.services_snapshot(reader, geo, state, now),
        "complaints": lambda: snapshots.complaints_snapshot(reader, geo, state, now),
        "health": lambda: snapshots.health_snapshot(reader, now),
    }
    snap = watch.time("snapshot", snap_of[view])
    if view == "overview":
        base = {"level": snap["level"], "bounds": snap["bounds"]}
        figs = [
            fig(figures.cases_map, snap["cases"] | base, rev, compact=True),
            fig(figures.foot_heat_map, snap["foot"] | base, rev, compact=True),
            fig(figures.services_map, snap["services"] | base, rev, compact=True, centers=False),
            fig(figures.complaints_map, snap["complaints"] | base, rev, compact=True),
        ]
    elif view == "cases":
        figs = [fig(figures.cases_map, snap, rev), fig(figures.codes_map, snap, rev)]
    elif view == "foot-traffic":
        figs = [fig(figures.foot_heat_map, snap, rev), fig(figures.sensors_map, snap, rev)]
    elif view == "services":
        figs = [
            fig(figures.services_map, snap, rev),
            fig(figures.bar_chart, list(snap["channels"]), list(snap["channels"].values()), rev),
        ]
    elif view == "complaints":
        figs = [
            fig(figures.complaints_map, snap, rev),
            fig(figures.bar_chart, list(snap["categories"]), list(snap["categories"].values()), rev),
        ]
    else:
        figs = []
    return snap, figs


def refresh_bytes(snap: dict, figs: list) -> int:
    """Bytes of a tick's response: the figures' traces (the Patch) plus the snapshot's small text parts."""
    patches = [f["data"] for f in figs]
    return len(plotly.io.json.to_json_plotly(patches)) + (len(json.dumps(snap, default=str)) if not figs else 0)


def commands(client) -> int:
    """Total commands the server has run (INFO commandstats), minus the INFO calls themselves."""
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


class Site:
    """One size's events, loaded under its own key prefix, with the reader a dashboard process keeps."""

    def __init__(self, client, settings, city, n: int, window_cache: bool):
        self.n, self.settings = n, settings
        t0 = time.perf_counter()
        fill(client, Keys(settings.key_prefix), city, n, seed=n % 997)
        worker = Aggregator(client, settings, CityMap.of(city, settings.h3_resolution))
        worker.ensure_groups()
        # As live workers do: everything committed, the tracing picture and the complaint hotspots published
        # (a refresh reads them, never computes them).
        worker.drain()
        self.load_s = time.perf_counter() - t0
        self.reader = CityReader(client, settings, window_cache=window_cache)
        self.watch = Stopwatch()
        time_reads(self.reader, lambda: self.watch)


def measure(sites: list[Site], geo, repeat: int) -> dict[int, dict]:
    """Time a refresh of every view at every size, round after round; medians, and the mean of each part."""
    state = ViewState("1h")
    out: dict[int, dict] = {site.n: {"events": site.n, "load_s": site.load_s} for site in sites}
    timings: dict[tuple[int, str], list[float]] = {}
    watches = {(site.n, view): Stopwatch() for site in sites for view in VIEWS}
    last: dict[tuple[int, str], tuple] = {}
    for _ in range(repeat):
        for view in VIEWS:
            for site in sites:
                site.watch = watch = watches[(site.n, view)]
                start = time.perf_counter()
                snap, figs = build_view(view, site.reader, geo, state, time.time(), watch)
                watch.time("json", plotly.io.json.to_json_plotly, figs)
                timings.setdefault((site.n, view), []).append((time.perf_counter() - start) * 1000)
                last[(site.n, view)] = (snap, figs)
    for site in sites:
        for view in VIEWS:
            # Mean per refresh; the snapshot's own time excludes its reads.
            parts = {k: v / repeat for k, v in watches[(site.n, view)].ms.items()}
            parts["snapshot"] = parts.get("snapshot", 0.0) - parts.get("reads", 0.0)
            out[site.n][view] = {
                "ms": statistics.median(timings[(site.n, view)]),
                "bytes": refresh_bytes(*last[(site.n, view)]),
                "parts": parts,
            }
    return out


def reads_for_clients(settings, city, clients: int = 50) -> tuple[int, int]:
    """Redis commands for one view's snapshot built alone, and for `clients` browsers asking in one tick."""
    from app import create_app

    app = create_app(settings)
    deck = app.server.extensions["citydeck"]
    deck.__dict__["geo"] = CityGeography(city, settings.h3_resolution, settings.geojson_simplify_m)
    state = ViewState("1h")
    client = deck.client
    build = lambda now: snapshots.foot_snapshot(deck.reader, deck.geo, state, now)  # noqa: E731
    build(time.time())  # a dashboard process's first build also sums its windows once: not what a tick costs
    before = commands(client)
    build(time.time())
    alone = commands(client) - before
    # Start just after a tick boundary, so all requests fall in the same tick.
    time.sleep(deck.refresh_s - time.time() % deck.refresh_s + 0.01)
    before = commands(client)
    threads = [threading.Thread(target=deck.snapshot, args=("bench", state, build)) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return alone, commands(client) - before


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="events in the window, comma-separated")
    parser.add_argument("--repeat", type=int, default=9, help="rounds: refreshes timed per view and size (median)")
    parser.add_argument(
        "--no-window-cache", action="store_true", help="sum every window from its buckets (the reader without caches)"
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    base = Settings.from_env()
    url, embedded = redis_for(base.redis_url, "refresh")
    client = client_from_url(url)
    city = demo_city(base.city_seed)
    geo = CityGeography(city, base.h3_resolution, base.geojson_simplify_m)
    geo.cells, geo.centres, geo.places  # noqa: B018  (warm the lookups outside the timings)
    try:
        sites = []
        for n in sizes:
            settings = Settings.from_env({}, redis_url=url, key_prefix=f"bench-refresh-{uuid.uuid4().hex[:8]}")
            sites.append(Site(client, settings, city, n, not args.no_window_cache))
            print(f"{n:>9,} events loaded in {sites[-1].load_s:.1f} s", flush=True)
        by_size = measure(sites, geo, args.repeat)
        results = [by_size[n] for n in sizes]
        alone, fifty = reads_for_clients(settings, city)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()
    print()
    print(f"{'view':<14}" + "".join(f"{n:>12,}" for n in sizes) + "   bytes/refresh")
    for v in VIEWS:
        print(f"{v:<14}" + "".join(f"{r[v]['ms']:>10.1f}ms" for r in results) + f"   {results[-1][v]['bytes']:>10,}")
    for n, r in zip(sizes, results):
        for v in VIEWS:
            parts = sorted(r[v]["parts"].items(), key=lambda kv: -kv[1])
            print(f"BREAKDOWN {n} {v} " + " ".join(f"{k}={ms:.1f}" for k, ms in parts))
    print(
        f"\nRedis commands: one foot-traffic snapshot built alone {alone}; 50 browsers in one tick {fifty}"
        f" = {fifty / alone:.2f} builds' worth (the snapshot cache builds once per tick)"
    )
    first, last = results[0], results[-1]
    worst = max(VIEWS, key=lambda v: last[v]["ms"] / first[v]["ms"])
    ms = {n: max(r[v]["ms"] for v in VIEWS) for n, r in zip(sizes, results)}
    flatness = last[worst]["ms"] / first[worst]["ms"]
    largest = max(r[v]["bytes"] for r in results for v in VIEWS)
    labels = {10_000: "ms_10k", 100_000: "ms_100k", 1_000_000: "ms_1m"}
    parts = [f"{labels.get(n, f'ms_{n}')}={ms[n]:.1f}" for n in sizes]
    print(
        "RESULT " + " ".join(parts) + f" flatness={flatness:.2f} flatness_view={worst} bytes_per_refresh={largest}"
        f" reads_per_tick_50_clients={fifty / alone:.2f} commands_one_build={alone} commands_50_clients={fifty}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
