"""The wall's rotation: which view of the playlist is on screen follows the clock, so every wall with the
same playlist shows the same view; the view's own refresh keeps it live."""

from __future__ import annotations

from dash import ALL, Input, Output, State, no_update

from callbacks import values
from callbacks.deck import Deck
from layouts import ids
from views.state import PAGES, parse_wall


def register(app, deck: Deck) -> None:
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
    def rotate(_n, search, showing, slots):
        search, showing, slots = values.text(search), values.text(showing), values.names_of(slots, "view", PAGES)
        plan, _notes = parse_wall(search, deck.settings.wall_views, deck.settings.wall_dwell_s)
        now = deck.clock()
        view = plan.showing(now)
        progress = {"width": f"{100 * (now % plan.dwell_s) / plan.dwell_s:.1f}%"}
        if view == showing:
            return [no_update] * len(slots), no_update, no_update, progress
        classes = ["wall-slot" if slot == view else "wall-slot parked" for slot in slots]
        return classes, view, PAGES[view], progress
