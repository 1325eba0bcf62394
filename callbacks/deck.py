"""What the callbacks of one app share: settings, the Redis client, the city, and the snapshot cache.

A snapshot is built once per view, view state and tick, whichever browser or gunicorn worker asks
first; the other workers wait briefly for it and read it from the shared Redis cache (flask-caching).
Within one worker, the browsers asking at the same time wait for the one request that asks Redis,
and later ones in the same tick get the snapshot from the worker's memory: fifty browsers on one
view cost one build and a few cache commands per tick, not a cache poll each.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import redis
from flask_caching import Cache

from data.alarms import AlarmBook
from data.keys import Keys
from data.read import CityReader
from data.read.windows import WINDOWS, from_history
from views.geography import CityGeography
from views.state import PLAY_SPEEDS, ViewState, at_of, moment_of, parse_at, playing

REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
LOCK_WAIT_S = 2.0


class DataUnavailable(RuntimeError):
    """Redis cannot be read right now; the screen keeps its last good picture."""


class Deck:
    """The dashboard's shared services for one app; the Redis client is passed in."""

    def __init__(
        self,
        settings,
        client: redis.Redis,
        city_factory: Callable[[], Any],
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.client = client
        # The time every snapshot answers for: the wall clock, or a simulated one that a test moves on.
        self.clock = clock
        self._city_factory = city_factory
        self.cache = Cache(
            config={
                "CACHE_TYPE": "RedisCache",
                "CACHE_REDIS_HOST": client,
                "CACHE_KEY_PREFIX": f"{settings.key_prefix}:dash:",
                "CACHE_DEFAULT_TIMEOUT": 60,
            }
        )
        self.reader = CityReader(client, settings, clock=clock)
        self._guard = threading.Lock()
        self._local: dict[str, Any] = {}  # this tick's snapshots, as built or read by this process
        self._asking: dict[str, threading.Event] = {}  # keys one request of this process is getting now

    def init_app(self, server) -> None:
        self.cache.init_app(server)

    @cached_property
    def alarms(self) -> AlarmBook:
        """The alarms' state and log, shared by every process."""
        s = self.settings
        return AlarmBook(self.client, Keys(s.key_prefix), s.alarm_clear_after_s, s.alarm_log_days)

    @cached_property
    def geo(self) -> CityGeography:
        """The city, built on first use (about a second for the demo city)."""
        return CityGeography(self._city_factory(), self.settings.h3_resolution, self.settings.geojson_simplify_m)

    @property
    def refresh_s(self) -> float:
        return self.settings.refresh_ms / 1000

    def tick(self, now: float | None = None) -> int:
        return int((now if now is not None else self.clock()) // self.refresh_s)

    def moment(self, playback: Any) -> tuple[str | None, int]:
        """The moment a page shows now and its playback speed, from its playback store ({at, play, since});
        (None, 0) when live, when playback has caught up with now, or when the store holds anything else."""
        if not isinstance(playback, dict):
            return None, 0
        at, play, since = playback.get("at"), playback.get("play", 0), playback.get("since")
        if not isinstance(at, str) or parse_at(at)[0] != at:
            return None, 0
        if not isinstance(play, int) or isinstance(play, bool) or not 0 <= play <= PLAY_SPEEDS[-1]:
            play = 0
        if not isinstance(since, int | float) or isinstance(since, bool) or not math.isfinite(since):
            since = self.clock()
        tz = self.settings.city_timezone
        now = self.clock()
        shown = playing(at, play, since, now, tz) if play else moment_of(at, tz)
        if shown is None or shown >= now:
            return None, 0
        return at_of(shown, tz), play

    def in_history(self, at: str) -> bool:
        """Whether a moment's minutes are no longer kept, so its windows are read in whole hours of history."""
        return from_history(moment_of(at, self.settings.city_timezone), self.clock(), self.settings.retention_hours)

    def live_after(self) -> tuple[float, str]:
        """Now and the city's time zone: a view's moment from now on is live."""
        return self.clock(), self.settings.city_timezone

    def snapshot(self, view: str, state: ViewState | None, build: Callable[[float], Any]) -> Any:
        """Return this tick's snapshot of a view, building it at most once across browsers and workers; a
        view asked for as of a past moment is built for that moment."""
        tick = self.tick()
        if state is not None and state.window not in WINDOWS:
            # A custom window is recounted once a minute per day it spans, not every tick: a week of hourly
            # buckets read for every browser's every refresh would keep Redis and the server busy for nothing.
            tick = int(self.clock() // max(self.refresh_s, state.window_s / 1440))
        now = self.clock() if state is None or not state.at else moment_of(state.at, self.settings.city_timezone)
        scope = "-" if state is None else f"{state.window}:{state.district or ''}:{state.neighbourhood or ''}"
        if state is not None and state.at:
            scope += f":{state.at}"
        key = f"snap:{view}:{scope}:{tick}"
        with self._guard:
            if key in self._local:
                return self._local[key]
            asking = self._asking.get(key)
            if asking is None:
                asking = self._asking[key] = threading.Event()
                first = True
            else:
                first = False
        if not first:
            asking.wait(LOCK_WAIT_S * 2)
            with self._guard:
                if key in self._local:
                    return self._local[key]
            # The request that asked failed (Redis down): this one asks for itself, and says so.
        try:
            value = self._shared(key, now, build)
            with self._guard:
                self._local = {k: v for k, v in self._local.items() if k.endswith(f":{tick}")}
                self._local[key] = value
            return value
        finally:
            if first:
                with self._guard:
                    self._asking.pop(key, None)
                asking.set()

    def _shared(self, key: str, now: float, build: Callable[[float], Any]) -> Any:
        """The snapshot from the shared cache, or built here (once across workers, with a lock in Redis)."""
        try:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
            lock = f"{self.settings.key_prefix}:dash:lock:{key}"
            if not self.client.set(lock, b"1", nx=True, px=int(LOCK_WAIT_S * 1000)):
                deadline = time.monotonic() + LOCK_WAIT_S
                while time.monotonic() < deadline:
                    time.sleep(0.02)
                    hit = self.cache.get(key)
                    if hit is not None:
                        return hit
            value = build(now)
            self.cache.set(key, value, timeout=max(int(self.refresh_s * 5), 10))
            return value
        except REDIS_ERRORS as e:
            raise DataUnavailable(str(e)) from e
