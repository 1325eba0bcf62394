"""Refresh benchmark: what one dashboard refresh per view costs, in server time and in bytes sent.

First, the server time of one refresh per view (snapshot + figures) with 10 thousand, 100 thousand and
1 million events in the window, and the Redis commands 50 browsers cost when they refresh the same view in
one tick (``reads_per_tick_50_clients``, in builds' worth: the commands of one snapshot built alone count
as 1). Events are written as the simulators would and folded by the real aggregator; the refresh reads
only aggregates, so its time should not grow with the events in the window (flatness = ms_1m / ms_10k,
worst view, target ≤ 1.5). Every size is loaded first, each under its own key prefix, and then the sizes
are timed side by side, round after round (medians), so a machine busy for a while slows every size alike.
It also says where a refresh's time goes at each size (``BREAKDOWN`` lines): reading the aggregates
(`CityReader`, Redis round trips and summing), the rest of the snapshot, each figure builder, and the JSON
encoding.

Then a live run (``--ticks``, a minute by default): the demo city fed by the demo's own simulators (an hour
of backfill, then tick after tick of simulated time, one tick in ``--quiet-every`` feeding nothing), and on
every tick one browser per view posting the page's refresh to the real app's callback route with the state
it carries from answer to answer, first of its tick (its snapshot built by that refresh). Per view: the
bytes of the first answer (whole figures), of the ticks the simulators fed (goal ≤ 50 KB), and of the ticks
nothing was fed (goal: no figure bytes), and the median, p95 and maximum of its refresh time; a view over
50 KB is broken down into the outputs and traces that carry its bytes (``OVER`` lines).

    python -m bench.refresh [--sizes 10000,100000,1000000] [--repeat 9] [--no-window-cache]
                            [--ticks 30] [--quiet-every 5] [--scale 0.05]        (uses REDIS_URL when set)
"""

from __future__ import annotations

import argparse
import gzip
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
from bench.load import CONTROL_VALUES, PAGE_TICKS, ROUTE, Callback, page_callbacks, percentile, take_answer
from data.aggregator import Aggregator, CityMap
from data.connection import client_from_url
from data.keys import Keys
from data.read import CityReader
from data.schema import encode
from geo.demo import demo_city
from settings import Settings
from views import figures, snapshots
from views.geography import CityGeography
from views.state import ViewState

VIEWS = ("overview", "cases", "foot-traffic", "services", "complaints", "health")
BYTES_GOAL = 50_000  # a refresh's answer as sent, at most
BROWSER_ENCODINGS = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # what Chromium says it accepts
LIVE_BACKFILL_S = 3600.0  # the demo's hour of history before it goes live
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
    for _ in range(repeat):
        for view in VIEWS:
            for site in sites:
                site.watch = watch = watches[(site.n, view)]
                start = time.perf_counter()
                _snap, figs = build_view(view, site.reader, geo, state, time.time(), watch)
                watch.time("json", plotly.io.json.to_json_plotly, figs)
                timings.setdefault((site.n, view), []).append((time.perf_counter() - start) * 1000)
    for site in sites:
        for view in VIEWS:
            # Mean per refresh; the snapshot's own time excludes its reads.
            parts = {k: v / repeat for k, v in watches[(site.n, view)].ms.items()}
            parts["snapshot"] = parts.get("snapshot", 0.0) - parts.get("reads", 0.0)
            out[site.n][view] = {
                "ms": statistics.median(timings[(site.n, view)]),
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


# --------------------------------------------------------------------------- the live run


def figure_bytes(answer: dict) -> int:
    """Bytes of figure data (whole figures or patches of their traces) in a callback's answer."""
    return sum(
        len(plotly.io.json.to_json_plotly(value))
        for props in answer.get("response", {}).values()
        for prop, value in props.items()
        if prop == "figure"
    )


def heaviest_parts(answer: dict, top: int = 3) -> list[str]:
    """What carries an answer's bytes: each output, and for a figure its largest trace and that trace's
    largest fields."""
    out = []
    for component, props in answer.get("response", {}).items():
        for prop, value in props.items():
            size = len(plotly.io.json.to_json_plotly(value))
            line = f"{component}.{prop} {size:,}"
            traces = value.get("data") if prop == "figure" and isinstance(value, dict) else None
            if traces:
                big = max(traces, key=lambda t: len(plotly.io.json.to_json_plotly(t)))
                fields = sorted(big, key=lambda k: -len(plotly.io.json.to_json_plotly(big[k])))[:top]
                named = f"{big.get('type')} {big['name']}" if big.get("name") else big.get("type")
                line += (
                    f" (largest trace {named}: "
                    + ", ".join(f"{k} {len(plotly.io.json.to_json_plotly(big[k])):,}" for k in fields)
                    + ")"
                )
            out.append((size, line))
    return [line for _, line in sorted(out, reverse=True)]


class LiveCity:
    """The demo's simulators, in this process: their events up to a moment, written and folded."""

    def __init__(self, client, settings, city, start_ms: int, scale: float, seed: int):
        from simulators.generate import MODELS, source_model
        from simulators.world import World

        world = World(city, scale=scale, seed=seed)
        self.client, self.keys = client, Keys(settings.key_prefix)
        self.models = {s: source_model(s, world, start_ms=start_ms, seed=seed) for s in MODELS}
        self.seq = dict.fromkeys(self.models, 0)
        self.worker = Aggregator(client, settings, CityMap.of(city, settings.h3_resolution), name="bench-live")
        self.worker.ensure_groups()
        self.events = 0

    def until(self, ms: int) -> int:
        """Write every simulated event before ``ms`` and fold them as a live worker does; return how many."""
        pipe = self.client.pipeline(transaction=False)
        written = 0
        for source, model in self.models.items():
            for event in model.advance(ms):
                fields = encode(event.type, src=f"bench-{source}", seq=self.seq[source], ts=event.ts, **event.fields)
                pipe.xadd(self.keys.stream(source), fields)
                self.seq[source] += 1
                written += 1
                if written % 2000 == 0:
                    pipe.execute()
        pipe.execute()
        self.worker.drain()
        self.events += written
        return written


class OpenPage:
    """One browser on one view, refreshing through the app's callback route with the state it carries."""

    def __init__(self, app, view: str, callback: Callback):
        self.app, self.view, self.callback = app, view, callback
        self.http = app.server.test_client()
        self.states: dict[tuple[str, str], object] = dict(CONTROL_VALUES)
        self.n = 0

    def refresh(self) -> tuple[float, int, int, int, dict]:
        """One tick: post the page's refresh as a browser would (accepting gzip); return ms, the bytes sent
        (as they go on the wire), the answer's JSON bytes, its figure bytes, and the answer."""
        self.n += 1
        body = json.dumps(self.callback.body(self.n, self.states))
        start = time.perf_counter()
        response = self.http.post(ROUTE, data=body, content_type="application/json", headers=BROWSER_ENCODINGS)
        ms = (time.perf_counter() - start) * 1000
        if response.status_code not in (200, 204):
            raise RuntimeError(f"{self.view}: HTTP {response.status_code} {response.get_data()[:200]!r}")
        sent = response.get_data()
        payload = gzip.decompress(sent) if response.headers.get("Content-Encoding") == "gzip" else sent
        answer = json.loads(payload) if response.status_code == 200 else {}
        take_answer(self.states, answer)
        return ms, len(sent), len(payload), figure_bytes(answer), answer


def live_run(url: str, city, geo, ticks: int, quiet_every: int, scale: float, seed: int) -> dict[str, dict]:
    """Refresh every view on every tick of a simulated live run: each view's refresh time, and the bytes of
    its answers (the first, whole; the ticks the simulators fed; the ticks nothing was fed)."""
    from app import create_app

    settings = Settings.from_env({}, redis_url=url, key_prefix=f"bench-live-{uuid.uuid4().hex[:8]}", auth="off")
    refresh_s = settings.refresh_ms / 1000
    # The run ends about now: the aggregator refuses events from the future, and the clock runs ahead.
    start = time.time() - (ticks + 2) * refresh_s
    now = [start]
    client = client_from_url(url)
    feed = LiveCity(client, settings, city, int((start - LIVE_BACKFILL_S) * 1000), scale, seed)
    feed.until(int(start * 1000))
    backfill = feed.events
    pages: dict[str, OpenPage] = {}
    for view in VIEWS:
        # One app per view: each view's refresh is the first of its tick, its snapshot built by that refresh.
        app = create_app(settings, clock=lambda: now[0])
        app.server.extensions["citydeck"].__dict__["geo"] = geo
        http = app.server.test_client()
        callbacks = page_callbacks(json.loads(http.get("/_dash-dependencies").get_data()))
        (refresh,) = callbacks[PAGE_TICKS[view]]  # one page, one refresh: anything else is a question to answer
        pages[view] = OpenPage(app, view, refresh)
    # This tick's snapshots and the locks of their builds (a build's lock outlives it by design).
    snap_keys = f"{settings.key_prefix}:dash:*snap:*"
    out = {v: {"ms": [], "bytes_tick": [], "json_tick": [], "bytes_quiet": [], "figure_bytes_quiet": []} for v in VIEWS}
    for tick in range(ticks + 1):
        now[0] = start + tick * refresh_s
        quiet = tick > 0 and tick % quiet_every == 0
        if not quiet:
            feed.until(int(now[0] * 1000))
        for view, page in pages.items():
            for key in client.scan_iter(match=snap_keys, count=1000):
                client.unlink(key)
            ms, size, json_size, fig_size, answer = page.refresh()
            if tick == 0:  # the page opening: whole figures, and windows summed once by the process
                out[view].update(bytes_first=size, json_first=json_size, parts_first=heaviest_parts(answer))
                continue
            out[view]["ms"].append(ms)
            if quiet:
                out[view]["bytes_quiet"].append(size)
                out[view]["figure_bytes_quiet"].append(fig_size)
            else:
                out[view]["bytes_tick"].append(size)
                out[view]["json_tick"].append(json_size)
    feed.worker.close()
    for key in client.scan_iter(match=f"*{settings.key_prefix}*", count=5000):
        client.unlink(key)
    client.close()
    out["_run"] = {"events": feed.events - backfill, "backfill": backfill, "seconds": ticks * refresh_s}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.refresh", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="events in the window, comma-separated")
    parser.add_argument("--repeat", type=int, default=9, help="rounds: refreshes timed per view and size (median)")
    parser.add_argument(
        "--no-window-cache", action="store_true", help="sum every window from its buckets (the reader without caches)"
    )
    parser.add_argument(
        "--ticks", type=int, default=30, help="ticks of the live run (at CITYDECK_REFRESH_MS; 30 x 2 s = a minute)"
    )
    parser.add_argument(
        "--quiet-every", type=int, default=5, help="one tick in this many of the live run feeds nothing"
    )
    parser.add_argument("--scale", type=float, default=0.05, help="the live run's population scale (the demo's)")
    args = parser.parse_args(argv)
    if args.ticks < args.quiet_every or args.quiet_every < 2:
        parser.error("--ticks must reach at least one tick that feeds nothing (--quiet-every 2 or more)")
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
        live = live_run(url, city, geo, args.ticks, args.quiet_every, args.scale, base.city_seed)
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()
    print()
    print(f"{'view':<14}" + "".join(f"{n:>12,}" for n in sizes))
    for v in VIEWS:
        print(f"{v:<14}" + "".join(f"{r[v]['ms']:>10.1f}ms" for r in results))
    for n, r in zip(sizes, results):
        for v in VIEWS:
            parts = sorted(r[v]["parts"].items(), key=lambda kv: -kv[1])
            print(f"BREAKDOWN {n} {v} " + " ".join(f"{k}={ms:.1f}" for k, ms in parts))
    print(
        f"\nRedis commands: one foot-traffic snapshot built alone {alone}; 50 browsers in one tick {fifty}"
        f" = {fifty / alone:.2f} builds' worth (the snapshot cache builds once per tick)"
    )
    run = live.pop("_run")
    print(
        f"\nLive run: the demo city at scale {args.scale:g}, {run['backfill']:,} events of backfill, then"
        f" {args.ticks} ticks ({run['seconds']:.0f} s simulated, {run['events']:,} events), one tick in"
        f" {args.quiet_every} feeding nothing; each view refreshed by one browser through the callback"
        " route, first of its tick (its snapshot built by that refresh). Bytes are as sent (compressed as a browser"
        " accepts); JSON is the answer's size once unpacked."
    )
    print(
        f"{'view':<14}{'first B':>10}{'tick B p50':>12}{'tick B max':>12}{'quiet B max':>13}{'quiet fig B':>13}"
        f"{'ms p50':>9}{'ms p95':>9}{'ms max':>9}{'JSON first':>12}{'JSON max':>10}"
    )
    for v in VIEWS:
        r = live[v]
        r["p95"], r["max"] = percentile(r["ms"], 0.95), max(r["ms"])
        r["bytes_max"] = max(r["bytes_first"], *r["bytes_tick"])
        r["json_max"] = max(r["json_first"], *r["json_tick"])
        print(
            f"{v:<14}{r['bytes_first']:>10,}{statistics.median(r['bytes_tick']):>12,.0f}{max(r['bytes_tick']):>12,}"
            f"{max(r['bytes_quiet']):>13,}{max(r['figure_bytes_quiet']):>13,}{statistics.median(r['ms']):>9.1f}"
            f"{r['p95']:>9.1f}{r['max']:>9.1f}{r['json_first']:>12,}{r['json_max']:>10,}"
        )
    for v in VIEWS:
        if live[v]["bytes_max"] > BYTES_GOAL:
            print(f"OVER {BYTES_GOAL // 1000} KB {v}: " + "; ".join(live[v]["parts_first"]))
    first, last = results[0], results[-1]
    worst = max(VIEWS, key=lambda v: last[v]["ms"] / first[v]["ms"])
    ms = {n: max(r[v]["ms"] for v in VIEWS) for n, r in zip(sizes, results)}
    flatness = last[worst]["ms"] / first[worst]["ms"]
    labels = {10_000: "ms_10k", 100_000: "ms_100k", 1_000_000: "ms_1m"}
    parts = [f"{labels.get(n, f'ms_{n}')}={ms[n]:.1f}" for n in sizes]
    heaviest = max(VIEWS, key=lambda v: live[v]["bytes_max"])
    slowest = max(VIEWS, key=lambda v: live[v]["max"])
    print(
        "RESULT " + " ".join(parts) + f" flatness={flatness:.2f} flatness_view={worst}"
        f" bytes_per_refresh={max(max(live[v]['bytes_tick']) for v in VIEWS)}"
        f" reads_per_tick_50_clients={fifty / alone:.2f} commands_one_build={alone} commands_50_clients={fifty}"
        f" bytes_max_view={heaviest} bytes_max={live[heaviest]['bytes_max']}"
        f" json_bytes_max={max(live[v]['json_max'] for v in VIEWS)}"
        f" bytes_unchanged={max(max(live[v]['bytes_quiet']) for v in VIEWS)}"
        f" figure_bytes_unchanged={max(max(live[v]['figure_bytes_quiet']) for v in VIEWS)}"
        f" p95_ms_max={max(live[v]['p95'] for v in VIEWS):.1f} p95_view={max(VIEWS, key=lambda v: live[v]['p95'])}"
        f" max_ms={live[slowest]['max']:.1f} max_view={slowest} live_ticks={args.ticks}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
