"""The open-complaints grid as a user works it: a district filtered by a name with an apostrophe shows exactly
the complaints the events placed there, a words filter with Chinese characters and quotes finds its complaint,
'waited (h)' sorts as numbers, and the CSV export is named after the view, area, window and time and holds
the rows the grid shows."""

from __future__ import annotations

import csv
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.keys import Keys

from tests.browser.conftest import ARTIFACTS, allow_downloads, click, wait_until

pytestmark = pytest.mark.browser

HOUR_MS = 3_600_000
GRID = "complaints-table"
# Hours each complaint has waited, by district: in Bao'an (the district with an apostrophe) and elsewhere.
# As text, 10.5 sorts before 2.5 and 30.0 before 9.5: only a numeric sort gives the order of the hours.
WAITS = {"D-BA": (0.5, 2.5, 9.5, 10.5, 30.0), "D-FT": (1.5, 12.0), "D-LU": (4.0, 20.0)}
QUOTED_WORDS = "路灯不亮 at O'Brien's \"east\" gate"
# The longest wait in Bao'an is an open manhole: P1, and past even the last level's deadline after 30 h.
MANHOLE = ("D-BA", 4)

ROWS = """
var grid = document.getElementById(arguments[0]);
if (!grid) { return []; }
var rows = Array.from(grid.querySelectorAll('.ag-center-cols-container .ag-row'));
rows.sort(function (a, b) { return Number(a.getAttribute('row-index')) - Number(b.getAttribute('row-index')); });
return rows.map(function (r) {
  var out = {_classes: r.className};
  r.querySelectorAll('.ag-cell').forEach(function (c) {
    out[c.getAttribute('col-id')] = c.textContent;
    if (c.getAttribute('col-id') === 'priority') { out._priority_classes = c.className; }
  });
  return out;
});
"""
HEADERS = """
return Array.from(document.getElementById(arguments[0]).querySelectorAll('.ag-header-row-column .ag-header-cell'))
  .map(function (h) { return [h.getAttribute('col-id'), h.querySelector('.ag-header-cell-text').textContent]; });
"""


def _rows(driver) -> list[dict]:
    """The rows the grid shows, top to bottom, as column id -> text (and the row's classes)."""
    return driver.execute_script(ROWS, GRID)


def _filter(driver, column: str, text: str) -> None:
    """Type into a column's floating filter, as a user does."""
    box = driver.find_element("css selector", f"#{GRID} .ag-header-row-filter .ag-header-cell[col-id='{column}'] input")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    if text:
        box.send_keys(text)


def _click_header(driver, column: str) -> None:
    header = driver.find_element("css selector", f"#{GRID} .ag-header-row-column .ag-header-cell[col-id='{column}']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", header)
    header.find_element("css selector", ".ag-header-cell-label").click()


def _toggle_columns(driver, *headers: str) -> None:
    """Open the column chooser and click the named columns in its list, as a user does, then close it."""
    chooser = driver.find_element("id", "complaints-columns")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", chooser)
    chooser.click()
    for header in headers:
        option = wait_until(
            lambda h=header: [o for o in driver.find_elements("css selector", ".dash-dropdown-option") if o.text == h],
            f"the option {header!r} in the column chooser",
        )[0]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", option)  # clear of the search box
        option.click()
    driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
    # The chooser's list closes before anything else is clicked (a click while it is open only closes it).
    wait_until(
        lambda: (
            not [o for o in driver.find_elements("css selector", ".dash-dropdown-option") if o.is_displayed()]
            or driver.find_element("tag name", "body").send_keys(Keys.ESCAPE)
        ),
        "the column chooser closed",
    )


def _columns(driver) -> list[str]:
    return [column for column, _ in driver.execute_script(HEADERS, GRID)]


def _ids(rows: list[dict]) -> list[str]:
    return [r["complaint"] for r in rows]


def _export(driver, folder: Path) -> tuple[Path, list[dict], list[list[dict]]]:
    """Click 'Export CSV' as a user does: the file written (once complete), its rows by column id, and the
    rows the grid showed just before and just after (a refresh in between may move a wait on by 0.1 h)."""
    # Two exports of one view in one minute have one name: Chrome writes the second over the first.
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    shown = [_cells(_rows(driver))]
    headers = {header: column for column, header in driver.execute_script(HEADERS, GRID)}
    click(driver, "#complaints-export")
    # Chrome writes to a '.crdownload' file and gives it its name once it is whole.
    (file,) = wait_until(
        lambda: [p for p in folder.iterdir() if p.suffix == ".csv" and before.get(p.name) != p.stat().st_mtime_ns],
        "the CSV file written",
    )
    shown.append(_cells(_rows(driver)))
    with file.open(encoding="utf-8-sig", newline="") as f:
        return file, [{headers[h]: v for h, v in row.items()} for row in csv.DictReader(f)], shown


def _cells(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]


def _stamp(name: str, area: str, window: str) -> datetime:
    """The time in an export's name, once the rest of the name is the view's, the area's and the window's."""
    match = re.fullmatch(rf"citydeck-complaints-{area}-{window}-(\d{{4}}-\d{{2}}-\d{{2}}T\d{{4}})\.csv", name)
    assert match, name
    return datetime.strptime(match[1], "%Y-%m-%dT%H%M")


def test_the_grid_filters_any_text_sorts_numbers_and_exports_what_it_shows(dash_duo, quiet_city, app_of, tmp_path):
    city = quiet_city
    now = int(time.time() * 1000)
    fed: dict[str, dict] = {}  # complaint id -> where and when it was filed, as the events say
    for district, waits in WAITS.items():
        lon, lat = city.district_points(district)
        for i, hours in enumerate(waits):
            complaint_id = f"k-{district}-{i}"
            words = {("D-LU", 1): QUOTED_WORDS, MANHOLE: "Manhole cover missing on the road"}.get(
                (district, i), f"Streetlight out, {district} number {i}"
            )
            filed = now - int(hours * HOUR_MS)
            city.feed("complaints", "complaint", at_ms=filed, complaint_id=complaint_id, text=words,
                      category="streetlight", lon=lon, lat=lat)  # fmt: skip
            fed[complaint_id] = {"district": district, "filed": filed, "words": words}
    city.drain()

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    zone = ZoneInfo(city.settings.city_timezone)
    opened = datetime.now(zone).replace(second=0, microsecond=0, tzinfo=None)
    dash_duo.start_server(app_of(city.settings), navigate=False)
    driver = dash_duo.driver
    driver.get(f"{dash_duo.server.url}/complaints")
    wait_until(lambda: len(_rows(driver)) == len(fed), "every open complaint in the grid", timeout=60)
    allow_downloads(driver, downloads)
    ARTIFACTS.mkdir(exist_ok=True)
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", driver.find_element("id", GRID))
    driver.save_screenshot(str(ARTIFACTS / "complaints-grid.png"))

    # Overdue rows are marked and P1 is coloured, as the rows themselves say; the open manhole is both.
    for row in _rows(driver):
        assert ("complaint-overdue" in row["_classes"].split()) == (row["overdue"] == "overdue"), row
        assert ("priority-p1" in row["_priority_classes"].split()) == (row["priority"] == "P1"), row
    manhole = next(r for r in _rows(driver) if r["complaint"] == "k-{}-{}".format(*MANHOLE))
    assert manhole["priority"] == "P1" and manhole["overdue"] == "overdue"

    # The district filter, on a name with an apostrophe: exactly the complaints the events placed in Bao'an.
    _filter(driver, "district", "Bao'an")
    in_baoan = {c for c, f in fed.items() if f["district"] == "D-BA"}
    wait_until(lambda: set(_ids(_rows(driver))) == in_baoan, "only Bao'an's complaints")
    assert {r["district"] for r in _rows(driver)} == {"Bao'an"}

    # Sorted by the hours waited: the order of their filing times, and the numbers in numeric order.
    _click_header(driver, "waited_h")
    longest_first = sorted(in_baoan, key=lambda c: fed[c]["filed"])
    wait_until(lambda: _ids(_rows(driver)) == longest_first[::-1], "the shortest wait first")
    hours = [float(r["waited_h"]) for r in _rows(driver)]
    assert hours == sorted(hours) and len(set(hours)) == len(hours)
    _click_header(driver, "waited_h")
    wait_until(lambda: _ids(_rows(driver)) == longest_first, "the longest wait first")

    # Export: a file named after the view, the area ('city': nothing drilled), the window and the snapshot's
    # time in the city's zone (a snapshot built since the server started), holding the rows shown, in order.
    file, written, shown = _export(driver, downloads)
    assert opened <= _stamp(file.name, "city", "1h") <= datetime.now(zone).replace(tzinfo=None)
    assert written in shown

    # Text with Chinese characters and quotes filters as typed.
    _filter(driver, "district", "")
    _filter(driver, "words", "不亮 at O'Brien's \"east\"")
    wait_until(lambda: _ids(_rows(driver)) == ["k-D-LU-1"], "the complaint with those words")
    assert _rows(driver)[0]["words"] == QUOTED_WORDS

    # Drilled into Bao'an over a day: Bao'an's complaints alone, and the file is named after the district.
    driver.get(f"{dash_duo.server.url}/complaints?district=D-BA&window=24h")
    wait_until(lambda: set(_ids(_rows(driver))) == in_baoan, "Bao'an's complaints on the drilled page", timeout=60)
    file, written, shown = _export(driver, downloads)
    assert opened <= _stamp(file.name, "baoan", "24h") <= datetime.now(zone).replace(tzinfo=None)
    assert written in shown

    # Columns chosen away leave the grid and the file; the complaint's id stays.
    _toggle_columns(driver, "words", "why")
    wait_until(lambda: "words" not in _columns(driver) and "reason" not in _columns(driver), "words and why hidden")
    assert "complaint" in _columns(driver)
    file, written, shown = _export(driver, downloads)
    assert written in shown and not {"words", "reason"} & set(written[0])
