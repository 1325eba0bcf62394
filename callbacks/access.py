"""What each callback's answer needs of the role asking: most answer with aggregates any signed-in screen
may see; the health page needs a manager, the precise view a health officer. The door (``accounts.web``)
asks ``needs`` before Dash reads a request, and the callbacks shape role-dependent answers themselves."""

from __future__ import annotations

import json
from typing import Any

from dash._utils import split_callback_id

from accounts.roles import NEEDS, ROLES, may
from layouts import ids
from views.privacy import masked_text
from views.state import PAGES

# By output component id; a pattern-matching id by its type. Anything else needs 'aggregates'.
NEEDED_BY_OUTPUT: dict[str, str] = {
    ids.HEALTH_BODY: "pages",
    ids.PRECISE_SAID: "precise_health",
    ids.PRECISE_STATUS: "precise_health",
    ids.PRECISE_MAP: "precise_health",
    ids.PRECISE_BODY: "precise_health",
    ids.ADMIN_BODY: "accounts",
    ids.ALARMS_BODY: "pages",
    ids.ALARMS_SAID: "act_on_alarms",
}
# What opening a page needs (its callbacks need it anyway; the navigation leaves out what a role cannot open).
NEEDED_BY_PAGE: dict[str, str] = {"health": "pages", "alarms": "pages", "admin": "accounts"}


def pages_for(role: str | None) -> tuple[str, ...]:
    """The pages a role's navigation leads to."""
    return tuple(p for p in PAGES if may(role, NEEDED_BY_PAGE.get(p, "aggregates")))


def _component(id_text: str) -> str:
    if id_text.startswith("{"):
        try:
            return str(json.loads(id_text).get("type", ""))
        except (ValueError, AttributeError):
            return ""
    return id_text


def needs(body: dict[str, Any]) -> str:
    """The capability (a key of ``accounts.roles.NEEDS``) a callback request asks for: the most of its outputs'."""
    output = body.get("output")
    if not isinstance(output, str):
        return "aggregates"
    try:
        spec = split_callback_id(output)
    except ValueError:
        return "aggregates"  # names no component and property: the callback guard refuses it (400)
    outputs = spec if isinstance(spec, list) else [spec]
    wanted = [NEEDED_BY_OUTPUT.get(_component(str(o.get("id", ""))), "aggregates") for o in outputs]
    return max(wanted, key=lambda capability: ROLES.index(NEEDS[capability]))


def complaint_rows(rows: list[dict], role: str | None) -> list[dict]:
    """The open-complaints table as a role may see it: no rows on a wall (they are single citizens' reports),
    no words for a manager, the words with contacts masked for an operator and above."""
    if not may(role, "pages"):
        return []
    if not may(role, "complaint_words"):
        return [{k: v for k, v in row.items() if k != "words"} for row in rows]
    return [row | {"words": masked_text(str(row.get("words", "")))} for row in rows]
