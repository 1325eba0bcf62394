"""The dashboard's callbacks, registered on an app by ``register(app, deck)``; each is thin: unpack, ask
the deck for a cached snapshot, call a pure builder, return."""

from __future__ import annotations

from callbacks import admin, alarms, pages, precise, routing, status, wall
from callbacks.deck import Deck


def register(app, deck: Deck) -> None:
    """Register every callback of the dashboard on ``app``."""
    routing.register(app, deck)
    status.register(app, deck)
    pages.register(app, deck)
    wall.register(app, deck)
    precise.register(app, deck)
    admin.register(app, deck)
    alarms.register(app, deck)
