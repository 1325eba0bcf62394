"""The foot-traffic keeper: since when each place has been crowded, reading after reading.

A crowding alarm needs a stretch of time, not one reading: the keeper records when a sensor's
place first read crowded and its latest crowded reading, clears it when a reading comes back
under, and starts again after a gap in the readings (no data is not evidence of crowding). The
read side raises the alert once a stretch still going is longer than the grace period.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import redis

from data.fold import Folded, Placement
from data.keepers import StateChanges, read_states
from data.keys import Keys
from data.schema import Decoded
from engines.foot import CrowdingRule

OVER = "foot:over_capacity"  # sensor -> JSON {since_ms, last_ms, interval_s, place_id, community_id}


class FootKeeper:
    """Keeps, per sensor, since when its place has been over capacity."""

    source = "foot"

    def __init__(self, settings, rule: CrowdingRule | None = None):
        self.rule = rule or CrowdingRule.of(settings)

    def keep(
        self,
        client: redis.Redis,
        keys: Keys,
        batch: Sequence[tuple[Decoded, Placement]],
        folded: Folded,
        changes: StateChanges,
        now_ms: int,
    ) -> None:
        """Start, carry on or end each sensor's over-capacity stretch from its readings in the batch."""
        readings: dict[str, list[tuple[int, bool, str, str]]] = {}
        intervals: dict[str, int] = {}
        for d, where in batch:
            c = d.columns
            measured = (c["occupancy"] >= 0) & (c["capacity"] > 0)
            if not measured.any():
                continue
            rows = np.flatnonzero(measured)
            over = self.rule.crowded(c["occupancy"][rows], c["capacity"][rows]).tolist()
            communities = where.community.labels_of(where.community.codes[rows])
            for j, r in enumerate(rows.tolist()):
                sensor = c["sensor_id"][r].decode()
                readings.setdefault(sensor, []).append(
                    (int(c["ts"][r]), over[j], c["place_id"][r].decode(), communities[j])
                )
                intervals[sensor] = int(c["interval_s"][r])
        if not readings:
            return
        key = keys.state(self.source, OVER)
        names = list(readings)
        states, versions = read_states(client, key, names)
        for name, state, version in zip(names, states, versions):
            gap_ms = self.rule.gap_s(intervals[name]) * 1000
            stored = _stretch(state)
            # The stretch the batch carries on: the stored one, while readings keep coming close enough.
            since, last = (stored["since_ms"], stored["last_ms"]) if stored else (None, None)
            ordered = sorted(readings[name])
            _, _, place, community = ordered[-1]
            for ts, is_over, _, _ in ordered:
                if not is_over:
                    since = last = None
                elif since is None or ts - last > gap_ms:
                    since = last = ts
                else:
                    last = max(last, ts)
            if since is None:
                if stored is not None:
                    changes.delete(key, name, version)
            elif stored is None or (since, last) != (stored["since_ms"], stored["last_ms"]):
                stretch = {
                    "since_ms": since,
                    "last_ms": last,
                    "interval_s": intervals[name],
                    "place_id": place,
                    "community_id": community,
                }
                changes.set(key, name, json.dumps(stretch), version)

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Nothing happens to crowding by time alone: a silent sensor is judged on the read side."""


def over_capacity(client: redis.Redis, keys: Keys) -> dict[str, dict[str, object]]:
    """Sensor -> its crowded stretch: since when and until which reading (ms), with the place and community."""
    stretches = {sensor.decode(): _stretch(raw) for sensor, raw in client.hgetall(keys.state("foot", OVER)).items()}
    return {sensor: stretch for sensor, stretch in stretches.items() if stretch is not None}


def _stretch(raw: bytes | None) -> dict | None:
    """A stored stretch, or None; one written by an older version (text, not JSON) is begun again."""
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None
