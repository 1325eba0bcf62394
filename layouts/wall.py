"""The wall: a kiosk layout for a big screen across a room. No controls; the view on a playlist, its
title and a bar that shows when the next view comes."""

from __future__ import annotations

from dash import dcc, html

from layouts import ids
from layouts.pages import page_layout
from layouts.widgets import for_the_wall


def wall_layout(refresh_ms: int, views: tuple[str, ...] = ()) -> html.Div:
    """The wall's frame with every view of its playlist mounted once, all but one parked off screen.

    Views are shown and parked, never unmounted, so a refresh in flight never lands on a map that is
    gone, and a view comes back at once, drawn and live. A parked view does not refresh; the next one
    starts a tick before its turn.
    """
    slots = [
        html.Div(
            for_the_wall(page_layout(view, refresh_ms)),
            id={"type": ids.WALL_SLOT, "view": view},
            className="wall-slot parked",
        )
        for view in views
    ]
    return html.Div(
        [
            dcc.Interval(id=ids.WALL_TICK, interval=min(refresh_ms, 1000), n_intervals=0),
            dcc.Store(id=ids.WALL_VIEW, data=None),
            html.Div(
                [
                    html.H1(id=ids.WALL_TITLE, className="wall-title"),
                    html.Div(html.Div(id=ids.WALL_PROGRESS, className="wall-progress-bar"), className="wall-progress"),
                ],
                className="wall-head",
            ),
            html.Div(slots, id=ids.WALL_CONTENT, className="wall-content"),
        ],
        className="wall-frame",
    )
