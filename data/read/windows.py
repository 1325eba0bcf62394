"""Windows of counters: what a dashboard asks of the aggregates, answered from time buckets.

A window is covered by whole hourly buckets where the hour is rolled up and fine buckets
elsewhere, so a read costs O(keys × buckets in the window) — never O(events) — whatever
the volume.

A sliding window (one that reaches up to the newest events, as a dashboard's "last hour" does)
is kept summed in the reader's process and moved forward, not summed again each time. The commit
script refuses any event older than the source's closed horizon (which the workers' roll-up moves
on to the newest event minus the allowed lateness), so a fine bucket that ends before the horizon
never changes again; and it stamps every minute it writes
with the commit's number. So a read subtracts the buckets that left the window, adds those that
joined it, and re-reads an open bucket only when its stamp moved: a dashboard refresh reads the
minute or two that changed since the last one, however many events the window holds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Container, Iterable, Mapping
from dataclasses import dataclass, field

import redis

from data.keys import Keys

HOUR_S = 3600
DAY_S = 86_400
# The windows a dashboard offers (name -> seconds): what a page may ask for, and what the workers publish
# complaint hotspots for.
WINDOWS: dict[str, int] = {"15m": 15 * 60, "1h": HOUR_S, "24h": DAY_S}
# Window lengths kept running per source: the pages' presets and the few other lengths the views ask for. Any
# other length (a custom range a URL asks for) is summed from its buckets, so no URL grows a process's memory.
SLIDING_SLOTS_MAX = 24
BASELINE_KEEP_S = 600  # a baseline (past days only) is kept this long: history imported meanwhile shows soon

# Facets whose buckets are not indexed by the time of the events that write them, so a bucket
# behind the closed horizon may still change: appointment demand is counted by slot hour, and
# the keepers move contact and health-code counts and add escalations when time passes (ticks
# commit no events, so the commit script's lateness check never stops them), and count a parked
# complaint update in its own bucket only when its complaint comes, however later. These are always
# summed from their buckets; a facet added with the same property must be listed here.
UNSETTLED_FACETS = frozenset(
    {
        "appointments.slot_center_action",
        "contacts.community",
        "codes.community_colour",
        "escalations.level",
        "complaints.community_action_level",
    }
)


@dataclass(frozen=True)
class Window:
    """A time window [start, end) in epoch seconds."""

    start: int
    end: int

    @classmethod
    def last(cls, seconds: float, now: float | None = None, bucket_s: int = 1) -> Window:
        """The window of the last ``seconds`` up to now; with ``bucket_s``, the whole buckets of that width
        ending with the one that holds now.

        Aggregates are kept per bucket, so a window that starts inside one is read as if it started at
        the bucket's start: a "last 15 min" of minute buckets would then hold 16 minutes of events.
        """
        end = (int(now if now is not None else time.time()) // bucket_s + 1) * bucket_s
        return cls(end - int(seconds), end)


def from_history(moment: float, now: float, retention_hours: float) -> bool:
    """Whether a window ending at a moment is read in whole hours of history: the moment's minutes are no
    longer kept (or will not be within the hour a page may stay open on it)."""
    return moment < now - retention_hours * HOUR_S + HOUR_S


def cover(window: Window, bucket_s: int, rolled: Collection[int] = ()) -> list[tuple[str, int]]:
    """Return the (width, start) buckets that cover a window: the rolled-up hours inside it, fine
    buckets elsewhere."""
    start = window.start - window.start % bucket_s
    end = window.end
    out: list[tuple[str, int]] = []
    t = start
    while t < end:
        if t % HOUR_S == 0 and t in rolled and t + HOUR_S <= end + bucket_s - 1:
            out.append(("h", t))
            t += HOUR_S
        else:
            out.append(("m", t))
            t += bucket_s
    return out


class WindowCounts:
    """Sums of counters over windows, kept running for sliding ones; the client is passed in."""

    def __init__(
        self, client: redis.Redis, settings, clock: Callable[[], float] = time.time, *, window_cache: bool = True
    ):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.clock = clock
        self.window_cache = window_cache
        # (source, facet, slot) -> a window's running sum, where the slot is a sliding window's length or
        # ("since", start) for a window from a fixed start up to now; one lock per (source, slot)
        self._sliding: dict[tuple[str, str, object], _Running] = {}
        self._locks: dict[tuple[str, object], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ------------------------------------------------------------------ counters

    def counts(self, source: str, facet: str, window: Window) -> dict[str, int]:
        """Sum a facet over a window: field (community, cell, sensor, 'a|b' ...) -> total."""
        return self.counts_many(source, [facet], window)[facet]

    def counts_many(self, source: str, facets: Iterable[str], window: Window) -> dict[str, dict[str, int]]:
        """Sum several facets of a source over one window: from the window caches when it slides, else
        from its buckets."""
        facets = list(facets)
        if (
            self.window_cache
            and self._slides(window)
            and any(f not in UNSETTLED_FACETS for f in facets)
            and self._may_slide(source, window.end - window.start)
        ):
            return self._sliding_counts(source, facets, window)
        buckets = cover(window, self.settings.bucket_seconds, self._rolled(source, [window]))
        return dict(zip(facets, self._sums(source, [(facet, buckets) for facet in facets])))

    def counts_in_windows(self, source: str, facet: str, windows: list[Window]) -> list[dict[str, int]]:
        """Sum one facet over each of several windows (e.g. the same hour on previous days), in one round trip."""
        rolled = self._rolled(source, windows)
        return self._sums(source, [(facet, cover(w, self.settings.bucket_seconds, rolled)) for w in windows])

    def _rolled(self, source: str, windows: list[Window]) -> set[int]:
        """The rolled-up hours among those the windows span."""
        if not windows:
            return set()
        lo, hi = min(w.start for w in windows), max(w.end for w in windows)
        read = self.client.pipeline(transaction=False)
        read.zrangebyscore(self.keys.rolled_hours(source), lo - HOUR_S, hi)
        read.zrangebyscore(self.keys.history_hours(source), lo - HOUR_S, hi)
        return {int(h) for hours in read.execute() for h in hours}

    # ------------------------------------------------------------------ sliding window sums

    def _slides(self, window: Window) -> bool:
        """Whether a window can be kept summed: a whole number of buckets long, short enough that the
        fine buckets leaving it are still kept (they expire after the retention), and not a window of
        history (one the dashboard is asked for as of a past moment), which is summed from its hours."""
        length = window.end - window.start
        retention_s = int(self.settings.retention_hours * HOUR_S)
        return (
            length > 0
            and length % self.settings.bucket_seconds == 0
            and length <= retention_s // 2
            and window.end > self.clock() - retention_s // 2
        )

    def _may_slide(self, source: str, slot: object) -> bool:
        """Whether a window length may be kept running: it is already, or the source has room for another."""
        with self._locks_lock:
            return (source, slot) in self._locks or sum(s == source for s, _ in self._locks) < SLIDING_SLOTS_MAX

    def _lock(self, source: str, slot: object) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault((source, slot), threading.Lock())

    def counts_since(self, source: str, facets: Iterable[str], start: int, now: float) -> dict[str, dict[str, int]]:
        """Sum facets from ``start`` (a bucket boundary, such as the hour's) up to ``now``: kept as a running
        sum that grows with the buckets that joined and the open ones that changed, like a sliding window."""
        facets = list(facets)
        window = Window(start, int(now) + 1)
        if not self.window_cache or start % self.settings.bucket_seconds or window.end <= start:
            return self.counts_many(source, facets, window)
        slot = ("since", start)
        with self._locks_lock:
            # A running sum from an earlier start (the hour before) is not asked for again.
            # (list() copies the keys at once: other threads add running sums without this lock)
            for key in [k for k in list(self._sliding) if k[0] == source and _since_before(k[2], start)]:
                self._sliding.pop(key, None)
            for key in [k for k in self._locks if k[0] == source and _since_before(k[1], start)]:
                del self._locks[key]
        return self._sliding_counts(source, facets, window, slot)

    def _sliding_counts(
        self, source: str, facets: list[str], window: Window, slot: object = None
    ) -> dict[str, dict[str, int]]:
        """Sum facets over a sliding window from their running sums, moved to this window.

        Two round trips: the newest event time, rolled hours and stamps (one MULTI), then the buckets
        that left or joined the window and the open ones whose stamp moved. Threads reading the same
        window length of a source wait for each other: the second finds the sums already moved.
        """
        bs = self.settings.bucket_seconds
        length = window.end - window.start
        slot = length if slot is None else slot
        with self._lock(source, slot):
            read = self.client.pipeline(transaction=True)
            read.hmget(self.keys.meta(source), "newest_ms", "closed_ms")
            read.zrangebyscore(self.keys.rolled_hours(source), window.start - HOUR_S, window.end)
            read.zrangebyscore(self.keys.history_hours(source), window.start - HOUR_S, window.end)
            read.hgetall(self.keys.stamps(source))
            (newest_raw, closed_raw), rolled_raw, history_raw, stamps_raw = read.execute()
            newest_ms = int(newest_raw or 0)
            rolled = {int(h) for h in (*rolled_raw, *history_raw)}
            stamps = {int(k): int(v) for k, v in stamps_raw.items()}
            # Buckets starting before `cut` are closed: an event in them would be older than the closed
            # horizon, which the commit script refuses.
            cut = int(closed_raw or 0) // 1000 // bs * bs
            first = window.start - window.start % bs
            end = (window.end - 1) // bs * bs + bs  # end of the window's last bucket
            if window.end + length <= cut:
                # A window of the past (the same hour yesterday): moving the running sum there and back
                # would cost more than summing it; it is read from its buckets.
                buckets = cover(window, bs, rolled)
                return dict(zip(facets, self._sums(source, [(facet, buckets) for facet in facets])))
            closed_end = max(first, min(end, cut))
            # Nothing was counted after the newest event's bucket yet, so the open part stops there.
            open_end = max(closed_end, min(end, newest_ms // 1000 // bs * bs + bs))
            span = _Span(first, closed_end, open_end, bs)
            floor = self._floor()
            plans: dict[str, tuple[_Running | None, list[list[tuple[str, int]]]]] = {}
            requests: list[tuple[str, list[tuple[str, int]]]] = []
            for facet in facets:
                if facet in UNSETTLED_FACETS:
                    requests.append((facet, cover(window, bs, rolled)))
                    continue
                running = self._sliding.get((source, facet, slot))
                if running is None or not running.can_move(span, floor):
                    add = cover(Window(first, closed_end), bs, rolled) if closed_end > first else []
                    plans[facet] = (None, [add + [("m", t) for t in span.open()]])
                else:
                    plans[facet] = (running, running.moves(span, stamps))
                requests += [(facet, buckets) for buckets in plans[facet][1]]
            sums = iter(self._sums(source, requests, keep_parts=True))
            out: dict[str, dict[str, int]] = {}
            for facet in facets:
                if facet in UNSETTLED_FACETS:
                    out[facet] = next(sums)[0]
                    continue
                running, asked = plans[facet]
                replies = [next(sums) for _ in asked]
                if running is None:
                    ((total, parts),) = replies
                    running = _Running(first, open_end, total)
                    running.remember(span, stamps, dict(zip(asked[0], parts)))
                else:
                    running.move(span, stamps, replies, asked)
                self._sliding[(source, facet, slot)] = running
                out[facet] = dict(running.total)
            return out

    def _floor(self) -> int:
        """The oldest fine bucket start a step may subtract: older ones may have expired."""
        retention_s = int(self.settings.retention_hours * HOUR_S)
        return int(self.clock()) - retention_s + HOUR_S

    def _sums(self, source: str, requests: list[tuple[str, list[tuple[str, int]]]], keep_parts: bool = False) -> list:
        """For each (facet, buckets), the sum of its buckets' fields (with ``keep_parts``, the pair of
        that sum and each bucket's own fields); all read in one pipeline."""
        pipe = self.client.pipeline(transaction=False)
        for facet, buckets in requests:
            for width, start in buckets:
                pipe.hgetall(self.keys.bucket(source, facet, width, start))
        replies = iter(pipe.execute() if any(buckets for _, buckets in requests) else ())
        out = []
        for _, buckets in requests:
            total: dict[str, int] = {}
            parts = []
            for _ in buckets:
                part = {k.decode(): int(v) for k, v in next(replies).items()}
                for key, n in part.items():
                    total[key] = total.get(key, 0) + n
                if keep_parts:
                    parts.append(part)
            out.append((total, parts) if keep_parts else total)
        return out


@dataclass(frozen=True)
class _Span:
    """Where a sliding window's buckets stand at one read: [first, closed_end) closed, up to open_end open."""

    first: int
    closed_end: int
    open_end: int
    bs: int

    def open(self) -> range:
        return range(self.closed_end, self.open_end, self.bs)


@dataclass
class _Running:
    """A window's running sum over the buckets [first, upto), and the open buckets' fields as last read
    with their stamps (a closed bucket's fields are not kept: it is read again when it leaves)."""

    first: int
    upto: int
    total: dict[str, int]
    open: dict[int, tuple[int | None, dict[str, int]]] = field(default_factory=dict)

    def can_move(self, span: _Span, floor: int) -> bool:
        """Whether moving is exact and cheaper than summing afresh: the window moved forward, the buckets
        to subtract are still kept, and there are fewer of them than buckets in the window."""
        if span.first < self.first or span.open_end < self.upto:
            return False  # a window behind this sum (a reader with an older clock, Redis lost data)
        leaving = max(min(span.first, self.upto) - self.first, 0) // span.bs
        joining = max(span.open_end - max(self.upto, span.first), 0) // span.bs
        return (leaving == 0 or self.first >= floor) and leaving + joining < (span.open_end - span.first) // span.bs

    def moves(self, span: _Span, stamps: Mapping[int, int]) -> list[list[tuple[str, int]]]:
        """The buckets to read, as three lists: those that left the window (unless their fields are
        kept), those that joined it, and the kept open buckets whose stamp moved (or is gone) since."""
        bs = span.bs
        leaving = [("m", t) for t in range(self.first, min(span.first, self.upto), bs) if t not in self.open]
        joining = [("m", t) for t in range(max(self.upto, span.first), span.open_end, bs)]
        changed = [
            ("m", t) for t, (stamp, _) in sorted(self.open.items()) if t >= span.first and stamps.get(t) != stamp
        ]
        return [leaving, joining, changed]

    def move(self, span: _Span, stamps: Mapping[int, int], replies: list[tuple[dict, list[dict]]], asked: list) -> None:
        """Apply the buckets ``moves`` asked for, as read: subtract those that left, add those that joined,
        replace the changed open ones; then keep only the still-open buckets' fields."""
        (left, _), (joined, joined_parts), (_, changed_parts) = replies
        total = dict(self.total)  # readers of the old total may still hold it
        _add(total, left, -1)
        for t in [t for t in self.open if t < span.first]:
            _add(total, self.open.pop(t)[1], -1)
        _add(total, joined, 1)
        for (_, t), fields in zip(asked[2], changed_parts):
            _add(total, self.open[t][1], -1)
            _add(total, fields, 1)
            self.open[t] = (stamps.get(t), fields)
        self.total, self.first, self.upto = total, span.first, span.open_end
        self.remember(span, stamps, dict(zip(asked[1], joined_parts)))

    def remember(self, span: _Span, stamps: Mapping[int, int], parts: Mapping[tuple[str, int], dict]) -> None:
        """Keep the fields of the open buckets just read, with their stamps; forget closed ones."""
        for (width, t), fields in parts.items():
            if width == "m" and span.closed_end <= t < span.open_end:
                self.open[t] = (stamps.get(t), fields)
        for t in [t for t in self.open if t < span.closed_end]:
            del self.open[t]


def _since_before(slot: object, start: int) -> bool:
    return isinstance(slot, tuple) and slot[0] == "since" and slot[1] < start


def _add(total: dict[str, int], fields: Mapping[str, int], sign: int) -> None:
    for k, n in fields.items():
        v = total.get(k, 0) + sign * n
        if v:
            total[k] = v
        else:
            total.pop(k, None)


# A composite facet's fields are its dimensions' values joined by FIELD_SEP ('community|channel'), as
# data.fold writes them; these are the only readers that split one.
FIELD_SEP = "|"


def by_first(counts: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Counts keyed 'a|rest' as a -> {rest: n}."""
    out: dict[str, dict[str, int]] = {}
    for key, n in counts.items():
        first, _, rest = key.partition(FIELD_SEP)
        inner = out.setdefault(first, {})
        inner[rest] = inner.get(rest, 0) + n
    return out


def of_areas(counts: Mapping[str, int], areas: Container[str]) -> dict[str, int]:
    """The counts keyed by an area (or 'area|x') whose area is one of ``areas``."""
    return {key: n for key, n in counts.items() if key.partition(FIELD_SEP)[0] in areas}


def in_areas(counts: Mapping[str, int], areas: Container[str]) -> dict[str, int]:
    """Counts keyed 'area|x' summed over ``areas``, keyed 'x'."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        area, _, rest = key.partition(FIELD_SEP)
        if area in areas:
            out[rest] = out.get(rest, 0) + n
    return out


def rollup(counts: Mapping[str, int], parent_of: Mapping[str, str]) -> dict[str, int]:
    """Sum counts keyed by a child area (or 'child|x') up to its parent area."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        area, sep, rest = key.partition(FIELD_SEP)
        parent = parent_of.get(area, area)
        k = f"{parent}{sep}{rest}"
        out[k] = out.get(k, 0) + n
    return out


def shared_value(reader: WindowCounts, key: str, build):
    """A value that depends only on closed hours, built by the first process to need it and then read
    by every process from Redis (SET NX, kept ``BASELINE_KEEP_S``), so no two screens disagree on it."""
    stored = reader.client.get(key)
    if stored is None:
        mine = json.dumps(build())
        # Another process may have stored its value meanwhile: then that one is everyone's.
        stored = mine if reader.client.set(key, mine, nx=True, ex=BASELINE_KEEP_S) else reader.client.get(key)
    return json.loads(stored)
