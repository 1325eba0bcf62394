"""Case-tracing reads: the tracing picture the workers publish, and the active health codes per community."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd

from data.keepers.cases import ACTIVE, COLOURS, PICTURE, SOURCE, clusters, exposure_sites, precise_visits
from data.read.windows import by_first
from engines.tracing import DAY_MS, TracingParams

if TYPE_CHECKING:
    from data.read.reader import CityReader


def case_picture(reader: CityReader, now_ms: int) -> dict | None:
    """The tracing picture as the workers last built it (under the deployment's tracing rules), or None
    before any did.

    ``built_ms``; ``sites``: one dict per exposure site on the map at ``now_ms``, most recent first, with
    ``venue_id``, ``community_id``, ``district_id``, ``h3``, ``cases``, ``visits``, ``first_arrive_ts``,
    ``last_leave_ts`` and ``recency_h``; ``clusters``: largest first, with ``cluster_id``, ``size``,
    ``sites`` (venue ids), ``first_arrive_ts`` and ``last_leave_ts``. No person token, no point.
    """
    raw = reader.client.get(reader.keys.state(SOURCE, PICTURE))
    if raw is None:
        return None
    picture = json.loads(raw)
    horizon = now_ms - TracingParams.of(reader.settings).site_horizon_days * DAY_MS
    names = ("venue_id", "community_id", "district_id", "h3", "cases", "visits", "first_arrive_ts", "last_leave_ts")
    sites = [dict(zip(names, row)) for row in picture["sites"] if row[7] >= horizon]
    for site in sites:
        site["recency_h"] = max(now_ms - site["last_leave_ts"], 0) / 3_600_000
    found = [
        {"cluster_id": i, "size": size, "first_arrive_ts": first, "last_leave_ts": last, "sites": tuple(venues)}
        for i, (size, first, last, venues) in enumerate(c for c in picture["clusters"] if c[2] >= horizon)
    ]
    return {"built_ms": picture["built_ms"], "sites": sites, "clusters": found}


def active_codes(reader: CityReader) -> pd.DataFrame:
    """Return the exact number of active yellow and red codes per community (role-gated views only)."""
    raw = reader.client.hgetall(reader.keys.state(SOURCE, ACTIVE))
    counts = by_first({name.decode(): int(value) for name, value in raw.items()})
    frame = pd.DataFrame.from_dict(counts, orient="index").reindex(columns=list(COLOURS)).fillna(0).astype("int64")
    frame.index.name = "community_id"
    return frame.sort_index()


def precise_picture(reader: CityReader, now_ms: int) -> dict:
    """Everything the precise case-tracing view shows, for a role that may see it and never a shared screen:
    ``sites`` (with each visit's times and the case tokens), ``clusters`` (with their members' tokens) and
    ``paths`` (each confirmed case's infectious visits with times and points).

    Read from the cases themselves, not from the picture the workers publish (which holds no token).
    """
    params = TracingParams.of(reader.settings)
    return {
        "sites": exposure_sites(reader.client, reader.keys, now_ms, params),
        "clusters": clusters(reader.client, reader.keys, now_ms, params),
        "paths": precise_visits(reader.client, reader.keys, None, params),
        "horizon_days": params.site_horizon_days,
    }
