"""Where a simulated source picks up on its stream, so that restarting the simulators never writes an
event twice.

A run of one source is named by its producer id, ``sim-<source>-<origin>-<story>``: the simulated time
it started from (UTC, to the second) and a digest of everything that decides its events (seed,
scenario, scale, time zone, city). The models are deterministic, so a run is its producer id.

At start each source reads the newest simulator entry of its own stream (``XREVRANGE``). When that
entry belongs to the run it would start now (same story, older origin) and the new start would
overlap what it wrote, the run is resumed: the model is rebuilt from the old origin and replayed,
unsent, up to the last sequence number on the stream, and the producer carries on with the next
one under the same id. The stream then holds exactly what one uninterrupted run would have written.
Otherwise (another story, a replay too long to be worth it, a stream from another version that no
longer replays to the same event) a new run begins, never earlier than the newest event already on
the stream, so two runs never cover the same simulated time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from simulators.source import Event, SourceModel

log = logging.getLogger("simulators")

PREFIX = "sim-"
# A run older than this is not replayed to resume it (at the demo scale, about 15 s of work per
# simulated day); a new run starts where the stream ends instead.
REPLAY_LIMIT_MS = 24 * 3_600_000
# Replay in steps of simulated time, so a long replay never holds more than a step's events.
REPLAY_STEP_MS = 10 * 60_000
# How far back through the stream to look for the newest simulator entry (entries, newest first).
SCAN_LIMIT = 10_000
SCAN_PAGE = 500


@dataclass(frozen=True)
class Written:
    """The newest entry a simulator wrote on a stream."""

    src: str
    seq: int
    ts: int
    type: str


@dataclass(frozen=True)
class Start:
    """How a source starts: its producer id, the origin of its model, and what to skip or send first."""

    src: str
    origin_ms: int
    first_seq: int = 0
    resume_ms: int | None = None  # when resuming: the event time the stream ends at
    pending: tuple[Event, ...] = ()  # events the replay released past the stream's end: sent first


def story(source: str, *, seed: int, scenario: str, scale: float, timezone: str, city: str) -> str:
    """A short digest of what decides a source's events besides its origin."""
    text = f"{source}|{seed}|{scenario}|{scale!r}|{timezone}|{city}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def producer_id(source: str, origin_ms: int, digest: str) -> str:
    """The producer id of a run: its source, its origin (to the second) and its story."""
    return f"{PREFIX}{source}-{datetime.fromtimestamp(origin_ms // 1000, UTC):%Y%m%dT%H%M%SZ}-{digest}"


def parse_producer_id(src: str, source: str) -> tuple[int, str] | None:
    """Return (origin ms, story digest) of a run's producer id for that source, or None."""
    head = f"{PREFIX}{source}-"
    if not src.startswith(head):
        return None
    stamp, _, digest = src[len(head) :].partition("-")
    try:
        origin = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(origin.timestamp()) * 1000, digest


def newest_written(client: redis.Redis, stream: str) -> Written | None:
    """The newest entry of the stream written by a simulator, or None."""
    upper = "+"
    seen = 0
    while seen < SCAN_LIMIT:
        entries = client.xrevrange(stream, max=upper, count=SCAN_PAGE)
        for _entry_id, fields in entries:
            src = fields.get(b"src", b"").decode(errors="replace")
            if src.startswith(PREFIX):
                try:
                    return Written(src, int(fields[b"seq"]), int(fields[b"ts"]), fields[b"type"].decode())
                except (KeyError, ValueError):
                    continue  # not one of ours after all: keep looking
        if len(entries) < SCAN_PAGE:
            return None
        seen += len(entries)
        upper = "(" + entries[-1][0].decode()
    return None


def plan_start(source: str, wanted_ms: int, digest: str, written: Written | None) -> tuple[int, str | None]:
    """Decide where a source starts: (origin, the producer id to resume, or None for a new run).

    ``wanted_ms`` is where a new run would start (the backfill); ``written`` the stream's newest
    simulator entry.
    """
    if written is None or written.ts < wanted_ms:
        return wanted_ms, None  # nothing written over the span a new run would cover
    parsed = parse_producer_id(written.src, source)
    if parsed is not None:
        origin, previous = parsed
        if previous == digest and origin <= wanted_ms and written.ts - origin <= REPLAY_LIMIT_MS:
            return origin, written.src
    return max(wanted_ms, written.ts + 1), None


def fast_forward(model: SourceModel, written: Written) -> tuple[Event, ...] | None:
    """Replay a model, unsent, past the written entry; return the events after it, or None if the
    replay does not reproduce that entry (the stream was written by other code or another city)."""
    released = 0
    until = model.start_ms
    while until <= written.ts:
        until = min(until + REPLAY_STEP_MS, written.ts + 1)
        events = model.advance(until)
        if released + len(events) > written.seq:
            k = written.seq - released
            if (events[k].ts, events[k].type) != (written.ts, written.type):
                return None
            return tuple(events[k + 1 :])
        released += len(events)
    return None  # the replay reached the written event time short of its sequence number


def start_of(
    source: str,
    client: redis.Redis,
    stream: str,
    wanted_ms: int,
    digest: str,
    build,
) -> tuple[Start, SourceModel]:
    """Find where a source starts on its stream and build its model there (``build(origin_ms)``)."""
    written = newest_written(client, stream)
    origin, resumed = plan_start(source, wanted_ms, digest, written)
    # A new run's id names its origin to the second: start on the second, so the id says it exactly.
    if resumed is None:
        origin = -(-origin // 1000) * 1000
        return Start(producer_id(source, origin, digest), origin), build(origin)
    model = build(origin)
    pending = fast_forward(model, written)
    if pending is None:
        log.warning("%s: %s no longer replays to its last event; starting a new run", source, written.src)
        origin = -(-(written.ts + 1) // 1000) * 1000
        return Start(producer_id(source, origin, digest), origin), build(origin)
    log.info("%s: resuming %s after seq %d (event time %s)", source, written.src, written.seq, _iso(written.ts))
    return Start(written.src, origin, written.seq + 1, written.ts, pending), model


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
