"""Complaint triage and routing through the aggregator, against a real Redis."""

from __future__ import annotations

import json
import time

import h3
import numpy as np
import pandas as pd
import pytest
import shapely

from data import aggregator
from data.aggregator import Aggregator
from data.keepers.complaints import DEADLINES, WAITING, hotspots_key
from data.keys import Keys
from data.read import CityReader, Window
from data.read.complaints import complaint_table
from data.read.windows import WINDOWS
from engines.hotspots import HotspotParams, cell_hotspots, city_cells
from tests.events import raw_event

pytestmark = pytest.mark.redis
HOUR_MS = 3_600_000


@pytest.fixture
def worker(client, settings, city_map):
    w = Aggregator(client, settings, city_map, name="router")
    w.ensure_groups()
    return w


def write(client, settings, events) -> None:
    for e in events:
        client.xadd(Keys(settings.key_prefix).stream("complaints"), e)


def test_a_complaint_is_triaged_with_a_reason_and_routed_to_the_lowest_competent_level(client, settings, worker):
    now = int(time.time() * 1000)
    write(client, settings, [
        raw_event("complaint", seq=1, ts=now, complaint_id="k-manhole", text="Manhole cover missing on the road, a cyclist nearly fell in", category="road"),
        raw_event("complaint", seq=2, ts=now, complaint_id="k-noise", text="邻居装修噪音 every night after 11pm", category=None),
    ])  # fmt: skip
    worker.drain()
    rows = {r["complaint_id"]: r for r in complaint_table(CityReader(client, settings), now)}
    manhole = rows["k-manhole"]
    assert manhole["category"] == "manhole" and manhole["priority"] == 1
    assert manhole["reason"].startswith("P1:") and manhole["status"] == "open" and not manhole["overdue"]
    assert manhole["community_id"] != "outside" and manhole["text"].startswith("Manhole cover")
    assert rows["k-noise"]["category"] == "noise"
    reader = CityReader(client, settings)
    assert reader.counts("complaints", "complaints.priority", Window.last(600))["P1"] == 1


def test_a_complaint_escalates_when_its_deadline_passes_and_updates_move_it(client, settings, worker):
    keys = Keys(settings.key_prefix)
    opened = int(time.time() * 1000) - 10 * 24 * HOUR_MS  # every deadline since then has passed
    text = "streetlight broken, the whole road is dark at night"
    write(client, settings, [raw_event("complaint", seq=1, ts=opened, complaint_id="k-dark", text=text)])
    worker.drain()
    first = complaint_table(CityReader(client, settings), int(time.time() * 1000))[0]
    assert first["overdue"] and first["escalations"] == 0
    assert client.zscore(keys.state("complaints", DEADLINES), "k-dark") == first["deadline_ms"]

    assert worker.tick_keepers() == 1
    now = int(time.time() * 1000)
    row = complaint_table(CityReader(client, settings), now)[0]
    levels = ["community", "neighbourhood", "district", "department"]
    climbed = len(levels) - 1 - levels.index(first["level"])
    assert row["level"] == "department" and row["escalations"] == climbed > 0
    assert row["path"].split(" → ")[0] == first["level"] and len(row["path"].split(" → ")) == climbed + 1
    assert client.zscore(keys.state("complaints", DEADLINES), "k-dark") is None  # nowhere higher to go
    escalated = CityReader(client, settings).counts(
        "complaints", "escalations.level", Window(opened // 1000 - 60, now // 1000 + 60)
    )
    assert sum(escalated.values()) in (0, climbed)  # counted, in buckets that may be past their retention

    write(client, settings, [
        raw_event("complaint_update", seq=2, ts=now - 1000, complaint_id="k-dark", action="resolved", level="department"),
        raw_event("complaint_update", seq=3, ts=now, complaint_id="k-dark", action="closed", level="department"),
        raw_event("complaint_update", seq=4, ts=now, complaint_id="k-never-seen", action="closed", level="district"),
    ])  # fmt: skip
    worker.drain()
    assert complaint_table(CityReader(client, settings), now) == []
    closed = complaint_table(CityReader(client, settings), now, closed=True)
    assert [r["status"] for r in closed] == ["closed"]
    # The update for a complaint not seen yet waits for it, and applies when it comes.
    write(client, settings, [raw_event("complaint", seq=5, ts=now + 1, complaint_id="k-never-seen", text="water leak")])
    worker.drain()
    assert sorted(r["complaint_id"] for r in complaint_table(CityReader(client, settings), now, closed=True)) == [
        "k-dark",
        "k-never-seen",
    ]


def test_two_workers_never_clobber_one_complaint(client, settings, city_map):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    first, second = (Aggregator(client, settings, city_map, name=n) for n in ("one", "two"))
    first.ensure_groups()
    write(client, settings, [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="garbage not collected")])
    first.drain()
    write(client, settings, [
        raw_event("complaint_update", seq=2, ts=now + 1, complaint_id="k-1", action="escalated", level="district"),
        raw_event("complaint_update", seq=3, ts=now + 2, complaint_id="k-1", action="resolved", level="district"),
    ])  # fmt: skip
    stream = keys.stream("complaints")
    # Each worker reads one update, then both commit: the second must redo its batch on the fresh route.
    a = client.xreadgroup(settings.consumer_group, "one", {stream: ">"}, count=1)[0][1]
    b = client.xreadgroup(settings.consumer_group, "two", {stream: ">"}, count=1)[0][1]
    prepared_b = second._prepare("complaints", b, {})
    first.process("complaints", a)
    second._commit("complaints", b, prepared_b)
    row = complaint_table(CityReader(client, settings), now)[0]
    assert row["level"] == "district" and row["status"] == "resolved"


def test_the_table_reads_only_the_most_urgent_open_complaints_and_counts_all_of_them(client, settings, worker):
    from data.read.complaints import complaint_counts

    now = int(time.time() * 1000)
    write(client, settings, [
        raw_event("complaint", seq=1, ts=now - 3000, complaint_id="k-noise", text="loud music from a bar at night"),
        raw_event("complaint", seq=2, ts=now - 2000, complaint_id="k-manhole", text="manhole cover missing on the road"),
        raw_event("complaint", seq=3, ts=now - 1000, complaint_id="k-litter", text="litter on the pavement"),
    ])  # fmt: skip
    worker.drain()
    top = complaint_table(CityReader(client, settings), now, limit=1)
    assert [r["complaint_id"] for r in top] == ["k-manhole"]
    assert len(complaint_table(CityReader(client, settings), now, limit=10)) == 3
    assert complaint_counts(CityReader(client, settings), now) == {"open": 3, "overdue": 0}
    assert complaint_counts(CityReader(client, settings), now + 30 * 24 * HOUR_MS)["overdue"] == 3


def closing(seq: int, ts: int, complaint_id: str) -> list[dict[str, str]]:
    return [
        raw_event("complaint_update", seq=seq, ts=ts + 1000, complaint_id=complaint_id, action="resolved", level="community"),
        raw_event("complaint_update", seq=seq + 1, ts=ts + 2000, complaint_id=complaint_id, action="closed", level="community"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([["complaint", "updates"]], id="closed-in-the-batch-it-opened-in"),
        pytest.param([["updates", "complaint"]], id="closure-before-its-complaint-in-one-batch"),
        pytest.param([["updates"], ["complaint"]], id="closure-a-batch-before-its-complaint"),
        pytest.param([["complaint"], ["updates"]], id="closure-a-batch-after-its-complaint"),
    ],
)
def test_a_closure_applies_whatever_the_batching(client, settings, worker, batches):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    events = {
        "complaint": [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="rubbish bins overflowing")],
        "updates": closing(2, now, "k-1"),
    }
    for batch in batches:
        write(client, settings, [e for part in batch for e in events[part]])
        worker.drain()
    assert complaint_table(CityReader(client, settings), now) == []
    closed = complaint_table(CityReader(client, settings), now, closed=True)
    assert [(r["complaint_id"], r["status"]) for r in closed] == [("k-1", "closed")]
    assert client.hgetall(keys.state("complaints", WAITING)) == {}


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param([["complaint", "updates"], ["later"]], id="with-its-complaint"),
        pytest.param([["updates"], ["complaint"], ["later"]], id="parked-before-its-complaint"),
        pytest.param([["complaint"], ["updates"], ["later"]], id="after-its-complaint"),
    ],
)
def test_each_update_is_counted_once_in_the_community_of_its_complaint(client, settings, worker, batches):
    now = int(time.time() * 1000)
    events = {
        "complaint": [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="rubbish bins overflowing")],
        "updates": closing(2, now, "k-1"),
        # A later update rebuilds the route from every update again: those already counted stay counted once.
        "later": [raw_event("complaint_update", seq=4, ts=now + 3000, complaint_id="k-1", action="reopened", level="district")],
    }  # fmt: skip
    for batch in batches:
        write(client, settings, [e for part in batch for e in events[part]])
        worker.drain()
    (row,) = complaint_table(CityReader(client, settings), now + 4000)
    place = row["community_id"]
    counted = CityReader(client, settings).counts(
        "complaints", "complaints.community_action_level", Window(now // 1000 - 60, now // 1000 + 60)
    )
    assert counted == {
        f"{place}|resolved|community": 1,
        f"{place}|closed|community": 1,
        f"{place}|reopened|district": 1,
    }


@pytest.mark.parametrize("first", ["opening", "parking"])
def test_a_complaint_and_its_closure_read_by_two_workers_at_once_end_closed(client, settings, city_map, first):
    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    one, two = (Aggregator(client, settings, city_map, name=n) for n in ("one", "two"))
    one.ensure_groups()
    write(
        client, settings, [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="rubbish bins overflowing")]
    )
    write(client, settings, closing(2, now, "k-1"))
    stream = keys.stream("complaints")
    # One worker reads the complaint, the other its closure; both prepare before either commits.
    opening = client.xreadgroup(settings.consumer_group, "one", {stream: ">"}, count=1)[0][1]
    parking = client.xreadgroup(settings.consumer_group, "two", {stream: ">"}, count=2)[0][1]
    batches = {"opening": (one, opening), "parking": (two, parking)}
    prepared = {name: w._prepare("complaints", entries, {}) for name, (w, entries) in batches.items()}
    for name in (first, "parking" if first == "opening" else "opening"):
        w, entries = batches[name]
        w._commit("complaints", entries, prepared[name])
    assert complaint_table(CityReader(client, settings), now) == []
    assert [r["status"] for r in complaint_table(CityReader(client, settings), now, closed=True)] == ["closed"]
    assert client.hgetall(keys.state("complaints", WAITING)) == {}


def test_updates_committed_out_of_event_time_order_leave_the_route_of_their_event_time_order(
    client, settings, city_map
):
    now = int(time.time() * 1000)
    routes = []
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        run = type(settings)(**{**settings.__dict__, "key_prefix": f"{settings.key_prefix}-{''.join(map(str, order))}"})
        worker = Aggregator(client, run, city_map, name="router")
        worker.ensure_groups()
        write(client, run, [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="rubbish bins overflowing")])
        worker.drain()
        updates = [
            raw_event("complaint_update", seq=2, ts=now + 1000, complaint_id="k-1", action="escalated", level="district"),
            raw_event("complaint_update", seq=3, ts=now + 2000, complaint_id="k-1", action="closed", level="district"),
            raw_event("complaint_update", seq=4, ts=now + 3000, complaint_id="k-1", action="reopened", level="district"),
        ]  # fmt: skip
        for i in order:  # one batch each, committed in this order
            write(client, run, [updates[i]])
            worker.drain()
        assert complaint_table(CityReader(client, run), now, closed=True) == []
        (row,) = complaint_table(CityReader(client, run), now + 4000)
        routes.append({k: row[k] for k in ("status", "level", "path", "escalations")})
    assert routes[0] == {"status": "open", "level": "district", "path": routes[0]["path"], "escalations": 1}
    assert routes[1] == routes[0] and routes[2] == routes[0]


def test_a_route_stored_without_its_updates_is_moved_on_from_where_it_is(client, settings, worker):
    from data.keepers.complaints import OPEN, decode_route, encode_route

    keys = Keys(settings.key_prefix)
    now = int(time.time() * 1000)
    write(
        client, settings, [raw_event("complaint", seq=1, ts=now, complaint_id="k-1", text="rubbish bins overflowing")]
    )
    write(client, settings, [raw_event("complaint_update", seq=2, ts=now + 1000, complaint_id="k-1", action="escalated", level="district")])  # fmt: skip
    worker.drain()
    # As an older worker stored routes: the route as it stands, without the updates that moved it there.
    route, about = decode_route(client.hget(keys.state("complaints", OPEN), "k-1"))
    about.pop("updates")
    client.hset(keys.state("complaints", OPEN), "k-1", encode_route(route, about))
    write(client, settings, [raw_event("complaint_update", seq=3, ts=now + 2000, complaint_id="k-1", action="resolved", level="district")])  # fmt: skip
    worker.drain()
    (row,) = complaint_table(CityReader(client, settings), now + 3000)
    assert (row["level"], row["status"]) == ("district", "resolved")


# ---------------------------------------------------------------------------- hotspots the workers publish

MINUTE_MS = 60_000


def complaints_around(demo_city, now_ms: int) -> list[tuple[int, float, float]]:
    """(ts, lon, lat) of seeded complaints: noise over the city for a day, and three clusters, one in each
    window only (10 minutes ago, 40 minutes ago, 5 hours ago), so each window's hotspots differ."""
    rng = np.random.default_rng(5)
    outline = demo_city.districts.geometry.union_all()
    minx, miny, maxx, maxy = outline.bounds
    noise = []
    while len(noise) < 400:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if outline.contains(shapely.Point(lon, lat)):
            noise.append((now_ms - int(rng.uniform(1, 23 * 60)) * MINUTE_MS, lon, lat))
    clusters = []
    for k, ago_min in enumerate((10, 40, 300)):
        centre = demo_city.communities.geometry.iloc[60 * k + 5].representative_point()
        for cell in h3.grid_disk(h3.latlng_to_cell(centre.y, centre.x, 8), 1):
            lat, lon = h3.cell_to_latlng(cell)
            clusters += [(now_ms - ago_min * MINUTE_MS - i * 1000, lon, lat) for i in range(6)]
    return sorted(noise + clusters)


def recomputed_hotspots(events, demo_city, window: tuple[int, int]) -> list[list]:
    """The hotspot cells of a window recomputed from the events with the engine alone: counts per cell of
    the events in [start, end) (s), Gi* over the city's cells, the cells with complaints of their own."""
    start, end = window
    placed = [h3.latlng_to_cell(lat, lon, 8) for ts, lon, lat in events if start * 1000 <= ts < end * 1000]
    cells = city_cells(demo_city, 8)
    counts = pd.Series(placed, dtype=object).value_counts()
    result = cell_hotspots(counts[counts.index.isin(cells)], cells, HotspotParams(resolution=8, permutations=199))
    hot = result[result["hotspot"] & (result["count"] > 0)]
    out = []
    for row in hot.itertuples(index=False):
        lat, lon = h3.cell_to_latlng(row.cell)
        out.append([row.cell, round(lon, 5), round(lat, 5), int(row.count), round(float(row.gi_z), 2)])
    return out


def published(client, keys, window: str) -> dict:
    return json.loads(client.get(hotspots_key(keys, window)))


def test_the_workers_publish_each_windows_hotspots_as_the_engine_finds_them_on_the_same_counts(
    client, settings, city_map, demo_city, monkeypatch
):
    monkeypatch.setattr(aggregator, "TICK_EVERY_S", 10**9)  # the test says when the worker publishes
    keys = Keys(settings.key_prefix)
    now_ms = (int(time.time()) // 60 * 60 + 30) * 1000  # half-way through a minute: a minute on stays in the hour
    clock = [now_ms / 1000]
    worker = Aggregator(client, settings, city_map, name="hot", clock=lambda: clock[0])
    worker.ensure_groups()
    events = complaints_around(demo_city, now_ms)
    write(client, settings, [
        raw_event("complaint", seq=i, ts=ts, complaint_id=f"k-{i}", text="rubbish piled up", lon=lon, lat=lat)
        for i, (ts, lon, lat) in enumerate(events)
    ])  # fmt: skip
    worker.drain()  # folds them, then publishes

    found = {}
    for window, seconds in WINDOWS.items():
        value = published(client, keys, window)
        end = (now_ms // 1000 // 60 + 1) * 60  # whole minutes, ending with now's: the window a page asks
        assert (value["window"], value["start"], value["end"]) == (window, end - seconds, end)
        assert value["computed_ms"] == now_ms
        assert value["cells"] == recomputed_hotspots(events, demo_city, (end - seconds, end)), window
        found[window] = {row[0] for row in value["cells"]}
    # Each window finds its own cluster, and the longer ones those of the shorter too.
    assert found["15m"] and found["15m"] < found["1h"] < found["24h"], found

    # The counts as they were: nothing is computed again, and each window is said to be of the moment asked.
    keeper = worker.keepers["complaints"][0]
    assert not keeper.publish(client, keys, now_ms)
    clock[0] += 60  # a minute on: the windows slide, nothing leaves or joins them
    before = {w: published(client, keys, w) for w in WINDOWS}
    assert not keeper.publish(client, keys, now_ms + MINUTE_MS)
    for window in WINDOWS:
        moved = published(client, keys, window)
        assert moved["cells"] == before[window]["cells"] and moved["computed_ms"] == now_ms + MINUTE_MS
        assert (moved["start"], moved["end"]) == (before[window]["start"] + 60, before[window]["end"] + 60)

    # New complaints: computed again, by one worker at a time.
    cluster = recent_cluster(demo_city, now_ms + MINUTE_MS)
    write(client, settings, [
        raw_event("complaint", seq=10_000 + i, ts=ts, complaint_id=f"n-{i}", text="rubbish piled up", lon=lon, lat=lat)
        for i, (ts, lon, lat) in enumerate(cluster)
    ])  # fmt: skip
    worker.flush()
    while worker.step(block_ms=None):
        pass
    worker.flush()
    lock = hotspots_key(keys, "15m") + ":lock"
    client.set(lock, "another worker", px=60_000)
    assert not keeper.publish_hotspots(client, keys, "15m", now_ms + MINUTE_MS)
    assert published(client, keys, "15m") == before["15m"] | {"start": before["15m"]["start"] + 60,
        "end": before["15m"]["end"] + 60, "computed_ms": now_ms + MINUTE_MS}  # fmt: skip
    client.delete(lock)
    assert keeper.publish_hotspots(client, keys, "15m", now_ms + MINUTE_MS)
    end = (now_ms // 1000 // 60 + 2) * 60
    assert published(client, keys, "15m")["cells"] == recomputed_hotspots(
        events + cluster, demo_city, (end - 15 * 60, end)
    )
    assert len(published(client, keys, "15m")["cells"]) > len(before["15m"]["cells"])


def recent_cluster(demo_city, now_ms: int) -> list[tuple[int, float, float]]:
    """Complaints a minute old packed into one community's cell and its ring: a new hotspot."""
    centre = demo_city.communities.geometry.iloc[300].representative_point()
    out = []
    for cell in h3.grid_disk(h3.latlng_to_cell(centre.y, centre.x, 8), 1):
        lat, lon = h3.cell_to_latlng(cell)
        out += [(now_ms - MINUTE_MS + i * 1000, lon, lat) for i in range(6)]
    return out


def test_a_worker_whose_clock_lags_leaves_hotspots_of_a_later_window_alone(client, settings, city_map):
    keys = Keys(settings.key_prefix)
    now_ms = int(time.time() * 1000)
    ahead = Aggregator(client, settings, city_map, name="ahead", clock=lambda: now_ms / 1000 + 120)
    behind = Aggregator(client, settings, city_map, name="behind", clock=lambda: now_ms / 1000)
    ahead.publish()
    later = {w: published(client, keys, w) for w in WINDOWS}
    behind.publish()
    assert {w: published(client, keys, w) for w in WINDOWS} == later
