"""The precise view of case tracing: for the health role only, opened with a stated reason for a limited
time, and every look written to the audit log. Its data is built per request and never cached or shared.

Two callbacks: one refreshes what the session's grant shows on each tick, one acts on the buttons. They
are kept apart because the renderer drops a running request when the same callback is asked again: a
click answered more slowly than one refresh would be lost to the next tick. What a click changes is kept
in Redis (the grant) or in a line no tick writes (the ask for a reason), so no refresh can undo it."""

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
SHOWN = (
    Output(ids.PRECISE_STATUS, "children"),
    Output(ids.PRECISE_MAP, "figure"),
    Output(ids.PRECISE_BODY, "children"),
)


def _officer():
    """The signed-in account if it may open the precise view; otherwise nothing is answered."""
    account = current_account()
    if account is None or not may(account.role, "precise_health"):
        raise PreventUpdate  # the door answered 403 already; nothing here for anyone else
    return account


def register(app, deck: Deck) -> None:
    def shown(account, state) -> tuple:
        """The status, map and body of the session's grant as it stands, for the scope and window chosen."""
        accounts, session = access().accounts, current_session()
        grant = accounts.precise_grant(account, session)
        snap = None if grant is None else snapshots.precise_snapshot(deck.reader, deck.geo, state, deck.clock())
        # Shown only if the grant still stands as the look is audited: a close meanwhile wins.
        if snap is None or not accounts.saw_precise(account, session, grant, "cases", snap["scope"], state.window):
            closed = render.precise_status(None, snapshots.scope_label(deck.geo, state), deck.settings.city_timezone)
            return closed, EMPTY_MAP, []
        return (
            render.precise_status({"reason": grant.reason, "until_ms": grant.until_ms}, snap["scope"],
                                  deck.settings.city_timezone),
            figures.case_paths_map(snap, revision("precise", state), deck.settings.map_style),
            render.precise_body(snap),
        )  # fmt: skip

    @app.callback(*SHOWN, Input(ids.CASES_TICK, "n_intervals"), *CONTROLS)
    def refresh_precise(_n, window, district, neighbourhood):
        return shown(_officer(), view_state(deck, window, district, neighbourhood))

    @app.callback(
        Output(ids.PRECISE_SAID, "children"),
        Output(ids.PRECISE_REASON, "value"),
        *(Output(o.component_id, o.component_property, allow_duplicate=True) for o in SHOWN),
        Input(ids.PRECISE_OPEN, "n_clicks"),
        Input(ids.PRECISE_CLOSE, "n_clicks"),
        State(ids.PRECISE_REASON, "value"),
        *CONTROLS,
        prevent_initial_call=True,
    )
    def act_on_precise(_open, _close, reason, window, district, neighbourhood):
        account = _officer()
        pressed = set(ctx.triggered_prop_ids.values())
        if not pressed & {ids.PRECISE_OPEN, ids.PRECISE_CLOSE}:
            raise PreventUpdate
        accounts, session = access().accounts, current_session()
        state = view_state(deck, window, district, neighbourhood)
        if ids.PRECISE_CLOSE in pressed:
            accounts.end_precise(account, session)
            return "", no_update, *shown(account, state)
        given = (values.text(reason) or "").strip()
        if len(given) < MIN_REASON:
            return ASK_REASON, no_update, no_update, no_update, no_update
        scope = snapshots.scope_label(deck.geo, state)
        accounts.grant_precise(account, session, given[:300], deck.settings.precise_grant_min * 60, scope)
        return "", "", *shown(account, state)
