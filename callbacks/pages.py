"""One refresh callback per page: on each tick, the page's cached snapshot becomes figures and numbers.
The first refresh of a drilled area sends whole figures; later ticks replace their traces whole (Patch)
and keep their layout, so zoom, pan and selection stay (uirevision) and nothing flickers."""

from __future__ import annotations

from dash import Input, Output, Patch, State
from dash.exceptions import PreventUpdate

from accounts.roles import may
from accounts.web import current_role
from callbacks import access, values
from callbacks.deck import DataUnavailable, Deck
from callbacks.routing import view_state
from layouts import ids, render
from layouts.pages import CHOOSABLE_COLUMNS, complaint_columns
from views import figures, snapshots
from views.state import ViewState

# Controls are read at the next tick, not on change: a map rebuilt twice while it is still loading its
# boundaries aborts the first load (a console error), and a tick is at most a couple of seconds away.
# The last is the wall's screen, which sets the size of the figures' type (nothing on other pages).
CONTROLS = (
    State(ids.WINDOW, "value"),
    State(ids.DISTRICT, "value"),
    State(ids.NEIGHBOURHOOD, "data"),
    State(ids.SCREEN, "data"),
)


def revision(page: str, state: ViewState, type_px: int | None = None) -> str:
    """The uirevision of a page's figures: kept while the drilled area stays, so zoom survives refreshes.

    A figure's layout depends on the drilled area alone, so this is also the key of the last whole figure
    sent: a new time window or new data changes traces, never the layout (nor the operator's zoom).
    """
    return f"{page}:{state.district or ''}:{state.neighbourhood or ''}" + (f":{type_px}px" if type_px else "")


def sent(full: list[dict], rendered: str | None, key: str, type_px: int | None = None) -> list:
    """Whole figures when this drilled area has not been drawn yet, else patches that replace every trace.

    A patch carries each trace whole, as the builder made it, so an open page draws exactly what a freshly
    opened one does: new bars, new labels, a new top of the colour scale. On a wall, every text of the
    figures is set in the screen's type size (``type_px``).
    """
    if type_px:
        full = [figures.for_screen(fig, type_px) for fig in full]
    if values.text(rendered) != key:
        return full
    out = []
    for fig in full:
        patch = Patch()
        patch["data"] = fig["data"]
        out.append(patch)
    return out


def load(deck: Deck, page: str, state: ViewState, build):
    try:
        return deck.snapshot(page, state, build)
    except DataUnavailable:
        raise PreventUpdate from None


def built(deck: Deck, view: str, state: ViewState):
    """How a live map's snapshot is built: one way, whether its page or the overview asks for it first."""
    return lambda now: snapshots.view_snapshot(view, deck.reader, deck.geo, state, now, deck.settings.privacy_min_count)


def register(app, deck: Deck) -> None:
    settings = deck.settings
    style = settings.map_style

    @app.callback(
        Output(ids.OVERVIEW_CASES_MAP, "figure"),
        Output(ids.OVERVIEW_FOOT_MAP, "figure"),
        Output(ids.OVERVIEW_SERVICES_MAP, "figure"),
        Output(ids.OVERVIEW_COMPLAINTS_MAP, "figure"),
        Output(ids.OVERVIEW_CASES_NUMBERS, "children"),
        Output(ids.OVERVIEW_FOOT_NUMBERS, "children"),
        Output(ids.OVERVIEW_SERVICES_NUMBERS, "children"),
        Output(ids.OVERVIEW_COMPLAINTS_NUMBERS, "children"),
        Output(ids.OVERVIEW_RENDERED, "data"),
        Input(ids.OVERVIEW_TICK, "n_intervals"),
        *CONTROLS,
        State(ids.OVERVIEW_RENDERED, "data"),
    )
    def refresh_overview(_n, window, district, neighbourhood, screen, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood)
        snap = load(
            deck,
            "overview",
            state,
            lambda now: snapshots.overview_snapshot(
                deck.reader,
                deck.geo,
                state,
                now,
                views=lambda view: deck.snapshot(view, state, built(deck, view, state)),
            ),
        )
        rev = revision("overview", state, type_px)
        # The heat maps drill too, through the areas the services map lists (every area shown, zeros included).
        volumes = snap["services"]["volumes"]
        areas = {"level": snap["level"], "ids": volumes["ids"], "names": volumes["names"]}
        full = [
            figures.cases_map(snap["cases"] | {"level": snap["level"], "bounds": snap["bounds"]}, rev, style, True),
            figures.foot_heat_map(snap["foot"] | {"bounds": snap["bounds"]}, rev, style, True, areas),
            figures.services_map(
                snap["services"] | {"level": snap["level"], "bounds": snap["bounds"]}, rev, style, True, centers=False
            ),
            figures.complaints_map(snap["complaints"] | {"bounds": snap["bounds"]}, rev, style, True, areas),
        ]
        numbers = render.overview_numbers(snap)
        return (
            *sent(full, rendered, rev, type_px),
            numbers["cases"],
            numbers["foot"],
            numbers["services"],
            numbers["complaints"],
            rev,
        )

    @app.callback(
        Output(ids.CASES_MAP, "figure"),
        Output(ids.CODES_MAP, "figure"),
        Output(ids.CASES_NUMBERS, "children"),
        Output(ids.CASES_AREAS, "children"),
        Output(ids.CASES_CLUSTERS, "children"),
        Output(ids.CASES_RENDERED, "data"),
        Input(ids.CASES_TICK, "n_intervals"),
        *CONTROLS,
        State(ids.CASES_RENDERED, "data"),
    )
    def refresh_cases(_n, window, district, neighbourhood, screen, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood)
        snap = load(deck, "cases", state, built(deck, "cases", state))
        rev = revision("cases", state, type_px)
        full = [figures.cases_map(snap, rev, style), figures.codes_map(snap, rev, style)]
        numbers, areas, found = render.cases_numbers(snap), render.cases_areas(snap), render.cases_clusters(snap)
        return *sent(full, rendered, rev, type_px), numbers, areas, found, rev

    @app.callback(
        Output(ids.FOOT_HEAT_MAP, "figure"),
        Output(ids.FOOT_SENSORS_MAP, "figure"),
        Output(ids.FOOT_NUMBERS, "children"),
        Output(ids.FOOT_ALERTS, "children"),
        Output(ids.FOOT_RENDERED, "data"),
        Input(ids.FOOT_TICK, "n_intervals"),
        *CONTROLS,
        State(ids.FOOT_RENDERED, "data"),
    )
    def refresh_foot(_n, window, district, neighbourhood, screen, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood)
        snap = load(deck, "foot-traffic", state, built(deck, "foot-traffic", state))
        rev = revision("foot-traffic", state, type_px)
        full = [figures.foot_heat_map(snap, rev, style), figures.sensors_map(snap, rev, style)]
        return *sent(full, rendered, rev, type_px), render.foot_numbers(snap), render.foot_alerts(snap), rev

    @app.callback(
        Output(ids.SERVICES_MAP, "figure"),
        Output(ids.SERVICES_CHANNELS, "figure"),
        Output(ids.SERVICES_NUMBERS, "children"),
        Output(ids.SERVICES_CENTERS, "children"),
        Output(ids.SERVICES_RENDERED, "data"),
        Input(ids.SERVICES_TICK, "n_intervals"),
        *CONTROLS,
        State(ids.SERVICES_RENDERED, "data"),
    )
    def refresh_services(_n, window, district, neighbourhood, screen, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood)
        snap = load(deck, "services", state, built(deck, "services", state))
        rev = revision("services", state, type_px)
        channels = snap["channels"]
        full = [
            figures.services_map(snap, rev, style),
            figures.bar_chart(list(channels), list(channels.values()), rev, title=snap["labels"]["channels"]),
        ]
        return *sent(full, rendered, rev, type_px), render.services_numbers(snap), render.service_centers(snap), rev

    @app.callback(
        Output(ids.COMPLAINTS_MAP, "figure"),
        Output(ids.COMPLAINTS_AREAS_MAP, "figure"),
        Output(ids.COMPLAINTS_CATEGORIES, "figure"),
        Output(ids.COMPLAINTS_ROUTING, "figure"),
        Output(ids.COMPLAINTS_NUMBERS, "children"),
        Output(ids.COMPLAINTS_TABLE, "rowData"),
        Output(ids.COMPLAINTS_TABLE, "csvExportParams"),
        Output(ids.COMPLAINTS_TABLE_NOTE, "children"),
        Output(ids.COMPLAINTS_RENDERED, "data"),
        Input(ids.COMPLAINTS_TICK, "n_intervals"),
        *CONTROLS,
        State(ids.COMPLAINTS_RENDERED, "data"),
    )
    def refresh_complaints(_n, window, district, neighbourhood, screen, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood)
        snap = load(deck, "complaints", state, built(deck, "complaints", state))
        rev = revision("complaints", state, type_px)
        area = deck.geo.names.get(state.neighbourhood or state.district) if state.district else None
        areas = snap["areas"]
        categories = snap["categories"]
        routing = snap["routing"]
        actions = sorted({a for by_action in routing.values() for a in by_action})
        full = [
            figures.complaints_map(snap, rev, style),
            figures.services_map(
                {"volumes": areas, "level": snap["level"], "bounds": snap["bounds"]},
                rev,
                style,
                centers=False,
                what="complaints",
            ),
            figures.bar_chart(
                list(categories), list(categories.values()), rev, color="#f97316", title=snap["labels"]["categories"]
            ),
            figures.stacked_bars(
                list(routing),
                {a: [routing[level].get(a, 0) for level in routing] for a in actions},
                rev,
                ACTION_COLORS,
                title=snap["labels"]["routing"],
            ),
        ]
        return (
            *sent(full, rendered, rev, type_px),
            render.complaints_numbers(snap),
            access.complaint_rows(snap["table"], current_role()),
            # The export's name is set with the rows it would write, so a file says which rows they were.
            {"fileName": render.export_file_name("complaints", area, state.window, snap["at"], settings.city_timezone)},
            render.complaints_table_note(snap),
            rev,
        )

    @app.callback(
        Output(ids.COMPLAINTS_TABLE, "columnDefs"),
        Input(ids.COMPLAINTS_COLUMNS, "value"),
        prevent_initial_call=True,
    )
    def show_complaint_columns(shown):
        return complaint_columns(values.chosen(shown, CHOOSABLE_COLUMNS))

    @app.callback(
        Output(ids.COMPLAINTS_TABLE, "exportDataAsCsv"),
        Input(ids.COMPLAINTS_EXPORT, "n_clicks"),
        prevent_initial_call=True,
    )
    def export_complaints(_n):
        return True

    @app.callback(Output(ids.HEALTH_BODY, "children"), Input(ids.HEALTH_TICK, "n_intervals"))
    def refresh_health(_n):
        snap = load(deck, "health", None, lambda now: snapshots.health_snapshot(deck.reader, now))
        return render.health(snap, raw_fields=may(current_role(), "raw_fields"))


ACTION_COLORS = {
    "assigned": "#38bdf8",
    "escalated": "#f97316",
    "bounced": "#a855f7",
    "resolved": "#22c55e",
    "reopened": "#ef4444",
    "closed": "#64748b",
}
