"""The wall fills any screen it is put on, exactly: at 1920×1080, 2560×1440, 3840×2160 and a 7680×2160
video-wall strip, each view shows with no scrolling and no panel cut off, its type readable from across a
room, its maps taking most of their panels, and no mode bar on any map or chart."""

from __future__ import annotations

import math

import pytest

from data.keys import Keys
from tests.browser.conftest import ARTIFACTS, click, crowded_reading, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WALL_VIEWS = ("overview", "cases", "foot-traffic", "services", "complaints")
MAPS = {"overview": 4, "cases": 2, "foot-traffic": 2, "services": 1, "complaints": 2}

# What is on screen: the page's size, each visible panel's box, the smallest type of any visible text (HTML
# and the figures' SVG), each map canvas against its panel, and any mode bar showing.
MEASURE = """
var W = window.innerWidth, H = window.innerHeight;
var slot = document.querySelector('.wall-slot:not(.parked)');
function shown(el) {
  var s = window.getComputedStyle(el);
  if (s.display === 'none' || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) { return false; }
  var r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < W && r.top < H;
}
var smallest = null, where = null;
var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  var node = walker.currentNode, el = node.parentElement;
  if (!el || !node.textContent.trim() || el.closest('.parked, script, style, .alarm.hidden')) { continue; }
  if (!shown(el)) { continue; }
  var size = parseFloat(window.getComputedStyle(el).fontSize);
  if (smallest === null || size < smallest) { smallest = size; where = (el.className.baseVal !== undefined ? el.className.baseVal : el.className) + ' "' + node.textContent.trim().slice(0, 30) + '"'; }
}
var panels = Array.from(document.querySelectorAll('.card, .numbers.wide, .topbar, .freshness, .wall-head')).filter(function (el) {
  return !el.closest('.parked') && window.getComputedStyle(el).display !== 'none' && el.getBoundingClientRect().height > 0;
}).map(function (el) {
  var r = el.getBoundingClientRect();
  return {what: el.className + ' ' + (el.querySelector('.card-title') ? el.querySelector('.card-title').textContent : ''),
          left: r.left, top: r.top, right: r.right, bottom: r.bottom};
});
var maps = Array.from(slot ? slot.querySelectorAll('.card') : []).filter(function (card) {
  return card.querySelector('canvas.maplibregl-canvas');
}).map(function (card) {
  var c = card.querySelector('canvas.maplibregl-canvas').getBoundingClientRect(), p = card.getBoundingClientRect();
  var gd = card.querySelector('.js-plotly-plot');
  return {title: card.querySelector('.card-title').textContent, share: (c.width * c.height) / (p.width * p.height),
          w: gd.offsetWidth, h: gd.offsetHeight, zoom: gd._fullLayout.map.zoom, box: gd.layout.meta && gd.layout.meta.fit};
});
var modebars = Array.from(document.querySelectorAll('.modebar-container, .modebar')).filter(function (m) {
  return !m.closest('.parked') && shown(m);
}).length;
var lists = Array.from(slot ? slot.querySelectorAll('.card') : []).filter(function (card) {
  return card.querySelector('tbody tr') && window.getComputedStyle(card).display !== 'none';
}).map(function (card) {
  var edge = card.getBoundingClientRect().bottom;
  var rows = Array.from(card.querySelectorAll('tbody tr'));
  return {title: card.querySelector('.card-title').textContent, rows: rows.length,
          cut: rows.filter(function (r) { return r.getBoundingClientRect().bottom > edge + 0.5; }).length,
          said: card.getAttribute('data-more') || ''};
});
return {lists: lists, W: W, H: H, scrollH: document.documentElement.scrollHeight, scrollW: document.documentElement.scrollWidth,
        smallest: smallest, where: where, panels: panels, maps: maps, modebars: modebars,
        title: document.getElementById('wall-title').textContent};
"""

DRAWN = """
var slot = document.querySelector('.wall-slot:not(.parked)');
if (!slot) { return false; }
var graphs = Array.from(slot.querySelectorAll('.js-plotly-plot'));
return graphs.filter(function (gd) {
  return gd.querySelector('canvas.maplibregl-canvas') && (gd.data || []).some(function (t) {
    return (t.z || t.lat || t.locations || []).length > 0; });
}).length;
"""


SIZED = """
var want = arguments[0];
var slot = document.querySelector('.wall-slot:not(.parked)');
return Array.from(slot.querySelectorAll('.live-map .js-plotly-plot')).filter(function (gd) {
  return gd.layout && String(gd.layout.uirevision).endsWith(want) &&
    (gd.dataset.fitted || '').indexOf('@' + gd.offsetWidth + 'x' + gd.offsetHeight + '#') > 0;
}).length;
"""


@pytest.fixture
def wall(dash_duo, city):
    from app import create_app

    settings, _embedded, _client = city
    dash_duo.start_server(create_app(settings), navigate=False)
    return dash_duo


def open_wall(duo, view: str, width: int, height: int) -> dict:
    driver = duo.driver
    url = f"{duo.server.url}/wall?views={view}&dwell=3600"
    driver.get(url)  # the screen is set on a page; it then holds for the page loaded again
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    driver.get(url)
    wait_until(lambda: driver.execute_script(DRAWN) >= MAPS[view], f"the {view} wall's maps drawn", timeout=60)
    # The figures' type follows the screen from the first refresh after the browser has told the server the
    # screen's size (it then names that size in the figures' uirevision); the maps fit their boxes to their
    # panels once drawn at that size.
    px = math.ceil(height / 74)
    wait_until(
        lambda: driver.execute_script(SIZED, f":{px}px") >= MAPS[view], f"the {view} wall set for its screen", 60
    )
    # A list cut by its panel's edge is counted at its foot within a moment of being drawn, and each map is
    # fitted to its panel's size (a refresh drawn meanwhile is fitted again): both are then checked whole.
    last = wait_until(
        lambda: (
            (m := driver.execute_script(MEASURE))
            and all(t["said"] or not t["cut"] for t in m["lists"])
            and all(
                mp["box"] and abs(mp["zoom"] - fitting_zoom(mp["box"], mp["w"], mp["h"])) < 0.25 for mp in m["maps"]
            )
            and m
        ),
        f"the {view} wall's lists counted and its maps fitted",
    )
    driver.save_screenshot(str(ARTIFACTS / f"wall-{view}-{width}x{height}.png"))
    return last


def check_fills(m: dict, width: int, height: int, view: str) -> None:
    assert (m["W"], m["H"]) == (width, height)
    assert m["scrollH"] <= height and m["scrollW"] <= width, f"{view} scrolls: {m['scrollW']}×{m['scrollH']}"
    outside = [
        p
        for p in m["panels"]
        if p["left"] < -0.5 or p["top"] < -0.5 or p["right"] > width + 0.5 or p["bottom"] > height + 0.5
    ]
    assert not outside, f"{view}: panels cut off by the screen: {outside}"
    # No empty band: the lowest panel reaches the bottom of the screen, the rightmost its right edge.
    assert max(p["bottom"] for p in m["panels"]) >= height - 0.02 * height, f"{view}: an empty band at the bottom"
    assert max(p["right"] for p in m["panels"]) >= width - 0.03 * width, f"{view}: an empty band at the right"
    assert len(m["maps"]) == MAPS[view], f"{view}: maps on screen {m['maps']}"
    small = [mp for mp in m["maps"] if mp["share"] < 0.35]
    assert not small, f"{view}: maps under 35 % of their panel: {small}"
    assert m["modebars"] == 0, f"{view}: a mode bar shows on the wall"
    # A list longer than its panel says how many of its rows it leaves out (at least those cut by the edge).
    for table in m["lists"]:
        if table["cut"]:
            said = int(table["said"].split()[1]) if table["said"] else 0
            assert said >= table["cut"], f"{view}: {table['title']} cuts {table['cut']} rows without saying so"
    # Each map shows its whole area as large as its panel allows: the zoom that fits the box to the map's size.
    for mp in m["maps"]:
        assert mp["box"], f"{view}: {mp['title']} says no box to fit"
        assert abs(mp["zoom"] - fitting_zoom(mp["box"], mp["w"], mp["h"])) < 0.25, f"{view}: {mp} is not fitted"


def fitting_zoom(box, width: float, height: float) -> float:
    """The Web-Mercator zoom at which a (min lon, min lat, max lon, max lat) box just fits a map of that size."""
    minx, miny, maxx, maxy = box
    lat_span = (maxy - miny) / math.cos(math.radians((miny + maxy) / 2))
    return min(math.log2(width * 360 / (512 * (maxx - minx))), math.log2(height * 360 / (512 * lat_span)))


@pytest.mark.parametrize("view", WALL_VIEWS)
def test_the_wall_fills_a_1080p_and_a_4k_screen_with_type_read_from_a_room(wall, view):
    for width, height in ((1920, 1080), (3840, 2160)):
        m = open_wall(wall, view, width, height)
        check_fills(m, width, height, view)
        assert m["smallest"] >= height / 77, (
            f"{view} at {width}×{height}: smallest type {m['smallest']} px: {m['where']}"
        )
    assert m["smallest"] >= 28, f"{view} on 4K: smallest type {m['smallest']} px: {m['where']}"


@pytest.mark.parametrize("size", [(2560, 1440), (7680, 2160)])
def test_the_wall_fills_a_1440p_screen_and_a_video_wall_strip(wall, size):
    width, height = size
    for view in ("overview", "complaints"):
        check_fills(open_wall(wall, view, width, height), width, height, view)


def test_only_the_view_on_screen_refreshes(wall):
    """A parked view of the playlist does not ask the server for anything; the one on screen does."""
    driver = wall.driver
    driver.get(f"{wall.server.url}/wall?views=overview,cases,foot-traffic,services,complaints&dwell=3600")
    wait_until(lambda: driver.execute_script(DRAWN) >= 1, "the first view drawn", timeout=60)
    ticks = """
    var out = {};
    ['overview-tick', 'cases-tick', 'foot-tick', 'services-tick', 'complaints-tick'].forEach(function (id) {
      var l = window.dash_component_api.getLayout(id); var p = l && (l.props || l);
      out[id] = p ? {n: p.n_intervals || 0, disabled: !!p.disabled} : null;
    });
    return out;"""
    showing = driver.find_element("id", "wall-title").text
    tick_of = {"Overview": "overview-tick", "Case tracing": "cases-tick", "Foot traffic": "foot-tick",
               "Services": "services-tick", "Complaints": "complaints-tick"}  # fmt: skip
    live = tick_of[showing]
    first = driver.execute_script(ticks)
    wait_until(lambda: driver.execute_script(ticks)[live]["n"] >= first[live]["n"] + 3, "three refreshes on screen")
    later = driver.execute_script(ticks)
    for tick, state in later.items():
        if tick == live:
            assert not state["disabled"]
        else:
            assert state["disabled"], f"{tick} refreshes while parked"
            assert state["n"] == first[tick]["n"], f"{tick} refreshed while parked"


ALARM_MAP = """
var gd = document.querySelector('#alarm-map .js-plotly-plot');
if (!gd || !gd.data) { return null; }
var box = gd.getBoundingClientRect();
return {points: gd.data.map(function (t) { return [t.lon, t.lat]; }),
        canvas: !!gd.querySelector('canvas.maplibregl-canvas'), w: box.width, h: box.height};
"""


def test_an_alarm_takes_over_the_wall_with_its_map_until_an_operator_acknowledges_it(wall, city, demo_city):
    """Crowding raised by real readings takes over the wall with a map of where; acknowledged with a note
    from the alarms page, it stops taking over and the wall says it is acknowledged."""
    settings, _embedded, client = city
    keys = Keys(settings.key_prefix)
    mall = demo_city.places[demo_city.places.kind == "mall"].iloc[1]

    def reading(seq: int, occupancy: int, ago_s: float = 0) -> dict:
        return crowded_reading(mall, "wall-alarm-test", "S-WALL-ALARM", seq, occupancy, ago_s)

    driver = wall.driver
    open_wall(wall, "overview", 1920, 1080)
    # Crowded minute after minute for eleven minutes, and still: past the grace period, so an alarm.
    for minute in range(12):
        client.xadd(keys.stream("foot"), reading(minute, int(mall.capacity) * 10, ago_s=(11 - minute) * 60))
    wait_until(lambda: "hidden" not in driver.find_element("id", "alarm").get_attribute("class"), "the takeover")
    wait_until(lambda: mall["name"] in driver.find_element("id", "alarm-text").text, "the alarm's place")
    text = driver.find_element("id", "alarm-text").text
    assert "Crowding" in text and "CRITICAL" in text and f"{int(mall.capacity):,}" in text
    located = wait_until(lambda: (m := driver.execute_script(ALARM_MAP)) and m["canvas"] and m, "the locator map")
    assert [round(located["points"][-1][0][0], 4), round(located["points"][-1][1][0], 4)] == [
        round(float(mall.lon), 4),
        round(float(mall.lat), 4),
    ]
    assert located["w"] * located["h"] > 0.2 * 1920 * 1080, f"the locator map is small: {located}"
    driver.save_screenshot(str(ARTIFACTS / "wall-alarm-locator.png"))

    # An operator acknowledges it from the alarms page (sign-in is off here: everyone is an operator).
    key = f"crowding:{mall.place_id}"
    driver.get(f"{wall.server.url}/alarms")
    wait_until(lambda: mall["name"] in driver.find_element("id", "alarms-body").text, "the alarm listed")
    wait_until(
        lambda: driver.execute_script(
            "var l = window.dash_component_api.getLayout('alarms-pick'); var p = l && (l.props || l);"
            "return (p && p.options || []).some(function (o) { return o.value === arguments[0]; });".replace(
                "arguments[0]", repr(key)
            )
        ),
        "the alarm offered for acknowledging",
    )
    driver.execute_script("window.dash_clientside.set_props('alarms-pick', {value: arguments[0]});", key)
    driver.find_element("id", "alarms-note").send_keys("team 3 on the way")
    click(driver, "#alarms-ack")
    wait_until(lambda: "Acknowledged" in driver.find_element("id", "alarms-said").text, "the acknowledgement")
    wait_until(lambda: "team 3 on the way" in driver.find_element("id", "alarms-log").text, "the log entry")

    open_wall(wall, "overview", 1920, 1080)
    wait_until(lambda: "acknowledged" in driver.find_element("id", "alarm-count").text, "the wall saying so")
    assert "hidden" in driver.find_element("id", "alarm").get_attribute("class")
    driver.save_screenshot(str(ARTIFACTS / "wall-alarm-acknowledged.png"))

    # The condition ends: the alarm clears after its hold, and the wall has no alarm left.
    client.xadd(keys.stream("foot"), reading(12, 0))
    wait_until(lambda: not driver.find_element("id", "alarm-count").text, "the alarm cleared", timeout=60)


GLYPHS = """
// Draw a character in the page's own font stack; a character no font has comes out as the same empty box.
var family = window.getComputedStyle(document.body).fontFamily;
function pixels(ch) {
  var c = document.createElement('canvas'); c.width = 64; c.height = 64;
  var g = c.getContext('2d'); g.fillStyle = '#fff'; g.font = '48px ' + family; g.fillText(ch, 4, 52);
  return Array.from(g.getImageData(0, 0, 64, 64).data).join(',');
}
var missing = pixels('\\uE000');
return {family: family, fu: pixels('福') !== missing, tian: pixels('田') !== missing,
        differ: pixels('福') !== pixels('田')};
"""


def test_chinese_names_render_in_the_page_font(wall):
    """Place names such as 福田 are drawn as glyphs, not as the boxes of a font without them."""
    driver = wall.driver
    driver.get(f"{wall.server.url}/wall?views=overview&dwell=3600")
    wait_until(lambda: driver.find_elements("id", "wall-title"), "the wall")
    glyphs = driver.execute_script(GLYPHS)
    assert "Noto Sans CJK SC" in glyphs["family"]
    assert glyphs["fu"] and glyphs["tian"] and glyphs["differ"], f"Chinese characters drawn as boxes: {glyphs}"
