"""The precise view of case tracing: for the health role only, opened with a stated reason for a limited
time, and every look written to the audit log. Its data is built per request and never cached or shared."""

from __future__ import annotations

from dash import Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate

from accounts.roles import may
from accounts.web import access, current_account, current_session
from callbacks import values
from callbacks.deck import Deck
from callbacks.pages import CONTROLS, revision
from callbacks.routing import view_state
from layouts import ids, render
from views import figures, snapshots

MIN_REASON = 8  # characters: a reason is a few words someone could be asked about, not 'x'
ASK_REASON = f"Say why you need it (at least {MIN_REASON} characters): it goes to the audit log."
EMPTY_MAP = {"data": [], "layout": {"paper_bgcolor": "#0a1020", "plot_bgcolor": "#0a1020"}}


def register(app, deck: Deck) -> None:
    @app.callback(
        Output(ids.PRECISE_STATUS, "children"),
        Output(ids.PRECISE_MAP, "figure"),
        Output(ids.PRECISE_BODY, "children"),
        Output(ids.PRECISE_REASON, "value"),
        Input(ids.CASES_TICK, "n_intervals"),
        Input(ids.PRECISE_OPEN, "n_clicks"),
        Input(ids.PRECISE_CLOSE, "n_clicks"),
        State(ids.PRECISE_REASON, "value"),
        State(ids.PRECISE_STATUS, "children"),
        *CONTROLS,
    )
    def precise(_n, _open, _close, reason, said, window, district, neighbourhood):
        account = current_account()
        if account is None or not may(account.role, "precise_health"):
            raise PreventUpdate  # the door answered 403 already; nothing here for anyone else
        accounts, session = access().accounts, current_session()
        state = view_state(deck, window, district, neighbourhood)
        scope = snapshots.scope_label(deck.geo, state)
        clear_reason = no_update
        # A click may come in the same request as a tick: look for it among all that changed.
        pressed = set(ctx.triggered_prop_ids.values())
        if ids.PRECISE_CLOSE in pressed:
            accounts.end_precise(account, session)
        elif ids.PRECISE_OPEN in pressed:
            given = (values.text(reason) or "").strip()
            if len(given) < MIN_REASON:
                return f"Say why you need it (at least {MIN_REASON} characters): it goes to the audit log.", *(
                    [no_update] * 3
                )
            accounts.grant_precise(account, session, given[:300], deck.settings.precise_grant_min * 60, scope)
            clear_reason = ""
        grant = accounts.precise_grant(account, session)
        if grant is None:
            # The ask for a reason stays until the officer acts again: the next tick must not wipe it.
            clicked = pressed & {ids.PRECISE_OPEN, ids.PRECISE_CLOSE}
            status = (
                ASK_REASON
                if values.text(said) == ASK_REASON and not clicked
                else render.precise_status(None, scope, deck.settings.city_timezone)
            )
            return status, EMPTY_MAP, [], clear_reason
        snap = snapshots.precise_snapshot(deck.reader, deck.geo, state, deck.clock())
        accounts.saw_precise(account, session, grant, "cases", snap["scope"], state.window)
        shown = {"reason": grant.reason, "until_ms": grant.until_ms}
        return (
            render.precise_status(shown, snap["scope"], deck.settings.city_timezone),
            figures.case_paths_map(snap, revision("precise", state), deck.settings.map_style),
            render.precise_body(snap),
            clear_reason,
        )
