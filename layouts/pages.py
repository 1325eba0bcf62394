"""One layout function per page. A page carries its own refresh interval, so its callback fires only
while it is on screen; its components start empty and the first refresh fills them."""

from __future__ import annotations

from dash import dash_table, dcc, html

from layouts import ids
from layouts.widgets import card, chart, live_map

COMPLAINT_COLUMNS = [
    {"name": "priority", "id": "priority"},
    {"name": "why", "id": "reason"},
    {"name": "category", "id": "category"},
    {"name": "community", "id": "community"},
    {"name": "district", "id": "district"},
    {"name": "held by", "id": "holder"},
    {"name": "path", "id": "path"},
    {"name": "waited (h)", "id": "waited_h", "type": "numeric"},
    {"name": "overdue", "id": "overdue"},
    {"name": "bounced", "id": "bounced"},
    {"name": "status", "id": "status"},
    {"name": "complaint", "id": "complaint"},
    {"name": "words", "id": "words"},
]


def _tick(id_: str, refresh_ms: int, rendered: str | None = None):
    interval = dcc.Interval(id=id_, interval=refresh_ms, n_intervals=0)
    return interval if rendered is None else html.Div([interval, dcc.Store(id=rendered, data=None)])


def overview(refresh_ms: int) -> html.Div:
    """The four live maps side by side, each with its headline numbers and a link to its page."""
    return html.Div(
        [
            _tick(ids.OVERVIEW_TICK, refresh_ms, ids.OVERVIEW_RENDERED),
            html.Div(
                [
                    card(
                        "Case tracing",
                        html.Div(id=ids.OVERVIEW_CASES_NUMBERS, className="numbers"),
                        live_map(ids.OVERVIEW_CASES_MAP, "340px"),
                        link="/cases",
                        page="cases",
                    ),
                    card(
                        "Foot traffic",
                        html.Div(id=ids.OVERVIEW_FOOT_NUMBERS, className="numbers"),
                        live_map(ids.OVERVIEW_FOOT_MAP, "340px"),
                        link="/foot-traffic",
                        page="foot-traffic",
                    ),
                    card(
                        "Services",
                        html.Div(id=ids.OVERVIEW_SERVICES_NUMBERS, className="numbers"),
                        live_map(ids.OVERVIEW_SERVICES_MAP, "340px"),
                        link="/services",
                        page="services",
                    ),
                    card(
                        "Complaints",
                        html.Div(id=ids.OVERVIEW_COMPLAINTS_NUMBERS, className="numbers"),
                        live_map(ids.OVERVIEW_COMPLAINTS_MAP, "340px"),
                        link="/complaints",
                        page="complaints",
                    ),
                ],
                className="quad",
            ),
        ],
        className="page page-overview",
    )


def cases(refresh_ms: int, precise_min: float = 0) -> html.Div:
    """Confirmed cases per area and exposure sites by recency; active health codes per community; case clusters.
    Small counts are shown as '<3'; case paths are left out, as they need a restricted view."""
    return html.Div(
        [
            _tick(ids.CASES_TICK, refresh_ms, ids.CASES_RENDERED),
            html.Div(id=ids.CASES_NUMBERS, className="numbers wide"),
            html.Div(
                [
                    card("Confirmed cases and exposure sites by recency", live_map(ids.CASES_MAP)),
                    card("Active health codes per community: yellow and red", live_map(ids.CODES_MAP)),
                ],
                className="pair maps",
            ),
            html.Div(
                [
                    card("Case clusters", html.Div(id=ids.CASES_CLUSTERS)),
                    card("Areas", html.Div(id=ids.CASES_AREAS), class_name="manager-only"),
                ],
                className="pair",
            ),
            precise_panel(precise_min)
            if precise_min
            else html.P(
                "Case paths need a restricted view: a case's own visits are never shown on a shared screen.",
                className="note",
            ),
        ],
        className="page page-cases",
    )


def precise_panel(grant_min: float) -> html.Section:
    """The health officer's precise view: closed until asked for with a reason; the opening is audited."""
    return card(
        "Precise view: exposure visits, case paths and cluster members",
        html.P(
            f"For contact tracing only. Opening it is written to the audit log with your reason and lasts"
            f" {grant_min:g} minutes; every area you look at is logged.",
            className="note",
        ),
        html.Div(
            [
                dcc.Input(
                    id=ids.PRECISE_REASON,
                    type="text",
                    maxLength=300,
                    placeholder="Reason, e.g. 'tracing cluster K2, ticket 4411'",
                    className="precise-reason",
                ),
                html.Button("Open the precise view", id=ids.PRECISE_OPEN, n_clicks=0, className="precise-open"),
                html.Button("Close it", id=ids.PRECISE_CLOSE, n_clicks=0, className="precise-close"),
            ],
            className="precise-ask",
        ),
        html.Div(id=ids.PRECISE_STATUS, className="precise-status"),
        live_map(ids.PRECISE_MAP, "420px"),
        html.Div(id=ids.PRECISE_BODY),
        class_name="precise",
    )


def foot_traffic(refresh_ms: int) -> html.Div:
    """Heat of people counted, sensors now versus normal, crowding, fever alerts and silent sensors."""
    return html.Div(
        [
            _tick(ids.FOOT_TICK, refresh_ms, ids.FOOT_RENDERED),
            html.Div(id=ids.FOOT_NUMBERS, className="numbers wide"),
            html.Div(
                [
                    card("People counted", live_map(ids.FOOT_HEAT_MAP)),
                    card("Sensors: now versus normal", live_map(ids.FOOT_SENSORS_MAP)),
                ],
                className="pair maps",
            ),
            html.Div(id=ids.FOOT_ALERTS, className="trio"),
        ],
        className="page page-foot",
    )


def services(refresh_ms: int) -> html.Div:
    """Applications per area and channel, automatic share and processing time, service centers' queues."""
    return html.Div(
        [
            _tick(ids.SERVICES_TICK, refresh_ms, ids.SERVICES_RENDERED),
            html.Div(id=ids.SERVICES_NUMBERS, className="numbers wide"),
            html.Div(
                [
                    card("Applications per area · service centers", live_map(ids.SERVICES_MAP)),
                    html.Div(
                        [
                            card("Applications by channel", chart(ids.SERVICES_CHANNELS, "200px")),
                            card("Service centers: queue and counters needed", html.Div(id=ids.SERVICES_CENTERS)),
                        ],
                        className="stack",
                    ),
                ],
                className="pair",
            ),
        ],
        className="page page-services",
    )


def complaints(refresh_ms: int) -> html.Div:
    """Hotspots, complaints per area, category and routing level, and the table behind them."""
    return html.Div(
        [
            _tick(ids.COMPLAINTS_TICK, refresh_ms, ids.COMPLAINTS_RENDERED),
            html.Div(id=ids.COMPLAINTS_NUMBERS, className="numbers wide"),
            html.Div(
                [
                    card("Hotspots (Getis-Ord Gi*)", live_map(ids.COMPLAINTS_MAP)),
                    card("Complaints per area", live_map(ids.COMPLAINTS_AREAS_MAP)),
                ],
                className="pair maps",
            ),
            html.Div(
                [
                    card("By category", chart(ids.COMPLAINTS_CATEGORIES, "300px")),
                    card("Routing: where updates happened", chart(ids.COMPLAINTS_ROUTING, "300px")),
                ],
                className="pair charts",
            ),
            card(
                "Open complaints: priority, why, where they are routed",
                html.Div(id=ids.COMPLAINTS_TABLE_NOTE, className="note"),
                dash_table.DataTable(
                    id=ids.COMPLAINTS_TABLE,
                    columns=COMPLAINT_COLUMNS,
                    data=[],
                    sort_action="native",
                    filter_action="native",
                    page_size=12,
                    export_format="csv",
                    export_headers="display",
                    style_as_list_view=True,
                    style_header={"backgroundColor": "#111b2f", "color": "#d8e1f0", "fontWeight": "600"},
                    style_cell={"backgroundColor": "#0f1728", "color": "#d8e1f0", "border": "1px solid #1e2a44"},
                    style_filter={"backgroundColor": "#16213a", "color": "#d8e1f0"},
                    style_data_conditional=[
                        {"if": {"filter_query": '{overdue} = "overdue"'}, "backgroundColor": "#4a1622"},
                        {"if": {"filter_query": '{priority} = "P1"', "column_id": "priority"}, "color": "#ff6b81"},
                    ],
                    style_cell_conditional=[
                        {"if": {"column_id": c}, "maxWidth": "22em", "whiteSpace": "normal"}
                        for c in ("reason", "words", "path")
                    ],
                ),
                class_name="manager-only",
            ),
        ],
        className="page page-complaints",
    )


def health(refresh_ms: int) -> html.Div:
    """Per source: last event, rate, stream length, lag, pending, dead letters; workers' heartbeats."""
    return html.Div(
        [_tick(ids.HEALTH_TICK, refresh_ms), html.Div(id=ids.HEALTH_BODY)],
        className="page page-health",
    )


def admin(refresh_ms: int) -> html.Div:
    """Accounts, wall tokens, the audit log and the settings in force (changed with python -m accounts)."""
    return html.Div(
        [
            _tick(ids.ADMIN_TICK, max(refresh_ms, 10_000)),
            html.Button("Verify the audit chain now", id=ids.ADMIN_VERIFY, n_clicks=0, className="admin-verify"),
            html.Div(id=ids.ADMIN_BODY),
        ],
        className="page page-admin",
    )


LAYOUTS = {
    "overview": overview,
    "cases": cases,
    "foot-traffic": foot_traffic,
    "services": services,
    "complaints": complaints,
    "health": health,
    "admin": admin,
}


def page_layout(page: str, refresh_ms: int, precise_min: float = 0) -> html.Div:
    """The layout of a page by name; with ``precise_min``, the cases page holds the precise view's panel
    (for a role that may open it, for that many minutes at a time)."""
    if page == "cases":
        return cases(refresh_ms, precise_min)
    return LAYOUTS[page](refresh_ms)
