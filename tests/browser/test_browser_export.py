"""Every map and chart saves itself as a PNG in the browser, with no network and no upload: the camera
button writes a file named after the figure; no button offers to send a figure anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains

from tests.browser.conftest import allow_downloads, wait_until

pytestmark = pytest.mark.browser

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

DRAWN = """
var gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
return !!(gd && gd.data && gd.data.length && gd.querySelector(arguments[1]));
"""

BUTTONS = """
return Array.from(document.querySelectorAll('.modebar-btn')).map(function (b) {
  return (b.getAttribute('data-title') || '') + '|' + (b.getAttribute('data-val') || '');
});
"""


@pytest.mark.parametrize(
    "path, graph, drawn, name",
    [
        ("/services", ".live-map", "canvas.maplibregl-canvas", "citydeck-services-area-map.png"),
        ("/services", "#services-channels", ".barlayer", "citydeck-services-channels.png"),
    ],
)
def test_a_map_and_a_chart_save_as_png_with_no_network(dash_duo, city, tmp_path, path, graph, drawn, name):
    from app import create_app

    settings, _embedded, _client = city
    dash_duo.start_server(create_app(settings), navigate=False)
    driver = dash_duo.driver
    driver.get(dash_duo.server.url + path)
    wait_until(lambda: driver.execute_script(DRAWN, graph, drawn), f"{graph} drawn", timeout=60)
    allow_downloads(driver, tmp_path)
    element = driver.find_element("css selector", graph)
    ActionChains(driver).move_to_element(element).perform()
    buttons = driver.execute_script(BUTTONS)
    assert not [b for b in buttons if "cloud" in b.lower() or "chart studio" in b.lower()], buttons
    camera = wait_until(
        lambda: element.find_elements("css selector", ".modebar-btn[data-title*='png' i]"), "the PNG button"
    )
    ActionChains(driver).move_to_element(element).click(camera[0]).perform()
    saved = tmp_path / name
    wait_until(lambda: saved.exists() and saved.stat().st_size > 1000, f"{name} written", timeout=60)
    data = Path(saved).read_bytes()
    assert data.startswith(PNG_MAGIC)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    box = element.rect
    # Saved at twice the size on screen, so a printout or a report stays sharp.
    assert (width, height) == (round(box["width"] * 2), round(box["height"] * 2)) or width >= box["width"] * 1.9
