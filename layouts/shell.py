"""The shell around every page: navigation, controls, freshness of each source, the stale banner and the
alarm takeover. On the wall the same shell hides its controls and shows a clock instead."""

from __future__ import annotations

from dash import dcc, html

from layouts import ids
from layouts.pages import precise_panel
from layouts.wall import wall_layout
from layouts.widgets import KIOSK_CONFIG
from views.state import DEFAULT_WINDOW, PAGES, PLAY_SPEEDS, WINDOW_LABELS, window_label


def shell(
    districts: list[tuple[str, str]],
    refresh_ms: int,
    who: tuple[str, str, bool] | None = None,
    pages: tuple[str, ...] = tuple(PAGES),
) -> html.Div:
    """The page skeleton; the router fills ``CONTENT`` from the URL. ``who``: the signed-in name, role and
    whether its password is kept here;
    ``pages``: those the navigation leads to (the ones the role may open)."""
    nav = [
        dcc.Link(
            title,
            href="/" if page == "overview" else f"/{page}",
            id={"type": ids.NAV_LINK, "page": page},
            className="nav-link",
        )
        for page, title in PAGES.items()
        if page in pages
    ]
    controls = html.Div(
        [
            dcc.Dropdown(
                id=ids.WINDOW,
                options=window_options(DEFAULT_WINDOW),
                value=DEFAULT_WINDOW,
                clearable=False,
                searchable=False,
                className="control control-window",
            ),
            dcc.Input(
                id=ids.WINDOW_CUSTOM,
                type="text",
                placeholder="or 36h, 7d",
                debounce=True,
                maxLength=6,
                className="window-custom",
            ),
            dcc.Dropdown(
                id=ids.DISTRICT,
                options=[{"label": name, "value": did} for did, name in districts],
                value=None,
                placeholder="All districts",
                className="control control-district",
            ),
            html.Div(id=ids.BREADCRUMB, className="breadcrumb"),
            html.Button("↑ up", id=ids.DRILL_BACK, n_clicks=0, className="drill-back"),
            moment_controls(),
        ],
        className="controls",
    )
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh="callback-nav"),
            dcc.Store(id=ids.NEIGHBOURHOOD, data=None),
            dcc.Store(id=ids.STATUS_SINCE, data=None),
            dcc.Store(id=ids.SCREEN, data=None),
            dcc.Store(id=ids.PLAYBACK, data=MOMENT_PENDING),
            dcc.Store(id=ids.MOMENT_NOW, data=None),
            dcc.Interval(id=ids.STATUS_TICK, interval=refresh_ms, n_intervals=0),
            html.Header(
                [
                    html.Div(
                        [
                            html.Span("citydeck", className="brand-name"),
                            html.Span("city command center", className="brand-sub"),
                        ],
                        className="brand",
                    ),
                    html.Nav(nav, className="nav"),
                    controls,
                    html.Div(id=ids.ALARM_COUNT, className="alarm-count"),
                    html.Div(id=ids.CLOCK, className="clock"),
                    html.Div(
                        [
                            html.Span(f"{who[0]} · {who[1]}", className="who-name"),
                            *([html.A("Password", href="/password")] if who[2] else []),
                            html.A("Sign out", href="/logout"),
                        ]
                        if who
                        else [],
                        id=ids.WHO,
                        className="who",
                    ),
                ],
                className="topbar",
            ),
            html.Div(id=ids.BANNER, className="banner hidden"),
            html.Div(id=ids.NOTICE, className="notice"),
            html.Div(id=ids.AS_OF, className="as-of hidden"),
            html.Main(id=ids.CONTENT, className="content"),
            html.Div(
                [
                    html.Div(id=ids.ALARM_TEXT, className="alarm-text"),
                    dcc.Graph(
                        id=ids.ALARM_MAP,
                        figure={"data": [], "layout": {"paper_bgcolor": "#0a1020"}},
                        config=KIOSK_CONFIG,
                        responsive=True,
                        className="alarm-map",
                    ),
                    html.Div(id=ids.ALARM_REST, className="alarm-rest"),
                    dcc.Store(id=ids.ALARM_SHOWN, data=None),
                ],
                id=ids.ALARM,
                className="alarm hidden",
            ),
            html.Footer(id=ids.FRESHNESS, className="freshness"),
        ],
        id=ids.SHELL,
        className="shell",
    )


def window_options(current: str) -> list[dict]:
    """The window control's choices: the presets, and the custom window in force when there is one."""
    options = [{"label": label, "value": key} for key, label in WINDOW_LABELS.items()]
    if current not in WINDOW_LABELS:
        options.append({"label": window_label(current), "value": current})
    return options


# The playback store before the URL has set it: the pages wait for it rather than draw live for a past link.
MOMENT_PENDING = "pending"


def moment_controls() -> html.Div:
    """The time cursor: a moment to show, playback at a speed from it, and the way back to live."""
    return html.Div(
        [
            dcc.Input(
                id=ids.MOMENT_PICK,
                type="datetime-local",
                debounce=True,
                value=None,
                className="moment-pick",
            ),
            dcc.Dropdown(
                id=ids.PLAY_SPEED,
                options=[{"label": "‖ paused", "value": 0}]
                + [{"label": f"▶ ×{speed}", "value": speed} for speed in PLAY_SPEEDS],
                value=0,
                clearable=False,
                searchable=False,
                className="control control-play",
            ),
            html.Button("● Live", id=ids.GO_LIVE, n_clicks=0, className="go-live"),
        ],
        className="moment-controls",
        title="Show the city as of a past moment (its local time), paused or playing back",
    )


def validation_layout(districts: list[tuple[str, str]], refresh_ms: int) -> html.Div:
    """Every component any route can show, so Dash can check each callback against real ids."""
    # The wall holds every page in its slots, so it alone carries each page's components once.
    return html.Div([shell(districts, refresh_ms), wall_layout(refresh_ms, tuple(PAGES)), precise_panel(1)])
