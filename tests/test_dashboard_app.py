"""The app factory, its callbacks and routes: ids unique and wired, bad URLs answered, GeoJSON cached,
one snapshot build per tick however many browsers ask."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time

import pytest
from dash import html

from layouts import ids
from layouts.shell import validation_layout
from tests.dash_posts import ROUTE, callback_body
from views.state import ViewState


@pytest.fixture
def app(settings):
    from app import create_app

    return create_app(settings)


@pytest.fixture
def deck(app):
    return app.server.extensions["citydeck"]


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    if children is None:
        return
    for child in children if isinstance(children, list | tuple) else [children]:
        if hasattr(child, "to_plotly_json"):
            yield from _walk(child)


def _key(id_):
    return tuple(sorted(id_.items())) if isinstance(id_, dict) else id_


def _all_ids():
    found = [getattr(c, "id", None) for c in _walk(validation_layout([], 2000))]
    return [_key(i) for i in found if i is not None]


def test_every_component_id_is_unique():
    found = _all_ids()
    assert len(found) == len(set(found)), sorted({i for i in found if found.count(i) > 1}, key=str)


@pytest.mark.redis
def test_every_callback_id_exists_in_some_layout(app):
    present = set(_all_ids())
    types = {dict(i).get("type") for i in present if isinstance(i, tuple)}
    for callback in app.callback_map.values():
        deps = [*callback["inputs"], *callback["state"]]
        for dep in deps:
            id_ = dep["id"]
            if id_.startswith("{"):
                assert any(t in id_ for t in types), id_
            else:
                assert id_ in present, id_
    for output in app.callback_map:
        for part in output.strip(".").split("...") if output.startswith("..") else [output]:
            id_ = part.rsplit(".", 1)[0].split("@")[0]
            if not id_.startswith("{"):
                assert id_ in present, id_


@pytest.mark.redis
@pytest.mark.parametrize("path", ["/nowhere", "/cases/../../etc", "/%00", "/wall", "/health"])
@pytest.mark.parametrize("search", ["", "?window=999d&district=<script>", "?views=x,,y&dwell=-4", "?%zz"])
def test_a_bad_url_gives_a_page_and_a_notice_never_an_error(deck, path, search):
    from callbacks.routing import follow, route

    content, notice, _shell_class = route(deck, path, search)
    assert isinstance(content, html.Div)
    state, _search, _to_set = follow(deck, True, search, (None, None, None), False)
    # A window longer than a week is the longest one; anything else unknown is the default.
    assert state.window in ("15m", "1h", "24h", "7d") and state.district is None and state.neighbourhood is None
    if "999d" in search or path == "/nowhere":
        assert notice.startswith("Showing defaults")


@pytest.mark.redis
def test_the_geojson_route_is_cacheable_and_answers_304(app):
    client = app.server.test_client()
    first = client.get("/geo/community.json")
    assert first.status_code == 200 and "max-age" in first.headers["Cache-Control"]
    etag = first.headers["ETag"]
    assert client.get("/geo/community.json", headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/geo/planet.json").status_code == 404


@pytest.mark.redis
def test_answers_boundaries_and_scripts_go_gzipped_to_a_browser_that_accepts_it_and_unpack_to_the_same(app):
    client = app.server.test_client()
    given = {(ids.FOOT_TICK, "n_intervals"): 1, (ids.WINDOW, "value"): "1h"}
    body = json.dumps(callback_body(app, f"{ids.FOOT_RENDERED}.data", given, f"{ids.FOOT_TICK}.n_intervals"))
    plain, packed = (
        client.post(ROUTE, data=body, content_type="application/json", headers={"Accept-Encoding": encoding})
        for encoding in ("identity", "gzip, deflate, br, zstd")
    )
    assert plain.status_code == packed.status_code == 200 and "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    answer = json.loads(gzip.decompress(packed.get_data()))
    assert answer == plain.get_json() and len(packed.get_data()) < len(plain.get_data()) / 3

    boundaries = client.get("/geo/community.json", headers={"Accept-Encoding": "gzip"})
    assert boundaries.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(boundaries.get_data())) == client.get("/geo/community.json").get_json()
    # A browser's cached copy is still confirmed without a body.
    again = {"Accept-Encoding": "gzip", "If-None-Match": boundaries.headers["ETag"]}
    assert client.get("/geo/community.json", headers=again).status_code == 304

    page = client.get("/", headers={"Accept-Encoding": "gzip"})
    scripts = [s for s in re.findall(r'src="([^"]+\.js[^"]*)"', page.get_data(as_text=True)) if s.startswith("/")]
    assert scripts and "Content-Encoding" not in page.headers  # pages (and the sign-in form's token) go plain
    script = client.get(scripts[0], headers={"Accept-Encoding": "gzip"})
    assert script.status_code == 200 and script.headers["Content-Encoding"] == "gzip"


@pytest.mark.redis
def test_pages_are_served(app):
    client = app.server.test_client()
    for path in ("/", "/cases", "/foot-traffic", "/services", "/complaints", "/health", "/wall", "/nope?x=%zz"):
        assert client.get(path).status_code == 200


@pytest.mark.redis
def test_many_browsers_on_one_tick_build_one_snapshot(deck):
    builds = []

    def build(now):
        builds.append(now)
        return {"at": now}

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(deck.snapshot("probe", ViewState(), build))) for _ in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 20
    assert len(builds) <= 2  # two only when the threads straddle a tick boundary


def _commands(client) -> int:
    return sum(v["calls"] for k, v in client.info("commandstats").items() if k != "cmdstat_info")


@pytest.mark.redis
def test_browsers_asking_one_worker_at_once_cost_a_few_cache_commands_not_a_poll_each(deck):
    release = threading.Event()

    def build(now):
        release.wait(1.0)  # a slow build: the other browsers arrive while it runs
        return {"at": now}

    time.sleep(deck.refresh_s - time.time() % deck.refresh_s + 0.01)  # all in one tick
    before = _commands(deck.client)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(deck.snapshot("slow", ViewState(), build))) for _ in range(30)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    release.set()
    for t in threads:
        t.join()
    assert len(results) == 30 and all(r == results[0] for r in results)
    # One cache miss, the build lock and the cache write; the other 29 waited in the worker.
    assert _commands(deck.client) - before <= 4
    assert deck.snapshot("slow", ViewState(), build) == results[0]  # later in the tick: from memory


@pytest.mark.redis
def test_a_second_worker_reads_the_first_ones_snapshot_from_the_shared_cache(app, deck, settings):
    from callbacks.deck import Deck

    other = Deck(settings, deck.client, lambda: None)
    other.init_app(app.server)
    builds = []

    def build(now):
        builds.append(now)
        return {"at": now}

    time.sleep(deck.refresh_s - time.time() % deck.refresh_s + 0.01)
    first = deck.snapshot("shared", ViewState(), build)
    assert other.snapshot("shared", ViewState(), build) == first and len(builds) == 1


def test_ids_module_names_every_page_tick():
    assert {ids.OVERVIEW_TICK, ids.CASES_TICK, ids.FOOT_TICK, ids.SERVICES_TICK, ids.COMPLAINTS_TICK, ids.HEALTH_TICK}


@pytest.mark.redis
def test_back_to_a_url_sets_the_controls_and_a_control_writes_the_url(deck):
    from callbacks.routing import follow

    # Back from a drilled view: the URL leads, the controls follow, the URL is left as it is.
    state, search, to_set = follow(deck, True, "", ("15m", "D-FT", "D-FT-N01"), False)
    assert (state.window, state.district, state.neighbourhood) == ("1h", None, None)
    assert search is None and to_set == (True, True, True)
    # A drill: the controls lead, a neighbourhood of another district is left, and the URL follows.
    state, search, to_set = follow(
        deck, False, "?district=D-FT&neighbourhood=D-FT-N01", ("1h", "D-LU", "D-FT-N01"), False
    )
    assert (state.district, state.neighbourhood) == ("D-LU", None)
    assert search == "?district=D-LU" and to_set == (False, False, True)
    # Nothing new: neither the URL nor a control is written again, so no history entry is added.
    assert follow(deck, False, "?district=D-LU", ("1h", "D-LU", None), False)[1:] == (None, (False, False, False))
    # The wall keeps its own URL.
    assert follow(deck, False, "?views=overview", ("15m", None, None), True)[1] is None
