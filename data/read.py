"""The read API: what a dashboard asks of the aggregates, answered from time buckets.

A window is covered by whole hourly buckets where the hour is rolled up and fine buckets
elsewhere, so a read costs O(keys × buckets in the window) — never O(events) — whatever
the volume.

A sliding window (one that reaches up to the newest events, as a dashboard's "last hour" does)
is read from a cached sum instead: the commit script refuses any event older than the source's
newest minus the allowed lateness, so a fine bucket that ends before that instant never changes
again. Per (source, facet, window length) Redis keeps the sum of such closed buckets with the
bucket range it covers; each read moves it forward (subtracting the buckets that left the
window, adding those that closed since) and adds the still-open buckets, read directly. A read
then costs one window sum plus the lateness's worth of buckets, however full the buckets are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import redis

from data.fold import SENSOR_STATE_FIELDS
from data.keys import SOURCES, Keys

HOUR_S = 3600
LAG_COUNT_CAP = 100_000  # Redis < 7 reports no lag: it is counted, up to this many entries

# Facets whose buckets are not indexed by the time of the events that write them, so a bucket
# behind the lateness horizon may still change: appointment demand is counted by slot hour, and
# the keepers move contact and health-code counts and add escalations when time passes (ticks
# commit no events, so the commit script's lateness check never stops them). These are always
# summed from their buckets; a facet added with the same property must be listed here.
UNSETTLED_FACETS = frozenset(
    {"appointments.slot_center_action", "contacts.community", "codes.community_colour", "escalations.level"}
)
CACHE_TTL_WINDOWS = 3  # a window sum nobody reads for this many window lengths expires

# Replace a cached window sum and its range, only if the range is still the one the sum was
# stepped from ('' = no cache was there): two readers (several dashboard workers) that step the
# same cache write it once, and a reader whose view is older never moves it back.
# KEYS[1] range, KEYS[2] sum; ARGV: expected range, new range, ttl s, 1 to replace the whole sum
# (else only the listed fields change), number of fields to set, then field, value ... to set,
# then the fields to delete.
STORE_SCRIPT = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
local nset = tonumber(ARGV[5])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local first, last = 6, 5 + 2 * nset
for i = first, last, 1000 do
  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 999, last)))
end
for i = last + 1, #ARGV, 1000 do
  redis.call('HDEL', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Window:
    """A time window [start, end) in epoch seconds."""

    start: int
    end: int

    @classmethod
    def last(cls, seconds: float, now: float | None = None) -> Window:
        """The window of the last ``seconds`` up to now."""
        end = int(now if now is not None else time.time()) + 1
        return cls(end - int(seconds), end)


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


class CityReader:
    """Answers the dashboard's questions from Redis; the client is passed in."""

    def __init__(
        self, client: redis.Redis, settings, clock: Callable[[], float] = time.time, *, window_cache: bool = True
    ):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.clock = clock
        self.window_cache = window_cache
        self._store = client.register_script(STORE_SCRIPT)

    # ------------------------------------------------------------------ counters

    def counts(self, source: str, facet: str, window: Window) -> dict[str, int]:
        """Sum a facet over a window: field (community, cell, sensor, 'a|b' ...) -> total."""
        return self.counts_many(source, [facet], window)[facet]

    def counts_many(self, source: str, facets: Iterable[str], window: Window) -> dict[str, dict[str, int]]:
        """Sum several facets of a source over one window: from the window caches when it slides, else
        from its buckets."""
        facets = list(facets)
        if self.window_cache and self._slides(window) and any(f not in UNSETTLED_FACETS for f in facets):
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
        return {int(h) for h in self.client.zrangebyscore(self.keys.rolled_hours(source), lo - HOUR_S, hi)}

    # ------------------------------------------------------------------ sliding window sums

    def _slides(self, window: Window) -> bool:
        """Whether a window can be read from a cached sum: a whole number of buckets long, and short
        enough that the fine buckets leaving it are still kept (they expire after the retention)."""
        length = window.end - window.start
        retention_s = int(self.settings.retention_hours * HOUR_S)
        return length > 0 and length % self.settings.bucket_seconds == 0 and length <= retention_s // 2

    def _cache_keys(self, source: str, facet: str, length: int) -> tuple[str, str]:
        """The (range, sum) keys of a window cache, under the source's hash tag like every key of it."""
        tag = self.keys.meta(source).removesuffix(":meta")
        base = f"{tag}:cache:window:{facet}:{length}"
        return f"{base}:range", base

    def _sliding_counts(self, source: str, facets: list[str], window: Window) -> dict[str, dict[str, int]]:
        """Sum facets over a sliding window: cached closed part, stepped forward, plus the open buckets.

        Three round trips at most: the newest event time with the caches (one MULTI, so each sum is
        read with its own range), the buckets to step by and the open ones, and — only when a cache
        moved — its new value.
        """
        bs = self.settings.bucket_seconds
        length = window.end - window.start
        cached = [f for f in facets if f not in UNSETTLED_FACETS]
        read = self.client.pipeline(transaction=True)
        read.hget(self.keys.meta(source), "newest_ms")
        read.zrangebyscore(self.keys.rolled_hours(source), window.start - HOUR_S, window.end)
        for facet in cached:
            range_key, sum_key = self._cache_keys(source, facet, length)
            read.get(range_key)
            read.hgetall(sum_key)
        replies = read.execute()
        newest_ms = int(replies[0] or 0)
        rolled = {int(h) for h in replies[1]}
        # Buckets starting before `cut` are closed: an event in them would be older than the newest
        # minus the lateness, which the commit script refuses.
        cut = (newest_ms - self.settings.lateness_seconds * 1000) // 1000 // bs * bs
        first = window.start - window.start % bs
        end = (window.end - 1) // bs * bs + bs  # end of the window's last bucket
        if window.end + length <= cut:
            # A window of the past (the same hour yesterday): summing it would step the live cache
            # a long way back and forth; it is read from its buckets.
            buckets = cover(window, bs, rolled)
            return dict(zip(facets, self._sums(source, [(facet, buckets) for facet in facets])))
        closed_end = max(first, min(end, cut))
        # Nothing was counted after the newest event's bucket yet, so the open part stops there.
        open_end = min(end, newest_ms // 1000 // bs * bs + bs)
        open_buckets = [("m", t) for t in range(closed_end, open_end, bs)]
        plans = {
            facet: _Plan.of(replies[2 + 2 * i], replies[3 + 2 * i], first, closed_end, cut, bs, self._floor())
            for i, facet in enumerate(cached)
        }
        requests: list[tuple[str, list[tuple[str, int]]]] = []
        for facet in facets:
            plan = plans.get(facet)
            if plan is None:
                requests.append((facet, cover(window, bs, rolled)))
                continue
            requests.append((facet, open_buckets))
            if plan.rebuild:
                requests.append((facet, cover(Window(first, closed_end), bs, rolled) if closed_end > first else []))
            else:
                requests.append((facet, [("m", t) for t in plan.leaving]))
                requests.append((facet, [("m", t) for t in plan.joining]))
        sums = iter(self._sums(source, requests))
        out: dict[str, dict[str, int]] = {}
        stores = self.client.pipeline(transaction=False)
        for facet in facets:
            plan = plans.get(facet)
            if plan is None:
                out[facet] = next(sums)
                continue
            open_sum = next(sums)
            if plan.rebuild:
                closed = next(sums)
                changed, gone = closed, []
            else:
                leaving, joining = next(sums), next(sums)
                closed, changed, gone = plan.step(leaving, joining)
            if plan.moves:
                range_key, sum_key = self._cache_keys(source, facet, length)
                new_range = f"{first}:{closed_end}"
                ttl = CACHE_TTL_WINDOWS * length
                args = [plan.expected, new_range, ttl, int(plan.rebuild), len(changed)]
                args += [x for kv in changed.items() for x in kv] + gone
                self._store(keys=[range_key, sum_key], args=args, client=stores)
            total = dict(closed)
            for k, v in open_sum.items():
                total[k] = total.get(k, 0) + v
            out[facet] = total
        stores.execute()
        return out

    def _floor(self) -> int:
        """The oldest fine bucket start a step may subtract: older ones may have expired."""
        retention_s = int(self.settings.retention_hours * HOUR_S)
        return int(self.clock()) - retention_s + HOUR_S

    def _sums(self, source: str, requests: list[tuple[str, list[tuple[str, int]]]]) -> list[dict[str, int]]:
        """For each (facet, buckets), the sum of its buckets' fields; all read in one pipeline."""
        pipe = self.client.pipeline(transaction=False)
        for facet, buckets in requests:
            for width, start in buckets:
                pipe.hgetall(self.keys.bucket(source, facet, width, start))
        replies = iter(pipe.execute())
        out = []
        for _, buckets in requests:
            total: dict[str, int] = {}
            for _ in buckets:
                for k, v in next(replies).items():
                    key = k.decode()
                    total[key] = total.get(key, 0) + int(v)
            out.append(total)
        return out

    def sensors(self) -> dict[str, dict[str, object]]:
        """The newest reading of every foot-traffic sensor, with its age."""
        raw = self.client.hgetall(self.keys.latest("foot", "sensor"))
        now_ms = int(self.clock() * 1000)
        out = {}
        for sensor, state in raw.items():
            values = state.decode().split("|")
            row: dict[str, object] = dict(zip(SENSOR_STATE_FIELDS, values))
            for name in ("ts", "people", "fever", "occupancy", "capacity", "interval_s"):
                row[name] = int(row[name])
            row["lon"], row["lat"] = float(row["lon"]), float(row["lat"])
            row["age_s"] = max(0.0, (now_ms - row["ts"]) / 1000)
            out[sensor.decode()] = row
        return out

    # ------------------------------------------------------------------ health

    def freshness(self) -> dict[str, dict[str, float | None]]:
        """Per source: newest event time, last ingest time (ms) and their ages in seconds."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.hmget(self.keys.meta(s), "newest_ms", "ingested_ms", "events")
        now_ms = self.clock() * 1000
        out = {}
        for s, (newest, ingested, events) in zip(SOURCES, pipe.execute()):
            newest = int(newest) if newest else None
            ingested = int(ingested) if ingested else None
            out[s] = {
                "newest_ms": newest,
                "ingested_ms": ingested,
                "events": int(events or 0),
                "event_age_s": None if newest is None else max(0.0, (now_ms - newest) / 1000),
                "ingest_age_s": None if ingested is None else max(0.0, (now_ms - ingested) / 1000),
            }
        return out

    def stream_lengths(self) -> dict[str, int]:
        """Entries held in each source's stream."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.xlen(self.keys.stream(s))
        return dict(zip(SOURCES, pipe.execute()))

    def consumer_lag(self) -> dict[str, dict[str, int | bool]]:
        """Per source: entries not yet read by the group (lag) and read but unacknowledged (pending)."""
        out = {}
        for s in SOURCES:
            stream = self.keys.stream(s)
            try:
                groups = self.client.xinfo_groups(stream)
            except redis.ResponseError:
                groups = []
            group = next((g for g in groups if _text(g["name"]) == self.settings.consumer_group), None)
            if group is None:
                out[s] = {"lag": self.client.xlen(stream), "pending": 0, "consumers": 0, "capped": False}
                continue
            lag, capped = group.get("lag"), False
            if lag is None:
                after = self.client.xrange(stream, f"({_text(group['last-delivered-id'])}", "+", count=LAG_COUNT_CAP)
                lag, capped = len(after), len(after) >= LAG_COUNT_CAP
            out[s] = {
                "lag": int(lag),
                "pending": int(group["pending"]),
                "consumers": int(group["consumers"]),
                "capped": capped,
            }
        return out

    def dead_letter_counts(self) -> dict[str, dict[str, int]]:
        """Per source: rejected entries by reason."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.hgetall(self.keys.dead_counts(s))
        return {s: {k.decode(): int(v) for k, v in r.items()} for s, r in zip(SOURCES, pipe.execute())}

    def dead_letters(self, source: str, count: int = 20) -> list[dict[str, str]]:
        """The newest rejected entries of a source, with their reason and original fields."""
        rows = self.client.xrevrange(self.keys.dead_letters(source), count=count)
        return [{k.decode(): v.decode(errors="replace") for k, v in fields.items()} for _, fields in rows]

    def workers(self) -> dict[str, dict]:
        """Heartbeats of the aggregator workers."""
        import json

        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.keys.workers()).items()}


@dataclass
class _Plan:
    """How one facet's cached closed sum gets to a window's closed range [first, closed_end)."""

    expected: str  # the cache's range as read ('' when absent), for the compare-and-set
    rebuild: bool
    moves: bool  # whether the cache must be written
    cached: dict[str, int] = field(default_factory=dict)
    leaving: list[int] = field(default_factory=list)
    joining: list[int] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        raw_range: bytes | None,
        raw_sum: dict[bytes, bytes],
        first: int,
        closed_end: int,
        cut: int,
        bs: int,
        floor: int,
    ) -> _Plan:
        """Plan from the cache as read: step it when that reads fewer buckets than a rebuild would."""
        expected = raw_range.decode() if raw_range else ""
        new = set(range(first, closed_end, bs))
        old: set[int] | None = None
        if expected:
            a, _, c = expected.partition(":")
            if a.isdigit() and c.isdigit() and int(a) % bs == 0 and int(c) % bs == 0 and int(a) <= int(c):
                old = set(range(int(a), int(c), bs))
        if old is None or (old - new and min(old - new) < floor) or (old and max(old) >= cut):
            # No usable cache, one so old that the buckets to subtract may be gone, or one holding
            # buckets that are not closed by the source's meta (Redis lost data): rebuild.
            return cls(expected, rebuild=True, moves=bool(new) or bool(expected))
        leaving, joining = sorted(old - new), sorted(new - old)
        if len(leaving) + len(joining) >= len(new) and (leaving or joining):
            # Stepping would read more buckets than summing the range afresh.
            return cls(expected, rebuild=True, moves=True)
        cached = {k.decode(): int(v) for k, v in raw_sum.items()}
        return cls(expected, False, bool(leaving or joining), cached, leaving, joining)

    def step(self, leaving: dict[str, int], joining: dict[str, int]) -> tuple[dict[str, int], dict[str, int], list]:
        """The closed sum after the step, the fields it changed (new values) and the fields it emptied."""
        closed = self.cached
        for k in leaving.keys() | joining.keys():
            closed[k] = closed.get(k, 0) - leaving.get(k, 0) + joining.get(k, 0)
        changed: dict[str, int] = {}
        gone: list[str] = []
        for k in leaving.keys() | joining.keys():
            if closed[k]:
                changed[k] = closed[k]
            else:
                # A field no bucket of the range holds: the buckets' sum would not list it either.
                del closed[k]
                gone.append(k)
        return closed, changed, gone


def rollup(counts: Mapping[str, int], parent_of: Mapping[str, str]) -> dict[str, int]:
    """Sum counts keyed by a child area (or 'child|x') up to its parent area."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        area, sep, rest = key.partition("|")
        parent = parent_of.get(area, area)
        k = f"{parent}{sep}{rest}"
        out[k] = out.get(k, 0) + n
    return out


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
