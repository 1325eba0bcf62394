"""A page opened as of a past moment (``?at=``) shows that moment's windows from history: complaints filed in
2019 and folded at their own time read back, per district and in the headline, as a plain count of the events
says; what is kept only as it stands now is not shown as if it were then, and 'Back to live' returns to now."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from selenium.common.exceptions import StaleElementReferenceException

from layouts import ids
from tests.browser.conftest import area_values, click, figure_of, numbers_of, refreshes, wait_until

pytestmark = pytest.mark.browser

HOUR_S = 3600
AT = "2019-10-06T08:00"  # a Sunday morning in the city's local time
# Complaints filed before the moment, by district: hours before AT (the 1 h window holds those under 1).
FILED_HOURS_BEFORE = {"D-FT": (0.1, 0.5, 0.9, 3.0, 20.0), "D-BA": (0.3, 2.0, 23.5, 30.0), "D-LU": (0.7, 25.0)}
AFTER_HOURS = (0.2, 5.0)  # filed after the moment: never in its windows


def _strip(driver, what: str = "textContent") -> str:
    """The as-of strip's text (or another property), read afresh."""
    return driver.execute_script(f"return document.getElementById(arguments[0]).{what}", ids.AS_OF)


def _expected(fed: list[tuple[str, float]], start: float, end: float) -> dict[str, int]:
    """The plain recomputation: complaints per district with start <= filed < end."""
    out: dict[str, int] = {}
    for district, filed_s in fed:
        if start <= filed_s < end:
            out[district] = out.get(district, 0) + 1
    return out


def test_a_page_as_of_a_past_moment_shows_that_moments_windows_from_history(dash_duo, quiet_city, app_of):
    city = quiet_city
    at_s = datetime.strptime(AT, "%Y-%m-%dT%H:%M").replace(tzinfo=ZoneInfo(city.settings.city_timezone)).timestamp()
    # The city is live before the past year is imported into it, as a running command center is.
    live_lon, live_lat = city.district_points("D-FT")
    city.feed("complaints", "complaint", complaint_id="k-live", lon=live_lon, lat=live_lat, text="Streetlight out",
              category="streetlight")  # fmt: skip
    city.drain()
    fed: list[tuple[str, float]] = []
    n = 0
    for district, hours in FILED_HOURS_BEFORE.items():
        lon, lat = city.district_points(district)
        for h in (*hours, *(-a for a in AFTER_HOURS)):
            n += 1
            filed_s = at_s - h * HOUR_S
            city.feed("complaints", "complaint", at_ms=int(filed_s * 1000), complaint_id=f"k-{n}", lon=lon, lat=lat,
                      text="Streetlight out", category="streetlight")  # fmt: skip
            fed.append((district, filed_s))
    city.drain()

    dash_duo.start_server(app_of(city.settings), navigate=False)
    driver = dash_duo.driver
    for window, length_h in (("1h", 1), ("24h", 24)):
        driver.get(f"{dash_duo.server.url}/complaints?window={window}&at={AT}")
        want = _expected(fed, at_s - length_h * HOUR_S, at_s)
        wait_until(
            lambda w=want: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == sum(w.values()),
            f"the {window} before {AT} filed in the headline",
            timeout=60,
        )
        # The map draws after the numbers: waited for, then the same truth.
        wait_until(lambda w=want: area_values(figure_of(driver, ids.COMPLAINTS_AREAS_MAP))[0] == w, "the area map")
        shown = numbers_of(driver, ids.COMPLAINTS_NUMBERS)
        # The queue of open complaints is kept as it stands now: for 2019 it says nothing rather than 0 or 1.
        assert shown["open"] == "–" and shown["hotspots"] == "–"
        assert "As of 2019-10-06 08:00 (paused)" in _strip(driver), _strip(driver)
        # The moment stays in the URL, so the link can be shared.
        assert f"at={AT}" in driver.current_url

    click(driver, f"#{ids.BACK_TO_LIVE}")
    wait_until(lambda: "at=" not in driver.current_url, "the URL back to live")
    wait_until(
        lambda: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == 1,
        "the live day's one complaint in the headline",
        timeout=60,
    )
    assert numbers_of(driver, ids.COMPLAINTS_NUMBERS)["open"] == 1
    wait_until(lambda: not _strip(driver), "the as-of strip gone")
    assert time.time() > at_s  # the moment was in the past, as the page took it


# Complaints filed in each hour of a 2019 night (local time), in the order playback passes them.
NIGHT = {"2019-10-06T01:00": 3, "2019-10-06T02:00": 6, "2019-10-06T03:00": 2, "2019-10-06T04:00": 5}


def _choose(driver, dropdown_id: str, label: str) -> None:
    """Open a dropdown and click one of its options, as a user does (again if a refresh redrew it meanwhile)."""

    def pick() -> bool:
        try:
            options = [o for o in driver.find_elements("css selector", ".dash-dropdown-option") if o.is_displayed()]
            if not options:
                driver.find_element("id", dropdown_id).click()
                return False
            wanted = [o for o in options if o.text == label]
            if wanted:
                wanted[0].click()
            return bool(wanted)
        except StaleElementReferenceException:
            return False

    wait_until(pick, f"the option {label!r} chosen")


def _live_city_with_a_night_of_history(city) -> None:
    """One complaint now, folded, then the night's complaints imported into the live city."""
    zone = ZoneInfo(city.settings.city_timezone)
    lon, lat = city.district_points("D-LU")
    city.feed("complaints", "complaint", complaint_id="k-live", lon=lon, lat=lat, text="Streetlight out",
              category="streetlight")  # fmt: skip
    city.drain()
    n = 0
    for hour, count in NIGHT.items():
        start = datetime.fromisoformat(hour).replace(tzinfo=zone).timestamp()
        for i in range(count):
            n += 1
            city.feed("complaints", "complaint", at_ms=int((start + 60 + i * 500) * 1000), complaint_id=f"k-{n}",
                      lon=lon, lat=lat, text="Noise at night", category="noise")  # fmt: skip
    city.drain()


def _link(driver, page: str) -> str:
    """Where the navigation's link to a page leads."""
    link = driver.find_element("css selector", f'a[id*=\'"page":"{page}"\'][id*=\'"type":"{ids.NAV_LINK}"\']')
    return link.get_attribute("href")


def _plays_through_the_night(driver) -> None:
    """Wait for each hour's count in turn as playback passes the end of its hour."""
    for hour, count in list(NIGHT.items())[1:]:
        wait_until(
            lambda c=count: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == c,
            f"the {count} complaints of the hour from {hour} as the moment passes its end",
            timeout=90,
        )


def test_playback_moves_every_number_through_the_night_and_pauses_and_resumes_live(dash_duo, quiet_city, app_of):
    city = quiet_city
    zone = ZoneInfo(city.settings.city_timezone)
    _live_city_with_a_night_of_history(city)
    dash_duo.start_server(app_of(city.settings), navigate=False)
    driver = dash_duo.driver
    # ×600: ten minutes of the night a second. The 1 h window before each moment holds the hour before it.
    driver.get(f"{dash_duo.server.url}/complaints?window=1h&at=2019-10-06T01:30&play=600")
    _plays_through_the_night(driver)
    assert "playing back at ×600" in _strip(driver) and "playing" in _strip(driver, "className").split()
    # The address bar follows the moment without a history entry per step: a copied link opens it.
    wait_until(lambda: "at=2019-10-06T0" in driver.current_url and "play=600" in driver.current_url, "the URL moving")
    # The links to the other pages go on from the moment shown, not from where playback began.
    wait_until(
        lambda: "at=2019-10-06T0" in _link(driver, "services") and "T01:30" not in _link(driver, "services"),
        "the services link following the moment",
    )

    _choose(driver, ids.PLAY_SPEED, "‖ paused")
    wait_until(lambda: "play=" not in driver.current_url, "playback paused in the URL")
    at = driver.current_url.split("at=")[1].split("&")[0]
    wait_until(lambda: "(paused)" in _strip(driver), "the strip saying paused")
    moment = datetime.fromisoformat(at).replace(tzinfo=zone).timestamp()
    end = -(-int(moment) // HOUR_S) * HOUR_S  # whole hours of history: the last ends at or after the moment
    starts = {datetime.fromisoformat(h).replace(tzinfo=zone).timestamp(): c for h, c in NIGHT.items()}
    want = starts.get(end - HOUR_S, 0)
    wait_until(
        lambda: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == want,
        f"the hour before {at} ({want}) while paused",
    )
    frozen = numbers_of(driver, ids.COMPLAINTS_NUMBERS)
    strip = _strip(driver)
    ticks = refreshes(driver, ids.COMPLAINTS_TICK)
    wait_until(lambda: refreshes(driver, ids.COMPLAINTS_TICK) >= ticks + 3, "three more refreshes")
    assert numbers_of(driver, ids.COMPLAINTS_NUMBERS) == frozen  # paused: the moment stands still
    assert _strip(driver) == strip and at in driver.current_url
    wait_until(lambda: _link(driver, "services").endswith(f"/services?at={at}"), "the link to the pause")

    click(driver, f"#{ids.GO_LIVE}")
    wait_until(lambda: "at=" not in driver.current_url, "back to live in the URL")
    wait_until(
        lambda: numbers_of(driver, ids.COMPLAINTS_NUMBERS).get("complaints filed") == 1,
        "the live hour's one complaint",
        timeout=60,
    )
    assert numbers_of(driver, ids.COMPLAINTS_NUMBERS)["open"] == 1
    assert _link(driver, "services").endswith("/services")


def test_the_wall_plays_back_an_imported_night_and_says_it_is_not_live(dash_duo, quiet_city, app_of):
    _live_city_with_a_night_of_history(quiet_city)
    dash_duo.start_server(app_of(quiet_city.settings), navigate=False)
    driver = dash_duo.driver
    driver.set_window_size(1920, 1080)
    driver.get(f"{dash_duo.server.url}/wall?views=complaints&dwell=3600&at=2019-10-06T01:30&play=600")
    _plays_through_the_night(driver)
    # A room must never take a night of 2019 for now: the strip shows on the wall, above the view.
    assert driver.find_element("id", ids.AS_OF).is_displayed() and "playing back at ×600" in _strip(driver)
    assert "views=complaints" in driver.current_url and "play=600" in driver.current_url


def test_playback_that_catches_up_with_now_goes_live_controls_and_all(dash_duo, quiet_city, app_of):
    zone = ZoneInfo(quiet_city.settings.city_timezone)
    start = (datetime.now(zone) - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
    dash_duo.start_server(app_of(quiet_city.settings), navigate=False)
    driver = dash_duo.driver
    driver.set_window_size(1920, 1080)
    # ×600 from a quarter of an hour ago: now is reached within two seconds.
    driver.get(f"{dash_duo.server.url}/complaints?at={start}&play=600")
    wait_until(lambda: "at=" not in driver.current_url, "the URL live again")
    wait_until(lambda: not _strip(driver), "the as-of strip gone")
    wait_until(lambda: "paused" in driver.find_element("id", ids.PLAY_SPEED).text, "the speed control back at rest")
    assert not driver.execute_script("return document.getElementById(arguments[0]).value", ids.MOMENT_PICK)
