"""Browser tests: headless Chromium through dash testing, against a real city (embedded Redis, aggregator
and simulators as subprocesses), started once per test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
    TimeoutException,
)

from bench.wall import CHROME_FLAGS as HEADLESS_CHROME
from data.connection import EmbeddedRedis, client_from_url
from data.keys import Keys
from data.read import CityReader
from settings import PROJECT_ROOT, Settings
from tests.events import raw_event

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
CHROME_FLAGS = (*HEADLESS_CHROME, "--window-size=1600,1000")


def pytest_setup_options():
    options = webdriver.ChromeOptions()
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    return options


def policy_refusals(dash_duo) -> list[str]:
    """Console errors of the Content-Security-Policy since the last look: what it kept the page from doing."""
    return [
        e["message"]
        for e in dash_duo.get_logs()
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


@pytest.fixture(autouse=True)
def page_runs_under_the_policy(request):
    """Every browser test's pages run under the security headers' policy without a refusal in the console."""
    if "dash_duo" not in request.fixturenames:
        yield
        return
    duo = request.getfixturevalue("dash_duo")
    yield
    refused = policy_refusals(duo)
    assert not refused, f"the Content-Security-Policy refused: {refused[:3]}"


def _start(args, env):
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory, redis_binary):
    """A live simulated city: its own embedded Redis, one aggregator, the four simulators at high speed."""
    redis_dir = tmp_path_factory.mktemp("redis")
    embedded = EmbeddedRedis(redis_dir, binary=redis_binary)
    embedded.start()
    settings = Settings.from_env(
        {},
        redis_url=embedded.url,
        key_prefix=f"b{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path_factory.mktemp("state"),
        refresh_ms=1000,
        stale_after_s=60.0,
        auth="off",
        # Only the alarms a test raises on purpose.
        crowding_share=5.0,  # crowded only at five times capacity: no simulated place is
        alarm_cluster_cases=10_000,
        alarm_urgent_complaints=10_000,
        alarm_wait_target_s=1e9,
        alarm_clear_after_s=3.0,  # an alarm clears 3 s after its condition: tests wait seconds, not minutes
    )
    env = {**os.environ, "REDIS_URL": embedded.url, "CITYDECK_KEY_PREFIX": settings.key_prefix}
    children = [
        _start(["-m", "data.aggregator"], env),
        _start(
            ["-m", "simulators", "--speed", "900", "--scale", "0.05", "--backfill", "0.5", "--log-every", "600"], env
        ),
    ]
    client = client_from_url(embedded.url)
    reader = CityReader(client, settings)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        fresh = reader.freshness()
        if all(f["events"] > 0 for f in fresh.values()):
            break
        time.sleep(0.5)
    ARTIFACTS.mkdir(exist_ok=True)
    yield settings, embedded, client
    client.close()
    for child in children:
        os.killpg(child.pid, signal.SIGTERM)
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
    embedded.stop()


def crowded_reading(place, source: str, sensor: str, seq: int, occupancy: int, ago_s: float = 0) -> dict:
    """A people counter's reading at a demo place (a row of its places), ``ago_s`` seconds ago, encoded."""
    from data.schema import encode

    return encode(
        "reading", src=source, seq=seq, ts=int((time.time() - ago_s) * 1000), sensor_id=sensor,
        sensor_kind="counter", place_id=place.place_id, place_kind=place.kind, interval_s=60, people=10, fever=0,
        occupancy=occupancy, capacity=int(place.capacity), lon=place.lon, lat=place.lat,
    )  # fmt: skip


class QuietCity:
    """A city with no simulators: only the events a test feeds, drained by a real aggregator in the test."""

    def __init__(self, settings: Settings, client, worker, communities, centers):
        self.settings = settings
        self._centers = centers
        self.client = client
        self.worker = worker
        self.keys = Keys(settings.key_prefix)
        self._communities = communities
        self._seq = 0

    def district_points(self, district: str) -> tuple[float, float]:
        """A point inside a community of a district, the one farthest from any service center (whose marker
        would take a click meant for the area)."""
        points = [
            g.representative_point() for g in self._communities[self._communities.district_id == district].geometry
        ]

        def room(p):
            return min((p.x - lon) ** 2 + (p.y - lat) ** 2 for lon, lat in self._centers)

        best = max(points, key=room)
        return best.x, best.y

    def feed(self, source: str, type_name: str, at_ms: int | None = None, **fields) -> None:
        """Write one valid event of a type, now (or at ``at_ms``), with some fields given."""
        self._seq += 1
        ts = int(time.time() * 1000) if at_ms is None else at_ms
        event = raw_event(type_name, seq=self._seq, ts=ts, src="browser-test", **fields)
        self.client.xadd(self.keys.stream(source), event)

    def drain(self) -> None:
        self.worker.drain()


@pytest.fixture
def quiet_city(redis_url, tmp_path, city_map, demo_city):
    """A city of its own key prefix on the session's Redis, fed by the test alone, refreshing every second."""
    from data.aggregator import Aggregator

    settings = Settings.from_env(
        {},
        redis_url=redis_url,
        key_prefix=f"q{uuid.uuid4().hex[:8]}",
        state_dir=tmp_path / "state",
        refresh_ms=1000,
        stale_after_s=3600.0,
        auth="off",
    )
    client = client_from_url(redis_url)
    worker = Aggregator(client, settings, city_map)
    worker.ensure_groups()
    centers = demo_city.places[demo_city.places.kind == "service_center"]
    yield QuietCity(settings, client, worker, demo_city.communities, list(zip(centers.lon, centers.lat)))
    client.close()


@pytest.fixture
def app_of():
    """Build the real dashboard for some settings."""
    from app import create_app

    return create_app


FIGURE = """
var id = arguments[0];
var el = document.getElementById(typeof id === 'string' ? id : window.dash_component_api.stringifyId(id));
var gd = el && el.querySelector('.js-plotly-plot');
if (!gd || !gd.data) { return {data: [], layout: {}}; }
return {
  data: gd.data.map(function (t) {
    return {name: t.name || null, x: t.x || null, y: t.y || null, locations: t.locations || null, z: t.z || null,
            zmax: t.zmax === undefined ? null : t.zmax, text: t.text || null, customdata: t.customdata || null,
            hovertemplate: t.hovertemplate || null};
  }),
  layout: {uirevision: gd.layout.uirevision || null}
};
"""

NUMBERS = """
var out = {};
document.querySelectorAll('#' + arguments[0] + ' .number').forEach(function (n) {
  out[n.querySelector('.number-label').textContent] = n.querySelector('.number-value').textContent;
});
return out;
"""

TICKS = """
var layout = window.dash_component_api.getLayout(arguments[0]);
var props = layout && (layout.props || layout);
return props ? props.n_intervals : null;
"""


def figure_of(driver, component_id) -> dict:
    """The data a graph on the page draws now (its traces' arrays, as Plotly holds them)."""
    return driver.execute_script(FIGURE, component_id)


def bars(fig: dict) -> dict[str, int]:
    """A horizontal bar chart as label -> value, zeros left out."""
    if not fig["data"]:
        return {}
    trace = fig["data"][0]
    return {label: int(value) for label, value in zip(trace["y"], trace["x"]) if value}


def stacked_bars(fig: dict) -> dict[tuple[str, str], int]:
    """Stacked bars as (series, category) -> value, zeros left out."""
    return {(trace["name"], x): int(y) for trace in fig["data"] for x, y in zip(trace["x"], trace["y"]) if y}


def area_values(fig: dict) -> tuple[dict[str, int], float | None]:
    """An area map as area -> value (zeros left out), and the top of its colour scale."""
    if not fig["data"]:
        return {}, None
    trace = fig["data"][0]
    return {a: int(z) for a, z in zip(trace["locations"], trace["z"]) if z}, trace.get("zmax")


def numbers_of(driver, container_id: str) -> dict[str, int | str]:
    """The headline numbers shown in a container, by label; counts as integers."""
    shown = driver.execute_script(NUMBERS, container_id)
    return {label: int(v.replace(",", "")) if v.replace(",", "").isdigit() else v for label, v in shown.items()}


def refreshes(driver, tick_id: str) -> int | None:
    """How many times a page's refresh interval has fired in this tab."""
    return driver.execute_script(TICKS, tick_id)


def wait_for_refreshes(driver, tick_id: str, count: int, timeout: float = 60) -> None:
    """Wait until a page's refresh interval has fired ``count`` more times."""
    deadline = time.monotonic() + timeout
    start = refreshes(driver, tick_id)
    while start is None and time.monotonic() < deadline:
        time.sleep(0.2)
        start = refreshes(driver, tick_id)
    now = start
    while (now or 0) < (start or 0) + count and time.monotonic() < deadline:
        time.sleep(0.2)
        now = refreshes(driver, tick_id)
    assert now is not None and now >= start + count, f"{tick_id} fired {now} times, wanted {start} + {count}"


MAP_OF = """
var id = arguments[0];
var el = document.getElementById(typeof id === 'string' ? id : window.dash_component_api.stringifyId(id));
return el && el.querySelector('.js-plotly-plot');
"""

MAP_SETTLED = """
var gd = arguments[0];
var sub = gd && gd._fullLayout && gd._fullLayout.map && gd._fullLayout.map._subplot;
if (!sub || !sub.map || !gd.data || !gd.data.length) { return null; }
var map = sub.map;
if (!map.loaded() || map.isMoving()) { return null; }
return gd._fullLayout.map.zoom;
"""

SCREEN_POINT = """
var gd = arguments[0];
var map = gd._fullLayout.map._subplot.map;
var p = map.project([arguments[1], arguments[2]]);
var r = map.getCanvas().getBoundingClientRect();
return [Math.round(r.left + p.x), Math.round(r.top + p.y)];
"""


def map_element(driver, component_id):
    """The Plotly div of a map on the page."""
    return driver.execute_script(MAP_OF, component_id)


def settled_zoom(driver, component_id, timeout: float = 30) -> float:
    """The zoom of a map once it has loaded and stopped moving."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gd = map_element(driver, component_id)
        zoom = driver.execute_script(MAP_SETTLED, gd) if gd else None
        if zoom is not None:
            time.sleep(0.3)  # a wheel's animation may start on the next frame: settled means twice
            again = driver.execute_script(MAP_SETTLED, gd)
            if again is not None and abs(again - zoom) < 1e-9:
                return zoom
        time.sleep(0.2)
    raise AssertionError(f"map {component_id} never settled")


def wheel_zoom(driver, component_id, by: float, timeout: float = 30) -> tuple[float, float]:
    """Zoom a map in with the mouse wheel, as an operator does, until it is ``by`` closer; (before, after)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    before = settled_zoom(driver, component_id)
    canvas = map_element(driver, component_id).find_element("css selector", "canvas.maplibregl-canvas")
    deadline = time.monotonic() + timeout
    now = before
    # A busy machine draws fewer animation frames per wheel turn: turn until the zoom has moved enough.
    while now < before + by and time.monotonic() < deadline:
        ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(canvas), 0, -300).perform()
        now = settled_zoom(driver, component_id)
    assert now >= before + by, f"the wheel zoomed {component_id} from {before} to {now} only"
    return before, now


def click_map_at(driver, component_id, lon: float, lat: float) -> None:
    """Click a map where a place is, as an operator does with the mouse."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", map_element(driver, component_id))
    settled_zoom(driver, component_id)
    x, y = driver.execute_script(SCREEN_POINT, map_element(driver, component_id), lon, lat)
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(x, y)
    actions.w3c_actions.pointer_action.pause(0.3)  # the hover that a click on a trace needs
    actions.w3c_actions.pointer_action.move_to_location(x + 1, y)
    actions.w3c_actions.pointer_action.pause(0.3)
    actions.w3c_actions.pointer_action.click()
    actions.perform()


def click(driver, css: str) -> None:
    """Click a control as a person does: scrolled to the middle of the screen, clear of the fixed footer, and
    again if a refresh moved the page under the pointer meanwhile (as a person clicks again)."""

    def clicked() -> bool:
        element = driver.find_element("css selector", css)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except (ElementClickInterceptedException, StaleElementReferenceException):
            return False
        return True

    wait_until(clicked, f"{css} clicked")


def allow_downloads(driver, folder: Path) -> None:
    """Let the browser save what a page downloads into ``folder``, without asking where. Set for the browser,
    not the page: a page's setting is lost with a navigation, and one still under way (a busy machine) cuts
    the command off, so it is asked again until it holds."""

    def allowed() -> bool:
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
        except TimeoutException:
            return False
        return True

    wait_until(allowed, f"downloads allowed into {folder}", timeout=120)


def wait_until(condition, what: str, timeout: float = 30):
    """Poll a condition until it holds (its value returned) or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(0.25)
        value = condition()
    assert value, f"waited {timeout:.0f} s for {what}"
    return value
