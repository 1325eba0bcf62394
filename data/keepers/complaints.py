"""The complaints keeper: triage every complaint as it arrives and route it up the hierarchy, and
publish where complaints cluster.

Each open complaint's route (level, department, deadline, path) and triage (category,
priority and its reason) live in one hash field; a sorted set of deadlines lets the worker's
tick escalate exactly the complaints whose deadline passed. Closed complaints move to a
second hash and are forgotten after the retention period. At its tick a worker also publishes
the Gi* hotspot cells of each window the dashboards offer, so no dashboard refresh runs the statistic.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import redis
from libpysal.weights import W

from data.fold import MISSING, OUTSIDE, Dimension, Folded, Placement, enumerated, labelled
from data.keepers import StateChanges, read_many_states, read_states
from data.keys import Keys
from data.locks import held
from data.read.windows import WINDOWS, Window, WindowCounts
from data.schema import COMPLAINT_CATEGORIES, Decoded
from engines.complaints import Route, Router, Stay, Taxonomy, load_rules, triage_text
from engines.hotspots import HotspotParams, cell_centre, cell_hotspots, ring_weights

OPEN, CLOSED, DEADLINES, CLOSED_AT = (
    "complaints:open",
    "complaints:closed",
    "complaints:deadlines",
    "complaints:closed_at",
)
WAITING = "complaints:waiting"  # updates that came before their complaint, kept until it arrives
QUEUE = "complaints:queue"  # open complaints, most urgent first: score = priority, then oldest first
DUE = "complaints:due"  # every open complaint's current deadline, to count the overdue ones
PRIORITY_WEIGHT = 10**13  # above any ms timestamp, so priority orders first
TEXT_KEPT = 280  # characters of a complaint's words kept with its route, for the table
PRIORITIES = ("P1", "P2", "P3", "P4")
TICK_LIMIT = 500  # complaints escalated per tick at most; the next tick takes the rest
HOTSPOTS = "complaints:hotspots"  # one JSON value per dashboard window: "complaints:hotspots:1h"
# draws: the permutations of the hotspots' pseudo p-value. 199 resolve p to 1/200, ample at alpha 0.05, and a
# window of the demo city's 3,000 cells then costs about 0.3 s of a worker's tick (999 would cost 1.5 s).
HOTSPOT_PERMUTATIONS = 199
HOTSPOTS_LOCK_MS = 30_000  # one worker computes a window's hotspots at a time; one that dies lets go after this
# Hotspots confirmed longer ago than this (three worker ticks) are shown with their age: workers stopped or behind.
HOTSPOTS_FRESH_MS = 15_000
# Replace a value only while it is still the one read: a worker that found the counts unchanged never puts
# back the hotspots of old counts over those another worker has just computed from new ones.
REPLACE_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0"
)


def hotspots_key(keys: Keys, window: str) -> str:
    """The key of the hotspots published for one of the dashboards' windows (``WINDOWS``)."""
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}; expected one of {', '.join(WINDOWS)}")
    return keys.state("complaints", f"{HOTSPOTS}:{window}")


@functools.lru_cache(maxsize=20_000)
def triaged(text: str, intake: str | None, taxonomy: Taxonomy) -> tuple[str, int, str, str]:
    """Triage words once: hotline scripts and app templates repeat, and triage reads every keyword list."""
    t = triage_text(text, intake, taxonomy)
    return t.category, t.priority, t.reason, ", ".join(t.keywords)


def encode_route(route: Route, about: dict) -> str:
    """Serialise a route and what triage said about the complaint."""
    # vars(), not dataclasses.asdict: asdict deep-copies field by field and costs more than the rest of a batch.
    plain = {**vars(route), "stays": [vars(s) for s in route.stays]}
    return orjson.dumps({"route": plain, **about}).decode()


def decode_route(raw: bytes | str) -> tuple[Route, dict]:
    """Rebuild a route (and the rest of the record) from its stored form."""
    record = orjson.loads(raw)
    r = record.pop("route")
    route = Route(**{**r, "stays": [Stay(**s) for s in r["stays"]]})
    return route, record


def _update_order(update: dict) -> tuple:
    """Updates in event-time order, ties broken by what they say: the same order however they came."""
    return update["ts"], update["action"], update["level"] or "", update["department"] or ""


def _updates(d: Decoded) -> list[dict]:
    """A batch's complaint updates as the router applies them."""
    c = d.columns
    ids = d.texts("complaint_id")
    actions = d.type.fields[[f.name for f in d.type.fields].index("action")].choices
    levels = d.type.fields[[f.name for f in d.type.fields].index("level")].choices
    departments = d.texts("department")
    times, action_codes, level_codes = c["ts"].tolist(), c["action"].tolist(), c["level"].tolist()
    return [
        {
            "complaint_id": ids[j],
            "ts": times[j],
            "action": actions[action_codes[j]],
            "level": levels[level_codes[j]] if level_codes[j] >= 0 else None,
            "department": departments[j],
        }
        for j in range(len(ids))
    ]


def _deadline_stays(route: Route | None) -> set[tuple[str, int]]:
    """(level, when) of each escalation a passed deadline made on a route."""
    return set() if route is None else {(s.level, s.entered_ms) for s in route.stays if s.how == "deadline"}


@dataclass
class _Complaint:
    """One complaint as a batch sees it: where its route starts, what triage said, its updates so far."""

    route: Route  # its route as stored (or as opened by this batch): the opening it is rebuilt from
    about: dict
    updates: list[dict] | None  # every update applied so far (None: a route stored without them)
    was: Route | None  # its route as stored, None when this batch opens it
    closed: bool = False  # stored among the closed complaints
    moved: bool = False  # this batch brought it something
    new: list[dict] = field(default_factory=list)  # the updates this batch brings it


@dataclass(frozen=True)
class _StateKeys:
    """The names of this keeper's keys under one prefix, spelled once rather than per complaint."""

    open: str
    closed: str
    deadlines: str
    closed_at: str
    waiting: str
    queue: str
    due: str

    @classmethod
    @functools.lru_cache(maxsize=64)
    def of(cls, keys: Keys) -> _StateKeys:
        return cls(
            *(keys.state("complaints", name) for name in (OPEN, CLOSED, DEADLINES, CLOSED_AT, WAITING, QUEUE, DUE))
        )


class ComplaintKeeper:
    """Keeps each complaint's triage and route; escalates on deadlines."""

    source = "complaints"

    def __init__(self, settings, cells: Sequence[str] = ()):
        """``cells``: the city's H3 cells (``engines.hotspots.city_cells``), the map hotspots are sought on;
        none, and no hotspots are published."""
        self.retention_s = int(settings.retention_hours * 3600)
        self.bucket_s = settings.bucket_seconds
        self.settings = settings
        self.rules = load_rules(settings.rules)
        self.cells = list(cells)
        self.hotspot_params = HotspotParams(resolution=settings.h3_resolution, permutations=HOTSPOT_PERMUTATIONS)
        self._weights: W | None = None  # the cells' ring weights, built at the first computation
        self._counts: WindowCounts | None = None  # windows of counts kept summed, as a dashboard's reader does
        self._now_s = 0.0

    def keep(
        self,
        client: redis.Redis,
        keys: Keys,
        batch: Sequence[tuple[Decoded, Placement]],
        folded: Folded,
        changes: StateChanges,
        now_ms: int,
    ) -> None:
        """Open routes for new complaints and move routes on updates, the same whatever the batching.

        A complaint's route is rebuilt from its opening and every update it has had, in event-time
        order, each time a batch brings it something: so updates applied in whichever order batches
        commit (two workers, a claim after a crash) leave the same route, and an update that came
        with its complaint, before it or after it was closed applies all the same. An update whose
        complaint has not come yet is parked and applied when it does. A complaint's route (open or
        closed) and its parked updates are read with their versions and checked at commit, so two
        batches touching one complaint on two workers never both pass.
        """
        names = _StateKeys.of(keys)
        complaints = [(d, where) for d, where in batch if d.type.name == "complaint"]
        updates = [d for d, _ in batch if d.type.name == "complaint_update"]
        wanted = sorted({i for d, _ in complaints for i in d.texts("complaint_id")} | {
            i for d in updates for i in d.texts("complaint_id")
        })  # fmt: skip
        read = read_many_states(client, [(names.open, wanted), (names.closed, wanted), (names.waiting, wanted)])
        (opened, open_versions), (closed, closed_versions), (parked, parked_versions) = read
        known: dict[str, _Complaint] = {}
        for j, complaint_id in enumerate(wanted):
            raw = opened[j] if opened[j] is not None else closed[j]
            if raw is not None:
                route, about = decode_route(raw)
                history = about.pop("updates", None)
                known[complaint_id] = _Complaint(route, about, history, route, closed=opened[j] is None)
        versions = {i: (o, c, w) for i, o, c, w in zip(wanted, open_versions, closed_versions, parked_versions)}
        parked_of = dict(zip(wanted, parked))
        for d, where in complaints:
            self._open(d, where, known, parked_of, versions, folded, changes, names)
        waiting: dict[str, list[dict]] = {}
        for d in updates:
            for update in _updates(d):
                complaint = known.get(update["complaint_id"])
                if complaint is None:
                    waiting.setdefault(update["complaint_id"], []).append(update)
                else:
                    complaint.new.append(update)
                    complaint.moved = True
        placed: list[tuple[int, str]] = []
        for complaint_id, complaint in sorted(known.items()):
            if complaint.moved:
                # Each update counted once, where its complaint is: when both have come, whichever came first.
                fresh = complaint.new + ((complaint.updates or []) if complaint.was is None else [])
                community = complaint.about.get("community_id", OUTSIDE)
                placed += [(u["ts"], f"{community}|{u['action']}|{u['level'] or MISSING}") for u in fresh]
                route = self._rebuild(complaint, folded)
                about = (
                    complaint.about if complaint.updates is None else {**complaint.about, "updates": complaint.updates}
                )
                self._store(names, route, about, versions[complaint_id], complaint.closed, changes)
        if placed:
            ts = np.array([t for t, _ in placed], dtype=np.int64)
            buckets = (ts // (self.bucket_s * 1000)) * self.bucket_s
            folded.add("complaints.community_action_level", buckets, labelled([key for _, key in placed]))
        if waiting:
            # An update for a complaint not seen yet (it may come later, or from another system): kept, not lost.
            for complaint_id, later in waiting.items():
                kept = json.loads(parked_of[complaint_id]) if parked_of[complaint_id] is not None else []
                # In event-time order, whichever batch brought each: the same updates read the same.
                updates = sorted(kept + later, key=_update_order)
                changes.set(names.waiting, complaint_id, orjson.dumps(updates).decode(), versions[complaint_id][2])
                # Parked on the word that the complaint is not there: a batch opening it meanwhile makes one redo.
                changes.expect.setdefault(names.open, {})[complaint_id] = versions[complaint_id][0]
                changes.expect.setdefault(names.closed, {})[complaint_id] = versions[complaint_id][1]
            changes.expire_at[names.waiting] = now_ms // 1000 + self.retention_s
        changes.expire_at.setdefault(names.open, 0)

    def _open(
        self,
        d: Decoded,
        where: Placement,
        known: dict[str, _Complaint],
        parked_of: dict[str, bytes | None],
        versions: dict[str, tuple[int, int, int]],
        folded: Folded,
        changes: StateChanges,
        names: _StateKeys,
    ) -> None:
        c = d.columns
        ids = d.texts("complaint_id")
        texts = c["text"]
        intake = [COMPLAINT_CATEGORIES[i] if i >= 0 else None for i in c["category"].tolist()]
        communities = where.community.labels_of(where.community.codes)
        districts = where.district.labels_of(where.district.codes)
        times, lons, lats = c["ts"].tolist(), c["lon"].tolist(), c["lat"].tolist()
        priorities, categories = [], []
        for j in np.argsort(c["ts"], kind="stable").tolist():
            complaint_id = ids[j]
            category, priority, reason, keywords = triaged(texts[j] or "", intake[j], self.rules.taxonomy)
            priorities.append((j, priority - 1))
            categories.append((j, COMPLAINT_CATEGORIES.index(category)))
            if complaint_id in known:
                continue  # reported again under the same number: the route already exists
            route = Route(complaint_id, category, priority, times[j])
            about = {
                "reason": reason,
                "keywords": keywords,
                "text": (texts[j] or "")[:TEXT_KEPT],
                "intake_category": intake[j],
                "lon": round(lons[j], 6),
                "lat": round(lats[j], 6),
                "community_id": communities[j],
                "district_id": districts[j],
            }
            # What an Open311 client gave besides its words and point, shown back by its API.
            about.update({k: c[k][j] for k in ("address", "media_url") if c[k][j]})
            raw = parked_of[complaint_id]
            if raw is not None:
                changes.delete(names.waiting, complaint_id, versions[complaint_id][2])
            else:
                # Opened on the word that nothing is parked for it: a batch parking an update meanwhile makes one redo.
                changes.expect.setdefault(names.waiting, {})[complaint_id] = versions[complaint_id][2]
            known[complaint_id] = _Complaint(route, about, json.loads(raw) if raw is not None else [], None, moved=True)
        codes = np.array([p for _, p in sorted(priorities)], dtype=np.int64)
        buckets = (c["ts"] // (self.bucket_s * 1000)) * self.bucket_s
        priority = Dimension(codes, len(PRIORITIES), np.array(PRIORITIES, dtype=object))
        folded.add("complaints.priority", buckets, priority)
        folded.add("complaints.community_priority", buckets, where.community.cross(priority))
        # The category as triaged, the one the complaint is routed and listed under: what pages count.
        category = enumerated(np.array([k for _, k in sorted(categories)], dtype=np.int64), COMPLAINT_CATEGORIES)
        folded.add("complaints.community_triaged", buckets, where.community.cross(category))

    def _rebuild(self, complaint: _Complaint, folded: Folded) -> Route:
        """A complaint's route from its opening and all its updates in event-time order, with the
        deadlines that passed between them; counts the deadline escalations this adds or takes away."""
        base = complaint.route
        before = _deadline_stays(complaint.was)
        router = Router(self.rules.routing)
        if complaint.updates is None:
            # A route stored without its updates (by an older worker) can only be moved on from where it is.
            router.routes[base.complaint_id] = route = base
            updates = sorted(complaint.new, key=_update_order)
        else:
            route = router.open(base.complaint_id, base.category, base.priority, base.opened_ms)
            complaint.updates = updates = sorted(complaint.updates + complaint.new, key=_update_order)
        for update in updates:
            router.tick(update["ts"])  # a deadline that passed before an update moved it first
            router.apply(update)
        if before:
            router.tick(max(at for _, at in before))  # the escalations the worker's tick had made by then
        after = _deadline_stays(route)
        moves = [(at, level, 1) for level, at in after - before] + [(at, level, -1) for level, at in before - after]
        if moves:
            ts = np.array([at for at, _, _ in moves], dtype=np.int64)
            levels = router.rules.levels
            level = enumerated(np.array([levels.index(lv) for _, lv, _ in moves], dtype=np.int64), levels)
            buckets = (ts // (self.bucket_s * 1000)) * self.bucket_s
            folded.add("escalations.level", buckets, level, np.array([n for _, _, n in moves], dtype=np.float64))
        return route

    def _store(
        self,
        names: _StateKeys,
        route: Route,
        about: dict,
        versions: tuple[int, int, int],
        was_closed: bool,
        changes: StateChanges,
    ) -> None:
        open_key, deadlines, queue, due = names.open, names.deadlines, names.queue, names.due
        open_version, closed_version = versions[0], versions[1]
        if route.status == "closed":
            changes.remove(queue, route.complaint_id)
            changes.remove(due, route.complaint_id)
            changes.delete(open_key, route.complaint_id, open_version)
            changes.set(names.closed, route.complaint_id, encode_route(route, about), closed_version)
            changes.remove(deadlines, route.complaint_id)
            changes.add(names.closed_at, route.stay.left_ms or route.stay.entered_ms, route.complaint_id)
            return
        changes.set(open_key, route.complaint_id, encode_route(route, about), open_version)
        if was_closed:  # reopened
            changes.delete(names.closed, route.complaint_id, closed_version)
            changes.remove(names.closed_at, route.complaint_id)
        changes.add(queue, route.priority * PRIORITY_WEIGHT + route.opened_ms, route.complaint_id)
        if route.status == "open":
            changes.add(due, route.stay.deadline_ms, route.complaint_id)
        else:
            changes.remove(due, route.complaint_id)
        if route.status == "open" and route.stay.level != "department":
            changes.add(deadlines, route.stay.deadline_ms, route.complaint_id)
        else:
            changes.remove(deadlines, route.complaint_id)

    def tick(self, client: redis.Redis, keys: Keys, folded: Folded, changes: StateChanges, now_ms: int) -> None:
        """Escalate complaints whose deadline passed; forget closed ones past the retention."""
        deadlines = keys.state(self.source, DEADLINES)
        due = [x.decode() for x in client.zrangebyscore(deadlines, "-inf", now_ms, start=0, num=TICK_LIMIT)]
        if due:
            open_key = keys.state(self.source, OPEN)
            states, versions = read_states(client, open_key, due)
            router = Router(self.rules.routing)
            records, version_of = {}, {}
            for complaint_id, raw, version in zip(due, states, versions):
                if raw is None:
                    changes.remove(deadlines, complaint_id)  # closed meanwhile
                    continue
                route, about = decode_route(raw)
                router.routes[complaint_id] = route
                records[complaint_id] = about
                version_of[complaint_id] = version
            made = router.tick(now_ms)
            names = _StateKeys.of(keys)
            for complaint_id in records:
                route = router.routes[complaint_id]
                self._store(names, route, records[complaint_id], (version_of[complaint_id], 0, 0), False, changes)
            if len(made):
                ts = made["ts"].to_numpy(dtype=np.int64)
                buckets = (ts // (self.bucket_s * 1000)) * self.bucket_s
                level = enumerated(
                    np.array([list(router.rules.levels).index(v) for v in made["level"]], dtype=np.int64),
                    router.rules.levels,
                )
                folded.add("escalations.level", buckets, level)
        closed_at = keys.state(self.source, CLOSED_AT)
        old = [
            x.decode()
            for x in client.zrangebyscore(closed_at, "-inf", now_ms - self.retention_s * 1000, start=0, num=TICK_LIMIT)
        ]
        if old:
            changes.drop.setdefault(keys.state(self.source, CLOSED), []).extend(old)
            for complaint_id in old:
                changes.remove(closed_at, complaint_id)

    # ------------------------------------------------------------------ hotspots the dashboards read

    def publish(self, client: redis.Redis, keys: Keys, now_ms: int) -> bool:
        """Publish the hotspots of each window the dashboards offer; True if any was computed afresh."""
        if not self.cells:
            return False
        computed = [self.publish_hotspots(client, keys, name, now_ms) for name in WINDOWS]
        return any(computed)

    def publish_hotspots(self, client: redis.Redis, keys: Keys, window_name: str, now_ms: int) -> bool:
        """Publish the Gi* hotspot cells of one window at ``now_ms``; True if the statistic ran.

        The window is the one a page asks at that moment (whole buckets ending with now's). Each value
        holds the window's bounds, the moment of the counts it answers (``computed_ms``), a digest of those
        counts and the hot cells. When the counts are those the value was computed from, only the window
        and the moment move (a minute passing with nothing leaving or joining, a quiet night): the cells
        are the same, the statistic being seeded. Else one worker computes it (with a lock) and others
        leave it: a value is never replaced by one of an earlier window (a worker whose clock lags).
        So the value left by a tick is the same whichever worker wrote it, and however many there are.
        """
        key = hotspots_key(keys, window_name)
        window = Window.last(WINDOWS[window_name], now_ms / 1000, self.bucket_s)
        counts = self._window_counts(client, now_ms).counts("complaints", "complaints.h3", window)
        in_city = {c: n for c, n in counts.items() if n > 0 and c in self._cell_set}
        inputs = self._inputs(in_city)
        raw = client.get(key)
        stored = json.loads(raw) if raw is not None else None
        if stored is not None and stored["end"] > window.end:
            return False
        if stored is not None and stored["inputs"] == inputs:
            if (stored["start"], stored["end"], stored["computed_ms"]) != (window.start, window.end, now_ms):
                moved = {**stored, "start": window.start, "end": window.end, "computed_ms": now_ms}
                client.register_script(REPLACE_SCRIPT)(keys=[key], args=[raw, _encode(moved)])
            return False
        with held(client, f"{key}:lock", HOTSPOTS_LOCK_MS) as taken:
            if not taken:
                return False
            value = {
                "window": window_name,
                "start": window.start,
                "end": window.end,
                "computed_ms": now_ms,
                "inputs": inputs,
                "cells": self.hot_cells(in_city),
            }
            client.set(key, _encode(value))
        return True

    def hot_cells(self, counts: dict[str, int]) -> list[list]:
        """[cell, lon, lat, count, z] of each hotspot cell that has complaints of its own, by cell id.

        A cell with none is only near a cluster: the map marks where complaints are.
        """
        if self._weights is None:
            self._weights = ring_weights(self.cells, self.hotspot_params.ring)
        series = pd.Series(counts, dtype=np.float64)
        result = cell_hotspots(series, self.cells, self.hotspot_params, self._weights)
        hot = result[result["hotspot"] & (result["count"] > 0)]
        return [
            [row.cell, *cell_centre(row.cell), int(row.count), round(float(row.gi_z), 2)]
            for row in hot.itertuples(index=False)
        ]

    @functools.cached_property
    def _cell_set(self) -> frozenset[str]:
        return frozenset(self.cells)

    def _inputs(self, counts: dict[str, int]) -> str:
        """A digest of what a window's hotspots are computed from: the rule's parameters and the counts."""
        raw = orjson.dumps([repr(self.hotspot_params), sorted(counts.items())])
        return hashlib.blake2b(raw, digest_size=12).hexdigest()

    def _window_counts(self, client: redis.Redis, now_ms: int) -> WindowCounts:
        """Sums over windows, kept running from tick to tick (a tick reads the minutes that moved)."""
        self._now_s = now_ms / 1000
        if self._counts is None or self._counts.client is not client:
            self._counts = WindowCounts(client, self.settings, clock=lambda: self._now_s)
        return self._counts


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))
