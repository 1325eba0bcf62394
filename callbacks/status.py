"""The status around every page: freshness of each source, the stale or unreachable banner, alarms and
the clock. One cached status snapshot per tick serves every screen."""

from __future__ import annotations

import time

from dash import Input, Output, State, no_update

from callbacks import values
from callbacks.deck import DataUnavailable, Deck
from layouts import ids, render
from views.snapshots import status_snapshot


def register(app, deck: Deck) -> None:
    @app.callback(
        Output(ids.FRESHNESS, "children"),
        Output(ids.BANNER, "children"),
        Output(ids.BANNER, "className"),
        Output(ids.ALARM, "children"),
        Output(ids.ALARM, "className"),
        Output(ids.ALARM_COUNT, "children"),
        Output(ids.CLOCK, "children"),
        Output(ids.STATUS_SINCE, "data"),
        Input(ids.STATUS_TICK, "n_intervals"),
        State(ids.STATUS_SINCE, "data"),
    )
    def show_status(_n, down_since):
        down_since = values.moment(down_since)
        clock = time.strftime("%H:%M", time.localtime(deck.clock()))
        try:
            snap = deck.snapshot("status", None, lambda now: status_snapshot(deck.reader, deck.geo, deck.settings, now))
        except DataUnavailable:
            since = down_since or time.time()
            banner, banner_class = render.unreachable_banner(since)
            return no_update, banner, banner_class, no_update, no_update, no_update, clock, since
        banner, banner_class = render.status_banner(snap["freshness"], snap["backlog"])
        alarm, alarm_class = render.alarm(snap["alarms"])
        return (
            render.freshness(snap["freshness"]),
            banner,
            banner_class,
            alarm,
            alarm_class,
            render.alarm_count(snap["alarms"]),
            clock,
            None,
        )
