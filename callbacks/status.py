"""The status around every page: freshness of each source, the stale or unreachable banner, alarms and
the clock. One cached status snapshot per tick serves every screen; the alarms in it are folded into
their shared state (raised, acknowledged, cleared) once, as it is built."""

from __future__ import annotations

import time

from dash import Input, Output, State, no_update

from callbacks import values
from callbacks.deck import DataUnavailable, Deck
from layouts import ids, render
from views import figures
from views.snapshots import status_snapshot


def status_of(deck: Deck) -> dict:
    """This tick's status snapshot, its alarms folded into their shared state as it is built (once a tick)."""
    return deck.snapshot(
        "status", None, lambda at: status_snapshot(deck.reader, deck.geo, deck.settings, at, track=deck.alarms.track)
    )


def register(app, deck: Deck) -> None:
    @app.callback(
        Output(ids.FRESHNESS, "children"),
        Output(ids.BANNER, "children"),
        Output(ids.BANNER, "className"),
        Output(ids.ALARM_TEXT, "children"),
        Output(ids.ALARM_REST, "children"),
        Output(ids.ALARM, "className"),
        Output(ids.ALARM_MAP, "figure"),
        Output(ids.ALARM_SHOWN, "data"),
        Output(ids.ALARM_COUNT, "children"),
        Output(ids.CLOCK, "children"),
        Output(ids.STATUS_SINCE, "data"),
        Input(ids.STATUS_TICK, "n_intervals"),
        State(ids.STATUS_SINCE, "data"),
        State(ids.ALARM_SHOWN, "data"),
        State(ids.SCREEN, "data"),
    )
    def show_status(_n, down_since, shown, screen):
        down_since, shown = values.moment(down_since), values.text(shown)
        type_px = values.type_px(screen) or 14
        now = deck.clock()
        clock = render.local(now, deck.settings.city_timezone)
        try:
            snap = status_of(deck)
        except DataUnavailable:
            since = down_since or time.time()
            banner, banner_class = render.unreachable_banner(since)
            return no_update, banner, banner_class, *([no_update] * 6), clock, since
        banner, banner_class = render.status_banner(snap["freshness"], snap["backlog"])
        view = snap["alarm_view"]
        text, rest, alarm_class = render.alarm(view, now, deck.settings.city_timezone)
        lead = view["lead"]
        # The locator map is drawn when another alarm takes over (or the screen's type changes), not every tick.
        drawn = f"{lead['key']}@{type_px}" if lead else None
        locator = figures.locator_map(lead, deck.geo.bounds, type_px) if lead and drawn != shown else no_update
        return (
            render.freshness(snap["freshness"]),
            banner,
            banner_class,
            text,
            rest,
            alarm_class,
            locator,
            drawn if drawn != shown else no_update,
            render.alarm_count(view),
            clock,
            None,
        )
