"""Navigation keeps its state: a click on an area of any page's map (the overview's included) drills into it,
browser Back returns the view (not only the URL) to where it was, and a new time window keeps the map's zoom."""

from __future__ import annotations

import pytest

from tests.browser.conftest import (
    click_map_at,
    figure_of,
    settled_zoom,
    wait_for_refreshes,
    wait_until,
    wheel_zoom,
)

pytestmark = pytest.mark.browser

SERVICES_MAP = {"type": "area-map", "page": "services"}


def _control(driver, component_id: str, prop: str):
    return driver.execute_script(
        "var l = window.dash_component_api.getLayout(arguments[0]); return l ? (l.props || l)[arguments[1]] : null;",
        component_id,
        prop,
    )


def _areas_shown(driver, map_id) -> list[str]:
    data = figure_of(driver, map_id)["data"]
    return list(data[0]["locations"] or []) if data else []


def _city_view(driver, map_id) -> bool:
    areas = _areas_shown(driver, map_id)
    return (
        _control(driver, "district", "value") is None
        and driver.find_element("css selector", "#breadcrumb").text == "City"
        and "D-FT" in areas
        and "D-LU" in areas
    )


def _district_view(driver, map_id, district: str, name: str) -> bool:
    areas = _areas_shown(driver, map_id)
    return (
        _control(driver, "district", "value") == district
        and f"district={district}" in driver.current_url
        and name in driver.find_element("css selector", "#breadcrumb").text
        and bool(areas)
        and all(a.startswith(district + "-") for a in areas)
    )


def _district_point(city, district: str) -> tuple[float, float]:
    return city.district_points(district)


def test_back_after_a_drill_returns_the_view_to_the_city(dash_duo, quiet_city, app_of):
    driver = dash_duo.driver
    dash_duo.start_server(app_of(quiet_city.settings))
    dash_duo.wait_for_page(url=dash_duo.server_url + "/services")
    wait_until(lambda: _city_view(driver, SERVICES_MAP), "the services map of the whole city")
    click_map_at(driver, SERVICES_MAP, *_district_point(quiet_city, "D-LU"))
    wait_until(lambda: _district_view(driver, SERVICES_MAP, "D-LU", "Luohu"), "the drill into Luohu")
    driver.back()
    wait_until(lambda: "district=" not in driver.current_url, "the URL before the drill")
    wait_until(lambda: _city_view(driver, SERVICES_MAP), "the whole city again after Back")
    driver.forward()
    wait_until(lambda: _district_view(driver, SERVICES_MAP, "D-LU", "Luohu"), "Luohu again after Forward")


@pytest.mark.parametrize("card", ["overview-cases", "overview-foot", "overview-services", "overview-complaints"])
def test_a_click_on_each_overview_map_drills_into_the_area(dash_duo, quiet_city, app_of, card):
    driver = dash_duo.driver
    overview_map = {"type": "area-map", "page": card}
    dash_duo.start_server(app_of(quiet_city.settings))
    dash_duo.wait_for_page(url=dash_duo.server_url + "/")
    wait_until(lambda: _city_view(driver, overview_map), "the overview's map of the whole city")
    click_map_at(driver, overview_map, *_district_point(quiet_city, "D-LU"))
    wait_until(lambda: _district_view(driver, overview_map, "D-LU", "Luohu"), "the drill into Luohu")


def test_a_new_time_window_keeps_the_zoom_of_the_map(dash_duo, quiet_city, app_of):
    driver = dash_duo.driver
    dash_duo.start_server(app_of(quiet_city.settings))
    dash_duo.wait_for_page(url=dash_duo.server_url + "/services")
    wait_until(lambda: _city_view(driver, SERVICES_MAP), "the services map of the whole city")
    _before, zoomed = wheel_zoom(driver, SERVICES_MAP, 0.5)
    dash_duo.select_dcc_dropdown("#window", value="last 15 min")
    wait_until(lambda: "window=15m" in driver.current_url, "the URL of the new window")
    wait_for_refreshes(driver, "services-tick", 3)
    assert abs(settled_zoom(driver, SERVICES_MAP) - zoomed) < 0.01


def test_a_link_to_a_drilled_view_opens_that_view(dash_duo, quiet_city, app_of):
    """A shared or bookmarked link to a neighbourhood and window opens there, not at the city's last hour."""
    dash_duo.start_server(app_of(quiet_city.settings))
    link = dash_duo.server_url + "/complaints?window=24h&district=D-FT&neighbourhood=D-FT-N01"
    dash_duo.wait_for_page(url=link)
    driver = dash_duo.driver

    def drilled() -> bool:
        areas = _areas_shown(driver, {"type": "area-map", "page": "complaints"})
        return (
            driver.current_url == link
            and _control(driver, "window", "value") == "24h"
            and _control(driver, "neighbourhood", "data") == "D-FT-N01"
            and " › " in driver.find_element("css selector", "#breadcrumb").text
            and bool(areas)
            and all(a.startswith("D-FT-N01-") for a in areas)
        )

    wait_until(drilled, "the drilled view the link names", timeout=60)
    wait_for_refreshes(driver, "complaints-tick", 2)
    assert drilled(), f"the view left the link's state: {driver.current_url}"
