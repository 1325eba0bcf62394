"""What a manager's view shows (page, time window, district, neighbourhood), read from and written to the URL.

A bad value in the query string never fails a request: it falls back to the default and the
fallback is reported, so the page can say so.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from data.read.windows import DAY_S, WINDOWS

PAGES: dict[str, str] = {
    "overview": "Overview",
    "cases": "Case tracing",
    "foot-traffic": "Foot traffic",
    "services": "Services",
    "complaints": "Complaints",
    "health": "Health",
    "alarms": "Alarms",
    "admin": "Admin",
}
# What a wall may rotate through: the views of aggregates (the health and admin pages are for people signed in).
WALL_VIEWS: tuple[str, ...] = ("overview", "cases", "foot-traffic", "services", "complaints")
PATHS: dict[str, str] = {"/": "overview", **{f"/{name}": name for name in PAGES if name != "overview"}}
WALL_PATH = "/wall"

# The windows (name -> seconds) are data.read.windows.WINDOWS, which the workers publish hotspots for.
WINDOW_LABELS: dict[str, str] = {"15m": "last 15 min", "1h": "last hour", "24h": "last 24 h"}
DEFAULT_WINDOW = "1h"
# A custom window: a number of hours or days ('36h', '7d'), up to a week: a longer one reads too many hourly
# buckets for a page that refreshes; a page counts what history holds of it.
CUSTOM_WINDOW = re.compile(r"([1-9][0-9]{0,3})([hd])")
LONGEST_WINDOW = "7d"
LONGEST_WINDOW_S = 7 * DAY_S


def window_seconds(window: str | None) -> int | None:
    """The length of a preset or custom window, or None when it is neither (or longer than a week)."""
    if window in WINDOWS:
        return WINDOWS[window]
    match = CUSTOM_WINDOW.fullmatch(window or "")
    if match is None:
        return None
    seconds = int(match[1]) * (3600 if match[2] == "h" else DAY_S)
    return seconds if seconds <= LONGEST_WINDOW_S else None


def window_label(window: str) -> str:
    """How a page names its window: a preset's words, or 'last 36 h' / 'last 7 d'."""
    return WINDOW_LABELS.get(window) or f"last {window[:-1]} {window[-1]}"


@dataclass(frozen=True)
class ViewState:
    """The filters of a manager's view."""

    window: str = DEFAULT_WINDOW
    district: str | None = None
    neighbourhood: str | None = None
    # The moment the view answers for, in the city's local time ('2019-10-06T08:00'); None: live.
    at: str | None = None
    # Playing back from that moment: city seconds per second (0: paused at it).
    play: int = 0

    @property
    def window_s(self) -> int:
        return window_seconds(self.window) or WINDOWS[DEFAULT_WINDOW]

    @property
    def level(self) -> str:
        """The level the area maps show: districts, a district's neighbourhoods, or a neighbourhood's communities."""
        if self.neighbourhood:
            return "community"
        return "neighbourhood" if self.district else "district"

    def up(self) -> ViewState:
        """The state one drill level up."""
        if self.neighbourhood:
            return replace(self, neighbourhood=None)
        return replace(self, district=None)


def page_of(pathname: str | None) -> str | None:
    """Return the page a path shows, or None for an unknown path."""
    return PATHS.get((pathname or "/").rstrip("/") or "/")


def _first(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0].strip() if values else None


AT_FORMAT = "%Y-%m-%dT%H:%M"
PLAY_SPEEDS = (10, 60, 600)  # what the playback control offers; the URL may ask for any speed up to the last
PLAY_LOOK_BACK_S = DAY_S  # where playing starts from a live page: a day ago


def spell_at(moment: datetime) -> str:
    """A moment's one spelling: minutes, and seconds only when it has them (playback moves by seconds)."""
    return moment.strftime(AT_FORMAT + (":%S" if moment.second else ""))


def at_of(epoch_s: float, tz: str) -> str:
    """The spelling of an epoch second in the city's local time."""
    return spell_at(datetime.fromtimestamp(int(epoch_s), ZoneInfo(tz)).replace(tzinfo=None))


def parse_at(text: str | None) -> tuple[str | None, str | None]:
    """Return a moment of the URL in its one spelling ('2019-10-06T08:00', the city's local time), and
    a note when it is not one; an offset given with it is dropped (the moment is read as local time)."""
    if not text:
        return None, None
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        return None, f"{text[:25]!r} is not a moment (like 2019-10-06T08:00): showing live"
    if not 1970 <= moment.year <= 2999:
        return None, f"{text[:25]!r} is not a moment (like 2019-10-06T08:00): showing live"
    return spell_at(moment.replace(tzinfo=None, microsecond=0)), None


def moment_of(at: str, tz: str) -> float:
    """The epoch second of a view's moment, read in the city's time zone."""
    return datetime.fromisoformat(at).replace(tzinfo=ZoneInfo(tz)).timestamp()


def parse_play(text: str | None) -> tuple[int, str | None]:
    """Return a playback speed of the URL (1–600 city seconds a second; 0 paused), and a note when it is not one."""
    if not text:
        return 0, None
    try:
        speed = int(text)
        if not 0 <= speed <= PLAY_SPEEDS[-1]:
            raise ValueError
    except ValueError:
        return 0, f"play {text[:20]!r} is not a speed of 0–{PLAY_SPEEDS[-1]}: paused"
    return speed, None


def playing(at: str, play: int, since: float, now: float, tz: str) -> float | None:
    """The moment a page shows at ``now`` that has played from ``at`` at ``play``× since ``since``; None once
    it has caught up with now (the page is live again)."""
    moment = moment_of(at, tz) + max(now - since, 0.0) * play
    return None if moment >= now else moment


def parse_state(
    search: str | None,
    districts: Container[str],
    parent_of_neighbourhood: dict[str, str],
    live_after: tuple[float, str] | None = None,
) -> tuple[ViewState, list[str]]:
    """Return the view state a query string asks for, and a note per value that fell back to its default.

    ``live_after``: (now, the city's time zone): a moment not before now is live, and says so."""
    query = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    notes: list[str] = []
    at, note = parse_at(_first(query, "at"))
    if note:
        notes.append(note)
    if at is not None and live_after is not None and moment_of(at, live_after[1]) >= live_after[0]:
        notes.append(f"{at.replace('T', ' ')} is not in the past: showing live")
        at = None
    play, note = parse_play(_first(query, "play"))
    if note:
        notes.append(note)
    window = _first(query, "window") or DEFAULT_WINDOW
    if CUSTOM_WINDOW.fullmatch(window) and window_seconds(window) is None:
        notes.append(
            f"a window reaches back {LONGEST_WINDOW} at most: showing the last {window_label(LONGEST_WINDOW)[5:]}"
        )
        window = LONGEST_WINDOW
    if window_seconds(window) is None:
        notes.append(
            f"unknown window {window[:20]!r} (a preset, or hours or days up to a week like 36h or 7d): "
            f"showing the {WINDOW_LABELS[DEFAULT_WINDOW]}"
        )
        window = DEFAULT_WINDOW
    district = _first(query, "district") or None
    if district is not None and district not in districts:
        notes.append(f"unknown district {district[:20]!r}: showing the whole city")
        district = None
    neighbourhood = _first(query, "neighbourhood") or None
    if neighbourhood is not None:
        parent = parent_of_neighbourhood.get(neighbourhood)
        if parent is None or (district is not None and parent != district):
            notes.append(f"unknown neighbourhood {neighbourhood[:20]!r} in this district: showing the district")
            neighbourhood = None
        else:
            district = parent
    return ViewState(window, district, neighbourhood, at, play if at else 0), notes


def state_query(state: ViewState) -> str:
    """Return the query string (with '?', or '' for the defaults) that reproduces a view state."""
    pairs = []
    if state.window != DEFAULT_WINDOW:
        pairs.append(("window", state.window))
    if state.district:
        pairs.append(("district", state.district))
    if state.neighbourhood:
        pairs.append(("neighbourhood", state.neighbourhood))
    if state.at:
        pairs.append(("at", state.at))
        if state.play:
            pairs.append(("play", str(state.play)))
    return "?" + urlencode(pairs, safe=":") if pairs else ""


@dataclass(frozen=True)
class WallPlan:
    """The wall's playlist and how long each view stays."""

    views: tuple[str, ...]
    dwell_s: float

    def showing(self, now_s: float) -> str:
        """The view on screen at a time: every wall with the same plan shows the same view."""
        return self.views[int(now_s // self.dwell_s) % len(self.views)]

    def live(self, now_s: float, lead_s: float) -> frozenset[str]:
        """The views that refresh: the one on screen, and the next once its turn is ``lead_s`` away."""
        live = {self.showing(now_s)}
        if self.dwell_s - now_s % self.dwell_s <= lead_s:
            live.add(self.showing(now_s + lead_s))
        return frozenset(live)


def parse_wall(search: str | None, default_views: str, default_dwell_s: float) -> tuple[WallPlan, list[str]]:
    """Return the wall's playlist from the URL (``?views=a,b&dwell=20``) or the settings."""
    query = parse_qs((search or "").lstrip("?"))
    notes: list[str] = []

    def views_of(text: str) -> list[str]:
        return [v.strip() for v in text.split(",") if v.strip()]

    defaults = [v for v in views_of(default_views) if v in WALL_VIEWS] or ["overview"]
    asked = views_of(_first(query, "views") or "")
    views = [v for v in asked if v in WALL_VIEWS]
    if asked and len(views) < len(asked):
        unknown = [v[:20] for v in asked if v not in WALL_VIEWS]
        notes.append(f"view(s) {', '.join(unknown)} left out of the playlist: a wall shows {', '.join(WALL_VIEWS)}")
    dwell_s = default_dwell_s
    raw = _first(query, "dwell")
    if raw is not None:
        try:
            dwell_s = float(raw)
            if not 2 <= dwell_s <= 3600:
                raise ValueError
        except ValueError:
            notes.append(f"dwell {raw[:20]!r} is not 2–3600 s: using {default_dwell_s:g} s")
            dwell_s = default_dwell_s
    return WallPlan(tuple(views or defaults), dwell_s), notes
