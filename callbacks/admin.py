"""The admin page: who has an account, which walls have tokens, what the audit log holds and the settings in
force. Changes are made with ``python -m accounts``; this page shows them, and verifies the audit chain."""

from __future__ import annotations

from dash import Input, Output
from dash.exceptions import PreventUpdate

from accounts.web import access, current_account
from callbacks.deck import Deck
from layouts import ids, render

NEWEST_ENTRIES = 25


def register(app, deck: Deck) -> None:
    def admin_body():
        accounts = access().accounts
        return render.admin(
            accounts.list(),
            accounts.wall_tokens(),
            accounts.audit.newest(NEWEST_ENTRIES),
            deck.reader.audit_state(),
            deck.settings.shown(),
            deck.settings.city_timezone,
        )

    @app.callback(Output(ids.ADMIN_BODY, "children"), Input(ids.ADMIN_TICK, "n_intervals"))
    def show_admin(_n):
        return admin_body()

    # Apart from the tick's callback: a tick asked while a long chain is verified would drop the answer.
    # The verdict is kept with the audit log, so a refresh shows it too.
    @app.callback(
        Output(ids.ADMIN_BODY, "children", allow_duplicate=True),
        Input(ids.ADMIN_VERIFY, "n_clicks"),
        prevent_initial_call=True,
    )
    def verify_audit(clicks):
        if not isinstance(clicks, int) or isinstance(clicks, bool) or clicks < 1:
            raise PreventUpdate
        accounts = access().accounts
        verdict = accounts.audit.verify()
        who = current_account()
        if who is not None and not verdict.ok:
            accounts.audit.append(who.name, who.role, "audit.broken", sentence=verdict.sentence())
        return admin_body()
