"""Command line: ``python -m simulators [SOURCE ...] [--seed] [--speed] [--scale] [--duration] [--scenario]``.

Redis and the city come from the environment (``REDIS_URL``, ``CITYDECK_KEY_PREFIX``,
``CITYDECK_CITY``...; see ``settings.py``). SIGINT or SIGTERM stops the run after the current
batch is sent.
"""

from __future__ import annotations

import argparse
import logging
import math
import signal
import sys
import threading
from collections.abc import Sequence

from data.connection import EmbeddedInProduction, shared_redis_url
from data.keys import SOURCES
from geo.configured import city_for
from settings import Settings
from simulators.clock import DEFAULT_BACKFILL_HOURS
from simulators.producer import BATCH_SIZE, FLUSH_SECONDS, producer_client
from simulators.runner import RunOptions, run
from simulators.scenarios import SCENARIOS

log = logging.getLogger("simulators")


def parse_options(argv: Sequence[str] | None = None) -> RunOptions:
    """Parse the command line into run options."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Feed citydeck's streams with a believable simulated city.",
        epilog="scenarios: " + "; ".join(f"{s.name}: {s.help}" for s in SCENARIOS.values()),
    )
    parser.add_argument("sources", nargs="*", metavar="SOURCE", help=f"any of {', '.join(SOURCES)} (default: all four)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same city life (default 0)")
    parser.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per real second until caught up (default 60)"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="population scale, 1 = a city of Shenzhen's size")
    parser.add_argument(
        "--duration", type=float, default=None, help="real seconds to run, ending about now (default: until stopped)"
    )
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="normal", help="what happens in the city")
    parser.add_argument(
        "--backfill",
        type=float,
        default=DEFAULT_BACKFILL_HOURS,
        help=f"hours of past to replay before going live, without --duration (default {DEFAULT_BACKFILL_HOURS:g})",
    )
    parser.add_argument(
        "--timezone", default="Asia/Shanghai", help="the city's local time zone (default Asia/Shanghai)"
    )
    parser.add_argument(
        "--batch", type=int, default=BATCH_SIZE, help=f"events per pipelined write (default {BATCH_SIZE})"
    )
    parser.add_argument(
        "--flush-ms", type=float, default=FLUSH_SECONDS * 1000, help="longest wait before a partial batch is sent"
    )
    parser.add_argument("--log-every", type=float, default=30.0, help="seconds between progress lines (default 30)")
    args = parser.parse_args(argv)
    unknown = [s for s in args.sources if s not in SOURCES]
    if unknown:
        parser.error(f"unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    positive = [args.speed, args.scale] + ([] if args.duration is None else [args.duration])
    if not all(math.isfinite(x) and x > 0 for x in positive):
        parser.error("--speed, --scale and --duration must be positive")
    if not (math.isfinite(args.backfill) and args.backfill >= 0):
        parser.error("--backfill must be zero or more hours")
    return RunOptions(
        sources=tuple(dict.fromkeys(args.sources)) or SOURCES,
        seed=args.seed,
        speed=args.speed,
        scale=args.scale,
        duration_s=args.duration,
        scenario=args.scenario,
        backfill_hours=args.backfill,
        timezone=args.timezone,
        batch_size=args.batch,
        flush_seconds=args.flush_ms / 1000,
        log_every_s=args.log_every,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulators until stopped; return the exit code."""
    options = parse_options(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    stop = threading.Event()

    def request_stop(signum: int, _frame) -> None:
        if stop.is_set():
            raise SystemExit(128 + signum)  # a second signal: the operator wants out now
        log.info("%s received: finishing the current batch", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        with shared_redis_url(settings) as url:
            return run(options, settings, lambda: producer_client(url), city_for(settings), stop)
    except EmbeddedInProduction as e:
        print(f"python -m simulators: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
