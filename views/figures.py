"""Figure builders: a snapshot in, a Plotly figure (as a plain dict) out. Maps are MapLibre traces on a
background-only style, with the city drawn from our own boundaries, so they are complete with no tiles.

A figure's layout depends only on the drilled area; its traces carry everything a snapshot changes. A
refresh replaces the traces whole and keeps the layout, so the boundaries and the operator's zoom stay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from views.geography import GEOJSON_URL

INK = "#d8e1f0"
MUTED = "#7f8ca3"
PANEL = "#0f1728"
LAND = "#162036"
WATER = "#0a1020"
EDGE = "#3a4a6b"
# As the page's CSS: Latin first, then fonts with Chinese glyphs.
FONT = 'Inter, system-ui, "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", sans-serif'
ACCENT = "#38bdf8"
HEAT = [[0, "rgba(56,189,248,0)"], [0.25, "#2563eb"], [0.5, "#a855f7"], [0.75, "#f97316"], [1, "#fde047"]]
CASES = [[0, "#1e293b"], [0.3, "#3b2f5e"], [0.7, "#6d4a9e"], [1, "#a78bfa"]]
RECENCY = [[0, "#fef08a"], [0.2, "#f97316"], [0.55, "#dc2626"], [1, "#4b5563"]]  # newest visit hottest
CODES = [[0, "#1c2a1f"], [0.35, "#ca8a04"], [1, "#dc2626"]]
FEW = "#64748b"  # a community whose every count is hidden: neither its colour nor its hover gives a number
VOLUME = [[0, "#0c1a33"], [0.5, "#0e7490"], [1, "#67e8f9"]]
RATIO = [[0, "#3b82f6"], [0.5, "#e5e7eb"], [1, "#ef4444"]]


def background_style(color: str = WATER) -> dict[str, Any]:
    """A MapLibre style with a background layer only: no tiles, no fonts, nothing fetched."""
    return {
        "version": 8,
        "name": "citydeck-offline",
        # An empty "sources" object is dropped on its way to the browser, and MapLibre requires the key.
        "sources": {"empty": {"type": "geojson", "data": {"type": "FeatureCollection", "features": []}}},
        "layers": [{"id": "background", "type": "background", "paint": {"background-color": color}}],
    }


def zoom_for(bounds: Sequence[float], width_px: float = 720, height_px: float = 520) -> tuple[dict, float]:
    """Centre and zoom that fit a (min lon, min lat, max lon, max lat) box in a map of that size."""
    minx, miny, maxx, maxy = bounds
    lon_span = max(maxx - minx, 1e-4)
    lat_span = max(maxy - miny, 1e-4) / max(math.cos(math.radians((miny + maxy) / 2)), 0.1)
    zoom = min(math.log2(width_px * 360 / (512 * lon_span)), math.log2(height_px * 360 / (512 * lat_span)))
    return {"lon": (minx + maxx) / 2, "lat": (miny + maxy) / 2}, round(max(zoom - 0.15, 1), 2)


def map_layout(bounds: Sequence[float], uirevision: str, tile_style: str = "", compact: bool = False) -> dict:
    """Layout of a map: our land and district lines under the traces, no tiles unless a style is configured."""
    center, zoom = zoom_for(bounds, 420 if compact else 760, 300 if compact else 560)
    layers = [
        {
            "sourcetype": "geojson",
            "source": GEOJSON_URL.format(level="community"),
            "type": "fill",
            "color": LAND,
            "opacity": 1.0 if not tile_style else 0.0,
            "below": "traces",
        },
        {
            "sourcetype": "geojson",
            "source": GEOJSON_URL.format(level="community"),
            "type": "line",
            "color": "#223152",
            "line": {"width": 0.4},
            "below": "traces",
        },
        {
            "sourcetype": "geojson",
            "source": GEOJSON_URL.format(level="district"),
            "type": "line",
            "color": EDGE,
            "line": {"width": 1.6},
        },
    ]
    return {
        "map": {
            "style": tile_style or background_style(),
            "center": center,
            "zoom": zoom,
            "layers": layers,
            "uirevision": uirevision,
        },
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "paper_bgcolor": WATER,
        "font": {"color": INK, "family": FONT},
        # Every layer says what it is: point layers in this legend, colour layers in their colour bars.
        "showlegend": True,
        "legend": {
            "x": 0.01,
            "y": 0.99,
            "xanchor": "left",
            "yanchor": "top",
            "bgcolor": "rgba(15,23,40,0.75)",
            "font": {"color": INK, "size": 11},
            "itemclick": False,
            "itemdoubleclick": False,
        },
        "uirevision": uirevision,
        "hoverlabel": {"bgcolor": PANEL, "bordercolor": EDGE, "font": {"color": INK}},
        # The box the map shows: the browser fits it to the map's real size on screen (assets/citydeck.js).
        "meta": {"fit": [round(float(b), 6) for b in bounds]},
    }


def for_screen(fig: dict, px: int) -> dict:
    """The figure with every text at least ``px`` high, for a wall read from across a room: titles, ticks,
    legends, colour bars and hover labels. Bars and scales grow with the type."""
    layout = dict(fig["layout"])

    def sized(part: dict | None, scale: float = 1.0) -> dict:
        part = dict(part or {})
        part["font"] = dict(part.get("font") or {}) | {"size": round(px * scale)}
        return part

    layout["font"] = dict(layout.get("font") or {}) | {"size": px}
    layout["hoverlabel"] = sized(layout.get("hoverlabel"))
    if "title" in layout:
        layout["title"] = sized(layout["title"], 1.1)
        layout["margin"] = dict(layout.get("margin") or {}) | {"t": round(px * 2.4)}
    if layout.get("showlegend"):
        layout["legend"] = sized(layout.get("legend"))
    for axis in ("xaxis", "yaxis"):
        if axis in layout:
            layout[axis] = dict(layout[axis]) | {"tickfont": {"size": px}}
    grow = px / 13  # marks grow with the type, so a point or a heat spot reads as far as its label
    traces = []
    for trace in fig["data"]:
        trace = dict(trace)
        if trace.get("type") == "densitymap" and "radius" in trace:
            trace["radius"] = round(trace["radius"] * grow)
        marker = trace.get("marker")
        if trace.get("type") == "scattermap" and isinstance(marker, dict) and "size" in marker:
            size = marker["size"]
            scaled = [round(v * grow, 1) for v in size] if isinstance(size, list) else round(size * grow, 1)
            trace["marker"] = dict(marker) | {"size": scaled}
        for holder in (trace, trace.get("marker")):
            if isinstance(holder, dict) and isinstance(holder.get("colorbar"), dict):
                bar = dict(holder["colorbar"])
                bar["tickfont"] = dict(bar.get("tickfont") or {}) | {"size": px}
                bar["title"] = sized(bar.get("title"))
                bar["thickness"] = round(px * 0.9)
                if holder is trace:
                    trace["colorbar"] = bar
                else:
                    trace["marker"] = dict(holder) | {"colorbar": bar}
        traces.append(trace)
    return {"data": traces, "layout": layout}


def count_ticks(top: float) -> dict:
    """Colour-bar ticks for a count: whole numbers only, about five of them."""
    return {"tick0": 0, "dtick": max(1, math.ceil(top / 5))}


def _colorbar(title: str, compact: bool) -> dict:
    return {
        "title": {"text": title, "font": {"color": MUTED, "size": 11}},
        "thickness": 10,
        "len": 0.5,
        "x": 0.99,
        "xanchor": "right",
        "y": 0.05,
        "yanchor": "bottom",
        "bgcolor": "rgba(15,23,40,0.7)",
        "tickfont": {"color": INK, "size": 10},
        "outlinewidth": 0,
    } | ({"len": 0.45} if compact else {})


def area_trace(
    level: str, ids: list[str], values: list, colorscale, title: str, hover: str, customdata=None, compact: bool = False
) -> dict:
    """A choropleth of areas of one level, its GeoJSON fetched once from the static route."""
    top = max([v for v in values if v is not None] or [0])
    return {
        "type": "choroplethmap",
        "geojson": GEOJSON_URL.format(level=level),
        "featureidkey": "id",
        "locations": ids,
        "z": values,
        "zmin": 0,
        "zmax": max(top, 1),
        "colorscale": colorscale,
        "marker": {"opacity": 0.78, "line": {"width": 0.8, "color": EDGE}},
        "customdata": customdata if customdata is not None else ids,
        "hovertemplate": hover + "<extra></extra>",
        "colorbar": _colorbar(title, compact) | count_ticks(max(top, 1)),
        "showscale": True,
    }


def coordinates(values) -> list[float]:
    """Degrees to 5 decimals (about a metre): finer says nothing on a city map and only fills the wire."""
    return [round(float(v), 5) for v in values]


def heat_trace(heat: dict, radius: int = 16, compact: bool = False, what: str = "people per cell") -> dict:
    """A heat layer weighted by counts at cell centres, its colour bar saying what it counts."""
    return {
        "type": "densitymap",
        "lon": coordinates(heat["lon"]),
        "lat": coordinates(heat["lat"]),
        "z": heat["weight"],
        "radius": radius,
        "colorscale": HEAT,
        "showscale": True,
        "colorbar": _colorbar(what, compact) | count_ticks(max(heat["weight"], default=1)),
        "opacity": 0.85,
        "hoverinfo": "skip",
        "zmin": 0,
    }


def points_trace(
    lon,
    lat,
    *,
    color,
    size,
    text=None,
    hover="%{text}",
    opacity=0.9,
    colorscale=None,
    cmin=None,
    cmax=None,
    name="",
    customdata=None,
):
    """Points of one kind; a named kind is listed in the map's legend. What changes tick by tick goes in
    ``customdata`` (read by ``hover``), what stays (a place's name) in ``text``: a refresh resends the first only."""
    marker: dict[str, Any] = {"size": size, "color": color, "opacity": opacity}
    if colorscale is not None:
        marker |= {"colorscale": colorscale, "cmin": cmin, "cmax": cmax}
    extra = {} if customdata is None else {"customdata": customdata}
    return {
        **extra,
        "type": "scattermap",
        "mode": "markers",
        "lon": coordinates(lon),
        "lat": coordinates(lat),
        "marker": marker,
        "text": text if text is not None else [""] * len(lon),
        "hovertemplate": hover + "<extra></extra>",
        "name": name,
        "showlegend": bool(name),
    }


def figure(traces: list[dict], layout: dict) -> dict:
    return {"data": traces, "layout": layout}


# ---------------------------------------------------------------------------- view maps


def duration_text(x: float | None) -> str:
    """A duration as people read it: seconds while short, then minutes, then hours."""
    if x is None:
        return "–"
    if x < 10:
        return f"{x:.1f} s"
    if x < 3600:
        return f"{x / 60:.0f} min" if x >= 90 else f"{x:.0f} s"
    return f"{x / 3600:.1f} h"


def _hours(h: float) -> str:
    return "under way or within the hour" if h < 1 else f"{h:.0f} h ago"


def cases_map(snap: dict, uirevision: str, tile_style: str = "", compact: bool = False) -> dict:
    """Confirmed cases per area ('<3' where few) with the exposure sites, coloured by hours since their last
    visit over the infectious window (newest hottest; older sites in grey)."""
    areas = snap["cases"] if "cases" in snap else snap["areas"]
    sites = snap["sites"]
    recency = points_trace(
        sites["lon"],
        sites["lat"],
        color=sites["recency_h"],
        colorscale=RECENCY,
        cmin=0,
        cmax=sites["window_h"],
        size=[min(9 + 2 * s, 24) for s in sites["size"]],
        text=[
            f"{n}<br>last visit {_hours(h)}<br>cases: {s}"
            for n, h, s in zip(sites["names"], sites["recency_h"], sites["shown"])
        ],
        hover="<b>exposure site</b><br>%{text}",
        opacity=0.95,
        name="exposure site",
    )
    recency["marker"] |= {
        "showscale": True,
        "colorbar": _colorbar("hours since last visit", compact) | {"x": 0.01, "xanchor": "left"},
    }
    traces = [
        area_trace(
            snap["level"],
            areas["ids"],
            areas["values"],
            CASES,
            "confirmed",
            "<b>%{customdata[0]}</b><br>confirmed cases: %{customdata[1]}",
            customdata=[[n, s] for n, s in zip(areas["names"], areas["shown"])],
            compact=compact,
        ),
        recency,
    ]
    return figure(traces, map_layout(snap["bounds"], uirevision, tile_style, compact))


def codes_map(snap: dict, uirevision: str, tile_style: str = "") -> dict:
    """Active yellow and red health codes per community; a community whose counts are all hidden is drawn
    in a neutral 'few' colour and says 'fewer than 3'."""
    codes = snap["codes"]
    counted = [i for i, v in enumerate(codes["value"]) if v is not None]
    few = [i for i, v in enumerate(codes["value"]) if v is None]

    def hover_data(rows):
        return [[codes["names"][i], *codes["spoken"][i]] for i in rows]

    shown = area_trace(
        "community",
        [codes["ids"][i] for i in counted],
        [codes["value"][i] for i in counted],
        CODES,
        "yellow + red",
        "<b>%{customdata[0]}</b><br>yellow %{customdata[1]} · red %{customdata[2]}",
        customdata=hover_data(counted),
    )
    shown["zmax"] = max(max([codes["value"][i] for i in counted] or [0]), 5)
    hidden = area_trace(
        "community",
        [codes["ids"][i] for i in few],
        [1] * len(few),
        [[0, FEW], [1, FEW]],
        "",
        "<b>%{customdata[0]}</b><br>few codes: yellow %{customdata[1]} · red %{customdata[2]}",
        customdata=hover_data(few),
    )
    hidden["showscale"] = False
    return figure([shown, hidden], map_layout(snap["bounds"], uirevision, tile_style))


def drill_areas(areas: dict) -> dict:
    """Invisible areas under a heat layer: they name the area under the pointer, so a click drills into it."""
    clear = "rgba(0,0,0,0)"
    return {
        "type": "choroplethmap",
        "geojson": GEOJSON_URL.format(level=areas["level"]),
        "featureidkey": "id",
        "locations": areas["ids"],
        "z": [0] * len(areas["ids"]),
        "colorscale": [[0, clear], [1, clear]],
        "marker": {"line": {"width": 0}},
        "customdata": areas["names"],
        "hovertemplate": "<b>%{customdata}</b><extra></extra>",
        "showscale": False,
    }


def foot_heat_map(
    snap: dict, uirevision: str, tile_style: str = "", compact: bool = False, areas: dict | None = None
) -> dict:
    """People counted in the window, as heat; over ``areas`` ({level, ids, names}) that a click drills into."""
    traces = [heat_trace(snap["heat"], 14 if compact else 20, compact)]
    return figure(
        ([drill_areas(areas)] if areas else []) + traces, map_layout(snap["bounds"], uirevision, tile_style, compact)
    )


def sensors_map(snap: dict, uirevision: str, tile_style: str = "") -> dict:
    """Sensors coloured by now versus normal, silent ones grey, crowded or feverish ones ringed red."""
    live = [s for s in snap["sensors"] if not s["silent"]]
    silent = [s for s in snap["sensors"] if s["silent"]]
    alert = [s for s in live if s["crowded"] or s["fever_alert"]]
    history = snap["history_days"] > 0

    def ratio_text(s):
        if s["ratio"] is None:
            return "not enough history for a normal" if s.get("normal") == "no_history" else "no normal"
        flag = s.get("normal", "normal")
        return f"{s['ratio']:.2f}× normal" + ("" if flag == "normal" else f" ({flag})")

    traces = [
        points_trace(
            [s["lon"] for s in alert],
            [s["lat"] for s in alert],
            color="#ef4444",
            size=18,
            opacity=0.55,
            text=[f"{s['name']}<br>crowding {s['crowding'] or 0:.0%} · fever {s['fever']}" for s in alert],
            name="crowded or fever",
        ),
        points_trace(
            [s["lon"] for s in live],
            [s["lat"] for s in live],
            # Three decimals of a 0–2 colour scale are more than any eye tells apart.
            color=[(round(min(s["ratio"], 2.0), 3) if s["ratio"] is not None else 1.0) for s in live]
            if history
            else ACCENT,
            colorscale=RATIO if history else None,
            cmin=0,
            cmax=2,
            size=9,
            # The sensor's name and kind stay; its count and ratio change every tick, and alone are resent.
            text=[f"{s['name']} ({s['kind']})" for s in live],
            customdata=[[s["now"], ratio_text(s)] for s in live],
            hover="%{text}<br>%{customdata[0]:,} people · %{customdata[1]}",
            name="sensor" if history else "sensor (no normal yet)",
        ),
        points_trace(
            [s["lon"] for s in silent],
            [s["lat"] for s in silent],
            color="#94a3b8",
            size=11,
            opacity=0.95,
            # Said as the silent sensors' table says it: a quiet tick then changes no figure.
            text=[f"{s['name']}<br>silent for {duration_text(s['age_s'])}" for s in silent],
            hover="<b>silent sensor</b><br>%{text}",
            name="silent sensor",
        ),
    ]
    if history:
        traces[1]["marker"] |= {"showscale": True, "colorbar": _colorbar("now ÷ normal", False)}
    return figure(traces, map_layout(snap["bounds"], uirevision, tile_style))


def services_map(
    snap: dict,
    uirevision: str,
    tile_style: str = "",
    compact: bool = False,
    centers: bool = True,
    what: str = "applications",
) -> dict:
    """Applications (or another count) per area, with service centers sized by the counters they need."""
    volumes = snap["volumes"]
    traces = [
        area_trace(
            snap["level"],
            volumes["ids"],
            volumes["values"],
            VOLUME,
            what,
            "<b>%{customdata}</b><br>" + what + ": %{z:,}",
            customdata=volumes["names"],
            compact=compact,
        )
    ]
    if centers:
        rows = snap["centers"]
        traces.append(
            points_trace(
                [r["lon"] for r in rows],
                [r["lat"] for r in rows],
                color="#fbbf24",
                size=[7 + 2 * min(r.get("counters_needed", 0), 8) for r in rows],
                text=[
                    f"{r['name']}<br>queue {r['queue']} · wait {_minutes(r['mean_wait_s'])}"
                    f" · counters needed {r.get('counters_needed', 0)}"
                    for r in rows
                ],
                hover="<b>service center</b><br>%{text}",
                name="service center (size: counters needed)",
            )
        )
    return figure(traces, map_layout(snap["bounds"], uirevision, tile_style, compact))


def complaints_map(
    snap: dict, uirevision: str, tile_style: str = "", compact: bool = False, areas: dict | None = None
) -> dict:
    """Complaints as heat, with the Gi* hotspot cells marked; over ``areas`` that a click drills into."""
    hot = snap["hotspots"]
    traces = [
        heat_trace(snap["heat"], 14 if compact else 22, compact, what="complaints per cell"),
        points_trace(
            [h["lon"] for h in hot],
            [h["lat"] for h in hot],
            color="#f43f5e",
            size=14 if compact else 20,
            opacity=0.6,
            text=[f"{h['count']} complaints · Gi* z = {h['z']}" for h in hot],
            hover="<b>hotspot</b><br>%{text}",
            name="Gi* hotspot",
        ),
    ]
    return figure(
        ([drill_areas(areas)] if areas else []) + traces, map_layout(snap["bounds"], uirevision, tile_style, compact)
    )


def _minutes(seconds) -> str:
    return "–" if seconds is None else f"{seconds / 60:.0f} min"


# ---------------------------------------------------------------------------- charts


def bar_chart(
    labels: list[str], values: list[float], uirevision: str, color: str = ACCENT, unit: str = "", title: str = ""
) -> dict:
    """A horizontal bar chart, largest at the top, titled with what it counts (scope and window)."""
    trace = {
        "type": "bar",
        "orientation": "h",
        "y": labels[::-1],
        "x": values[::-1],
        "marker": {"color": color},
        "hovertemplate": "%{y}: %{x:,}" + unit + "<extra></extra>",
    }
    return figure([trace], chart_layout(uirevision, title))


def stacked_bars(
    categories: list[str], series: dict[str, list[float]], uirevision: str, colors: dict[str, str], title: str = ""
) -> dict:
    """Bars of several series stacked per category, titled with what they count."""
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": categories,
            "y": values,
            "marker": {"color": colors.get(name, ACCENT)},
            "hovertemplate": name + " · %{x}: %{y:,}<extra></extra>",
        }
        for name, values in series.items()
    ]
    layout = chart_layout(uirevision, title) | {"barmode": "stack", "showlegend": True}
    layout["legend"] = {"orientation": "h", "y": 1.12, "font": {"color": INK}}
    return figure(traces, layout)


def chart_layout(uirevision: str, title: str = "") -> dict:
    axis = {"gridcolor": "#1e2a44", "zerolinecolor": "#1e2a44", "color": MUTED, "automargin": True}
    titled = {"title": {"text": title, "font": {"color": MUTED, "size": 12}, "x": 0, "xanchor": "left"}}
    return (titled if title else {}) | {
        "margin": {"l": 8, "r": 12, "t": 30 if title else 8, "b": 8},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"color": INK, "family": FONT, "size": 12},
        "xaxis": dict(axis),
        "yaxis": dict(axis),
        "showlegend": False,
        "uirevision": uirevision,
        "bargap": 0.25,
    }


def case_paths_map(snap: dict, uirevision: str, tile_style: str = "") -> dict:
    """Each case's infectious visits in time order, joined by a line: the precise view's map (health role only)."""
    paths = snap["paths"]
    traces = []
    cases = list(dict.fromkeys(paths["case"]))
    for i, case in enumerate(cases):
        rows = [j for j, c in enumerate(paths["case"]) if c == case]
        traces.append(
            {
                "type": "scattermap",
                "mode": "lines+markers",
                "name": case,
                "lon": [paths["lon"][j] for j in rows],
                "lat": [paths["lat"][j] for j in rows],
                "text": [paths["text"][j] for j in rows],
                "hovertemplate": "%{text}<extra></extra>",
                "line": {"width": 2, "color": PATH_COLOURS[i % len(PATH_COLOURS)]},
                "marker": {"size": 8, "color": PATH_COLOURS[i % len(PATH_COLOURS)]},
                "showlegend": False,
            }
        )
    return figure(traces, map_layout(snap["bounds"], uirevision, tile_style))


PATH_COLOURS = ("#f43f5e", "#f59e0b", "#22d3ee", "#a78bfa", "#34d399", "#fb7185", "#facc15", "#60a5fa")


def locator_map(alarm: dict, bounds: Sequence[float], type_px: int) -> dict:
    """Where an alarm is: the whole city, the alarm's point ringed and named, for the wall's takeover."""
    traces = []
    if alarm.get("lon") is not None and alarm.get("lat") is not None:
        lon, lat = [alarm["lon"]], [alarm["lat"]]
        ring = points_trace(lon, lat, color="#f43f5e", size=type_px * 3.2, opacity=0.35)
        ring["hoverinfo"] = "skip"
        point = points_trace(lon, lat, color="#f43f5e", size=type_px * 1.2, opacity=1.0, name=alarm["where"])
        point |= {"mode": "markers+text", "text": [alarm["where"]], "textposition": "top center"}
        point["textfont"] = {"color": "#ffffff", "size": type_px}
        traces = [ring, point]
    layout = map_layout(bounds, f"alarm:{alarm['key']}")
    layout["showlegend"] = False
    layout["paper_bgcolor"] = "rgba(0,0,0,0)"
    return figure(traces, layout)
