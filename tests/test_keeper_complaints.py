"""Complaint triage and routing through the aggregator, against a real Redis."""

from __future__ import annotations

import time

import pytest

from data.aggregator import Aggregator
from data.keepers.complaints import DEADLINES, WAITING
from data.keys import Keys
from data.read import CityReader, Window
from data.read.complaints import complaint_table
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
