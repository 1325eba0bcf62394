"""Snapshot builders: everything one view shows at one tick, read from the aggregates in a few round
trips and reduced to plain, small values (lists and dicts) that can be cached and shared by every
browser watching that view.

Each builder takes the read API, the city, the view state and the time; none touches Dash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from data.read import SOURCE_TITLES, SOURCES, CityReader, Window, rollup
from data.read.cases import active_codes, case_picture, precise_picture
from data.read.complaints import complaint_counts, complaint_table, published_hotspots
from data.read.foot import crowding_alerts, fever_alerts, latest_readings, now_versus_normal, silent_sensors
from data.read.health import expected_rates
from data.read.services import Area, decision_modes, service_counts
from data.read.windows import HOUR_S, WINDOWS, by_first, from_history, in_areas, of_areas
from data.schema import ROUTING_LEVELS
from engines.complaints import URGENT_CATEGORIES
from engines.foot import CrowdingRule
from engines.services import ServiceParams, counters_needed, processing_from_bins
from engines.tracing import TracingParams
from views.geography import CityGeography
from views.privacy import (
    ENVELOPE_FIELDS,
    ShownCount,
    masked_fields,
    masked_text,
    shown_area,
    shown_count,
    shown_total,
)
from views.state import WINDOW_LABELS, ViewState, window_label

DAY_S = 86_400
NO_PICTURE = {"built_ms": None, "sites": [], "clusters": []}  # before any worker built the tracing picture


def _last(reader: CityReader, seconds: int, now: float, past: bool = False) -> Window:
    """The window a page's "last ..." figures answer for: whole buckets, ending with the one holding now.

    A past moment's window ends at the moment (or the end of the bucket it falls in): the minute after it
    is not "as of" it. A moment whose minutes are no longer kept (older than the fine retention) is answered
    from history: whole hours, the last of them ending at or after the moment, and never less than one hour."""
    if from_history(now, reader.clock(), reader.settings.retention_hours):
        end = -(-int(now) // HOUR_S) * HOUR_S
        return Window(end - max(seconds, HOUR_S), end)
    if past:
        bs = reader.settings.bucket_seconds
        end = -(-int(now) // bs) * bs
        return Window(end - seconds, end)
    return Window.last(seconds, now, reader.settings.bucket_seconds)


def _window(reader: CityReader, state: ViewState, now: float) -> Window:
    return _last(reader, state.window_s, now, past=bool(state.at))


def _communities(geo: CityGeography, state: ViewState) -> frozenset[str]:
    """The communities of the drilled area (the whole city when nothing is drilled)."""
    if not state.district:
        return frozenset(geo.community_parents)
    return frozenset(geo.areas_of("community", state.district, state.neighbourhood))


def _scoped(counts: Mapping[str, int], geo: CityGeography, state: ViewState) -> dict[str, int]:
    """Community-keyed counts ('community' or 'community|x') inside the drilled area."""
    return of_areas(counts, _communities(geo, state))


def _in_scope(counts: Mapping[str, int], geo: CityGeography, state: ViewState) -> dict[str, int]:
    """Counts keyed 'community|x' summed over the communities in the drilled area, keyed 'x'."""
    return in_areas(counts, _communities(geo, state))


def _service_area(geo: CityGeography, state: ViewState) -> Area:
    """The drilled area as the services reads take it: whole districts where it is, else its communities."""
    if not state.district:
        return Area(districts=geo.district_ids)
    if not state.neighbourhood:
        return Area(districts=(state.district,))
    return Area(communities=_communities(geo, state))


def area_values(counts: Mapping[str, int], geo: CityGeography, state: ViewState) -> dict[str, int]:
    """Community counts summed to the areas the drilled map shows (every area present, zeros included)."""
    level = state.level
    rolled = rollup(_scoped(counts, geo, state), geo.parent_map(level))
    return {area: int(rolled.get(area, 0)) for area in geo.areas_of(level, state.district, state.neighbourhood)}


def _in_communities(counts: Mapping[str, int], geo: CityGeography, state: ViewState) -> dict[str, int]:
    """A count for every community of the drilled area, zeros included."""
    return {c: int(counts.get(c, 0)) for c in geo.areas_of("community", state.district, state.neighbourhood)}


def shown_areas(counts: Mapping[str, int], geo: CityGeography, state: ViewState, minimum: int) -> dict[str, ShownCount]:
    """A health count per area the drilled map shows, as a shared screen may show it: suppressed in each
    community and composed from the communities' cells up to the area (``views.privacy.shown_area``)."""
    parent = geo.parent_map(state.level)
    members: dict[str, list[int]] = {a: [] for a in geo.areas_of(state.level, state.district, state.neighbourhood)}
    for community, n in _in_communities(counts, geo, state).items():
        if parent.get(community) in members:
            members[parent[community]].append(n)
    return {a: shown_area(ns, minimum) for a, ns in members.items()}


def _area_rows(values: Mapping[str, int], geo: CityGeography) -> dict[str, list]:
    ids = list(values)
    return {"ids": ids, "names": [geo.names.get(i, i) for i in ids], "values": [values[i] for i in ids]}


def scope_label(geo: CityGeography, state: ViewState) -> str:
    """The name of the area a view answers for: a neighbourhood with its district, a district, or the city."""
    if state.neighbourhood:
        return f"{geo.names.get(state.neighbourhood)} · {geo.names.get(state.district)}"
    if state.district:
        return geo.names.get(state.district, state.district)
    return geo.city.name if hasattr(geo.city, "name") else "whole city"


def _base(geo: CityGeography, state: ViewState, now: float, window: Window | None, settings) -> dict[str, Any]:
    scope = scope_label(geo, state)
    tz = settings.city_timezone
    when = window_label(state.window)
    if state.at and window is not None:
        start, end = _local(window.start, tz), _local(window.end, tz)
        when = f"{start}–{end[11:] if end[:10] == start[:10] else end}"
    kept_s = max(settings.history_days * DAY_S, int(settings.retention_hours * HOUR_S))
    if state.window_s > kept_s:
        # A window longer than history: it counts what is kept, and says how much that is.
        when += f" · only the last {kept_s // DAY_S} d are kept"
    return {
        "at": now,
        "tz": tz,
        "as_of": state.at,
        "window": state.window,
        "window_start": window.start if window else None,
        "window_end": window.end if window else None,
        "level": state.level,
        "scope": scope,
        # What every figure of the page answers for, said beside it.
        "label": f"{scope} · {when}",
        "bounds": geo.bounds_of(state.district, state.neighbourhood),
    }


def _local(epoch_s: float, tz: str) -> str:
    """A moment in the city's local time, as a past view's labels say it."""
    return datetime.fromtimestamp(epoch_s, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------- cases


def exposure_site_points(
    sites: list[dict], geo: CityGeography, state: ViewState, minimum: int, limit: int = 400
) -> dict[str, list]:
    """Exposure sites in scope at their venue, newest first: name, hours since the last visit, cases ('<N' when few).

    Case tokens and visit times stay on the server: a shared screen gets the place and how recent it is.
    """
    rows = []
    for site in sites:
        place = geo.places.get(site["venue_id"])
        if place is None or not geo.in_scope(site["community_id"], state.district, state.neighbourhood):
            continue
        rows.append((place["lon"], place["lat"], place["name"], round(float(site["recency_h"]), 1), site["cases"]))
    rows.sort(key=lambda r: r[3])
    rows = rows[:limit]
    return {
        "lon": [r[0] for r in rows],
        "lat": [r[1] for r in rows],
        "names": [r[2] for r in rows],
        "recency_h": [r[3] for r in rows],
        "size": [max(r[4], minimum) for r in rows],  # a few cases draw as the threshold: size reveals nothing
        "shown": [shown_count(r[4], minimum).text for r in rows],
    }


def code_mix(
    active: pd.DataFrame, geo: CityGeography, state: ViewState, minimum: int
) -> tuple[dict[str, list], dict[str, ShownCount]]:
    """Active yellow and red codes per community in scope as a shared screen shows them, and their totals.

    ``active`` holds the exact counts per community (the keeper's). ``value`` is what the colour shows:
    the community's exact total, the sum of its shown counts where one is suppressed (a lower bound), or
    None where nothing of it may be shown. The totals are over the communities in scope.
    """
    areas = geo.areas_of("community", state.district, state.neighbourhood)
    exact = {
        colour: {a: int(active.at[a, colour]) if a in active.index else 0 for a in areas}
        for colour in ("yellow", "red")
    }
    shown = {colour: [shown_count(exact[colour][a], minimum) for a in areas] for colour in exact}
    value = []
    for y, r in zip(shown["yellow"], shown["red"]):
        visible = sum(c.value for c in (y, r) if c.value is not None)
        value.append(None if (y.suppressed or r.suppressed) and not visible else visible)
    mix = {
        "ids": areas,
        "names": [geo.names.get(a, a) for a in areas],
        "yellow": [c.text for c in shown["yellow"]],
        "red": [c.text for c in shown["red"]],
        "spoken": [[y.spoken, r.spoken] for y, r in zip(shown["yellow"], shown["red"])],
        "value": value,
    }
    return mix, {colour: shown_total(exact[colour], minimum) for colour in exact}


def cluster_rows(found: list[dict], geo: CityGeography, state: ViewState, minimum: int, now: float) -> list[dict]:
    """Clusters with a site in scope, largest first: size ('<N' when few), sites and hours since first and last seen.

    No case token leaves the server.
    """
    now_ms = now * 1000
    rows = []
    for c in found:
        places = [geo.places[v] for v in c["sites"] if v in geo.places]
        if state.district and not any(
            geo.in_scope(p["community_id"], state.district, state.neighbourhood) for p in places
        ):
            continue
        rows.append(
            {
                "cluster": f"K{int(c['cluster_id']) + 1}",
                "size": shown_count(int(c["size"]), minimum).text,
                "sites": len(c["sites"]),
                "site_names": ", ".join(sorted(p["name"] for p in places)),
                "first_seen_h": round(max(now_ms - c["first_arrive_ts"], 0) / 3_600_000, 1),
                "last_seen_h": round(max(now_ms - c["last_leave_ts"], 0) / 3_600_000, 1),
            }
        )
    return rows


NO_CODES = pd.DataFrame({"yellow": [], "red": []}, dtype="int64")


def cases_snapshot(reader: CityReader, geo: CityGeography, state: ViewState, now: float, minimum: int = 3) -> dict:
    """Confirmed cases per area (small cells suppressed), exposure sites by recency, active health codes per
    community, and case clusters. Case paths are left out: they need a restricted view."""
    window = _window(reader, state, now)
    now_ms = int(now * 1000)
    params = TracingParams.of(reader.settings)
    by_status = by_first(_scoped(reader.counts("cases", "cases.community_status", window), geo, state))
    confirmed = {c: s.get("confirmed", 0) for c, s in by_status.items()}
    suspected = {c: s.get("suspected", 0) for c, s in by_status.items()}
    shown = shown_areas(confirmed, geo, state, minimum)
    rows = _area_rows({a: 0 for a in shown}, geo)
    # The tracing picture and the health codes are kept as they stand now: a past moment has none.
    picture = NO_PICTURE if state.at else case_picture(reader, now_ms) or NO_PICTURE
    sites = exposure_site_points(picture["sites"], geo, state, minimum)
    codes, active = code_mix(NO_CODES if state.at else active_codes(reader), geo, state, minimum)
    clusters = cluster_rows(picture["clusters"], geo, state, minimum, now)
    largest = clusters[0] if clusters else None
    return {
        **_base(geo, state, now, window, reader.settings),
        "cases": {
            **rows,
            # A suppressed area is coloured by what it shows for sure (1.5 for a lone '<3'): the colour reveals
            # nothing its text does not.
            "values": [max(shown[a].at_least, 1.5) if shown[a].suppressed else shown[a].value for a in rows["ids"]],
            "shown": [shown[a].text for a in rows["ids"]],
            "exact": [shown[a].value for a in rows["ids"]],
        },
        "codes": codes,
        "sites": sites | {"window_h": params.infectious_days_before * 24},
        "clusters": clusters,
        "headline": {
            "confirmed": shown_total(_in_communities(confirmed, geo, state), minimum).text,
            "suspected": shown_total(_in_communities(suspected, geo, state), minimum).text,
            "yellow": "–" if state.at else active["yellow"].text,
            "red": "–" if state.at else active["red"].text,
            "sites": None if state.at else len(sites["lon"]),
            "clusters": None if state.at else len(clusters),
            "largest": largest,
        },
    }


PRECISE_ROWS = 300  # the most exposure visits the precise view lists (newest first)


def _clock(ms: float, tz: str) -> str:
    return _local(ms / 1000, tz)[5:]


def precise_snapshot(reader: CityReader, geo: CityGeography, state: ViewState, now: float) -> dict:
    """The precise view of case tracing in scope, for the health role alone (never cached, never shared):
    exposure visits with their case token and times, clusters with their members, and the path of every
    case with a visit in scope."""
    picture = precise_picture(reader, int(now * 1000))
    tz = reader.settings.city_timezone

    def here(venue: str) -> bool:
        place = geo.places.get(venue)
        return place is not None and geo.in_scope(place["community_id"], state.district, state.neighbourhood)

    paths = picture["paths"]
    sites = {s["venue_id"] for s in picture["sites"]}
    visits = sorted((p for p in paths if p["venue_id"] in sites and here(p["venue_id"])), key=lambda p: -p["arrive_ts"])
    seen = {p["case_id"] for p in visits}
    drawn = sorted((p for p in paths if p["case_id"] in seen), key=lambda p: (p["case_id"], p["arrive_ts"]))
    clusters = [
        {
            "cluster": f"K{int(c['cluster_id']) + 1}",
            "size": int(c["size"]),
            "members": ", ".join(c["case_ids"]),
            "sites": ", ".join(sorted(geo.places[v]["name"] for v in c["sites"] if v in geo.places)),
        }
        for c in picture["clusters"]
        if any(here(v) for v in c["sites"])
    ]
    base = _base(geo, state, now, None, reader.settings)
    return {
        **base,
        # What the view answers for: the exposure sites of the tracing horizon, whatever window is chosen.
        "label": f"{base['scope']} · exposure sites of the last {picture['horizon_days']:g} days",
        "visits": [
            {
                "case": p["case_id"],
                "venue": geo.places[p["venue_id"]]["name"],
                "arrive": _clock(p["arrive_ts"], tz),
                "leave": _clock(p["leave_ts"], tz),
            }
            for p in visits[:PRECISE_ROWS]
        ],
        "visits_total": len(visits),
        "clusters": clusters,
        "paths": {
            "case": [p["case_id"] for p in drawn],
            "lon": [float(p["lon"]) for p in drawn],
            "lat": [float(p["lat"]) for p in drawn],
            "text": [
                f"{p['case_id']} · {geo.places.get(p['venue_id'], {}).get('name', p['venue_id'])}"
                f"<br>{_clock(p['arrive_ts'], tz)} – {_clock(p['leave_ts'], tz)}"
                for p in drawn
            ],
        },
    }


# ---------------------------------------------------------------------------- foot traffic


def foot_snapshot(reader: CityReader, geo: CityGeography, state: ViewState, now: float) -> dict:
    """Heat of people counted per H3 cell, sensors now versus normal, crowding, fever and silent sensors.

    A sensor's "now versus normal" judges its hour so far against the same hour on comparable days
    (weekdays with weekdays) over the kept history, whatever the window chosen for the counts."""
    window = _window(reader, state, now)
    facets = reader.counts_many("foot", ["people.h3", "people.sensor", "fever.sensor", "people.community"], window)
    judged = now_versus_normal(reader, now, days=reader.settings.history_days, tz=reader.settings.city_timezone)
    days = int(judged["history_days"].max()) if len(judged) else 0
    verdicts = judged.set_index("key").to_dict("index")  # one conversion, not a frame lookup per sensor
    # Sensors are known by their latest reading, kept as it stands now: a past moment lists none.
    sensors = {} if state.at else latest_readings(reader)
    crowding = CrowdingRule.of(reader.settings)
    silent_ids = {s["sensor_id"] for s in silent_sensors(reader, sensors=sensors)}
    # A fever reading is not an alert: thermal screening sees a few every hour. An alert is a count
    # improbably high for the people the sensor counted, against its own rate before.
    feverish = {a["sensor_id"] for a in fever_alerts(reader, now)}
    now_people, fever = facets["people.sensor"], facets["fever.sensor"]
    rows = []
    for sensor, s in sensors.items():
        if not geo.in_scope(str(s["community_id"]), state.district, state.neighbourhood):
            continue
        place = geo.places.get(str(s["place_id"]), {})
        n = now_people.get(sensor, 0)
        verdict = verdicts.get(sensor)
        has_normal = verdict is not None and verdict["flag"] not in ("no_history", "no_data")
        ratio = float(verdict["ratio"]) if has_normal and np.isfinite(verdict["ratio"]) else None
        rows.append(
            {
                "sensor": sensor,
                "name": place.get("name", s["place_id"]),
                "kind": s["place_kind"],
                "lon": s["lon"],
                "lat": s["lat"],
                "now": int(n),
                "ratio": None if ratio is None else round(ratio, 2),
                "normal": verdict["flag"] if verdict is not None else "no_data",
                "occupancy": s["occupancy"],
                "capacity": s["capacity"],
                "crowding": round(s["occupancy"] / s["capacity"], 2)
                if s["capacity"] > 0 and s["occupancy"] >= 0
                else None,
                "crowded": bool(crowding.crowded(s["occupancy"], s["capacity"])),
                "fever": int(fever.get(sensor, 0)),
                "fever_alert": sensor in feverish,
                "silent": sensor in silent_ids,
                "age_s": round(s["age_s"]),
            }
        )
    people_now = sum(_scoped(facets["people.community"], geo, state).values())
    yesterday = reader.counts("foot", "people.community", Window(window.start - DAY_S, window.end - DAY_S))
    people_yesterday = sum(_scoped(yesterday, geo, state).values()) if yesterday else None
    crowded = sorted((r for r in rows if r["crowded"]), key=lambda r: -r["crowding"])
    return {
        **_base(geo, state, now, window, reader.settings),
        "heat": heat_points(facets["people.h3"], geo, state),
        "sensors": rows,
        "history_days": days,
        "crowded": crowded[:12],
        "crowding_share": crowding.share,
        "fever": sorted((r for r in rows if r["fever_alert"]), key=lambda r: -r["fever"])[:12],
        "silent": sorted((r for r in rows if r["silent"]), key=lambda r: -r["age_s"])[:12],
        "silent_count": sum(r["silent"] for r in rows),
        "headline": {
            "people": int(people_now),
            "people_yesterday": people_yesterday,
            "sensors": None if state.at else len(rows),
        },
    }


def heat_points(counts: Mapping[str, int], geo: CityGeography, state: ViewState) -> dict[str, list]:
    """Positive counts per H3 cell as weighted points at the centres of the cells whose centre lies in the
    drilled area (the city when nothing is drilled)."""
    inside = geo.cells_in(state.district, state.neighbourhood)
    cells = tuple(cell for cell, n in counts.items() if n > 0 and cell in inside)
    lon, lat, kept = geo.cell_points(cells)
    return {"lon": list(lon), "lat": list(lat), "weight": [int(counts[cells[i]]) for i in kept]}


# ---------------------------------------------------------------------------- services


def _share_auto(decision_mode: Mapping[str, int]) -> float | None:
    decided = {d: modes for d, modes in by_first(decision_mode).items() if d != "pending"}
    total = sum(n for modes in decided.values() for n in modes.values())
    auto = sum(modes.get("auto", 0) for modes in decided.values())
    return round(auto / total, 3) if total else None


def service_centers(
    center_action: Mapping[str, int],
    wait_ms: Mapping[str, int],
    waited: Mapping[str, int],
    geo: CityGeography,
    state: ViewState,
    hours: float,
    params: ServiceParams | None = None,
) -> list[dict]:
    """Per service center in scope: today's flow, the queue it implies, mean wait and counters needed (Erlang C)."""
    params = params or ServiceParams()
    actions = by_first(center_action)
    ids = geo.places_of_kind("service_center")
    rows = []
    for center in ids:
        place = geo.places[center]
        if not geo.in_scope(place["community_id"], state.district, state.neighbourhood):
            continue
        a = actions.get(center, {})
        arrived, served = a.get("arrived", 0), a.get("served", 0)
        n_waited = waited.get(center, 0)
        mean_wait = wait_ms.get(center, 0) / n_waited / 1000 if n_waited else None
        rows.append(
            {
                "center": center,
                "name": place["name"],
                "lon": place["lon"],
                "lat": place["lat"],
                "booked": a.get("booked", 0),
                "arrived": arrived,
                "served": served,
                "no_show": a.get("no_show", 0),
                "queue": max(arrived - served, 0),
                "arrivals_per_h": round(max(arrived, served) / hours, 1),
                "served_per_h": served / hours,
                "mean_wait_s": None if mean_wait is None else round(mean_wait),
            }
        )
    if rows:
        demand = pd.DataFrame(
            {
                "center_id": [r["center"] for r in rows],
                "hour_ms": 0,
                "arrivals_per_h": [r["arrivals_per_h"] for r in rows],
            }
        )
        opened = {r["center"]: math.ceil(r["served_per_h"] * params.mean_service_s / 3600) for r in rows}
        plan = counters_needed(demand, opened, params)
        for r, needed, open_now in zip(rows, plan["counters_needed"], plan["counters_open"]):
            r["counters_needed"] = int(needed)
            r["counters_open"] = int(open_now)
            del r["served_per_h"]
    return rows


def services_snapshot(reader: CityReader, geo: CityGeography, state: ViewState, now: float) -> dict:
    """Applications per area and channel, share automatic, processing time, and service centers' queues."""
    window = _window(reader, state, now)
    area = _service_area(geo, state)
    counts = service_counts(reader, window, area)
    volumes = area_values(counts["community"], geo, state)
    channels = counts["channel"]
    decision_mode = counts["decision_mode"]
    processing = processing_from_bins(by_first(counts["processing"]))
    modes = {
        row.mode: {
            "decided": int(row.decided),
            "median_s": _finite(row.median_s),
            "p95_s": _finite(row.p95_s),
            "within_promise": _finite(row.within_promise_share),
        }
        for row in processing.itertuples(index=False)
    }
    hour = decision_modes(reader, _last(reader, 3600, now, past=bool(state.at)), area)
    centers = service_centers(
        counts["center_action"], counts["wait_ms"], counts["waited"], geo, state, state.window_s / 3600
    )
    base = _base(geo, state, now, window, reader.settings)
    return {
        **base,
        "labels": {
            "channels": f"Applications by channel · {base['label']}",
            "hour": f"{base['scope']} · {WINDOW_LABELS['1h']}",
        },
        "volumes": _area_rows(volumes, geo),
        "channels": dict(sorted(channels.items(), key=lambda kv: -kv[1])),
        "modes": modes,
        "share_auto": _share_auto(decision_mode),
        "centers": centers,
        "headline": {
            "applications": int(sum(volumes.values())),
            "applications_hour": int(sum(hour.values())),
            "share_auto_hour": _share_auto(hour),
            "counters_needed": sum(c.get("counters_needed", 0) for c in centers),
        },
    }


def _finite(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


# ---------------------------------------------------------------------------- complaints


def hotspots_in_view(
    reader: CityReader, geo: CityGeography, state: ViewState, now: float
) -> tuple[list[dict], dict | None]:
    """The hotspot cells the workers published for the view's window, in the drilled area, and what they
    answer for: ``start`` and ``end`` of the window they were computed from, ``computed_ms``, ``age_s``
    and ``stale`` (older than a few worker ticks: the page then says how old); None before any was published.

    The statistic runs in the workers (``data.keepers.complaints``), never on a refresh.
    """
    published = published_hotspots(reader, state.window)
    if published is None:
        return [], None
    hot = published["cells"]
    if state.district:
        inside = geo.cells_in(state.district, state.neighbourhood)
        hot = [h for h in hot if h["cell"] in inside]
    age_ms = max(int(now * 1000) - published["computed_ms"], 0)
    as_of = {
        "start": published["window"].start,
        "end": published["window"].end,
        "computed_ms": published["computed_ms"],
        "age_s": age_ms / 1000,
        "stale": age_ms > published["fresh_ms"],
    }
    return hot, as_of


OPEN_COMPLAINTS_READ = 2000  # the most open complaints a refresh reads looking for those in scope


def open_complaints(reader: CityReader, geo: CityGeography, state: ViewState, now: float, wanted: int) -> list[dict]:
    """The ``wanted`` most urgent open complaints in scope: priority and its reason, where routed, how late.

    Read from the queue a page at a time until enough are in scope (or ``OPEN_COMPLAINTS_READ`` were
    read): the city-wide view reads what it shows, however many complaints are open.
    """
    rows: list[dict] = []
    start = 0
    while len(rows) < wanted and start < OPEN_COMPLAINTS_READ:
        page = complaint_table(reader, int(now * 1000), limit=max(wanted, 100), start=start)
        start += max(wanted, 100)
        for c in page:
            # City-wide, a complaint placed just outside the boundary is listed too: it is open all the same.
            if not state.district or geo.in_scope(c["community_id"], state.district, state.neighbourhood):
                rows.append(_complaint_row(c, geo))
        if len(page) < max(wanted, 100):
            break
    rows.sort(key=lambda r: (r["priority"], r["overdue"] != "overdue", -r["waited_h"]))
    return rows[:wanted]


def _complaint_row(c: Mapping[str, Any], geo: CityGeography) -> dict:
    return {
        "complaint": c["complaint_id"],
        "priority": f"P{c['priority']}",
        "reason": c["reason"],
        "category": c["category"],
        "community": geo.names.get(c["community_id"], "outside the city"),
        "district": geo.names.get(c["district_id"], "outside the city"),
        "holder": c["holder"],
        "path": c["path"],
        "status": c["status"],
        "waited_h": round(c["waited_s"] / 3600, 1),
        "overdue": "overdue" if c["overdue"] else "",
        "bounced": "bounced" if c["bounced"] else "",
        "words": c["text"],
    }


def complaints_snapshot(
    reader: CityReader, geo: CityGeography, state: ViewState, now: float, max_rows: int = 400
) -> dict:
    """Complaint hotspots, counts per area, category and routing level, and the community × category table."""
    window = _window(reader, state, now)
    facets = reader.counts_many(
        "complaints",
        ["complaints.h3", "complaints.community", "complaints.community_triaged", "complaints.community_action_level"],
        window,
    )
    by_cell = facets["complaints.h3"]
    # Hotspots are published for the live windows, and the queue of open complaints is kept as it stands
    # now: a past moment shows neither.
    published = not state.at and state.window in WINDOWS
    hot, hot_as_of = hotspots_in_view(reader, geo, state, now) if published else ([], None)
    communities = _scoped(facets["complaints.community"], geo, state)
    categories = _in_scope(facets["complaints.community_triaged"], geo, state)
    if state.at:
        table, counts = [], {"open": None, "overdue": None}
    elif state.district:
        # The open complaints in scope are counted as far as the queue is read for them (the first
        # OPEN_COMPLAINTS_READ), whether the page lists them or only shows how many (the overview).
        in_scope = open_complaints(reader, geo, state, now, OPEN_COMPLAINTS_READ)
        table = in_scope[:max_rows]
        counts = {"open": len(in_scope), "overdue": sum(1 for row in in_scope if row["overdue"] == "overdue")}
    else:
        table = open_complaints(reader, geo, state, now, max_rows) if max_rows else []
        counts = complaint_counts(reader, int(now * 1000))
    if state.district:
        # An update counts where its complaint is: the keeper places it once both have come.
        updates = _in_scope(facets["complaints.community_action_level"], geo, state)
    else:
        # The city counts every update that came, whether its complaint is in the city, outside or not come yet.
        updates = reader.counts("complaints", "updates.action_level", window)
    routing = {level: {} for level in ROUTING_LEVELS}
    for action, levels in by_first(updates).items():
        for level, n in levels.items():
            if level in routing:
                routing[level][action] = routing[level].get(action, 0) + n
    filed = int(sum(communities.values()))
    base = _base(geo, state, now, window, reader.settings)
    return {
        **base,
        "labels": {
            "categories": f"Complaints filed by category, as triaged · {base['label']}",
            "updates": base["label"],
            "routing": f"Complaint updates by routing level · {base['label']}",
        },
        "hotspots": hot,
        "hotspots_as_of": hot_as_of,
        # Hotspots are published for the live preset windows only: a past moment or a custom window has none.
        "hotspots_published": published,
        "heat": heat_points(by_cell, geo, state),
        "areas": _area_rows(area_values(communities, geo, state), geo),
        "categories": dict(sorted(categories.items(), key=lambda kv: -kv[1])),
        "routing": routing,
        "table": table,
        "table_total_rows": counts["open"],
        "headline": {
            "filed": filed,
            "urgent": int(sum(categories.get(c, 0) for c in URGENT_CATEGORIES)),
            **counts,
            "escalated": int(sum(routing[lv].get("escalated", 0) for lv in routing)),
            "hotspots": len(hot) if published else None,
        },
    }


# ---------------------------------------------------------------------------- overview


LIVE_MAPS = ("cases", "foot-traffic", "services", "complaints")  # the views the overview puts side by side


def view_snapshot(
    view: str,
    reader: CityReader,
    geo: CityGeography,
    state: ViewState,
    now: float,
    minimum: int = 3,
) -> dict:
    """One live map's snapshot, as its page shows it."""
    if view == "cases":
        return cases_snapshot(reader, geo, state, now, minimum)
    if view == "foot-traffic":
        return foot_snapshot(reader, geo, state, now)
    if view == "services":
        return services_snapshot(reader, geo, state, now)
    if view == "complaints":
        return complaints_snapshot(reader, geo, state, now)
    raise ValueError(f"unknown view {view!r}; expected one of {', '.join(LIVE_MAPS)}")


def overview_snapshot(
    reader: CityReader,
    geo: CityGeography,
    state: ViewState,
    now: float,
    minimum: int = 3,
    views: Callable[[str], dict] | None = None,
) -> dict:
    """The four live maps in brief, with their headline numbers, taken from the four views' snapshots.

    ``views(view)`` is that view's snapshot of this tick, the one its page shows (the deck's cached one):
    the overview rebuilds nothing and cannot disagree with a page. Without it, the four are built here.
    """
    if views is None:
        views = lambda view: view_snapshot(view, reader, geo, state, now, minimum)  # noqa: E731
    base = _base(geo, state, now, _window(reader, state, now), reader.settings)
    return overview_of(base, *(views(view) for view in LIVE_MAPS))


def overview_of(base: dict, cases: dict, foot: dict, services: dict, complaints: dict) -> dict:
    """The overview from the four views' snapshots of one tick."""
    return {
        **base,
        "cases": {"sites": cases["sites"], "areas": cases["cases"], "headline": cases["headline"]},
        "foot": {"heat": foot["heat"], "headline": foot["headline"], "silent": foot["silent_count"]},
        "services": {"volumes": services["volumes"], "headline": services["headline"]},
        "complaints": {
            "hotspots": complaints["hotspots"],
            "hotspots_as_of": complaints["hotspots_as_of"],
            "hotspots_published": complaints["hotspots_published"],
            "heat": complaints["heat"],
            "headline": complaints["headline"],
        },
    }


# ---------------------------------------------------------------------------- health and status


def backlog_lines(lag: Mapping[str, Mapping], warn_share: float) -> list[dict]:
    """Per source: the events waiting to be folded as a share of what its stream keeps, and whether that is
    near enough the cap to warn, with the sentence a wall shows: once the cap overtakes them, events no
    worker has read are trimmed and lost."""
    out = []
    for source in SOURCES:
        waiting, share = int(lag[source]["lag"]), float(lag[source]["lag_share"])
        warn = share >= warn_share
        message = (
            f"{SOURCE_TITLES[source]}: {waiting:,} events waiting to be folded, {share:.0%} of what the stream keeps"
            + ("; the oldest are lost unread" if share >= 1 else "; past 100 % the oldest are lost unread")
        )
        out.append(
            {"source": source, "title": SOURCE_TITLES[source], "lag_share": share, "warn": warn, "message": message}
        )
    return out


def lost_upstream(gaps: Mapping[str, int], trimmed: Mapping[str, int]) -> dict:
    """A source's events lost upstream: missing from its producers' sequence numbers and not among those the
    stream's cap trimmed (which leave gaps too). Where the server could not count what it trimmed (Redis
    < 7), the gaps are all that is known: ``with_trimmed`` says they may hold trimmed events."""
    missing = sum(gaps.values())
    with_trimmed = bool(trimmed["uncounted"])
    events = missing if with_trimmed else max(missing - int(trimmed["entries"]), 0)
    return {"events": events, "with_trimmed": with_trimmed and missing > 0, "producers": dict(gaps)}


def health_snapshot(reader: CityReader, now: float, dead_letters: int = 5) -> dict:
    """Per source: last event, rate, stream length, lag (and its share of the stream's cap), pending, dead
    letters, events trimmed by the cap and events lost upstream; the heartbeats of the workers alive."""
    settings = reader.settings
    fresh = reader.freshness()
    lengths = reader.stream_lengths()
    lag = reader.consumer_lag()
    backlog = {line["source"]: line for line in backlog_lines(lag, settings.backlog_warn_share)}
    lost = reader.lost_entries()
    gaps = reader.sequence_gaps()
    dead = reader.dead_letter_counts()
    minute = _last(reader, 300, now)
    rates = {}
    for source in SOURCES:
        per_type = reader.counts(source, "events.type", minute)
        rates[source] = round(sum(per_type.values()) / 300, 2)
    sources = []
    for s in SOURCES:
        sources.append(
            {
                "source": s,
                "title": SOURCE_TITLES[s],
                "events": fresh[s]["events"],
                "event_age_s": fresh[s]["event_age_s"],
                "ingest_age_s": fresh[s]["ingest_age_s"],
                "rate_per_s": rates[s],
                "stream_length": int(lengths[s]),
                "lag": int(lag[s]["lag"]),
                "lag_share": backlog[s]["lag_share"],
                "lag_counted_in_full": not lag[s]["capped"],
                "backlog_warn": backlog[s]["warn"],
                "trimmed": lost[s],
                "upstream": lost_upstream(gaps[s], lost[s]),
                "pending": int(lag[s]["pending"]),
                "consumers": int(lag[s]["consumers"]),
                "dead": dead[s],
                "dead_total": int(sum(dead[s].values())),
            }
        )
    newest = []
    for s in SOURCES:
        for row in reader.dead_letters(s, dead_letters):
            # A letter's reason is one of the schema's REJECT_REASONS, with its detail after the first ':'.
            reason, _, detail = row.get("dead_reason", "?").partition(":")
            newest.append({"source": s, "reason": reason, "detail": masked_text(detail), "raw": _raw(row)})
    workers = [
        {"name": name, "pid": w.get("pid"), "age_s": round(age_s, 1), "processed": w.get("processed", 0)}
        for name, w in sorted(reader.workers().items())
        # A worker killed without a word stops reporting: past the timeout it is taken for dead.
        if (age_s := now - w.get("at_ms", 0) / 1000) <= settings.worker_timeout_s
    ]
    # The alarm watch's heartbeat outlives it by the workers' timeout at most: one kept is one alive.
    watch = reader.watch()
    if watch is not None:
        watch["age_s"] = round(max(0.0, now - watch.pop("at_ms", 0) / 1000), 1)
    return {
        "at": now,
        "tz": settings.city_timezone,
        "sources": sources,
        "dead_letters": newest[: dead_letters * 2],
        "workers": workers,
        "watch": watch,
        "audit": reader.audit_state(),
    }


def _raw(row: Mapping[str, str]) -> str:
    """A dead letter's fields as the role that may read them sees them: personal fields and contacts masked."""
    shown = masked_fields({k: v for k, v in row.items() if k not in ("reason", "detail")})
    # The event's own fields first: the dead letter's envelope (ids, times, reason) is on the line already.
    order = sorted(shown, key=lambda k: (k in ENVELOPE_FIELDS, list(shown).index(k)))
    return " ".join(f"{k}={shown[k]}" for k in order if k != "dead_reason")[:400]


SILENCE_GAPS = 10.0  # a silence of this many usual gaps between events happens by chance once in e^10


def freshness_lines(
    fresh: Mapping[str, Mapping], expected: Mapping[str, float | None], stale_after_s: float
) -> list[dict]:
    """Per source: its age and whether it is stale, with the sentence a wall shows when it is.

    Stale means less than expected from the source now: silent for longer than ``SILENCE_GAPS`` of
    its usual gaps between events at this hour (``expected`` events per second, None when it is
    usually quiet now) and longer than ``stale_after_s``. A quiet night is not a fault.
    """
    out = []
    for source in SOURCES:
        f = fresh.get(source, {})
        age = f.get("ingest_age_s")
        rate = expected.get(source)
        if age is None:
            stale, message = True, f"no data from {SOURCE_TITLES[source]} yet"
        else:
            stale = rate is not None and age > max(stale_after_s, SILENCE_GAPS / rate)
            message = f"no data from {SOURCE_TITLES[source]} for {_duration(age)}"
            if stale:
                message += f", where about {rate * age:,.0f} events were expected"
        out.append({"source": source, "title": SOURCE_TITLES[source], "age_s": age, "stale": stale, "message": message})
    return out


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


# An alarm's severity: how much it calls for a person now, 3 (critical), 2 (high) or 1 (warning).


def alarms(reader: CityReader, geo: CityGeography, settings, now: float) -> list[dict]:
    """The conditions that hold now: crowding over capacity, a new case cluster, an urgent-complaint surge,
    a service center over its wait target. Each says what and where (area and point), how severe, and the
    numbers behind it; ``data.alarms.AlarmBook`` turns them into alarms with a start and a state."""
    out: list[dict] = []
    # Crowding is an alarm once a place has stayed crowded past the grace period (the foot keeper
    # remembers since when), not on one reading.
    for a in crowding_alerts(reader, now):
        place = geo.places.get(a["place_id"], {})
        share = a["occupancy"] / a["capacity"] if a["capacity"] else 0
        out.append(
            {
                "kind": "crowding",
                "what": f"Crowding: {a['occupancy']:,} people for {a['capacity']:,} places, for {_duration(a['over_s'])}",
                "where": _where(geo, place.get("name", a["place_id"]), a["community_id"]),
                "community": a["community_id"],
                "lon": a["lon"],
                "lat": a["lat"],
                "key": f"crowding:{a['place_id']}",
                "severity": 3 if share >= 1.5 * settings.crowding_share else 2,
                "evidence": [
                    ["people", f"{a['occupancy']:,}"],
                    ["capacity", f"{a['capacity']:,}"],
                    ["crowded for", _duration(a["over_s"])],
                ],
            }
        )
    out += cluster_alarms(reader, geo, settings, now)
    hour = _last(reader, 3600, now)
    triaged = by_first(reader.counts("complaints", "complaints.community_triaged", hour))
    urgent = {community: n for community, by in triaged.items() if (n := sum(by.get(c, 0) for c in URGENT_CATEGORIES))}
    for community, n in urgent.items():
        if n >= settings.alarm_urgent_complaints and community in geo.community_parents:
            lon, lat = geo.centres.get(community, (None, None))
            out.append(
                {
                    "kind": "complaints",
                    "what": f"Urgent complaints surge: {n} in the last hour",
                    "where": _where(geo, geo.names.get(community, community), community),
                    "community": community,
                    "key": f"complaints:{community}",
                    "severity": 3 if n >= 2 * settings.alarm_urgent_complaints else 2,
                    "evidence": [["urgent, last hour", str(n)], ["alarm at", str(settings.alarm_urgent_complaints)]],
                }
                | ({"lon": lon, "lat": lat} if lon is not None else {})
            )
    waits = reader.counts_many("services", ["appointments.wait_ms", "appointments.waited"], hour)
    for center, n in waits["appointments.waited"].items():
        mean_s = waits["appointments.wait_ms"].get(center, 0) / n / 1000 if n else 0
        if mean_s > settings.alarm_wait_target_s and center in geo.places:
            place = geo.places[center]
            out.append(
                {
                    "kind": "services",
                    "what": f"Service center over its wait target: {mean_s / 60:.0f} min mean wait",
                    "where": _where(geo, place["name"], place["community_id"]),
                    "community": place["community_id"],
                    "lon": place["lon"],
                    "lat": place["lat"],
                    "key": f"services:{center}",
                    "severity": 2 if mean_s >= 2 * settings.alarm_wait_target_s else 1,
                    "evidence": [
                        ["mean wait, last hour", f"{mean_s / 60:.0f} min"],
                        ["target", f"{settings.alarm_wait_target_s / 60:.0f} min"],
                        ["people waited", str(int(n))],
                    ],
                }
            )
    return out


def cluster_alarms(reader: CityReader, geo: CityGeography, settings, now: float) -> list[dict]:
    """A new case cluster: at least ``alarm_cluster_cases`` linked cases, the newest visit within 24 h."""
    now_ms = int(now * 1000)
    out = []
    picture = case_picture(reader, now_ms) or NO_PICTURE
    for c in picture["clusters"]:
        if c["size"] < settings.alarm_cluster_cases or c["last_leave_ts"] < now_ms - DAY_S * 1000:
            continue
        places = [geo.places[v] for v in c["sites"] if v in geo.places]
        first = places[0] if places else None
        sites = len(c["sites"])
        shown = shown_count(int(c["size"]), settings.privacy_min_count).text
        alarm = {
            "kind": "cases",
            "what": f"New case cluster: {shown} cases linked at {sites} site{'s' if sites != 1 else ''}",
            "where": _where(geo, first["name"], first["community_id"]) if first else "unplaced venue",
            "community": first["community_id"] if first else "",
            # The cluster's earliest site names it across ticks: cluster ids follow the clusters' sizes.
            "key": f"cases:cluster:{min(c['sites'])}",
            "severity": 3,
            "evidence": [["linked cases", shown], ["exposure sites", str(sites)]],
        }
        if first:
            alarm |= {"lon": first["lon"], "lat": first["lat"]}
        out.append(alarm)
    return out


def by_severity(alarms_in_force: list[dict]) -> list[dict]:
    """Alarms ranked: the most severe first, then the oldest, then by key (a stable order for every screen)."""
    return sorted(alarms_in_force, key=lambda a: (-a.get("severity", 1), a.get("since_ms", 0), a["key"]))


def ranked_alarms(alarms_in_force: list[dict], geo: CityGeography) -> dict:
    """What the screens show of the alarms in force: the one to take over the wall (the most severe not yet
    acknowledged, the oldest first among equals), and every alarm ranked by severity then age, those of
    one kind in several communities of a district grouped into one line."""
    ranked = by_severity(alarms_in_force)
    lead = next((a for a in ranked if a.get("state") != "acknowledged"), None)
    groups: dict[tuple[str, str], list[dict]] = {}
    for a in ranked:
        parents = geo.community_parents.get(a.get("community", ""))
        groups.setdefault((a["kind"], parents[1] if parents else a["key"]), []).append(a)
    lines = []
    for (kind, district), members in groups.items():
        first = members[0]
        acked = sum(1 for m in members if m.get("state") == "acknowledged")
        if len(members) == 1:
            text = f"{first['what']} — {first['where']}"
        else:
            text = f"{GROUP_TITLES.get(kind, kind)} in {len(members)} places of {geo.names.get(district, district)}"
        lines.append(
            {
                "text": text,
                "severity": max(m.get("severity", 1) for m in members),
                "since_ms": min(m.get("since_ms", 0) for m in members),
                "count": len(members),
                "acknowledged": acked,
                "keys": [m["key"] for m in members],
            }
        )
    lines.sort(key=lambda line: (-line["severity"], line["since_ms"]))
    return {
        "lead": lead,
        "lines": lines,
        "total": len(ranked),
        "open": sum(1 for a in ranked if a.get("state") != "acknowledged"),
    }


GROUP_TITLES = {
    "crowding": "Crowding",
    "cases": "New case clusters",
    "complaints": "Urgent complaints surging",
    "services": "Service centers over their wait target",
}


def _where(geo: CityGeography, name: str, community: str) -> str:
    parents = geo.community_parents.get(community)
    if parents is None:
        return str(name)
    return f"{name} · {geo.names.get(parents[1], parents[1])}"


def status_snapshot(
    reader: CityReader,
    geo: CityGeography,
    settings,
    now: float,
    track: Callable[[list[dict], int], list[dict]] | None = None,
) -> dict:
    """What every screen shows above its view: freshness per source, the alarms, and each source's backlog
    against its stream's cap. ``track`` (``AlarmBook.track``) turns the conditions that hold into the alarms
    in force, with their start and state; without it each condition is an alarm raised now."""
    now_ms = int(now * 1000)
    holding = alarms(reader, geo, settings, now)
    in_force = (
        track(holding, now_ms)
        if track
        else [a | {"since_ms": now_ms, "state": "raised", "lapsed": False, "ack": None} for a in holding]
    )
    view = ranked_alarms(in_force, geo)
    return {
        "at": now,
        "freshness": freshness_lines(reader.freshness(), expected_rates(reader, now), settings.stale_after_s),
        "alarms": by_severity(in_force),
        "alarm_view": view,
        "backlog": backlog_lines(reader.consumer_lag(), settings.backlog_warn_share),
    }
