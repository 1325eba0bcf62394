"""citydeck's machine doors: the Open311 GeoReport v2 API (complaints in and out) and NGSI-LD entities
(the city's state as FIWARE Smart Data Models), served by the dashboard's Flask server.

Their access rule is their own, not a role's: reads are public and carry no personal data, and a post
needs an Open311 API key (``CITYDECK_OPEN311_API_KEYS``).
"""

from __future__ import annotations

from api import ngsi, open311

PREFIXES = (open311.PREFIX + "/", ngsi.PREFIX + "/")


def init_app(server, deck, settings, limiter) -> None:
    """Register both APIs on a dashboard's server, their public reads limited per client address."""
    reads = limiter.shared_limit(settings.api_read_limit, scope="api-read", methods=["GET"])
    server.register_blueprint(open311.blueprint(deck, settings, limiter, reads))
    server.register_blueprint(ngsi.blueprint(deck, settings, reads))
