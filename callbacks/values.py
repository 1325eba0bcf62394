"""What a callback accepts from the browser. A value of another type is from a request no browser of this
app sends: the callback answers it with no update (HTTP 204), never with an error."""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

from dash.exceptions import PreventUpdate


def text(value: Any) -> str | None:
    """A text value or nothing (a lone surrogate is no text a browser sends, and no URL can carry it)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PreventUpdate from None
        return value
    raise PreventUpdate


def moment(value: Any) -> float | None:
    """A time in seconds since the epoch, or nothing."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise PreventUpdate


def names_of(ids: Any, key: str, known: Container[str]) -> list[str]:
    """The ``key`` of each pattern-matching id given, every one of them a known name."""
    if not isinstance(ids, list) or not all(isinstance(i, dict) and i.get(key) in known for i in ids):
        raise PreventUpdate
    return [i[key] for i in ids]


def chosen(value: Any, known: Container[str]) -> list[str]:
    """The options chosen in a multi-select, every one of them a known option (none: an empty list)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v in known for v in value):
        raise PreventUpdate
    return value


def clicked_area(click: Any) -> str | None:
    """The area id a map click names, or nothing when the click is on no area."""
    if click is None:
        return None
    points = click.get("points") if isinstance(click, dict) else None
    if not isinstance(points, list) or not points or not isinstance(points[0], dict):
        raise PreventUpdate
    location = points[0].get("location")
    if location is None or isinstance(location, str):
        return location
    raise PreventUpdate


# The smallest type on a wall is 1/74 of the screen's height: 29 px on a 2160-line (4K) screen, read from 5 m.
TYPE_SHARE = 1 / 74


def type_px(screen: Any) -> int | None:
    """The figures' type size for a wall's screen ({"h": px, "w": px}), or nothing off the wall."""
    if screen is None:
        return None
    h = screen.get("h") if isinstance(screen, dict) else None
    if not isinstance(h, int | float) or isinstance(h, bool) or not math.isfinite(h):
        raise PreventUpdate
    return int(min(max(math.ceil(h * TYPE_SHARE), 12), 120))
