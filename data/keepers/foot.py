"""The foot-traffic keeper: since when each place has been over its safe capacity.

A crowding alarm needs a stretch of time, not one reading: the keeper records when a sensor's
place first read at or over the share of capacity, clears it when a reading comes back under,
and the read side raises the alert once the stretch is longer than the grace period.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import redis

from data.fold import Folded, Placement
from data.keepers import StateChanges, read_states
from data.keys import Keys
from data.schema import Decoded
from engines.foot import CrowdingRule

OVER = "foot:over_capacity"  # sensor -> "since_ms|place_id|community_id"


def crowding_rule(settings) -> CrowdingRule:
    """The crowding rule a deployment set."""
    return CrowdingRule(share=settings.crowding_share, grace_s=settings.crowding_grace_s)


class FootKeeper:
    """Keeps, per sensor, since when its place has been over capacity."""

    source = "foot"

    def __init__(self, settings, rule: CrowdingRule | None = None):
        self.rule = rule or crowding_rule(settings)

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
        for d, where in batch:
            c = d.columns
            measured = (c["occupancy"] >= 0) & (c["capacity"] > 0)
            if not measured.any():
                continue
            rows = np.flatnonzero(measured)
            over = (c["occupancy"][rows] >= self.rule.share * c["capacity"][rows]).tolist()
            communities = where.community.labels_of(where.community.codes[rows])
            for j, r in enumerate(rows.tolist()):
                sensor = c["sensor_id"][r].decode()
                readings.setdefault(sensor, []).append(
                    (int(c["ts"][r]), over[j], c["place_id"][r].decode(), communities[j])
                )
        if not readings:
            return
        key = keys.state(self.source, OVER)
        names = list(readings)
        states, versions = read_states(client, key, names)
        for name, state, version in zip(names, states, versions):
            run_start, unbroken = None, True  # the last over-capacity run in the batch, and whether it is all of it
            ordered = sorted(readings[name])
            _, _, place, community = ordered[-1]
            for ts, is_over, _, _ in ordered:
                if is_over:
                    run_start = ts if run_start is None else run_start
                else:
                    run_start, unbroken = None, False
            if run_start is None:
                if state is not None:
                    changes.delete(key, name, version)
            elif state is None or not unbroken:
                changes.set(key, name, f"{run_start}|{place}|{community}", version)

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Nothing happens to crowding by time alone: a silent sensor is judged on the read side."""


def over_capacity(client: redis.Redis, keys: Keys) -> dict[str, dict[str, object]]:
    """Sensor -> since when (ms) its place has been over capacity, with the place and community."""
    out = {}
    for sensor, raw in client.hgetall(keys.state("foot", OVER)).items():
        since, place, community = raw.decode().split("|", 2)
        out[sensor.decode()] = {"since_ms": int(since), "place_id": place, "community_id": community}
    return out
