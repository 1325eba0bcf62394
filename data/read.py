"""The read API: what a dashboard asks of the aggregates, answered from time buckets.

A window is covered by whole hourly buckets where the hour is rolled up and fine buckets
elsewhere, so a read costs O(keys × buckets in the window) — never O(events) — whatever
the volume.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import redis

from data.fold import SENSOR_STATE_FIELDS
from data.keys import SOURCES, Keys

HOUR_S = 3600
LAG_COUNT_CAP = 100_000  # Redis < 7 reports no lag: it is counted, up to this many entries


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

    def __init__(self, client: redis.Redis, settings, clock: Callable[[], float] = time.time):
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.clock = clock

    # ------------------------------------------------------------------ counters

    def counts(self, source: str, facet: str, window: Window) -> dict[str, int]:
        """Sum a facet over a window: field (community, cell, sensor, 'a|b' ...) -> total."""
        return self.counts_many(source, [facet], window)[facet]

    def counts_many(self, source: str, facets: Iterable[str], window: Window) -> dict[str, dict[str, int]]:
        """Sum several facets of a source over one window, in one round trip."""
        facets = list(facets)
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

    def series(self, source: str, facet: str, window: Window, field: str | None = None) -> list[tuple[int, int]]:
        """Per fine bucket of a window: (start, total of one field, or of all fields)."""
        step = self.settings.bucket_seconds
        starts = list(range(window.start - window.start % step, window.end, step))
        pipe = self.client.pipeline(transaction=False)
        for start in starts:
            key = self.keys.bucket(source, facet, "m", start)
            pipe.hget(key, field) if field is not None else pipe.hvals(key)
        out = []
        for start, reply in zip(starts, pipe.execute()):
            if field is not None:
                out.append((start, int(reply or 0)))
            else:
                out.append((start, sum(int(v) for v in reply)))
        return out

    # ------------------------------------------------------------------ latest states

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
