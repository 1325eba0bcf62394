"""The cached sliding-window sums of `CityReader` read exactly what summing the buckets reads.

Events go through a real aggregator into a real Redis; a reader with the cache and one without
it (`window_cache=False`) are compared as the event time moves on, buckets close, late events
arrive and caches disappear.
"""

from __future__ import annotations

import time

import pytest

from data.aggregator import Aggregator
from data.keys import Keys
from data.read import STORE_SCRIPT, CityReader, Window
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
        while self.worker.step(block_ms=None):
            pass
        self.worker.flush()


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


def cache_ranges(client, settings, length: int = HOUR_S) -> dict[str, str]:
    prefix = f"{{{settings.key_prefix}:foot}}:cache:window:"
    out = {}
    for key in client.scan_iter(match=f"{prefix}*:{length}:range"):
        facet = key.decode()[len(prefix) :].rsplit(":", 2)[0]
        out[facet] = client.get(key).decode()
    return out


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
    assert set(cache_ranges(client, settings)) == set(FACETS)


def test_a_bucket_that_closes_moves_the_cached_sum_by_one_bucket(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    lateness = settings.lateness_seconds
    feed.readings([base - 3000 + i * 30 for i in range(100)])  # up to base - 30
    assert_same(cached, exact, HOUR_S, base)
    before = cache_ranges(client, settings)["people.sensor"]
    first, closed_end = map(int, before.split(":"))
    assert closed_end == (base - 30 - lateness) // 60 * 60  # buckets ending by newest - lateness

    # The newest event moves one minute on: one more bucket is behind the horizon.
    feed.readings([base + 30])
    clock.now = base + 60
    read = spy_on_buckets(cached)
    assert_same(cached, exact, HOUR_S, clock.now)
    assert cache_ranges(client, settings)["people.sensor"] == f"{first + 60}:{closed_end + 60}"
    # Per facet: the bucket that left, the one that closed, and the open ones up to the newest event.
    open_buckets = (base + 60 - (closed_end + 60)) // 60
    assert read == [1 + 1 + open_buckets] * len(FACETS)

    # Read again within the same minute: the cached sum is used as it is.
    read.clear()
    assert_same(cached, exact, HOUR_S, clock.now + 1)
    assert read == [open_buckets] * len(FACETS)


def spy_on_buckets(reader: CityReader) -> list[int]:
    """Record how many buckets each facet's read of the reader sums (per `counts_many`)."""
    read: list[int] = []
    sums = reader._sums

    def counting(source, requests):
        per_facet: dict[str, int] = {}
        for facet, buckets in requests:
            per_facet[facet] = per_facet.get(facet, 0) + len(buckets)
        read.extend(per_facet.values())
        return sums(source, requests)

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
    _, closed_end = map(int, cache_ranges(client, settings)["readings.sensor"].split(":"))
    assert closed_end > max(late)


def test_a_deleted_or_damaged_cache_is_rebuilt_from_the_buckets(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 3000 + i * 30 for i in range(100)])
    assert_same(cached, exact, HOUR_S, base)
    keys = list(client.scan_iter(match=f"{{{settings.key_prefix}:foot}}:cache:window:*"))
    assert keys
    client.delete(*keys)
    assert_same(cached, exact, HOUR_S, base)

    # A range no reader could have written, and a sum that does not match its range.
    range_key = next(k for k in client.scan_iter(match=f"*:people.sensor:{HOUR_S}:range"))
    client.set(range_key, "garbage")
    assert_same(cached, exact, HOUR_S, base)
    client.set(range_key, f"{base + 600}:{base + 1200}")  # past the newest event: not closed
    assert_same(cached, exact, HOUR_S, base)
    assert cache_ranges(client, settings)["people.sensor"] != f"{base + 600}:{base + 1200}"


def test_a_reader_with_an_older_clock_never_moves_the_cache_back_and_reads_exactly(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 5400 + i * 30 for i in range(180)])
    assert_same(cached, exact, HOUR_S, base)
    ahead = cache_ranges(client, settings)
    # Another dashboard worker whose clock is a few minutes behind reads the same window length.
    behind = Clock(base - 240)
    late_reader, late_exact = both(client, settings, behind)
    assert_same(late_reader, late_exact, HOUR_S, behind.now)
    assert_same(cached, exact, HOUR_S, base)
    assert cache_ranges(client, settings) == ahead


def test_storing_a_step_is_refused_when_another_reader_moved_the_cache_first(client, settings):
    store = client.register_script(STORE_SCRIPT)
    range_key, sum_key = f"{{{settings.key_prefix}:foot}}:r", f"{{{settings.key_prefix}:foot}}:s"
    assert store(keys=[range_key, sum_key], args=["", "0:60", 60, 1, 1, "a", 5]) == 1
    # Two readers stepped from 0:60; the first one's step lands, the second's is refused.
    assert store(keys=[range_key, sum_key], args=["0:60", "60:120", 60, 0, 1, "a", 7]) == 1
    assert store(keys=[range_key, sum_key], args=["0:60", "60:120", 60, 0, 1, "a", 9]) == 0
    assert client.get(range_key) == b"60:120" and client.hgetall(sum_key) == {b"a": b"7"}
    assert store(keys=[range_key, sum_key], args=["60:120", "120:180", 60, 0, 0, "a"]) == 1
    assert not client.exists(sum_key)  # its last field emptied
    assert client.get(range_key) == b"120:180"


def test_windows_of_the_past_and_unsettled_facets_are_read_from_buckets_without_a_cache(client, settings, feed, base):
    clock = Clock(base)
    cached, exact = both(client, settings, clock)
    feed.readings([base - 5400 + i * 30 for i in range(180)])
    past = Window(base - 5400, base - 3600)
    assert cached.counts("foot", "people.sensor", past) == exact.counts("foot", "people.sensor", past)
    assert cached.counts_in_windows("foot", "people.sensor", [past]) == exact.counts_in_windows(
        "foot", "people.sensor", [past]
    )
    assert not cache_ranges(client, settings, 1800)
    window = Window.last(HOUR_S, base)
    assert cached.counts("cases", "contacts.community", window) == exact.counts("cases", "contacts.community", window)
    assert not list(client.scan_iter(match=f"{{{settings.key_prefix}:cases}}:cache:*"))
