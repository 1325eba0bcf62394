"""The complaints keeper: triage every complaint as it arrives and route it up the hierarchy.

Each open complaint's route (level, department, deadline, path) and triage (category,
priority and its reason) live in one hash field; a sorted set of deadlines lets the worker's
tick escalate exactly the complaints whose deadline passed. Closed complaints move to a
second hash and are forgotten after the retention period.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import redis

from data.fold import Dimension, Folded, Placement, enumerated
from data.keepers import StateChanges, read_many_states, read_states
from data.keys import Keys
from data.schema import COMPLAINT_CATEGORIES, Decoded
from engines.complaints import Route, Router, Stay, triage_text

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


@functools.lru_cache(maxsize=20_000)
def triaged(text: str, intake: str | None) -> tuple[str, int, str, str]:
    """Triage words once: hotline scripts and app templates repeat, and triage reads every keyword list."""
    t = triage_text(text, intake)
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

    def __init__(self, settings):
        self.retention_s = int(settings.retention_hours * 3600)
        self.bucket_s = settings.bucket_seconds

    def keep(
        self,
        client: redis.Redis,
        keys: Keys,
        batch: Sequence[tuple[Decoded, Placement]],
        folded: Folded,
        changes: StateChanges,
        now_ms: int,
    ) -> None:
        """Open routes for new complaints, then move routes on updates, whatever batch each came in.

        A batch's complaints are opened before its updates are applied, so an update that came with
        its complaint (before or after it in the stream) moves it at once; an update whose complaint
        has not come yet is parked and applied when it does. Each complaint's route and its parked
        updates are read with their versions and both versions are checked at commit, so a batch
        opening a complaint and another parking its update on a second worker never both pass.
        """
        names = _StateKeys.of(keys)
        complaints = [(d, where) for d, where in batch if d.type.name == "complaint"]
        updates = [d for d, _ in batch if d.type.name == "complaint_update"]
        wanted = sorted({i for d, _ in complaints for i in d.texts("complaint_id")} | {
            i for d in updates for i in d.texts("complaint_id")
        })  # fmt: skip
        (states, versions), (parked, parked_versions) = read_many_states(
            client, [(names.open, wanted), (names.waiting, wanted)]
        )
        version_of = dict(zip(wanted, versions))
        parked_of = {i: (raw, v) for i, raw, v in zip(wanted, parked, parked_versions)}
        router = Router()
        records: dict[str, dict] = {}
        for complaint_id, raw in zip(wanted, states):
            if raw is not None:
                route, about = decode_route(raw)
                router.routes[complaint_id] = route
                records[complaint_id] = about
        moved: set[str] = set()
        for d, where in complaints:
            self._open(d, where, router, records, parked_of, moved, folded, changes, names)
        waiting: dict[str, list[dict]] = {}
        for d in updates:
            self._update(d, router, moved, waiting)
        for complaint_id in sorted(moved):
            self._store(names, router.routes[complaint_id], records[complaint_id], version_of[complaint_id], changes)
        if waiting:
            # An update for a complaint not seen yet (it may come later, or from another system): kept, not lost.
            for complaint_id, later in waiting.items():
                raw, version = parked_of[complaint_id]
                kept = json.loads(raw) if raw is not None else []
                # In event-time order, whichever batch brought each: the same updates read the same.
                updates = sorted(kept + later, key=_update_order)
                changes.set(names.waiting, complaint_id, orjson.dumps(updates).decode(), version)
                # Parked on the word that the complaint is not open: a batch opening it meanwhile makes one redo.
                changes.expect.setdefault(names.open, {})[complaint_id] = version_of[complaint_id]
            changes.expire_at[names.waiting] = now_ms // 1000 + self.retention_s
        changes.expire_at.setdefault(names.open, 0)

    def _open(
        self,
        d: Decoded,
        where: Placement,
        router: Router,
        records: dict[str, dict],
        parked_of: dict[str, tuple[bytes | None, int]],
        moved: set[str],
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
        priorities = []
        for j, complaint_id in enumerate(ids):
            category, priority, reason, keywords = triaged(texts[j] or "", intake[j])
            priorities.append(priority - 1)
            if complaint_id in router.routes:
                continue  # reported again under the same number: the route already exists
            router.open(complaint_id, category, priority, times[j])
            raw, version = parked_of[complaint_id]
            if raw is not None:
                for update in sorted(json.loads(raw), key=lambda u: u["ts"]):
                    router.apply(update)
                changes.delete(names.waiting, complaint_id, version)
            else:
                # Opened on the word that nothing is parked for it: a batch parking an update meanwhile makes one redo.
                changes.expect.setdefault(names.waiting, {})[complaint_id] = version
            records[complaint_id] = {
                "reason": reason,
                "keywords": keywords,
                "text": (texts[j] or "")[:TEXT_KEPT],
                "intake_category": intake[j],
                "lon": round(lons[j], 6),
                "lat": round(lats[j], 6),
                "community_id": communities[j],
                "district_id": districts[j],
            }
            moved.add(complaint_id)
        buckets = (c["ts"] // (self.bucket_s * 1000)) * self.bucket_s
        priority = Dimension(np.array(priorities, dtype=np.int64), len(PRIORITIES), np.array(PRIORITIES, dtype=object))
        folded.add("complaints.priority", buckets, priority)
        folded.add("complaints.community_priority", buckets, where.community.cross(priority))

    @staticmethod
    def _update(d: Decoded, router: Router, moved: set[str], waiting: dict[str, list[dict]]) -> None:
        """Apply a batch's updates in event-time order to the routes known; collect the others."""
        c = d.columns
        ids = d.texts("complaint_id")
        actions = d.type.fields[[f.name for f in d.type.fields].index("action")].choices
        levels = d.type.fields[[f.name for f in d.type.fields].index("level")].choices
        departments = d.texts("department")
        times, action_codes, level_codes = c["ts"].tolist(), c["action"].tolist(), c["level"].tolist()
        for j in np.argsort(c["ts"], kind="stable").tolist():
            update = {
                "complaint_id": ids[j],
                "ts": times[j],
                "action": actions[action_codes[j]],
                "level": levels[level_codes[j]] if level_codes[j] >= 0 else None,
                "department": departments[j],
            }
            if router.apply(update):
                moved.add(ids[j])
            else:
                waiting.setdefault(ids[j], []).append(update)

    def _store(self, names: _StateKeys, route: Route, about: dict, version: int, changes: StateChanges) -> None:
        open_key, deadlines, queue, due = names.open, names.deadlines, names.queue, names.due
        if route.status == "closed":
            changes.remove(queue, route.complaint_id)
            changes.remove(due, route.complaint_id)
            changes.delete(open_key, route.complaint_id, version)
            changes.put.setdefault(names.closed, {})[route.complaint_id] = encode_route(route, about)
            changes.remove(deadlines, route.complaint_id)
            changes.add(names.closed_at, route.stay.left_ms or route.stay.entered_ms, route.complaint_id)
            return
        changes.set(open_key, route.complaint_id, encode_route(route, about), version)
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
            router = Router()
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
                self._store(
                    names, router.routes[complaint_id], records[complaint_id], version_of[complaint_id], changes
                )
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


def complaint_table(
    client: redis.Redis, keys: Keys, now_ms: int, *, closed: bool = False, limit: int | None = None, start: int = 0
) -> list[dict]:
    """One row per complaint (open ones, or closed ones): triage, place, route and how long it waited.

    With ``limit``, only the most urgent open complaints (priority, then the oldest), from the
    ``start``-th on: a refresh then reads a bounded number of routes however many complaints are open.
    """
    if limit is not None and not closed:
        ids = client.zrange(keys.state("complaints", QUEUE), start, start + limit - 1)
        values = [v for v in (client.hmget(keys.state("complaints", OPEN), ids) if ids else []) if v is not None]
    else:
        values = list(client.hgetall(keys.state("complaints", CLOSED if closed else OPEN)).values())
    router = Router()
    about = {}
    for value in values:
        route, record = decode_route(value)
        router.routes[route.complaint_id] = route
        about[route.complaint_id] = record
    if not router.routes:
        return []
    rows = router.rows(now_ms)
    for row in rows:
        row.update(about[row["complaint_id"]])
    return rows


def complaint_counts(client: redis.Redis, keys: Keys, now_ms: int) -> dict[str, int]:
    """How many complaints are open, and how many of them are past the deadline at their level."""
    pipe = client.pipeline(transaction=False)
    pipe.zcard(keys.state("complaints", QUEUE))
    pipe.zcount(keys.state("complaints", DUE), "-inf", f"({now_ms}")
    open_, overdue = pipe.execute()
    return {"open": int(open_), "overdue": int(overdue)}
