"""citydeck's dashboard: the app factory, the WSGI ``server`` for gunicorn, and ``python app.py``, which
starts the whole demo (Redis, aggregator, simulators, dashboard) through the launcher."""

from __future__ import annotations

import time
from collections.abc import Callable

from dash import Dash
from flask import Response, abort, request
from flask_compress import Compress

import api
from accounts import web
from accounts.store import Accounts
from callbacks import access, guard, register
from callbacks.deck import Deck
from data.connection import connect
from data.keys import Keys
from geo.configured import city_for
from layouts.shell import shell, validation_layout
from settings import PROJECT_ROOT, Settings
from views.geography import GEOJSON_URL

REDIS_TIMEOUT_S = 2.0


def create_app(settings: Settings | None = None, clock: Callable[[], float] = time.time) -> Dash:
    """Build a fresh dashboard app for these settings (default: from the environment).

    ``clock`` is the time the views answer for: the wall clock, or one a test moves through a simulated day.
    """
    settings = settings or Settings.from_env()
    # With no REDIS_URL the embedded Redis is joined (or started); in production that is refused here.
    client, _embedded = connect(settings, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    deck = Deck(settings, client, lambda: city_for(settings), clock=clock)
    app = Dash(
        __name__,
        title="citydeck",
        update_title=None,
        assets_folder=str(PROJECT_ROOT / "assets"),
    )
    app.layout = lambda: shell(deck.geo.districts, settings.refresh_ms, _who(), access.pages_for(web.current_role()))
    app.validation_layout = validation_layout([], settings.refresh_ms)
    deck.init_app(app.server)
    app.server.extensions["citydeck"] = deck
    # The door comes first: nothing reads a request before it knows who asks and what they may see.
    keys = Keys(settings.key_prefix)
    door = web.init_app(app, settings, client, Accounts.of(settings, client), access.needs, keys, api.PREFIXES)
    api.init_app(app.server, deck, settings, door.limiter)
    _serve_geojson(app.server, deck)
    _compress(app.server)
    register(app, deck)
    guard.init_app(app, settings.max_request_bytes)
    return app


def _who() -> tuple[str, str, bool] | None:
    """The signed-in name and role for the page's corner, and whether its password is ours to change."""
    account = web.current_account()
    return (account.name, account.role, account.source == "local") if account is not None else None


def _compress(server) -> None:
    """Send every text answer gzipped to a browser that accepts it: figures' coordinates and names, GeoJSON
    boundaries and the script bundles pack several times smaller. Only gzip, which every client decodes;
    a streamed answer goes as it is produced, never held back to be packed. HTML pages go as they are: the
    sign-in forms carry a token beside text from the URL, which compressed would leak its length (BREACH),
    and pages are a few kilobytes anyway."""
    server.config.update(
        COMPRESS_ALGORITHM=["gzip"],
        COMPRESS_STREAMS=False,
        COMPRESS_MIMETYPES=[
            "text/css",
            "text/csv",
            "text/plain",
            "text/xml",
            "text/javascript",
            "application/javascript",
            "application/json",
            "application/geo+json",
            "application/ld+json",
            "application/xml",
            "image/svg+xml",
        ],
    )
    Compress(server)


def _serve_geojson(server, deck: Deck) -> None:
    """Serve each level's simplified boundaries once, at a static URL browsers and proxies cache."""

    @server.route(GEOJSON_URL.format(level="<level>"))
    def geojson(level: str):
        if level not in ("district", "neighbourhood", "community"):
            abort(404)
        etag = deck.geo.geojson_etag(level)
        if etag in request.if_none_match:
            return Response(status=304, headers={"ETag": f'"{etag}"', "Cache-Control": "public, max-age=86400"})
        response = Response(deck.geo.geojson(level), mimetype="application/geo+json")
        response.set_etag(etag)
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response


def __getattr__(name: str):
    # gunicorn's `app:server` builds the app on first access, in the worker, never at import.
    if name == "server":
        return create_app().server
    raise AttributeError(name)


if __name__ == "__main__":
    from launcher import main

    raise SystemExit(main())
