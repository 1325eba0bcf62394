"""The alarms page: the alarms in force ranked, acknowledging one with a note (operators; who and when go
to the audit log, and the wall stops taking over for it), and the alarm log, also as CSV."""

from __future__ import annotations

import csv
import io

from dash import Input, Output, State, no_update
from dash.exceptions import PreventUpdate
from flask import Response, abort

from accounts.audit import csv_cell
from accounts.roles import may
from accounts.web import access, current_name, current_role
from callbacks import values
from callbacks.deck import DataUnavailable, Deck
from callbacks.status import status_of
from data.alarms import LOG_FIELDS
from layouts import ids, render

KINDS = ("cases", "crowding", "services", "complaints")
LOG_ROWS = 100


def register(app, deck: Deck) -> None:
    @app.callback(
        Output(ids.ALARMS_BODY, "children"),
        Output(ids.ALARMS_LOG, "children"),
        Output(ids.ALARMS_PICK, "options"),
        Input(ids.ALARMS_TICK, "n_intervals"),
        Input(ids.ALARMS_SOURCE, "value"),
        Input(ids.ALARMS_STATE, "value"),
    )
    def refresh_alarms(_n, source, state):
        source, state = values.text(source) or "all", values.text(state) or "all"
        if source not in ("all", *KINDS) or state not in ("all", "raised", "acknowledged"):
            raise PreventUpdate
        try:
            snap = status_of(deck)
        except DataUnavailable:
            raise PreventUpdate from None
        shown = [
            a
            for a in snap["alarms"]
            if (source == "all" or a["kind"] == source) and (state == "all" or a["state"] == state)
        ]
        tz = deck.settings.city_timezone
        body = render.alarms_in_force(shown, deck.clock(), tz)
        log_body = render.alarm_log(deck.alarms.log(LOG_ROWS), tz)
        pick = (
            [
                {"label": f"{a['what']} — {a['where']}", "value": a["key"]}
                for a in snap["alarms"]
                if a["state"] == "raised"
            ]
            if may(current_role(), "act_on_alarms")
            else []
        )
        return body, log_body, pick

    @app.callback(
        Output(ids.ALARMS_SAID, "children"),
        Output(ids.ALARMS_NOTE, "value"),
        Input(ids.ALARMS_ACK, "n_clicks"),
        State(ids.ALARMS_PICK, "value"),
        State(ids.ALARMS_NOTE, "value"),
        prevent_initial_call=True,
    )
    def acknowledge(clicks, key, note):
        key, note = values.text(key), (values.text(note) or "").strip()
        if not isinstance(clicks, int) or isinstance(clicks, bool) or clicks < 1:
            raise PreventUpdate
        role = current_role()
        if not may(role, "act_on_alarms"):
            raise PreventUpdate  # the door answered 403 already
        if not key:
            return "Choose the alarm you are acknowledging.", no_update
        if len(note) < 3:
            return "Say in a note what is being done (at least 3 characters): it goes to the log.", no_update
        who = current_name()
        alarm, ack, fresh = deck.alarms.acknowledge(key, who, role, note, int(deck.clock() * 1000))
        if alarm is None:
            return "That alarm is no longer in force.", no_update
        if not fresh:
            return (
                f"Already acknowledged by {ack['by']} at {render.when(ack['at_ms'], deck.settings.city_timezone)}: {ack['note']}",
                no_update,
            )
        access().accounts.audit.append(
            who, role, "alarm_acknowledged", alarm=key, what=alarm.get("what", ""), where=alarm.get("where", ""),
            note=ack["note"],
        )  # fmt: skip
        return f"Acknowledged: {alarm['what']} — {alarm['where']}.", ""

    @app.server.route("/alarms/log.csv")
    def alarm_log_csv():
        if not may(current_role(), "pages"):
            abort(403)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["when", *LOG_FIELDS])
        for e in deck.alarms.log():
            # A cell a spreadsheet would read as a formula is prefixed, as the audit export does.
            writer.writerow(
                [render.when(e["at_ms"], deck.settings.city_timezone), *(csv_cell(e[f]) for f in LOG_FIELDS)]
            )
        stamp = render.local(deck.clock(), deck.settings.city_timezone, "%Y-%m-%dT%H%M")
        return Response(
            out.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="citydeck-alarm-log-{stamp}.csv"'},
        )
