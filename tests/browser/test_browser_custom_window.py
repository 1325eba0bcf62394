"""A custom window typed beside the presets, as a manager does: the page counts that window (as a plain count of
the events says), the URL carries it, the window control names it; a window that is not one is refused with a
line saying how to write it, and the page keeps its window."""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.keys import Keys

from layouts import ids
from tests.browser.conftest import numbers_of, wait_until

pytestmark = pytest.mark.browser

HOUR_S = 3600
AGES_H = (0.5, 10.0, 30.0, 35.0, 40.0, 50.0)  # complaints filed this many hours ago


def _type(driver, text: str) -> None:
    box = driver.find_element("id", ids.WINDOW_CUSTOM)
    box.clear()
    box.send_keys(text, Keys.ENTER)


def test_a_typed_window_counts_what_it_says_and_a_bad_one_says_how_to_write_it(dash_duo, quiet_city, app_of):
    city = quiet_city
    lon, lat = city.district_points("D-FT")
    now = time.time()
    for i, hours in enumerate(AGES_H):
        city.feed("complaints", "complaint", at_ms=int((now - hours * HOUR_S) * 1000), complaint_id=f"k-{i}",
                  lon=lon, lat=lat, text="Streetlight out", category="streetlight")  # fmt: skip
    city.drain()
    dash_duo.start_server(app_of(city.settings), navigate=False)
    driver = dash_duo.driver
    driver.set_window_size(1920, 1080)
    driver.get(f"{dash_duo.server.url}/complaints")
    wait_until(lambda: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == 1, "the last hour's 1")

    _type(driver, "36H")
    wait_until(lambda: "window=36h" in driver.current_url, "the URL carrying the typed window")
    want = sum(1 for h in AGES_H if h < 36)
    wait_until(
        lambda: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == want,
        f"the {want} complaints of the last 36 h",
        timeout=60,
    )
    assert "last 36 h" in driver.find_element("id", ids.WINDOW).text
    hint = driver.execute_script(
        "return document.querySelector('#' + arguments[0] + ' .number').getAttribute('title')", ids.COMPLAINTS_NUMBERS
    )
    assert "last 36 h" in hint, hint

    _type(driver, "5x")
    wait_until(lambda: "36h or 7d" in driver.find_element("id", ids.NOTICE).text, "the line saying how to write one")
    marked = driver.execute_script(
        "var el = document.getElementById(arguments[0]); return (el.closest('.window-custom') || el).className",
        ids.WINDOW_CUSTOM,
    )
    assert "invalid" in marked.split()
    assert "window=36h" in driver.current_url
    assert numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == want
