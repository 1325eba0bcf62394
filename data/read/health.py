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

# Redis < 7 reports no lag: it is counted up to this many entries, and estimated beyond (every screen's
# status reads it each tick, so it must stay a small read however far the workers are behind).
LAG_COUNT_CAP = 5_000
RATE_HISTORY_DAYS = 7  # days whose same clock hour tells a source's usual rate


class HealthReads:
    """The reader's questions about the pipeline itself, per source."""

    client: redis.Redis
    keys: Keys
    settings: object

    def freshness(self) -> dict[str, dict[str, float | None]]:
        """Per source: newest live event time, last ingest time (ms), their ages in seconds, the live events
        counted and those folded into hourly history only (older than the fine retention when they came)."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.hmget(self.keys.meta(s), "newest_ms", "ingested_ms", "events", "history_events")
        now_ms = self.clock() * 1000
        out = {}
        for s, (newest, ingested, events, history) in zip(SOURCES, pipe.execute()):
            newest = int(newest) if newest else None
            ingested = int(ingested) if ingested else None
            out[s] = {
                "newest_ms": newest,
                "ingested_ms": ingested,
                "events": int(events or 0),
                "history_events": int(history or 0),
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
        """Per source: entries not yet read by the group (lag), read but unacknowledged (pending), and the
        lag as a share of the stream's cap (``lag_share``): at 1 the cap trims entries no worker has read.

        Redis >= 7 reports the lag; Redis 6.2 does not, nor does 7 once entries were trimmed unread, so it
        is then counted from the group's last delivered id: the whole stream when the cap has overtaken
        it, else the entries after it: counted up to ``LAG_COUNT_CAP`` and past that estimated from the share
        of the stream's time span after it (``capped``).
        """
        out = {}
        for s in SOURCES:
            stream = self.keys.stream(s)
            try:
                groups = self.client.xinfo_groups(stream)
            except redis.ResponseError:
                groups = []
            group = next((g for g in groups if _text(g["name"]) == self.settings.consumer_group), None)
            length = self.client.xlen(stream)
            if group is None:
                out[s] = {"lag": length, "pending": 0, "consumers": 0, "capped": False}
            else:
                lag, capped = group.get("lag"), False
                if lag is None:
                    lag, capped = self._lag_after(stream, _text(group["last-delivered-id"]), length)
                out[s] = {
                    # Redis 7 counts entries trimmed unread as lag too, until the workers count them lost.
                    "lag": min(int(lag), length),
                    "pending": int(group["pending"]),
                    "consumers": int(group["consumers"]),
                    "capped": capped,
                }
            out[s]["lag_share"] = out[s]["lag"] / self.settings.stream_maxlen if self.settings.stream_maxlen else 0.0
        return out

    def _lag_after(self, stream: str, last_delivered: str, length: int) -> tuple[int, bool]:
        oldest = self.client.xrange(stream, count=1)
        if not oldest or _id_key(last_delivered) < _id_key(_text(oldest[0][0])):
            return length, False
        after = self.client.xrange(stream, f"({last_delivered}", "+", count=LAG_COUNT_CAP)
        if len(after) < LAG_COUNT_CAP:
            return len(after), False
        newest = self.client.xrevrange(stream, count=1)
        first_ms, read_ms = _id_key(_text(oldest[0][0]))[0], _id_key(last_delivered)[0]
        span_ms = max(_id_key(_text(newest[0][0]))[0] - first_ms, 1)
        share_after = 1 - (read_ms - first_ms) / span_ms
        return min(max(len(after), round(length * share_after)), length), True

    def lost_entries(self) -> dict[str, dict[str, int | str | None]]:
        """Per source: entries the stream's cap trimmed before they were folded (``entries``), the gaps of
        them whose size the server could not tell (``uncounted``, Redis < 7), and their id range."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.hmget(self.keys.lost(s), "entries", "uncounted", "gaps", "first_id", "last_id")
        out = {}
        for s, (entries, uncounted, gaps, first, last) in zip(SOURCES, pipe.execute()):
            out[s] = {
                "entries": int(entries or 0),
                "uncounted": int(uncounted or 0),
                "gaps": int(gaps or 0),
                "first_id": _text(first) if first else None,
                "last_id": _text(last) if last else None,
            }
        return out

    def sequence_gaps(self) -> dict[str, dict[str, int]]:
        """Per source, per producer with a gap: the sequence numbers never seen between its first and last."""
        pipe = self.client.pipeline(transaction=False)
        for s in SOURCES:
            pipe.hgetall(self.keys.producers(s))
        out: dict[str, dict[str, int]] = {}
        for s, producers in zip(SOURCES, pipe.execute()):
            out[s] = {}
            for producer, raw in producers.items():
                p = json.loads(raw)
                missing = int(p["last"]) - int(p["first"]) + 1 - int(p["received"])
                if missing > 0:
                    out[s][_text(producer)] = missing
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

    def watch(self) -> dict | None:
        """The alarm watch's last heartbeat ({pid, at_ms, ticks, failed}), or None when none is kept."""
        raw = self.client.get(self.keys.alarms("watch"))
        return json.loads(raw) if raw else None

    def audit_state(self) -> dict:
        """The audit log's length and its last verification (``verified``: None if never verified)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.keys.audit())
        pipe.hgetall(self.keys.audit_verified())
        length, raw = pipe.execute()
        f = {_text(k): _text(v) for k, v in raw.items()}
        verified = (
            {"at_ms": int(f["at_ms"]), "ok": f["ok"] == "1", "length": int(f["length"]), "sentence": f["sentence"]}
            if f
            else None
        )
        return {"length": int(length), "verified": verified}


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


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
