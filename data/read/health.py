"""Health reads: streams, consumer lag, dead letters, workers' heartbeats, and what each source is
expected to send now (the measure of "stale")."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import redis

from data.keys import SOURCES, Keys
from data.read.windows import DAY_S, HOUR_S, Window, shared_value

if TYPE_CHECKING:
    from data.read.reader import CityReader

LAG_COUNT_CAP = 100_000  # Redis < 7 reports no lag: it is counted, up to this many entries
RATE_HISTORY_DAYS = 7  # days whose same clock hour tells a source's usual rate


class HealthReads:
    """The reader's questions about the pipeline itself, per source."""

    client: redis.Redis
    keys: Keys
    settings: object

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
        return {k.decode(): json.loads(v) for k, v in self.client.hgetall(self.keys.workers()).items()}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def expected_rates(reader: CityReader, now_s: float, days: int = RATE_HISTORY_DAYS) -> dict[str, float | None]:
    """Per source: the events per second to expect from it now, or None when it is usually quiet now.

    The lower of its rate over the last hour and its mean rate in this clock hour on the previous
    ``days`` days that had any (a source slowing down for the night is not expected at the day's
    pace); whichever of the two is known when the other is not.
    """
    hour = int(now_s) - int(now_s) % HOUR_S
    past = [Window(hour - d * DAY_S, hour - d * DAY_S + HOUR_S) for d in range(1, days + 1)]
    out: dict[str, float | None] = {}
    for source in SOURCES:

        def usual_rate(source: str = source) -> float:
            busy_days = [n for c in reader.counts_in_windows(source, "events.type", past) if (n := sum(c.values()))]
            return sum(busy_days) / len(busy_days) / HOUR_S if busy_days else 0.0

        recent = sum(reader.counts(source, "events.type", Window.last(HOUR_S, now_s)).values()) / HOUR_S
        # Past days' hours are closed: their rate is worked out once an hour, for every process.
        usual = shared_value(reader, reader.keys.baseline(source, "events.type", hour, f"rate{days}"), usual_rate)
        known = [rate for rate in (recent, usual) if rate > 0]
        out[source] = min(known) if known else None
    return out
