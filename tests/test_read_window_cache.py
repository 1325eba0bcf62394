"""The running sliding-window sums of `CityReader` read exactly what summing the buckets reads.

Events go through a real aggregator into a real Redis; a reader with the running sums and one
without them (`window_cache=False`) are compared as the event time moves on, buckets close, late
events arrive and stamps disappear.
"""

from __future__ import annotations

import time

import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import CityReader, Window
from tests.events import raw_event

pytestmark = pytest.mark.redis

FACETS = ["people.sensor", "people.community", "people.h3", "fever.sensor", "readings.sensor"]
HOUR_S = 3600


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def worker(client, settings, city_map):
    w = Aggregator(client, settings, city_map, name="cache-test-worker")
    w.ensure_groups()
    return w


@pytest.fixture
def base() -> int:
    """A minute-aligned event time two hours ago: the timeline the test's clock follows."""
    t = int(time.time()) - 2 * HOUR_S
    return t - t % 60


class Feed:
    """Writes foot readings through the aggregator, numbering them so none is a duplicate."""

    def __init__(self, client, settings, worker: Aggregator):
        self.client, self.worker = client, worker
        self.stream = Keys(settings.key_prefix).stream("foot")
        self.seq = 0

    def readings(self, times_s: list[float], sensors: tuple[str, ...] = ("S-1", "S-2", "S-3")) -> None:
        for i, t in enumerate(times_s):
            self.seq += 1
            event = raw_event("reading", seq=self.seq, ts=int(t * 1000), sensor_id=sensors[i % len(sensors)])
            event["people"] = str(1 + self.seq % 17)
            event["fever"] = str(self.seq % 3)
            self.client.xadd(self.stream, event)
        self.worker.drain()


@pytest.fixture
def feed(client, settings, worker) -> Feed:
    return Feed(client, settings, worker)


def both(client, settings, clock: Clock) -> tuple[CityReader, CityReader]:
    return CityReader(client, settings, clock=clock), CityReader(client, settings, clock=clock, window_cache=False)


def assert_same(cached: CityReader, exact: CityReader, length: int, now: float) -> dict[str, dict[str, int]]:
    window = Window.last(length, now)
    got = cached.counts_many("foot", FACETS, window)
    want = exact.counts_many("foot", FACETS, window)
    assert got == want
    assert any(got.values())
    return got


def ranges(reader: CityReader, length: int = HOUR_S) -> dict[str, str]:
    """Facet -> 'first:upto' of the reader's running sums of that window length."""
    return {facet: f"{r.first}:{r.upto}" for (_, facet, n), r in reader._sliding.items() if n == length}


def test_a_sliding_window_reads_the_same_as_its_buckets_while_time_moves_on(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    # Ninety minutes of readings, a few per minute, read after every ten minutes as a dashboard would.
    for step in range(9):
        start = base - 90 * 60 + step * 600
        feed.readings([start + i * 23 for i in range(26)])
        clock.now = start + 600
        for length in (HOUR_S, 300, 1800):
            assert_same(cached, exact, length, clock.now)
            assert_same(cached, exact, length, clock.now + 7)  # a window not starting on a bucket
    assert set(ranges(cached)) == set(FACETS)


def test_a_refresh_reads_only_the_buckets_that_left_joined_or_changed(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 3000 + i * 30 for i in range(100)])  # up to base - 30
    read = spy_on_buckets(cached)
    assert_same(cached, exact, HOUR_S, base)
    assert ranges(cached)["people.sensor"] == f"{base - HOUR_S}:{base}"
    read.clear()
    assert_same(cached, exact, HOUR_S, base + 1)
    assert read == [0] * len(FACETS)  # nothing moved: nothing read

    # The newest event moves one minute on, and the window with it.
    feed.readings([base + 30])
    clock.now = base + 60
    read.clear()
    assert_same(cached, exact, HOUR_S, clock.now)
    # Per facet: the bucket that left the window and the one that joined it, nothing else.
    assert read == [2] * len(FACETS)
    assert ranges(cached)["people.sensor"] == f"{base - HOUR_S + 60}:{base + 60}"

    # A late event within the lateness changes one open bucket: only that one is read again.
    feed.readings([base - 300])
    read.clear()
    assert_same(cached, exact, HOUR_S, clock.now)
    assert read == [1] * len(FACETS)


def spy_on_buckets(reader: CityReader) -> list[int]:
    """Record how many buckets each facet's read of the reader sums (per `counts_many`)."""
    read: list[int] = []
    sums = reader._sums

    def counting(source, requests, **kwargs):
        per_facet: dict[str, int] = {}
        for facet, buckets in requests:
            per_facet[facet] = per_facet.get(facet, 0) + len(buckets)
        read.extend(per_facet.values())
        return sums(source, requests, **kwargs)

    reader._sums = counting
    return read


def test_late_events_within_the_lateness_are_counted_before_and_after_their_bucket_closes(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    lateness = settings.lateness_seconds
    feed.readings([base - 1800 + i * 20 for i in range(90)])  # up to base - 20
    totals = assert_same(cached, exact, HOUR_S, base)

    # Readings arriving late, but less than the lateness behind the newest one: still open buckets.
    late = [base - 20 - lateness + 90 + i for i in range(5)]
    feed.readings(late)
    after_late = assert_same(cached, exact, HOUR_S, base)
    assert sum(after_late["readings.sensor"].values()) == sum(totals["readings.sensor"].values()) + 5

    # Time moves on until the late readings' bucket is closed and taken into the cached sum.
    for minutes in range(1, 6):
        feed.readings([base + minutes * 60])
        clock.now = base + minutes * 60 + 1
        assert_same(cached, exact, HOUR_S, clock.now)
    assert not any(t <= max(late) for r in cached._sliding.values() for t in r.open)  # closed, kept in the sum


def test_lost_stamps_make_a_reader_read_the_open_buckets_again_and_stay_exact(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 3000 + i * 30 for i in range(100)])
    assert_same(cached, exact, HOUR_S, base)
    stamps = Keys(settings.key_prefix).stamps("foot")
    assert client.hlen(stamps) > 0
    client.delete(stamps)  # as if Redis lost them
    feed.readings([base - 200, base - 100])  # two late events: stamped anew, the rest has no stamp
    read = spy_on_buckets(cached)
    assert_same(cached, exact, HOUR_S, base)
    open_buckets = settings.lateness_seconds // 60 + 1
    assert read == [open_buckets] * len(FACETS)


def test_a_window_behind_the_running_sum_is_read_exactly(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 5400 + i * 30 for i in range(180)])
    assert_same(cached, exact, HOUR_S, base)
    # The same reader asked for a window a few minutes behind (a dashboard worker with a slower clock
    # shares nothing with it, but one reader may be asked with an older `now`): summed afresh, exactly.
    assert_same(cached, exact, HOUR_S, base - 240)
    assert_same(cached, exact, HOUR_S, base)


def test_windows_of_the_past_and_unsettled_facets_are_read_from_buckets_without_a_cache(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 5400 + i * 30 for i in range(180)])
    past = Window(base - 5400, base - 3600)
    assert cached.counts("foot", "people.sensor", past) == exact.counts("foot", "people.sensor", past)
    assert cached.counts_in_windows("foot", "people.sensor", [past]) == exact.counts_in_windows(
        "foot", "people.sensor", [past]
    )
    assert not ranges(cached, 1800)
    window = Window.last(HOUR_S, base)
    assert cached.counts("cases", "contacts.community", window) == exact.counts("cases", "contacts.community", window)
    assert not any(source == "cases" for source, _, _ in cached._sliding)


def test_the_hour_so_far_is_a_running_sum_that_grows_and_is_forgotten_when_the_hour_turns(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    hour = base - base % HOUR_S
    feed.readings([hour + i * 40 for i in range(int((base - hour) / 40) + 1)] or [hour])
    read = spy_on_buckets(cached)
    for minutes in range(0, 3):
        now = base + minutes * 60
        if minutes:
            feed.readings([now - 5])
        read.clear()
        got = cached.counts_since("foot", FACETS, hour, now)
        assert got == exact.counts_many("foot", FACETS, Window(hour, int(now) + 1))
        if minutes:
            assert read == [1] * len(FACETS)  # the minute that joined, nothing else
    cached.counts_since("foot", FACETS, hour + HOUR_S, base + HOUR_S)
    assert not any(slot == ("since", hour) for _, _, slot in cached._sliding)


def test_windows_of_many_lengths_stay_exact_and_only_so_many_are_kept_running(client, settings, feed, base):
    from data.read.windows import SLIDING_SLOTS_MAX

    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 20 * HOUR_S + i * 211 for i in range(360)])
    # A custom window in a URL can have any length: each is exact, and the process keeps no more than its
    # ceiling of running sums, however many lengths are asked for.
    for hours in range(1, SLIDING_SLOTS_MAX + 12):
        assert_same(cached, exact, hours * HOUR_S, clock.now)
    kept = {slot for source, slot in cached._locks if source == "foot"}
    assert len(kept) == SLIDING_SLOTS_MAX
    assert {n for (_, _, n) in cached._sliding} <= kept
