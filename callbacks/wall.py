"""The wall's rotation: which view of the playlist is on screen follows the clock, so every wall with the
same playlist shows the same view. Only the view on screen refreshes, and the next one a tick before
its turn, so a wall with five views costs the server what one page does."""

from __future__ import annotations

from dash import ALL, ClientsideFunction, Input, Output, State, no_update, set_props

from callbacks import values
from callbacks.deck import Deck
from layouts import ids
from views.state import PAGES, parse_wall


def register(app, deck: Deck) -> None:
    lead_s = deck.settings.refresh_ms / 1000

    @app.callback(
        Output({"type": ids.WALL_SLOT, "view": ALL}, "className"),
        Output(ids.WALL_VIEW, "data"),
        Output(ids.WALL_TITLE, "children"),
        Output(ids.WALL_PROGRESS, "style"),
        Input(ids.WALL_TICK, "n_intervals"),
        State(ids.URL, "search"),
        State(ids.WALL_VIEW, "data"),
        State({"type": ids.WALL_SLOT, "view": ALL}, "id"),
    )
    def rotate(_n, search, was, slots):
        search, slots = values.text(search), values.names_of(slots, "view", PAGES)
        was = was if isinstance(was, dict) else {}
        plan, _notes = parse_wall(search, deck.settings.wall_views, deck.settings.wall_dwell_s)
        now = deck.clock()
        view = plan.showing(now)
        live = sorted(plan.live(now, lead_s) & set(slots))
        progress = {"width": f"{100 * (now % plan.dwell_s) / plan.dwell_s:.1f}%"}
        if live != was.get("live"):
            for slot in slots:
                set_props(ids.PAGE_TICKS[slot], {"disabled": slot not in live})
        shown = {"showing": view, "live": live}
        if view == was.get("showing"):
            return [no_update] * len(slots), shown if shown != was else no_update, no_update, progress
        classes = ["wall-slot" if slot == view else "wall-slot parked" for slot in slots]
        return classes, shown, PAGES[view], progress

    # The figures' type follows the screen the wall is on (read in the browser, sent with each refresh).
    app.clientside_callback(
        ClientsideFunction("citydeck", "screen"),
        Output(ids.SCREEN, "data"),
        Input(ids.WALL_TICK, "n_intervals"),
        State(ids.SCREEN, "data"),
    )
