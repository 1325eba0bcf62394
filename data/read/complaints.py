"""Complaint reads: the open (or closed) complaints as table rows, and how many are open and overdue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from data.keepers.complaints import CLOSED, DUE, OPEN, QUEUE, decode_route
from engines.complaints import Router

if TYPE_CHECKING:
    from data.read.reader import CityReader


def complaint_table(
    reader: CityReader, now_ms: int, *, closed: bool = False, limit: int | None = None, start: int = 0
) -> list[dict]:
    """One row per complaint (open ones, or closed ones): triage, place, route and how long it waited.

    With ``limit``, only the most urgent open complaints (priority, then the oldest), from the
    ``start``-th on: a refresh then reads a bounded number of routes however many complaints are open.
    """
    client, keys = reader.client, reader.keys
    if limit is not None and not closed:
        ids = client.zrange(keys.state("complaints", QUEUE), start, start + limit - 1)
        values = [v for v in (client.hmget(keys.state("complaints", OPEN), ids) if ids else []) if v is not None]
    else:
        values = list(client.hgetall(keys.state("complaints", CLOSED if closed else OPEN)).values())
    router = Router()
    about = {}
    for value in values:
        route, record = decode_route(value)
        record.pop("updates", None)  # what the route was rebuilt from; the route shows it
        router.routes[route.complaint_id] = route
        about[route.complaint_id] = record
    if not router.routes:
        return []
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
