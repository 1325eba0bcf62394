"""The foot-traffic keeper: since when each place has been over its safe capacity.

A crowding alarm needs a stretch of time, not one reading: the keeper records when a sensor's
place first read at or over the share of capacity, clears it when a reading comes back under,
and the read side raises the alert once the stretch is longer than the grace period.

The stretch is judged by event time, not by the order batches commit in: per sensor the keeper
keeps its newest reading, its newest reading under capacity and the times of the readings over
capacity since then (the first, and those recent enough for a late reading under capacity to fall
between them). The stretch starts at the first reading over capacity after the last one under it,
and lasts while the newest reading is over: however the readings are batched and whichever worker
commits first, the same readings give the same stretch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import redis

from data.fold import Folded, Placement
from data.keepers import StateChanges, read_many_states
from data.keys import Keys
from data.schema import Decoded
from engines.foot import CrowdingRule

OVER = "foot:over_capacity"  # sensor -> "since_ms|place_id|community_id"
READINGS = "foot:capacity_readings"  # sensor -> what the stretch is judged from (see the module's words)
RECENT_MS = 3 * 3_600_000  # readings over capacity kept beyond the first: more than any accepted lateness


def crowding_rule(settings) -> CrowdingRule:
    """The crowding rule a deployment set."""
    return CrowdingRule(share=settings.crowding_share, grace_s=settings.crowding_grace_s)


class FootKeeper:
    """Keeps, per sensor, since when its place has been over capacity."""

    source = "foot"

    def __init__(self, settings, rule: CrowdingRule | None = None):
        self.rule = rule or crowding_rule(settings)
        self.retention_s = int(settings.retention_hours * 3600)

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
        key, kept_key = keys.state(self.source, OVER), keys.state(self.source, READINGS)
        names = sorted(readings)
        (states, versions), (kept, kept_versions) = read_many_states(client, [(key, names), (kept_key, names)])
        for j, name in enumerate(names):
            known = json.loads(kept[j]) if kept[j] is not None else {"newest": -1, "under": -1, "over": []}
            over = set(known["over"])
            for ts, is_over, place, community in readings[name]:
                if ts > known["newest"]:
                    known.update(newest=ts, place=place, community=community)
                if is_over:
                    over.add(ts)
                else:
                    known["under"] = max(known["under"], ts)
            ordered = sorted(t for t in over if t > known["under"])
            known["over"] = ordered[:1] + [t for t in ordered[1:] if t >= known["newest"] - RECENT_MS]
            changes.set(kept_key, name, json.dumps(known, separators=(",", ":"), sort_keys=True), kept_versions[j])
            if ordered:
                stretch = f"{ordered[0]}|{known['place']}|{known['community']}"
                if states[j] is None or states[j].decode() != stretch:
                    changes.set(key, name, stretch, versions[j])
            elif states[j] is not None:
                changes.delete(key, name, versions[j])
        changes.expire_at[kept_key] = now_ms // 1000 + self.retention_s

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Nothing happens to crowding by time alone: a silent sensor is judged on the read side."""


def over_capacity(client: redis.Redis, keys: Keys) -> dict[str, dict[str, object]]:
    """Sensor -> since when (ms) its place has been over capacity, with the place and community."""
    out = {}
    for sensor, raw in client.hgetall(keys.state("foot", OVER)).items():
        since, place, community = raw.decode().split("|", 2)
        out[sensor.decode()] = {"since_ms": int(since), "place_id": place, "community_id": community}
    return out
