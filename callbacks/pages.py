"""One refresh callback per page: on each tick, the page's cached snapshot becomes figures and numbers.
The first refresh of a drilled area sends whole figures; later ticks send only what changed since this
browser last drew it: a figure's traces whole (Patch), keeping its layout, so zoom, pan and selection stay
(uirevision) and nothing flickers; a block of numbers or a table anew; nothing for what did not change."""

from __future__ import annotations

import hashlib
from typing import Any

from dash import Input, Output, Patch, State, no_update
from dash.exceptions import PreventUpdate
from plotly.io.json import to_json_plotly

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
CONTROLS = (State(ids.WINDOW, "value"), State(ids.DISTRICT, "value"), State(ids.NEIGHBOURHOOD, "data"))
# The page's moment (``?at=``, playing back with ``&play=``), as the shell keeps it from the URL.
# An input: a page draws at once when the URL sets its moment, and waits for it rather than draw live first.
MOMENT = Input(ids.PLAYBACK, "data")
# The wall's screen sets the size of the figures' type (nothing on other pages). An input, not a state, so a
# wall's first refresh waits for the browser to say its size rather than draw in a type that is too small.
SCREEN = Input(ids.SCREEN, "data")


def revision(page: str, state: ViewState, type_px: int | None = None) -> str:
    """The uirevision of a page's figures: kept while the drilled area stays (and, on a wall, the screen's
    type size), so zoom survives refreshes."""
    return f"{page}:{state.district or ''}:{state.neighbourhood or ''}" + (f":{type_px}px" if type_px else "")


def digest(content: Any) -> str:
    """A short fingerprint of an output's content, from the JSON the browser would receive."""
    return hashlib.blake2b(to_json_plotly(content).encode(), digest_size=8).hexdigest()


def drawn(rendered: Any, layout: str, outputs: int) -> list[str] | None:
    """The digests of what this browser last drew under these figure layouts, or nothing when it drew none.

    A store of another shape (a page of an older release, or a request no page sends) counts as nothing
    drawn: the answer is then whole, which is always right.
    """
    if not isinstance(rendered, dict) or rendered.get("layout") != layout:
        return None
    digests = rendered.get("digests")
    if not isinstance(digests, list) or len(digests) != outputs or not all(isinstance(d, str) for d in digests):
        return None
    return digests


def trace_digests(traces: list[dict]) -> list[dict[str, str]]:
    """A figure's traces as the digest of each of their keys: what a patch compares to resend changed keys only."""
    return [{key: digest(value) for key, value in trace.items()} for trace in traces]


def drawn_traces(rendered: Any, figure: int) -> list[dict[str, str]] | None:
    """The key digests of a figure's traces as this browser last drew them, or nothing when unknown."""
    traces = rendered.get("traces") if isinstance(rendered, dict) else None
    kept = traces.get(str(figure)) if isinstance(traces, dict) else None
    if not isinstance(kept, list) or not all(
        isinstance(t, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in t.items()) for t in kept
    ):
        return None
    return kept


def changed_traces(data: list[dict], before: list[dict[str, str]] | None, now: list[dict[str, str]]) -> Patch:
    """A patch of a figure's traces: each key whose content changed since the browser drew it, or every trace
    whole when their number or their keys changed (or what was drawn is unknown)."""
    patch = Patch()
    if before is None or len(before) != len(now) or any(b.keys() != n.keys() for b, n in zip(before, now)):
        patch["data"] = data
        return patch
    for i, (then, digests) in enumerate(zip(before, now)):
        for key, d in digests.items():
            if then[key] != d:
                patch["data"][i][key] = data[i][key]
    return patch


def sent(full: list[dict], blocks: list, rendered: Any, type_px: int | None = None) -> tuple:
    """A refresh's answer: its figures, then its blocks (numbers, tables), then the page's store.

    While the figures' layouts are not the ones this browser drew (another drilled area, or on a wall
    another type size), whole figures and every block, and a store with a digest of the layouts, one of
    each output and one of each key of each figure's traces. Afterwards, nothing for an output whose content
    is what this browser last drew; for a figure whose traces or title changed (a chart's title names its
    window), a patch of the keys of its traces that changed (a sensor's count and ratio, not its place and
    name; every trace whole when traces came or went), and the title, keeping the rest of the layout: the
    map's view, the operator's zoom; a block anew. So an open page draws exactly what a freshly opened one
    does, and a tick with nothing new gets no answer at all (HTTP 204).

    The store is patched only at the digests of what this answer sends, so an answer that arrives after
    a later one never marks as drawn a content the browser no longer shows. On a wall, every text of the
    figures is set in the screen's type size (``type_px``).
    """
    if type_px:
        full = [figures.for_screen(fig, type_px) for fig in full]
    layout = digest([{k: v for k, v in fig["layout"].items() if k != "title"} for fig in full])
    contents = [{"data": fig["data"], "title": fig["layout"].get("title")} for fig in full] + list(blocks)
    digests = [digest(c) for c in contents]
    traces = {str(i): trace_digests(fig["data"]) for i, fig in enumerate(full)}
    titles = {str(i): digest(fig["layout"].get("title")) for i, fig in enumerate(full)}
    before = drawn(rendered, layout, len(contents))
    if before is None:
        return (*full, *blocks, {"layout": layout, "digests": digests, "traces": traces, "titles": titles})
    out: list = []
    store = Patch()
    changed = False
    drawn_titles = rendered["titles"] if isinstance(rendered.get("titles"), dict) else {}  # a store may lack them
    for i, (content, now, then) in enumerate(zip(contents, digests, before)):
        if now == then:
            out.append(no_update)
            continue
        changed = True
        store["digests"][i] = now
        if i < len(full):
            patch = changed_traces(content["data"], drawn_traces(rendered, i), traces[str(i)])
            if content["title"] is not None and drawn_titles.get(str(i)) != titles[str(i)]:
                patch["layout"]["title"] = content["title"]
            store["traces"][str(i)] = traces[str(i)]
            store["titles"][str(i)] = titles[str(i)]
            out.append(patch)
        else:
            out.append(content)
    if not changed:
        raise PreventUpdate  # an empty answer: nothing to draw
    return (*out, store)


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
        SCREEN,
        *CONTROLS,
        MOMENT,
        State(ids.OVERVIEW_RENDERED, "data"),
    )
    def refresh_overview(_n, screen, window, district, neighbourhood, playback, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood, playback)
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
        blocks = [numbers["cases"], numbers["foot"], numbers["services"], numbers["complaints"]]
        return sent(full, blocks, rendered, type_px)

    @app.callback(
        Output(ids.CASES_MAP, "figure"),
        Output(ids.CODES_MAP, "figure"),
        Output(ids.CASES_NUMBERS, "children"),
        Output(ids.CASES_AREAS, "children"),
        Output(ids.CASES_CLUSTERS, "children"),
        Output(ids.CASES_RENDERED, "data"),
        Input(ids.CASES_TICK, "n_intervals"),
        SCREEN,
        *CONTROLS,
        MOMENT,
        State(ids.CASES_RENDERED, "data"),
    )
    def refresh_cases(_n, screen, window, district, neighbourhood, playback, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood, playback)
        snap = load(deck, "cases", state, built(deck, "cases", state))
        rev = revision("cases", state, type_px)
        full = [figures.cases_map(snap, rev, style), figures.codes_map(snap, rev, style)]
        blocks = [render.cases_numbers(snap), render.cases_areas(snap), render.cases_clusters(snap)]
        return sent(full, blocks, rendered, type_px)

    @app.callback(
        Output(ids.FOOT_HEAT_MAP, "figure"),
        Output(ids.FOOT_SENSORS_MAP, "figure"),
        Output(ids.FOOT_NUMBERS, "children"),
        Output(ids.FOOT_ALERTS, "children"),
        Output(ids.FOOT_RENDERED, "data"),
        Input(ids.FOOT_TICK, "n_intervals"),
        SCREEN,
        *CONTROLS,
        MOMENT,
        State(ids.FOOT_RENDERED, "data"),
    )
    def refresh_foot(_n, screen, window, district, neighbourhood, playback, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood, playback)
        snap = load(deck, "foot-traffic", state, built(deck, "foot-traffic", state))
        rev = revision("foot-traffic", state, type_px)
        full = [figures.foot_heat_map(snap, rev, style), figures.sensors_map(snap, rev, style)]
        return sent(full, [render.foot_numbers(snap), render.foot_alerts(snap)], rendered, type_px)

    @app.callback(
        Output(ids.SERVICES_MAP, "figure"),
        Output(ids.SERVICES_CHANNELS, "figure"),
        Output(ids.SERVICES_NUMBERS, "children"),
        Output(ids.SERVICES_CENTERS, "children"),
        Output(ids.SERVICES_RENDERED, "data"),
        Input(ids.SERVICES_TICK, "n_intervals"),
        SCREEN,
        *CONTROLS,
        MOMENT,
        State(ids.SERVICES_RENDERED, "data"),
    )
    def refresh_services(_n, screen, window, district, neighbourhood, playback, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood, playback)
        snap = load(deck, "services", state, built(deck, "services", state))
        rev = revision("services", state, type_px)
        channels = snap["channels"]
        full = [
            figures.services_map(snap, rev, style),
            figures.bar_chart(list(channels), list(channels.values()), rev, title=snap["labels"]["channels"]),
        ]
        return sent(full, [render.services_numbers(snap), render.service_centers(snap)], rendered, type_px)

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
        SCREEN,
        *CONTROLS,
        MOMENT,
        State(ids.COMPLAINTS_RENDERED, "data"),
    )
    def refresh_complaints(_n, screen, window, district, neighbourhood, playback, rendered):
        type_px = values.type_px(screen)
        state = view_state(deck, window, district, neighbourhood, playback)
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
        blocks = [
            render.complaints_numbers(snap),
            access.complaint_rows(snap["table"], current_role()),
            # The export's name is set with the rows it would write, so a file says which rows they were.
            {"fileName": render.export_file_name("complaints", area, state.window, snap["at"], settings.city_timezone)},
            render.complaints_table_note(snap),
        ]
        return sent(full, blocks, rendered, type_px)

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
