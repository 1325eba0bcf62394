"""The alarm watch: every tick, the status snapshot that every screen shows is built once, in this process,
whether or not a screen is open, and the alarms in it are folded into their shared state and log.

Without it the alarms were folded only when some browser asked for the status: with every screen closed
overnight, a crowd or a case cluster came and went without an alarm or a line in the log. The snapshot goes
to the dashboards' shared cache, so the dashboards of the same tick read it instead of building their own:
the conditions are computed once a tick for everyone. If this process stops, the dashboards build the
status themselves again, as before, at the first screen that asks.

    python -m callbacks.watch        (REDIS_URL and the CITYDECK_* settings, as every process)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from collections.abc import Callable

from flask import Flask

from callbacks.deck import REDIS_ERRORS, DataUnavailable, Deck
from callbacks.status import status_of
from data.keys import Keys

log = logging.getLogger("citydeck.watch")
# A tick's status is built this long after the tick begins: the aggregator's commit of the tick is in.
AFTER_TICK_S = 0.2


class AlarmWatch:
    """Builds each tick's status snapshot (and so folds its alarms) through a deck of its own."""

    def __init__(self, deck: Deck):
        self.deck = deck
        self.server = Flask("citydeck-watch")
        deck.init_app(self.server)
        self.built = 0  # ticks whose status this watch saw built or read
        self.failed = 0  # ticks whose status could not be built (Redis down, or a fault, logged)

    def step(self) -> dict | None:
        """This tick's status (built here unless a dashboard built it first); None when it could not be built."""
        with self.server.app_context():
            try:
                status = status_of(self.deck)
            except DataUnavailable as e:
                self.failed += 1
                log.warning("the status could not be built this tick: %s", e)
                return None
            except Exception:
                # One tick's fault is logged whole and costs that tick: the next ticks still watch.
                self.failed += 1
                log.exception("the status could not be built this tick")
                return None
        self.built += 1
        self.beat()
        return status

    def beat(self) -> None:
        """Say the watch is alive, for the health view: kept for the workers' timeout, so a watch that died
        is soon seen gone."""
        deck = self.deck
        beat = {"pid": os.getpid(), "at_ms": int(deck.clock() * 1000), "ticks": self.built, "failed": self.failed}
        try:
            deck.client.set(
                Keys(deck.settings.key_prefix).alarms("watch"),
                json.dumps(beat),
                px=int(deck.settings.worker_timeout_s * 1000),
            )
        except REDIS_ERRORS as e:
            log.warning("the heartbeat could not be written: %s", e)

    def run(self, stop: threading.Event, sleep: Callable[[float], bool] | None = None) -> None:
        """Step once a tick, just after it begins, until ``stop`` is set."""
        wait = sleep or stop.wait
        refresh_s = self.deck.refresh_s
        while not stop.is_set():
            self.step()
            now = self.deck.clock()
            wait(max(0.0, (now // refresh_s + 1) * refresh_s + AFTER_TICK_S - now))


def main(argv=None) -> int:
    from data.connection import process_redis
    from geo.configured import city_for

    parser = argparse.ArgumentParser(prog="python -m callbacks.watch", description=__doc__.split("\n\n")[0])
    parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with process_redis(parser) as (settings, client):
        watch = AlarmWatch(Deck(settings, client, lambda: city_for(settings)))
        log.info("building the status and folding the alarms every %.1f s", watch.deck.refresh_s)
        watch.run(stop)
    log.info("stopped after %d ticks (%d failed)", watch.built, watch.failed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
