"""The real dashboard in headless Chromium on a live simulated city: every view loads with data on its
maps, the wall rotates and gives way to an alarm, zoom survives refreshes, and a Redis outage is shown
and recovered from, with no error in the browser console."""

from __future__ import annotations

import time

import pytest

from data.keys import Keys
from tests.browser.conftest import ARTIFACTS, crowded_reading, settled_zoom, wait_for_refreshes, wheel_zoom

pytestmark = pytest.mark.browser

VIEWS = {
    "/": ("overview", 4),
    "/cases": ("cases", 2),
    "/foot-traffic": ("foot-traffic", 2),
    "/services": ("services", 1),
    "/complaints": ("complaints", 2),
}

MAP_STATE = """
return Array.from(document.querySelectorAll('.live-map .js-plotly-plot')).map(function (gd) {
  var points = (gd.data || []).reduce(function (n, t) { return n + ((t.z || t.lat || t.locations || []).length); }, 0);
  var canvas = gd.querySelector('canvas.maplibregl-canvas');
  return {points: points, canvas: !!canvas, zoom: gd._fullLayout && gd._fullLayout.map ? gd._fullLayout.map.zoom : null};
});
"""


@pytest.fixture
def dash(dash_duo, city):
    from app import create_app

    settings, _embedded, _client = city
    dash_duo.start_server(create_app(settings))
    return dash_duo


def _errors(dash):
    return [e for e in dash.get_logs() if e["level"] == "SEVERE"]


def _wait_maps(dash, count: int, timeout: float = 30):
    deadline = time.monotonic() + timeout
    state = []
    while time.monotonic() < deadline:
        state = dash.driver.execute_script(MAP_STATE)
        if len(state) >= count and all(m["canvas"] and m["points"] > 0 for m in state):
            return state
        time.sleep(0.5)
    raise AssertionError(f"maps without data or canvas: {state}")


@pytest.mark.parametrize("path", list(VIEWS))
def test_each_view_loads_and_its_maps_show_data(dash, path):
    name, maps = VIEWS[path]
    dash.wait_for_page(url=dash.server_url + path)
    _wait_maps(dash, maps)
    time.sleep(2.5)  # let the heat fade in and the boundaries arrive
    for element in dash.driver.find_elements("css selector", ".live-map")[:maps]:
        # A blank WebGL canvas compresses to almost nothing; a drawn map does not.
        assert len(element.screenshot_as_png) > 15_000
    dash.driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    assert _errors(dash) == []


def test_health_view_lists_every_source_and_worker(dash):
    dash.wait_for_page(url=dash.server_url + "/health")
    dash.wait_for_contains_text(".page-health", "foot-traffic sensors", timeout=20)
    dash.wait_for_contains_text(".page-health", "heartbeat", timeout=5)
    dash.driver.save_screenshot(str(ARTIFACTS / "health.png"))
    assert _errors(dash) == []


def test_a_bad_url_falls_back_to_defaults_and_says_so(dash):
    dash.wait_for_page(url=dash.server_url + "/cases?window=forever&district=atlantis")
    dash.wait_for_contains_text("#notice", "Showing defaults", timeout=15)
    assert _errors(dash) == []


def test_the_wall_rotates_through_its_playlist(dash):
    dash.wait_for_page(url=dash.server_url + "/wall?views=foot-traffic,complaints&dwell=5")
    seen = set()
    # Five views' worth of dwell would do on an idle machine; a loaded one draws four software-rendered maps
    # between ticks, so the deadline only bounds a wall that never turns.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(seen) < 2:
        title = dash.find_element("#wall-title").text
        if title:  # empty until the first turn of the rotation names the view
            seen.add(title)
        time.sleep(0.5)
    assert seen == {"Foot traffic", "Complaints"}
    _wait_maps(dash, 4)
    time.sleep(2)
    dash.driver.save_screenshot(str(ARTIFACTS / "wall.png"))
    assert _errors(dash) == []


def test_an_alarm_takes_over_the_wall_and_clears(dash, city, demo_city):
    settings, _embedded, client = city
    keys = Keys(settings.key_prefix)
    mall = demo_city.places[demo_city.places.kind == "mall"].iloc[0]

    def reading(seq: int, occupancy: int, ago_s: float = 0) -> dict:
        return crowded_reading(mall, "browser-test", "S-BROWSER-TEST", seq, occupancy, ago_s)

    dash.wait_for_page(url=dash.server_url + "/wall?views=overview,services&dwell=30")
    dash.wait_for_element("#wall-title", timeout=15)
    # Crowded minute after minute for eleven minutes: past the grace period, so an alarm.
    for minute in range(12):
        client.xadd(keys.stream("foot"), reading(minute, int(mall.capacity) * 10, ago_s=(11 - minute) * 60))
    dash.wait_for_contains_text("#alarm", "Crowding", timeout=20)
    dash.wait_for_contains_text("#alarm", mall["name"], timeout=5)
    dash.driver.save_screenshot(str(ARTIFACTS / "wall-alarm.png"))
    time.sleep(1)
    client.xadd(keys.stream("foot"), reading(12, 0))
    dash.wait_for_class_to_equal("#alarm", "alarm hidden", timeout=20)
    assert dash.find_element("#wall-title").text in ("Overview", "Services")
    assert _errors(dash) == []


def test_a_zoom_survives_three_refreshes(dash):
    dash.wait_for_page(url=dash.server_url + "/foot-traffic")
    _wait_maps(dash, 2)
    # An operator's mouse wheel, not an API call: only that is the user's to keep.
    _before, zoomed = wheel_zoom(dash.driver, "foot-heat-map", 0.5)
    wait_for_refreshes(dash.driver, "foot-tick", 3)
    assert abs(settled_zoom(dash.driver, "foot-heat-map") - zoomed) < 0.01
    assert _errors(dash) == []


def test_a_stopped_redis_shows_the_banner_and_the_screen_recovers(dash, city):
    _settings, embedded, _client = city
    dash.wait_for_page(url=dash.server_url + "/services")
    _wait_maps(dash, 1)
    embedded.stop()
    try:
        dash.wait_for_contains_text("#banner", "Redis unreachable", timeout=20)
        dash.driver.save_screenshot(str(ARTIFACTS / "redis-down.png"))
        assert dash.driver.execute_script(MAP_STATE)[0]["points"] > 0  # the last good picture stays
    finally:
        embedded.start()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if "Redis unreachable" not in dash.find_element("#banner").text:
            break
        time.sleep(0.5)
    assert "Redis unreachable" not in dash.find_element("#banner").text
    # A failed callback request while Redis was down is a 204 (no update), never a console error.
    assert _errors(dash) == []
