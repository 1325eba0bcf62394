"""Routing and URL state: the path picks the page, the query string sets the controls, the controls
write the query string back, and clicking an area drills into it."""

from __future__ import annotations

from dash import ALL, ClientsideFunction, Input, Output, State, ctx, dcc, html, no_update, set_props
from dash.exceptions import PreventUpdate

from accounts.roles import may
from accounts.web import current_role
from callbacks import access, values
from callbacks.deck import Deck
from layouts import ids
from layouts.pages import page_layout
from layouts.shell import MOMENT_PENDING, window_options
from layouts.wall import wall_layout
from views.state import (
    PAGES,
    PLAY_LOOK_BACK_S,
    PLAY_SPEEDS,
    WALL_PATH,
    ViewState,
    at_of,
    page_of,
    parse_state,
    parse_wall,
    state_query,
    window_seconds,
)


def view_state(deck: Deck, window, district, neighbourhood, playback=None) -> ViewState:
    """The view state of the controls and of the page's moment now (playing back, paused, or live), with
    anything unknown dropped (a stale or hand-made value never fails)."""
    if playback == MOMENT_PENDING:
        raise PreventUpdate  # the URL has not set the page's moment yet: nothing drawn live for a past link
    window, district, neighbourhood = values.text(window), values.text(district), values.text(neighbourhood)
    at, play = deck.moment(playback)
    query = state_query(ViewState(window or "1h", district or None, neighbourhood or None, at, play))
    state, _notes = parse_state(query, deck.geo.district_ids, deck.geo.neighbourhood_district, deck.live_after())
    return state


def route(
    deck: Deck, pathname: str | None, search: str | None, precise: bool = False, allowed: tuple[str, ...] = tuple(PAGES)
):
    """Return the content, notice and shell class for a URL; ``precise``: the role asking may open the
    precise view of case tracing (its panel is on the cases page); ``allowed``: the pages it may open."""
    pathname, search = values.text(pathname), values.text(search)
    geo = deck.geo
    _state, notes = parse_state(search, geo.district_ids, geo.neighbourhood_district, deck.live_after())
    if (pathname or "").rstrip("/") == WALL_PATH:
        plan, wall_notes = parse_wall(search, deck.settings.wall_views, deck.settings.wall_dwell_s)
        content, shell_class = wall_layout(deck.settings.refresh_ms, plan.views), "shell wall"
        notes = [*notes, *wall_notes]
    else:
        page = page_of(pathname)
        shell_class = "shell"
        if page is None:
            content = html.Div(
                [html.H2("No such page"), dcc.Link("Go to the overview", href="/")], className="page page-missing"
            )
            notes = [f"there is no page at {str(pathname)[:40]!r}", *notes]
        elif page not in allowed:
            content = html.Div(
                [html.H2(f"{PAGES[page]} is not for your role"), dcc.Link("Go to the overview", href="/")],
                className="page page-missing",
            )
        else:
            content = page_layout(page, deck.settings.refresh_ms, deck.settings.precise_grant_min if precise else 0)
            shell_class = f"shell page-{page}"
    notice = ("Showing defaults: " + "; ".join(notes) + ".") if notes else ""
    return content, notice, shell_class


def as_of(state: ViewState, pathname: str | None, history: bool):
    """What a page of a past moment says above its figures: the moment, playing or paused, what it can show,
    and the way back to live; nothing when live."""
    if not state.at:
        return "", "as-of hidden"
    live = state_query(ViewState(state.window, state.district, state.neighbourhood))
    how = f"playing back at ×{state.play}" if state.play else "paused"
    held = "counts from history, in whole hours" if history else "counts from the minutes kept, as at that moment"
    return (
        [
            html.Strong(f"As of {state.at.replace('T', ' ')}", className="as-of-moment"),
            f" ({how}): {held}; what is kept only as it stands now (open complaints, case clusters and "
            "sites, health codes, sensors' latest readings, hotspots) is shown as –. ",
            html.A("Back to live", href=(pathname or "/") + live, id=ids.BACK_TO_LIVE),
        ],
        "as-of playing" if state.play else "as-of",
    )


UNCHANGED = object()  # a use of the time controls that changes nothing


def controls_of(playback: dict | None) -> tuple:
    """The playback store and the time controls' values that show it."""
    if playback is None:
        return None, None, 0
    return playback, playback["at"], playback["play"]


def chosen_moment(deck: Deck, trigger: str | None, picked, speed, playback):
    """The playback after a use of the time controls (None: live; ``UNCHANGED``): a moment picked, a speed
    chosen (played from the moment shown now; from a day ago on a live page), or back to live.

    The controls also change when the URL sets them (a page opened, a link followed): a value that is the
    playback's own is no choice."""
    shown = playback if isinstance(playback, dict) else {}
    at, play = deck.moment(playback)
    picked, speed = values.text(picked) or None, speed if isinstance(speed, int) and not isinstance(speed, bool) else 0
    if trigger == ids.GO_LIVE:
        return None if shown else UNCHANGED
    if trigger == ids.MOMENT_PICK:
        if picked == shown.get("at") or (picked is None and not shown):
            return UNCHANGED
        at = parse_state(f"?at={picked or ''}", (), {}, deck.live_after())[0].at
    elif trigger == ids.PLAY_SPEED:
        if speed == shown.get("play", 0):
            return UNCHANGED
        play = speed if speed in (0, *PLAY_SPEEDS) else 0
        if at is None and play:
            at = at_of(deck.clock() - PLAY_LOOK_BACK_S, deck.settings.city_timezone)
    else:
        return UNCHANGED
    return {"at": at, "play": play, "since": deck.clock()} if at else None


def follow(
    deck: Deck, from_url: bool, search, controls: tuple, on_wall: bool, playback=None
) -> tuple[ViewState, str | None, tuple[bool, ...]]:
    """The view state after a change of the URL or of the controls, the search to write (None: leave the URL
    as it is) and which of the controls (window, district, neighbourhood) must be set to the state's.

    The URL leads when it changed (a page opened, Back or Forward) and the controls follow it. Otherwise
    the controls lead and the URL follows them, one history entry per view, so Back returns to the last.
    """
    search = values.text(search) or ""
    if from_url:
        state, _notes = parse_state(search, deck.geo.district_ids, deck.geo.neighbourhood_district, deck.live_after())
    else:
        state = view_state(deck, *controls, playback)  # the controls lead; the moment goes on from where it is
    wanted = state_values(state)
    to_set = tuple(want != (given or None) for want, given in zip(wanted, controls))
    query = state_query(state)
    keep_url = from_url or on_wall or query.lstrip("?") == search.lstrip("?")
    return state, None if keep_url else query, to_set


def state_values(state: ViewState) -> tuple[str, str | None, str | None]:
    """The controls' values for a view state: window, district, neighbourhood."""
    return state.window, state.district, state.neighbourhood


def drill(deck: Deck, clicked: str | None, back: bool, district: str | None, neighbourhood: str | None):
    """Return (district, neighbourhood) after a click on an area or on 'up'."""
    district, neighbourhood = values.text(district), values.text(neighbourhood)
    if back:
        up = ViewState("1h", district, neighbourhood).up()
        return up.district, up.neighbourhood
    if clicked in deck.geo.district_ids:
        return clicked, None
    if clicked in deck.geo.neighbourhood_district:
        return deck.geo.neighbourhood_district[clicked], clicked
    return no_update, no_update


def playback_of(deck: Deck, search) -> dict | None:
    """The playback store for a URL: its moment and speed, and when the page began showing it (None: live)."""
    state, _notes = parse_state(values.text(search), (), {}, deck.live_after())
    return {"at": state.at, "play": state.play, "since": deck.clock()} if state.at else None


def register(app, deck: Deck) -> None:
    # A custom window typed beside the presets becomes the window (the URL then carries it); a bad one says why.
    @app.callback(
        Output(ids.WINDOW, "value", allow_duplicate=True),
        Output(ids.WINDOW, "options", allow_duplicate=True),
        Output(ids.WINDOW_CUSTOM, "className"),
        Output(ids.WINDOW_CUSTOM, "value"),
        Output(ids.NOTICE, "children", allow_duplicate=True),
        Input(ids.WINDOW_CUSTOM, "value"),
        prevent_initial_call=True,
    )
    def type_window(typed):
        window = (values.text(typed) or "").strip().lower().replace(" ", "")
        if not window:
            raise PreventUpdate
        if window_seconds(window) is None:
            said = f"{window[:12]!r} is not a window: type hours or days up to a year, like 36h or 7d."
            return no_update, no_update, "window-custom invalid", no_update, said
        # The options name the window with its value, in one answer: a value a dropdown does not offer is dropped.
        return window, window_options(window), "window-custom", "", ""

    # The URL sets the page's moment; the time controls show it.
    @app.callback(
        Output(ids.PLAYBACK, "data"),
        Output(ids.MOMENT_PICK, "value"),
        Output(ids.PLAY_SPEED, "value"),
        Input(ids.URL, "search"),
    )
    def start_playback(search):
        return controls_of(playback_of(deck, search))

    # The time controls set the moment at once; the address bar follows it (below), without a page load.
    @app.callback(
        Output(ids.PLAYBACK, "data", allow_duplicate=True),
        Output(ids.MOMENT_PICK, "value", allow_duplicate=True),
        Output(ids.PLAY_SPEED, "value", allow_duplicate=True),
        Input(ids.MOMENT_PICK, "value"),
        Input(ids.PLAY_SPEED, "value"),
        Input(ids.GO_LIVE, "n_clicks"),
        State(ids.PLAYBACK, "data"),
        prevent_initial_call=True,
    )
    def choose(picked, speed, _live, playback):
        chosen = chosen_moment(deck, ctx.triggered_id, picked, speed, playback)
        if chosen is UNCHANGED:
            raise PreventUpdate
        return controls_of(chosen)

    # Each tick: what the page shows as of when, and the moment for the address bar (without a new history entry).
    @app.callback(
        Output(ids.AS_OF, "children"),
        Output(ids.AS_OF, "className"),
        Output(ids.MOMENT_NOW, "data"),
        Input(ids.STATUS_TICK, "n_intervals"),
        Input(ids.PLAYBACK, "data"),
        State(ids.WINDOW, "value"),
        State(ids.DISTRICT, "value"),
        State(ids.NEIGHBOURHOOD, "data"),
        State(ids.URL, "pathname"),
    )
    def show_moment(_n, playback, window, district, neighbourhood, pathname):
        state = view_state(deck, window, district, neighbourhood, playback)
        if isinstance(playback, dict) and state.at is None:
            # Playback has caught up with now: the page is live, and so are its controls.
            set_props(ids.PLAYBACK, {"data": None})
            set_props(ids.MOMENT_PICK, {"value": None})
            set_props(ids.PLAY_SPEED, {"value": 0})
        history = bool(state.at) and deck.in_history(state.at)
        children, class_name = as_of(state, values.text(pathname), history)
        return children, class_name, {"at": state.at, "play": state.play}

    app.clientside_callback(
        ClientsideFunction("citydeck", "moment"),
        Output(ids.AS_OF, "title"),
        Output({"type": ids.NAV_LINK, "page": ALL}, "href", allow_duplicate=True),
        Output({"type": ids.CARD_LINK, "page": ALL}, "href", allow_duplicate=True),
        Input(ids.MOMENT_NOW, "data"),
        State({"type": ids.NAV_LINK, "page": ALL}, "href"),
        State({"type": ids.CARD_LINK, "page": ALL}, "href"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output(ids.CONTENT, "children"),
        Output(ids.NOTICE, "children"),
        Output(ids.SHELL, "className"),
        Input(ids.URL, "pathname"),
        State(ids.URL, "search"),
    )
    def show_page(pathname, search):
        role = current_role()
        return route(deck, pathname, search, may(role, "precise_health"), access.pages_for(role))

    # One callback keeps the URL and the controls in step both ways: as two, they would form a cycle.
    @app.callback(
        Output(ids.URL, "search"),
        Output(ids.WINDOW, "value"),
        Output(ids.WINDOW, "options"),
        Output(ids.DISTRICT, "value"),
        Output(ids.NEIGHBOURHOOD, "data"),
        Output({"type": ids.NAV_LINK, "page": ALL}, "href"),
        Output({"type": ids.CARD_LINK, "page": ALL}, "href"),
        Output(ids.BREADCRUMB, "children"),
        Input(ids.URL, "search"),
        Input(ids.WINDOW, "value"),
        Input(ids.DISTRICT, "value"),
        Input(ids.NEIGHBOURHOOD, "data"),
        State(ids.URL, "pathname"),
        State({"type": ids.NAV_LINK, "page": ALL}, "id"),
        State({"type": ids.CARD_LINK, "page": ALL}, "id"),
        State(ids.PLAYBACK, "data"),
    )
    def follow_url(search, window, district, neighbourhood, pathname, nav_ids, card_ids, playback):
        controls = (values.text(window), values.text(district), values.text(neighbourhood))
        nav, cards = values.names_of(nav_ids, "page", PAGES), values.names_of(card_ids, "page", PAGES)
        # No trigger: the page has just loaded, or new links appeared; the URL holds the state then. On a
        # page opened from a link the URL's search arrives together with the controls' first values: the
        # URL leads whenever it is among the triggers, or the controls' defaults would overwrite the link.
        from_url = not ctx.triggered_id or ids.URL in ctx.triggered_prop_ids.values()
        on_wall = (values.text(pathname) or "").rstrip("/") == WALL_PATH
        state, new_search, to_set = follow(deck, from_url, search, controls, on_wall, playback)
        query = state_query(state)

        def href(page):
            return ("/" if page == "overview" else f"/{page}") + query

        crumbs = ["City"] + [deck.geo.names.get(a, a) for a in (state.district, state.neighbourhood) if a]
        window, *area = (want if changed else no_update for want, changed in zip(state_values(state), to_set))
        return (
            no_update if new_search is None else new_search,
            window,
            # The window's options come with its value: a custom window is offered before it is chosen.
            window_options(state.window) if window is not no_update else no_update,
            *area,
            [href(p) for p in nav],
            [href(p) for p in cards],
            " › ".join(crumbs),
        )

    @app.callback(
        Output(ids.DISTRICT, "value", allow_duplicate=True),
        Output(ids.NEIGHBOURHOOD, "data", allow_duplicate=True),
        Input({"type": ids.AREA_MAP, "page": ALL}, "clickData"),
        Input(ids.DRILL_BACK, "n_clicks"),
        State(ids.DISTRICT, "value"),
        State(ids.NEIGHBOURHOOD, "data"),
        prevent_initial_call=True,
    )
    def drill_into(clicks, _back, district, neighbourhood):
        if ctx.triggered_id == ids.DRILL_BACK:
            return drill(deck, None, True, district, neighbourhood)
        by_page = {item["id"]["page"]: click for item, click in zip(ctx.inputs_list[0], clicks)}
        click = by_page.get(getattr(ctx.triggered_id, "page", None)) if ctx.triggered_id else None
        return drill(deck, values.clicked_area(click), False, district, neighbourhood)
