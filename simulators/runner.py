"""Running simulated sources against Redis: the simulated clock drives each source's model, and its
events go to that source's stream through its own producer.

All chosen sources run in one process, interleaved on one loop. At scale 1 the four sources
together make well under a hundred events a second live (a few thousand a second while
backfilling at speed 60), a small share of one core; one process leaves the second of this
machine's two cores to the aggregator and the dashboard, and has no children to forward
signals to or reap. To spread a much larger load over more cores, start one process per source
(``python -m simulators foot`` and so on): each writes its own stream under its own producer id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from data.keys import SOURCES, Keys
from geo.city import City
from settings import Settings
from simulators import resume
from simulators.clock import DEFAULT_BACKFILL_HOURS, SimulatedClock, run_start_ms
from simulators.generate import source_model
from simulators.producer import BATCH_SIZE, FLUSH_SECONDS, StreamProducer
from simulators.world import World

log = logging.getLogger("simulators")

# How often the loop wakes to advance the clock: short enough for flushes every FLUSH_SECONDS.
TICK_SECONDS = 0.05


@dataclass(frozen=True)
class RunOptions:
    """What to simulate, how fast, and for how long."""

    sources: Sequence[str] = SOURCES
    seed: int = 0
    speed: float = 60.0
    scale: float = 1.0
    duration_s: float | None = None
    scenario: str = "normal"
    backfill_hours: float = DEFAULT_BACKFILL_HOURS
    timezone: str = "Asia/Shanghai"
    batch_size: int = BATCH_SIZE
    flush_seconds: float = FLUSH_SECONDS
    log_every_s: float = 30.0
    # Where simulated time starts when nothing is resumed; by default from the backfill or the duration.
    start_ms: int | None = None


def run(
    options: RunOptions,
    settings: Settings,
    connect: Callable[[], redis.Redis],
    city: City,
    stop: threading.Event,
) -> int:
    """Simulate until stopped or the duration is over, then flush; return the process exit code."""
    world = World(city, scale=options.scale, seed=options.seed)
    wanted_ms = options.start_ms
    if wanted_ms is None:
        wanted_ms = run_start_ms(int(time.time() * 1000), options.speed, options.duration_s, options.backfill_hours)
    keys = Keys(settings.key_prefix)

    def build(source: str):
        return lambda origin_ms: source_model(
            source, world, start_ms=origin_ms, scenario=options.scenario, seed=options.seed, timezone=options.timezone
        )

    starts: dict[str, resume.Start] = {}
    models = {}
    client = connect()
    try:
        for s in options.sources:
            digest = resume.story(
                s,
                seed=options.seed,
                scenario=options.scenario,
                scale=options.scale,
                timezone=options.timezone,
                city=city.name,
            )
            starts[s], models[s] = resume.start_of(s, client, keys.stream(s), wanted_ms, digest, build(s))
    finally:
        client.close()
    producers = {
        s: StreamProducer(
            connect,
            keys.stream(s),
            source=s,
            maxlen=settings.stream_maxlen,
            src=starts[s].src,
            seq=starts[s].first_seq,
            batch_size=options.batch_size,
            flush_seconds=options.flush_seconds,
            stop=stop,
        )
        for s in options.sources
    }
    for s, start in starts.items():
        for event in start.pending:
            producers[s].add(event)
    # A resumed source carries on from where its stream ends; a new one from its origin.
    start_ms = min(s.origin_ms if s.resume_ms is None else s.resume_ms for s in starts.values())
    log.info(
        "simulating %s in %s (scenario %s, scale %g, seed %d, speed %gx) from %s; producers %s",
        ", ".join(options.sources), city.name, options.scenario, options.scale, options.seed, options.speed,
        _iso(start_ms), ", ".join(p.src for p in producers.values()),
    )  # fmt: skip
    # The clock starts once the models are ready, so their set-up does not eat simulated time.
    clock = SimulatedClock(start_ms, options.speed)
    began = time.monotonic()
    next_log = began + options.log_every_s
    live_announced = False
    while not stop.is_set():
        # Read before the target: the present is reached once a whole round has produced up to it.
        caught_up = clock.caught_up()
        target = clock.now_ms()
        for source, model in models.items():
            producer = producers[source]
            for event in model.advance(target):
                producer.add(event)
            producer.flush_if_due()
            if stop.is_set():
                break
        now = time.monotonic()
        if not live_announced and caught_up and not stop.is_set():
            live_announced = True
            log.info("caught up with the present after %.1f s; running in real time", now - began)
        if now >= next_log:
            next_log = now + options.log_every_s
            log.info("produced so far (simulated time %s): %s", _iso(target), _counts(producers))
        if options.duration_s is not None and now - began >= options.duration_s:
            break
        stop.wait(TICK_SECONDS)
    flushed = all([p.flush() for p in producers.values()])
    log.info(
        "stopped after %.1f s (simulated time %s): produced %s",
        time.monotonic() - began, _iso(clock.now_ms()), _counts(producers),
    )  # fmt: skip
    return 0 if flushed else 1


def _counts(producers: dict[str, StreamProducer]) -> str:
    """Describe events sent per source and type, e.g. 'foot: reading=120; cases: checkin=40 declaration=9'."""
    parts = []
    for source, producer in producers.items():
        types = " ".join(f"{t}={n}" for t, n in sorted(producer.sent.items())) or "none"
        extra = f" (unsent {producer.unsent})" if producer.unsent else ""
        parts.append(f"{source}: {types}{extra}")
    return "; ".join(parts)


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
