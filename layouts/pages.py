"""One layout function per page. A page carries its own refresh interval, so its callback fires only
while it is on screen; its components start empty and the first refresh fills them."""

from __future__ import annotations

from collections.abc import Iterable

import dash_ag_grid as dag
from dash import dcc, html

from layouts import ids
from layouts.widgets import card, chart, live_map

# The open-complaints table: each row's field and its header, in the order shown. Every column but the
# complaint's id may be hidden; 'waited (h)' is a number, so it sorts and filters as one.
COMPLAINT_COLUMNS = (
    ("priority", "priority"),
    ("reason", "why"),
    ("category", "category"),
    ("community", "community"),
    ("district", "district"),
    ("holder", "held by"),
    ("path", "path"),
    ("waited_h", "waited (h)"),
    ("overdue", "overdue"),
    ("bounced", "bounced"),
    ("status", "status"),
    ("complaint", "complaint"),
    ("words", "words"),
)
ALWAYS_SHOWN = "complaint"
CHOOSABLE_COLUMNS = tuple(field for field, _ in COMPLAINT_COLUMNS if field != ALWAYS_SHOWN)
_LONG_TEXT = ("reason", "path", "words")


def complaint_columns(shown: Iterable[str] = CHOOSABLE_COLUMNS) -> list[dict]:
    """The table's column definitions with only the ``shown`` columns (and the complaint's id) visible."""
    shown = set(shown) | {ALWAYS_SHOWN}
    columns = []
    for field, header in COMPLAINT_COLUMNS:
        column = {"field": field, "headerName": header, "hide": field not in shown}
        if field == "waited_h":
            column |= {"cellDataType": "number", "filter": "agNumberColumnFilter", "type": "numericColumn"}
        elif field == "priority":
            column["cellClassRules"] = {"priority-p1": "params.value === 'P1'"}
        if field in _LONG_TEXT:
            column |= {"wrapText": True, "autoHeight": True, "minWidth": 170}
        columns.append(column)
    return columns


def complaints_grid() -> html.Div:
    """The open complaints as a grid: every column sorts and filters as text (numbers as numbers), columns
    can be hidden, overdue rows are marked, and the rows filtered and sorted export to a CSV file whose name
    the refresh sets (view, area, window, time)."""
    return html.Div(
        [
            html.Div(
                [
                    dcc.Dropdown(
                        id=ids.COMPLAINTS_COLUMNS,
                        options=[{"label": h, "value": f} for f, h in COMPLAINT_COLUMNS if f != ALWAYS_SHOWN],
                        value=list(CHOOSABLE_COLUMNS),
                        multi=True,
                        placeholder="Columns shown",
                        className="grid-columns",
                    ),
                    html.Button("Export CSV", id=ids.COMPLAINTS_EXPORT, n_clicks=0, className="grid-export"),
                ],
                className="grid-tools",
            ),
            dag.AgGrid(
                id=ids.COMPLAINTS_TABLE,
                columnDefs=complaint_columns(),
                rowData=[],
                defaultColDef={
                    "sortable": True,
                    "filter": "agTextColumnFilter",
                    "floatingFilter": True,
                    "resizable": True,
                    "minWidth": 80,
                },
                getRowId="params.data.complaint",
                rowClassRules={"complaint-overdue": "params.data.overdue === 'overdue'"},
                columnSize="responsiveSizeToFit",
                csvExportParams={"fileName": "citydeck-complaints.csv"},
                dashGridOptions={
                    "pagination": True,
                    "paginationPageSize": 20,
                    "domLayout": "autoHeight",
                    # A page's rows and columns are all in the document, in the order shown, so a find in
                    # the page, a screen reader or a copy gets every cell, not only those scrolled into view.
                    "ensureDomOrder": True,
                    "suppressColumnVirtualisation": True,
                    "enableCellTextSelection": True,
                    "animateRows": False,
                },
                className="complaints-grid",
            ),
        ]
    )


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
        html.Div(id=ids.PRECISE_SAID, className="precise-said"),
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
                complaints_grid(),
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


def alarms(refresh_ms: int) -> html.Div:
    """The alarms in force, ranked, with the numbers behind each; acknowledging one with a note (operators);
    and the log of the last days, exportable as CSV."""
    sources = [{"label": "every source", "value": "all"}] + [
        {"label": title, "value": kind}
        for kind, title in (
            ("cases", "case tracing"),
            ("crowding", "foot traffic"),
            ("services", "services"),
            ("complaints", "complaints"),
        )
    ]
    states = [{"label": s, "value": s} for s in ("all", "raised", "acknowledged")]
    return html.Div(
        [
            _tick(ids.ALARMS_TICK, refresh_ms),
            html.Div(
                [
                    dcc.Dropdown(
                        id=ids.ALARMS_SOURCE, options=sources, value="all", clearable=False, className="control"
                    ),
                    dcc.Dropdown(
                        id=ids.ALARMS_STATE, options=states, value="all", clearable=False, className="control"
                    ),
                ],
                className="alarm-filters controls",
            ),
            card(
                "Acknowledge an alarm",
                html.Div(
                    [
                        dcc.Dropdown(
                            id=ids.ALARMS_PICK,
                            options=[],
                            placeholder="an alarm not yet acknowledged",
                            className="control alarm-pick",
                        ),
                        dcc.Input(
                            id=ids.ALARMS_NOTE,
                            type="text",
                            maxLength=300,
                            className="precise-reason",
                            placeholder="Note, e.g. 'team 3 on the way, ETA 10 min'",
                        ),
                        html.Button("Acknowledge", id=ids.ALARMS_ACK, n_clicks=0, className="alarm-ack"),
                    ],
                    className="precise-ask",
                ),
                html.Div(id=ids.ALARMS_SAID, className="alarms-said"),
                class_name="operator-only",
            ),  # fmt: skip
            card("Alarms in force", html.Div(id=ids.ALARMS_BODY)),
            card(
                "Alarm log",
                html.A("Export the log as CSV", href="/alarms/log.csv", className="alarm-export"),
                html.Div(id=ids.ALARMS_LOG),
            ),
        ],
        className="page page-alarms stack",
    )


LAYOUTS = {
    "overview": overview,
    "cases": cases,
    "foot-traffic": foot_traffic,
    "services": services,
    "complaints": complaints,
    "health": health,
    "alarms": alarms,
    "admin": admin,
}


def page_layout(page: str, refresh_ms: int, precise_min: float = 0) -> html.Div:
    """The layout of a page by name; with ``precise_min``, the cases page holds the precise view's panel
    (for a role that may open it, for that many minutes at a time)."""
    if page == "cases":
        return cases(refresh_ms, precise_min)
    return LAYOUTS[page](refresh_ms)
