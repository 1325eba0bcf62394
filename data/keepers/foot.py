"""The foot-traffic keeper: since when each place has been crowded, reading after reading.

A crowding alarm needs a stretch of time, not one reading: the keeper records when a sensor's
place first read crowded and its latest crowded reading; a reading under the share of capacity
ends the stretch, and so does a gap in the readings (no data is not evidence of crowding). The
read side raises the alert once a stretch still going is longer than the grace period.

The stretch is judged by event time, not by the order batches commit in: per sensor the keeper
keeps its newest reading, its newest reading under capacity and the times of the crowded readings
since then that a reading still to come could fall between, with the start of the run of crowded
readings that leads into the oldest of those. A reading can still come for any time from the source's
closed horizon on (a backfill or a racing worker may bring readings days older than the newest), so
only readings behind both that horizon and the last few hours are folded into where their run began.
However the readings are batched and whichever worker commits first, the same readings give the same
stretch.
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

OVER = "foot:over_capacity"  # sensor -> JSON {since_ms, last_ms, interval_s, place_id, community_id}
READINGS = "foot:capacity_readings"  # sensor -> JSON of what the stretch is judged from (see the module's words)
RECENT_MS = 3 * 3_600_000  # crowded readings kept one by one at least this far behind the newest


def run_start(over: list[int], gap_ms: float) -> int:
    """Index of the first reading of the last run of crowded readings no further apart than the gap."""
    s = len(over) - 1
    while s > 0 and over[s] - over[s - 1] <= gap_ms:
        s -= 1
    return s


class FootKeeper:
    """Keeps, per sensor, since when its place has been crowded."""

    source = "foot"

    def __init__(self, settings, rule: CrowdingRule | None = None):
        self.rule = rule or CrowdingRule.of(settings)
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
        """Start, carry on or end each sensor's crowded stretch from its readings in the batch."""
        readings: dict[str, list[tuple[int, bool, str, str, int]]] = {}
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
                    (int(c["ts"][r]), over[j], c["place_id"][r].decode(), communities[j], int(c["interval_s"][r]))
                )
        if not readings:
            return
        key, kept_key = keys.state(self.source, OVER), keys.state(self.source, READINGS)
        names = sorted(readings)
        (states, versions), (kept, kept_versions) = read_many_states(client, [(key, names), (kept_key, names)])
        # Events before the closed horizon are refused as late, so readings behind it are final. It only
        # moves on: read before the commit, it is at worst behind the one the commit is checked against.
        closed_ms = int(client.hget(keys.meta(self.source), "closed_ms") or 0)
        for j, name in enumerate(names):
            known = json.loads(kept[j]) if kept[j] is not None else {"newest": -1, "under": -1, "over": []}
            crowded = set(known["over"])
            for ts, is_over, place, community, interval_s in readings[name]:
                if ts > known["newest"]:
                    known.update(newest=ts, place=place, community=community, interval_s=interval_s)
                if is_over:
                    crowded.add(ts)
                else:
                    known["under"] = max(known["under"], ts)
            gap_ms = self.rule.gap_s(known["interval_s"]) * 1000
            ordered = sorted(t for t in crowded if t > known["under"])
            anchor = known.get("anchor")
            if not ordered or (anchor is not None and anchor <= known["under"]):
                anchor = None
            self._remember(known, ordered, anchor, gap_ms, min(known["newest"] - RECENT_MS, closed_ms))
            changes.set(kept_key, name, json.dumps(known, separators=(",", ":"), sort_keys=True), kept_versions[j])
            stored = decode_stretch(states[j])
            if not ordered:
                if states[j] is not None:
                    changes.delete(key, name, versions[j])
                continue
            s = run_start(ordered, gap_ms)
            stretch = {
                "since_ms": anchor if s == 0 and anchor is not None else ordered[s],
                "last_ms": ordered[-1],
                "interval_s": known["interval_s"],
                "place_id": known["place"],
                "community_id": known["community"],
            }
            if stored != stretch:
                changes.set(key, name, json.dumps(stretch, sort_keys=True), versions[j])
        changes.expire_at[kept_key] = now_ms // 1000 + self.retention_s

    @staticmethod
    def _remember(known: dict, ordered: list[int], anchor: int | None, gap_ms: float, final_ms: int) -> None:
        """Keep the crowded readings from ``final_ms`` on (before it no reading can come any more), and
        where the run leading into the oldest kept one began."""
        first_kept = next((k for k, t in enumerate(ordered) if t >= final_ms), len(ordered))
        if 0 < first_kept < len(ordered):
            # Readings this old cannot be joined by a late one any more: only where their run began matters.
            head = ordered[: first_kept + 1]
            s = run_start(head, gap_ms)
            anchor = (anchor if anchor is not None else head[0]) if s == 0 else head[s] if s < first_kept else None
        known["over"] = ordered[first_kept:] if first_kept < len(ordered) else ordered[-1:]
        known["anchor"] = anchor

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Nothing happens to crowding by time alone: a silent sensor is judged on the read side."""


def decode_stretch(raw: bytes | None) -> dict | None:
    """A stored stretch, or None; one written by an older version (text, not JSON) is begun again."""
    try:
        stretch = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return stretch if isinstance(stretch, dict) else None
