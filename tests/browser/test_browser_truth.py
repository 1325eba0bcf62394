"""What the operator reads on the pages is the ground truth, on a page opened a while ago as on a fresh one.

The harness's events (tests/truth.py) go through the real aggregator into the test Redis, and the dashboard
runs on a simulated clock that follows the harness's ticks: nearly twenty minutes of a city's time, with new
events between the ticks, pass in a minute or two. At each tick a sample of pages, scopes and windows is read
from the page itself (headline numbers from the DOM, values from the figure data of the maps and charts) and
compared with the recomputation from the raw events; at the end each page left open is compared with the
same page opened afresh.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from selenium.common.exceptions import JavascriptException, TimeoutException

from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keys import Keys
from layouts import ids
from settings import Settings
from tests.browser.conftest import area_values, bars, figure_of, numbers_of, stacked_bars, wait_for_refreshes
from tests.truth import NEIGHBOURHOOD, PAST_DAYS, WINDOWS, Areas, Ticks, Truth, raw_frame, scenario
from views.state import ViewState, state_query

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_S = 90  # a loaded machine draws software-rendered maps slowly; the deadline only bounds a frozen page
# The live sensors on the foot page's map: "<name> (<kind>)<br><people> people · <ratio>× normal ...".
HOVER = "%{text}<br>%{customdata[0]:,} people · %{customdata[1]}<extra></extra>"
SENSOR_TEXT = re.compile(r"^(?P<name>.*) \([a-z_]+\)<br>(?P<people>[\d,]+) people · (?:(?P<ratio>[\d.]+)× normal)?")


def read_services(driver) -> dict:
    n = numbers_of(driver, ids.SERVICES_NUMBERS)
    return {
        "applications": n.get("applications"),
        "this hour": n.get("this hour"),
        "channels": bars(figure_of(driver, ids.SERVICES_CHANNELS)),
        "areas": area_values(figure_of(driver, ids.SERVICES_MAP))[0],
    }


def true_services(truth: Truth, state: ViewState, _names) -> dict:
    t = truth.services(state, WINDOWS[state.window], {})
    return {
        "applications": t["headline.applications"],
        "this hour": t["headline.applications_hour"],
        "channels": t["channels"],
        "areas": {area: n for area, n in t["volumes"].items() if n},
    }


def read_complaints(driver) -> dict:
    n = numbers_of(driver, ids.COMPLAINTS_NUMBERS)
    return {
        "filed": n.get("complaints filed"),
        "open": n.get("open"),
        "escalations": n.get("escalations"),
        "categories": bars(figure_of(driver, ids.COMPLAINTS_CATEGORIES)),
        "routing": stacked_bars(figure_of(driver, ids.COMPLAINTS_ROUTING)),
        "areas": area_values(figure_of(driver, ids.COMPLAINTS_AREAS_MAP))[0],
    }


def true_complaints(truth: Truth, state: ViewState, _names) -> dict:
    t = truth.complaints(state, WINDOWS[state.window])
    return {
        "filed": t["headline.filed"],
        "open": t["headline.open"],
        "escalations": t["headline.escalated"],
        "categories": t["categories"],
        "routing": {(action, level): n for level, actions in t["routing"].items() for action, n in actions.items()},
        "areas": {area: n for area, n in t["areas"].items() if n},
    }


def read_foot(driver) -> dict:
    n = numbers_of(driver, ids.FOOT_NUMBERS)
    traces = figure_of(driver, ids.FOOT_SENSORS_MAP)["data"]
    live = {}
    sensors = traces[1] if len(traces) > 1 else {"text": [], "customdata": [], "hovertemplate": HOVER}
    # What a sensor's hover says: its name (kept from tick to tick), then its count and ratio (resent each tick).
    assert sensors["hovertemplate"] == HOVER, sensors["hovertemplate"]
    for name, (people, ratio_text) in zip(sensors["text"] or [], sensors["customdata"] or []):
        text = f"{name}<br>{people:,} people · {ratio_text}"
        found = SENSOR_TEXT.match(text)
        assert found, f"a sensor's text that says no count: {text!r}"
        ratio = float(found["ratio"]) if found["ratio"] else None
        live[found["name"]] = (int(found["people"].replace(",", "")), ratio)
    return {
        "people counted": n.get("people counted"),
        "sensors": n.get("sensors"),
        "crowded places": n.get("crowded places"),
        "fever alerts": n.get("fever alerts"),
        "silent sensors": n.get("silent sensors"),
        "live sensors: people, now versus normal": live,
    }


def true_foot(truth: Truth, state: ViewState, names) -> dict:
    t = truth.foot(state, WINDOWS[state.window])
    return {
        "people counted": t["headline.people"],
        "sensors": t["headline.sensors"],
        "crowded places": len(t["crowded"]),
        "fever alerts": len(t["fever"]),
        "silent sensors": t["silent_count"],
        "live sensors: people, now versus normal": {
            names[sensor.removeprefix("S-")]: (s["now"], t["ratio"][sensor])
            for sensor, s in t["sensors"].items()
            if not s["silent"]
        },
    }


# page -> (path, view state, its refresh interval, how it is read, what the events say it shows)
SAMPLE = {
    "services": ("/services", ViewState("1h"), ids.SERVICES_TICK, read_services, true_services),
    "complaints": (
        "/complaints",
        ViewState("24h", NEIGHBOURHOOD.rsplit("-", 1)[0], NEIGHBOURHOOD),
        ids.COMPLAINTS_TICK,
        read_complaints,
        true_complaints,
    ),
    "foot-traffic": ("/foot-traffic", ViewState("15m"), ids.FOOT_TICK, read_foot, true_foot),
}


def _poll(read, expected, timeout: float = TIMEOUT_S):
    """Read the page until it shows ``expected`` (or the deadline passes); return the last reading."""
    deadline = time.monotonic() + timeout
    seen = _reading(read)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _reading(read)
    return seen


def _reading(read):
    """One reading of a page, or what stopped it: a page still loading on a busy machine may not answer."""
    try:
        return read()
    except (TimeoutException, JavascriptException) as e:
        return {"unread": e.msg}


def _where(driver) -> str:
    """The page's URL and breadcrumb, to tell a wrong scope from a wrong number."""
    crumbs = driver.execute_script(
        "var b = document.getElementById(arguments[0]); return b && b.textContent;", ids.BREADCRUMB
    )
    return f"at {driver.current_url} ({crumbs})"


def _difference(seen: dict, wanted: dict) -> str:
    return "; ".join(
        f"{k}: page shows {seen.get(k)!r}, the events give {wanted[k]!r}" for k in wanted if seen.get(k) != wanted[k]
    )


class SimulatedCity:
    """The harness's events fed tick by tick on the workers' clock; the dashboard's clock follows once a tick's
    events are in, so no page is built from half a tick's events."""

    def __init__(self, redis_url: str, city, city_map, state_dir):
        self.settings = Settings.from_env(
            {},
            redis_url=redis_url,
            key_prefix=f"bt{uuid.uuid4().hex[:8]}",
            state_dir=state_dir,
            refresh_ms=1000,
            retention_hours=24.0 * (PAST_DAYS + 3),  # the days the normal of an hour is learnt from
            auth="off",
        )
        self.client = client_from_url(redis_url)
        self.keys = Keys(self.settings.key_prefix)
        hour = int(time.time()) // 3600 * 3600
        self.ticks = Ticks(hour).times
        self.history, self.per_tick = scenario(city, hour)
        self.fed_at = self.ticks[0]
        self.shown_at = self.ticks[0]
        self.worker = Aggregator(self.client, self.settings, city_map, name="truth-browser", clock=lambda: self.fed_at)
        self.worker.ensure_groups()
        self.areas = Areas(city)
        self.written: list = []
        self.drained: list[float] = []

    def clock(self) -> float:
        return self.shown_at

    def tick(self, k: int) -> Truth:
        """Write and drain the events up to tick ``k``, move the dashboard's clock there; the truth then."""
        now = self.fed_at = self.ticks[k]
        for group in self.history.groups if k == 0 else self.per_tick[k - 1]:
            pipe = self.client.pipeline(transaction=False)
            for source, fields in group:
                pipe.xadd(self.keys.stream(source), fields)
            pipe.execute()
            self.worker.drain()
            self.written.append(group)
            self.drained.append(now)
        self.worker.roll_up()
        self.worker.tick_keepers()
        self.shown_at = now
        return Truth(raw_frame(self.written, int(now * 1000), self.drained), self.areas, now)


@pytest.fixture
def simulated_city(redis_url, demo_city, city_map, tmp_path):
    city = SimulatedCity(redis_url, demo_city, city_map, tmp_path / "state")
    yield city
    city.client.close()


def test_pages_left_open_for_twenty_minutes_show_the_ground_truth_as_fresh_pages_do(
    dash_duo, app_of, simulated_city, demo_city
):
    city = simulated_city
    names = dict(zip(demo_city.places["place_id"], demo_city.places["name"]))
    truth = city.tick(0)
    dash_duo.start_server(app_of(city.settings, clock=city.clock))
    driver = dash_duo.driver
    urls = {page: dash_duo.server_url + path + state_query(state) for page, (path, state, *_) in SAMPLE.items()}
    # Each page in a window of its own: a tab behind another draws no animation frames, so its maps would
    # wait for it to come to the front.
    tabs = {}
    for page, url in urls.items():
        if tabs:
            driver.switch_to.new_window("window")
            driver.get(url)
        else:
            dash_duo.wait_for_page(url=url)
        tabs[page] = driver.current_window_handle

    for k in range(len(city.ticks)):
        if k:
            truth = city.tick(k)
        for page, (_path, state, tick_id, read, true) in SAMPLE.items():
            driver.switch_to.window(tabs[page])
            if k:
                wait_for_refreshes(driver, tick_id, 3)
            wanted = true(truth, state, names)
            seen = _poll(lambda read=read: read(driver), wanted)
            assert seen == wanted, (
                f"{page} page left open, {state}, {city.ticks[k] - city.ticks[0]:.0f} s after it was opened, "
                f"{_where(driver)}: {_difference(seen, wanted)}"
            )

    # The pages have followed the city for nearly twenty minutes: each shows what a fresh one shows. The
    # fresh pages are opened one by one in one window, the others closed: fewer maps drawn at once.
    assert city.ticks[-1] - city.ticks[0] >= 600
    left_open = {}
    for page, (_path, _state, _tick_id, read, _true) in SAMPLE.items():
        driver.switch_to.window(tabs[page])
        left_open[page] = read(driver)
    first, *others = tabs.values()
    for handle in others:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(first)
    for page, (_path, state, _tick_id, read, true) in SAMPLE.items():
        driver.get(urls[page])
        wanted = true(truth, state, names)
        fresh = _poll(lambda read=read: read(driver), wanted)
        assert fresh == wanted, f"{page} page opened afresh, {state}, {_where(driver)}: {_difference(fresh, wanted)}"
        assert left_open[page] == fresh, (
            f"{page} page left open, {state}, against a fresh one: {_difference(left_open[page], fresh)}"
        )
    assert [e for e in dash_duo.get_logs() if e["level"] == "SEVERE"] == []
