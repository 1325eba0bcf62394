"""The admin page: who has an account, which walls have tokens, what the audit log holds and the settings in
force. Changes are made with ``python -m accounts``; this page shows them, and verifies the audit chain."""

from __future__ import annotations

from dash import Input, Output, ctx

from accounts.web import access, current_account
from callbacks.deck import Deck
from layouts import ids, render

NEWEST_ENTRIES = 25


def register(app, deck: Deck) -> None:
    @app.callback(
        Output(ids.ADMIN_BODY, "children"),
        Input(ids.ADMIN_TICK, "n_intervals"),
        Input(ids.ADMIN_VERIFY, "n_clicks"),
    )
    def show_admin(_n, _verify):
        accounts = access().accounts
        if ids.ADMIN_VERIFY in set(ctx.triggered_prop_ids.values()):
            verdict = accounts.audit.verify()
            who = current_account()
            if who is not None and not verdict.ok:
                accounts.audit.append(who.name, who.role, "audit.broken", sentence=verdict.sentence())
        return render.admin(
            accounts.list(),
            accounts.wall_tokens(),
            accounts.audit.newest(NEWEST_ENTRIES),
            deck.reader.audit_state(),
            deck.settings.shown(),
            deck.settings.city_timezone,
        )
