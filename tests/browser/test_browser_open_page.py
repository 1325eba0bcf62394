"""An open page shows what a freshly opened page shows: the services and complaints charts and area maps
of a page left open follow the events fed after its first draw (a new category, channel, district and
routing action included), and both agree with a direct count of the events fed."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.browser.conftest import area_values, bars, figure_of, numbers_of, stacked_bars, wait_for_refreshes

pytestmark = pytest.mark.browser

TIMEOUT_S = 60


def _poll(read, expected, timeout: float = TIMEOUT_S):
    """Read the page until it shows ``expected`` (or the deadline passes); return the last reading."""
    deadline = time.monotonic() + timeout
    seen = read()
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = read()
    return seen


def _in_tab(driver, url: str, read, expected):
    """What a freshly opened tab on ``url`` shows, read the same way; the open tab is back in front after."""
    opened = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(url)
        return _poll(read, expected)
    finally:
        driver.close()
        driver.switch_to.window(opened)


def test_an_open_services_page_follows_new_channels_districts_and_counts(dash_duo, quiet_city, app_of):
    city = quiet_city
    first, second = city.district_points("D-FT"), city.district_points("D-LU")
    fed: list[tuple[str, str]] = []  # (district, channel) of every application fed

    def apply(district, point, channel, n):
        for _ in range(n):
            city.feed("services", "application", channel=channel, lon=point[0], lat=point[1])
            fed.append((district, channel))
        city.drain()

    def expected():
        per_district = Counter(d for d, _ in fed)
        return {
            "channels": dict(Counter(c for _, c in fed)),
            "areas": (dict(per_district), float(max(per_district.values()))),
            "applications": len(fed),
        }

    def read():
        areas_map = figure_of(dash_duo.driver, {"type": "area-map", "page": "services"})
        return {
            "channels": bars(figure_of(dash_duo.driver, "services-channels")),
            "areas": area_values(areas_map),
            "applications": numbers_of(dash_duo.driver, "services-numbers").get("applications"),
        }

    apply("D-FT", first, "app", 5)
    apply("D-FT", first, "web", 3)
    dash_duo.start_server(app_of(city.settings))
    url = dash_duo.server_url + "/services"
    dash_duo.wait_for_page(url=url)
    assert _poll(read, expected()) == expected()  # the first draw

    # A channel and a district never seen on this page, and more of what it already shows.
    apply("D-LU", second, "kiosk", 7)
    apply("D-FT", first, "app", 4)
    wait_for_refreshes(dash_duo.driver, "services-tick", 3)
    open_page = _poll(read, expected())
    fresh_page = _in_tab(dash_duo.driver, url, read, expected())
    assert fresh_page == expected()
    assert open_page == fresh_page


def test_an_open_complaints_page_follows_new_categories_routing_and_counts(dash_duo, quiet_city, app_of):
    city = quiet_city
    first, second = city.district_points("D-FT"), city.district_points("D-LU")
    filed: list[tuple[str, str, str]] = []  # (complaint id, district, category)
    updates: list[tuple[str, str]] = []  # (action, level)

    def file(district, point, category, n):
        for _ in range(n):
            complaint = f"k-{len(filed)}"
            city.feed(
                "complaints", "complaint", complaint_id=complaint, category=category, text="please help",
                lon=point[0], lat=point[1],
            )  # fmt: skip
            filed.append((complaint, district, category))
        city.drain()

    def route(action, level, first_complaint, n):
        for complaint, _district, _category in filed[first_complaint : first_complaint + n]:
            city.feed("complaints", "complaint_update", complaint_id=complaint, action=action, level=level)
            updates.append((action, level))
        city.drain()

    def expected():
        per_district = Counter(d for _, d, _ in filed)
        return {
            "categories": dict(Counter(c for _, _, c in filed)),
            "routing": dict(Counter(updates)),
            "areas": (dict(per_district), float(max(per_district.values()))),
            "filed": len(filed),
        }

    def read():
        areas_map = figure_of(dash_duo.driver, {"type": "area-map", "page": "complaints"})
        return {
            "categories": bars(figure_of(dash_duo.driver, "complaints-categories")),
            "routing": stacked_bars(figure_of(dash_duo.driver, "complaints-routing")),
            "areas": area_values(areas_map),
            "filed": numbers_of(dash_duo.driver, "complaints-numbers").get("complaints filed"),
        }

    file("D-FT", first, "noise", 4)
    file("D-FT", first, "road", 2)
    route("assigned", "community", 0, 3)
    dash_duo.start_server(app_of(city.settings))
    url = dash_duo.server_url + "/complaints"
    dash_duo.wait_for_page(url=url)
    assert _poll(read, expected()) == expected()  # the first draw

    # A category, a district and a routing level never seen on this page, and more of what it shows.
    file("D-LU", second, "water", 6)
    file("D-FT", first, "noise", 3)
    route("assigned", "community", 3, 2)
    route("assigned", "neighbourhood", 0, 1)
    wait_for_refreshes(dash_duo.driver, "complaints-tick", 3)
    open_page = _poll(read, expected())
    fresh_page = _in_tab(dash_duo.driver, url, read, expected())
    assert fresh_page == expected()
    assert open_page == fresh_page

    # A routing action never seen on this page.
    route("escalated", "district", 0, 1)
    wait_for_refreshes(dash_duo.driver, "complaints-tick", 3)
    open_page = _poll(read, expected())
    fresh_page = _in_tab(dash_duo.driver, url, read, expected())
    assert fresh_page == expected()
    assert open_page == fresh_page
