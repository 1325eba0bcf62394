"""Signed in as each role in a real browser: what each sees and cannot see, the precise view opened with a
reason, the wall entered by its token, and a Content-Security-Policy the pages and their maps run under
without a single console error."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from accounts.store import Accounts
from tests.browser.conftest import click, figure_of, policy_refusals, settled_zoom, wait_for_refreshes, wait_until

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
WORDS = "Streetlight out by gate 3, call me on 138 0013 8000"
HOUR_MS = 3_600_000


@pytest.fixture
def secured_city(quiet_city, demo_city):
    """The quiet city with sign-in on, an account of each role, a case at a real venue and a complaint."""
    settings = replace(quiet_city.settings, auth="on", secret_key="s" * 48)
    accounts = Accounts.of(settings, quiet_city.client)
    for role in ("viewer", "operator", "health", "admin"):
        accounts.add(f"{role}-1", role, PASSWORD, by="test")
    venue = demo_city.places[demo_city.places.kind == "venue"].iloc[0]
    now = int(time.time() * 1000)
    quiet_city.feed("cases", "case_report", case_id="case-tok-zz99", status="confirmed", onset_ts=now - 24 * HOUR_MS,
                    lon=venue.lon, lat=venue.lat)  # fmt: skip
    quiet_city.feed("cases", "case_visit", case_id="case-tok-zz99", venue_id=venue.place_id, arrive_ts=now - 3 * HOUR_MS,
                    leave_ts=now - 2 * HOUR_MS, lon=venue.lon, lat=venue.lat)  # fmt: skip
    quiet_city.feed("complaints", "complaint", complaint_id="k-browser", text=WORDS, category="streetlight",
                    lon=venue.lon, lat=venue.lat)  # fmt: skip
    quiet_city.drain()
    return settings, accounts


def _csp_errors(dash_duo) -> list[str]:
    return [
        e["message"]
        for e in dash_duo.get_logs()
        if "Content Security Policy" in e["message"] or "Refused to" in e["message"]
    ]


def _text(driver, css: str) -> str:
    found = driver.find_elements("css selector", css)
    return found[0].text if found else ""


def _sign_in(dash_duo, name: str, then: str) -> None:
    driver = dash_duo.driver
    driver.get(f"{dash_duo.server.url}/logout")
    driver.get(f"{dash_duo.server.url}{then}")
    wait_until(lambda: "/login" in driver.current_url, "the sign-in page")
    driver.find_element("css selector", "input[name=name]").send_keys(name)
    driver.find_element("css selector", "input[name=password]").send_keys(PASSWORD)
    driver.find_element("css selector", "button[type=submit]").click()
    wait_until(lambda: driver.current_url.endswith(then) and _text(driver, ".who-name").startswith(name), f"{name} in")


def _open(dash_duo, path: str, ready_css: str) -> None:
    dash_duo.driver.get(f"{dash_duo.server.url}{path}")
    wait_until(lambda: _text(dash_duo.driver, ready_css), f"{ready_css} on {path}", timeout=60)


def _answers_clicks_slowly(app, clicks: tuple[str, ...], seconds: float) -> None:
    """Hold the server's answer to a click on these buttons for ``seconds``: a busy server, on purpose."""
    from flask import request

    @app.server.before_request
    def slow_click():
        body = request.get_json(silent=True) if request.path.endswith("_dash-update-component") else None
        changed = body.get("changedPropIds") if isinstance(body, dict) else None
        if isinstance(changed, list) and any(f"{c}.n_clicks" in changed for c in clicks):
            time.sleep(seconds)


def test_each_role_sees_what_it_may_and_nothing_more(dash_duo, secured_city, app_of):
    settings, _accounts = secured_city
    app = app_of(settings)
    # Each click on the precise view is answered more slowly than a refresh comes: a tick asked meanwhile
    # must not swallow it (the renderer drops a running request when the same callback is asked again).
    _answers_clicks_slowly(app, ("precise-open", "precise-close"), 2.5 * settings.refresh_ms / 1000)
    dash_duo.start_server(app, navigate=False)
    driver = dash_duo.driver

    _sign_in(dash_duo, "viewer-1", "/cases")
    assert _text(driver, ".who-name") == "viewer-1 · viewer"
    assert "Admin" not in _text(driver, ".nav") and "Health" in _text(driver, ".nav")
    wait_until(lambda: _text(driver, "#cases-numbers"), "the cases numbers")
    settled_zoom(driver, {"type": "area-map", "page": "cases"})  # MapLibre draws under the policy
    assert not driver.find_elements("css selector", "#precise-open")
    _open(dash_duo, "/complaints", "#complaints-table .ag-cell")
    table = _text(driver, "#complaints-table")
    assert "k-browser" in table and "Streetlight out" not in table
    _open(dash_duo, "/health", "#health-body table")
    assert "fields (masked)" not in _text(driver, "#health-body").lower()

    _sign_in(dash_duo, "operator-1", "/complaints")
    wait_until(lambda: "Streetlight out by gate 3" in _text(driver, "#complaints-table"), "the words, to an operator")
    table = _text(driver, "#complaints-table")
    assert "[phone]" in table and "138 0013 8000" not in table
    assert not driver.find_elements("css selector", "#precise-open")

    _sign_in(dash_duo, "health-1", "/cases")
    wait_until(lambda: "Closed" in _text(driver, "#precise-status"), "the closed precise view")
    assert "case-tok-zz99" not in driver.page_source
    reason = driver.find_element("css selector", "#precise-reason")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", reason)
    reason.send_keys("short")
    click(driver, "#precise-open")
    wait_until(lambda: "Say why" in _text(driver, "#precise-said"), "the ask for a reason", timeout=60)
    wait_for_refreshes(driver, "cases-tick", 3)  # refreshes answered since: the ask is still there
    assert "Say why" in _text(driver, "#precise-said") and "Closed" in _text(driver, "#precise-status")
    reason.send_keys(": tracing the gate-3 cluster, ticket 4411")
    click(driver, "#precise-open")
    wait_until(lambda: "Open until" in _text(driver, "#precise-status"), "the precise view open")
    wait_until(lambda: not _text(driver, "#precise-said") and not reason.get_attribute("value"), "the ask answered")
    wait_until(lambda: "case-tok-zz99" in _text(driver, "#precise-body"), "the case token in the precise view")
    # It says what it answers for: the tracing horizon's exposure sites, not the window of the page.
    assert "exposure sites of the last 14 days" in _text(driver, "#precise-body").lower()
    assert [t.get("name") for t in figure_of(driver, "precise-map")["data"]] == ["case-tok-zz99"]
    click(driver, "#precise-close")
    wait_until(lambda: "Closed" in _text(driver, "#precise-status"), "the precise view closed again")

    _sign_in(dash_duo, "admin-1", "/health")
    wait_until(lambda: "audit log" in _text(driver, "#health-body").lower(), "the audit log line")
    assert "entries" in _text(driver, ".audit-line")
    driver.find_element("link text", "Admin").click()
    wait_until(lambda: "viewer-1" in _text(driver, "#admin-body"), "the accounts on the admin page")
    assert "health-1" in _text(driver, "#admin-body") and "precise.grant" in _text(driver, "#admin-body")
    assert "never verified" in _text(driver, "#admin-body")
    click(driver, "#admin-verify")
    wait_until(lambda: "last verified" in _text(driver, "#admin-body"), "the audit chain verified")
    assert "never verified" not in _text(driver, "#admin-body")
    assert not policy_refusals(dash_duo)


def test_the_wall_opens_from_its_token_with_no_sign_in_and_nothing_else(dash_duo, secured_city, app_of):
    settings, accounts = secured_city
    token = accounts.create_wall_token("lobby", by="test")
    dash_duo.start_server(app_of(settings), navigate=False)
    driver = dash_duo.driver
    driver.get(f"{dash_duo.server.url}/wall?token={token}&views=cases,overview")
    wait_until(lambda: driver.current_url.endswith("/wall?views=cases,overview"), "the wall, its token dropped")
    wait_until(lambda: _text(driver, ".wall-title"), "the wall's title")
    assert token not in driver.current_url and not driver.find_elements("css selector", "input[name=password]")
    driver.get(f"{dash_duo.server.url}/health")
    wait_until(lambda: driver.current_url.endswith("/wall"), "the wall, not the health page")
    wait_until(lambda: _text(driver, ".wall-title"), "the wall's title again")
    accounts.revoke_wall_token("lobby", by="test")
    # Its next refresh is refused, and the wall gives way to the sign-in page instead of freezing.
    wait_until(lambda: "/login" in driver.current_url, "the sign-in page in place of the revoked wall", timeout=20)
    assert driver.find_elements("css selector", "input[name=password]")
    assert not policy_refusals(dash_duo)
