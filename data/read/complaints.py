"""Complaint reads: the open (or closed) complaints as table rows, how many are open and overdue, and the
hotspots the workers publish."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from data.keepers.complaints import CLOSED, DUE, HOTSPOTS_FRESH_MS, OPEN, QUEUE, decode_route, hotspots_key
from data.read.windows import Window
from engines.complaints import Router, load_rules

if TYPE_CHECKING:
    from data.read.reader import CityReader


def complaint_table(
    reader: CityReader, now_ms: int, *, closed: bool = False, limit: int | None = None, start: int = 0
) -> list[dict]:
    """One row per complaint (open ones, or closed ones): triage, place, route, how long it waited and when
    it last changed (``updated_ms``).

    With ``limit``, only the most urgent open complaints (priority, then the oldest), from the
    ``start``-th on: a refresh then reads a bounded number of routes however many complaints are open.
    """
    client, keys = reader.client, reader.keys
    if limit is not None and not closed:
        ids = client.zrange(keys.state("complaints", QUEUE), start, start + limit - 1)
        values = [v for v in (client.hmget(keys.state("complaints", OPEN), ids) if ids else []) if v is not None]
    else:
        values = list(client.hgetall(keys.state("complaints", CLOSED if closed else OPEN)).values())
    return _rows(values, now_ms, reader.settings.rules)


def complaint_records(reader: CityReader, now_ms: int, ids: Sequence[str] | None = None) -> list[dict]:
    """Complaints open and closed alike, as ``complaint_table`` rows; only those of ``ids`` when given, in no
    set order."""
    client, keys = reader.client, reader.keys
    if ids is None:
        values = [*client.hvals(keys.state("complaints", OPEN)), *client.hvals(keys.state("complaints", CLOSED))]
    else:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []
        pipe = client.pipeline(transaction=False)
        pipe.hmget(keys.state("complaints", OPEN), wanted)
        pipe.hmget(keys.state("complaints", CLOSED), wanted)
        opened, closed = pipe.execute()
        values = [c if o is None else o for o, c in zip(opened, closed) if (o, c) != (None, None)]
    return _rows(values, now_ms, reader.settings.rules)


def _rows(values: Sequence[bytes], now_ms: int, rules: str) -> list[dict]:
    """Stored routes as table rows: the router's view of each, what triage said, and ``updated_ms``, the
    newest step of its route or of the updates it was rebuilt from."""
    router = Router(load_rules(rules).routing)
    about = {}
    for value in values:
        route, record = decode_route(value)
        steps = [s.entered_ms for s in route.stays] + [s.left_ms for s in route.stays if s.left_ms is not None]
        # What the route was rebuilt from: the route shows it, but its newest step is the last change.
        steps += [u["ts"] for u in record.pop("updates", None) or ()]
        router.routes[route.complaint_id] = route
        about[route.complaint_id] = {**record, "updated_ms": max(steps)}
    rows = router.rows(now_ms)
    for row in rows:
        row.update(about[row["complaint_id"]])
    return rows


def complaint_counts(reader: CityReader, now_ms: int) -> dict[str, int]:
    """How many complaints are open, and how many of them are past the deadline at their level."""
    pipe = reader.client.pipeline(transaction=False)
    pipe.zcard(reader.keys.state("complaints", QUEUE))
    pipe.zcount(reader.keys.state("complaints", DUE), "-inf", f"({now_ms}")
    open_, overdue = pipe.execute()
    return {"open": int(open_), "overdue": int(overdue)}


def published_hotspots(reader: CityReader, window: str) -> dict | None:
    """The Gi* hotspot cells the workers last published for one of the dashboards' windows (``WINDOWS``),
    or None before any did.

    ``window``: the :class:`Window` whose counts they were computed from; ``computed_ms``: the moment of
    those counts; ``fresh_ms``: how long after it they stand for now (older, a page says their age);
    ``cells``: one dict per hotspot cell with complaints of its own (``cell``, ``lon``, ``lat``, ``count``, ``z``).
    """
    raw = reader.client.get(hotspots_key(reader.keys, window))
    if raw is None:
        return None
    value = json.loads(raw)
    names = ("cell", "lon", "lat", "count", "z")
    return {
        "window": Window(value["start"], value["end"]),
        "computed_ms": value["computed_ms"],
        "fresh_ms": HOTSPOTS_FRESH_MS,
        "cells": [dict(zip(names, row)) for row in value["cells"]],
    }
