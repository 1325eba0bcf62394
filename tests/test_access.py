"""Who sees what, against a real Redis and the real app: accounts and their command, sign-in and its rate
limit, wall tokens, the role each callback needs, what each role's answers carry, the security headers and
the hash-chained audit log."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from accounts.audit import Audit
from accounts.store import AccountError, Accounts, audit_key
from data.aggregator import Aggregator
from data.keys import Keys
from settings import PROJECT_ROOT
from tests.events import raw_event
from tests.test_dashboard_requests import ROUTE, battery, well_formed, written_by

pytestmark = pytest.mark.redis
HOUR_MS = 3_600_000
PASSWORD = "correct horse battery"
ROLES = ("viewer", "operator", "health", "admin")


@pytest.fixture
def secured(settings):
    """Settings with sign-in on, as a deployment runs."""
    return replace(settings, auth="on", secret_key="k" * 48)


@pytest.fixture
def accounts(client, secured):
    return Accounts.of(secured, client)


@pytest.fixture
def app(secured, accounts):
    from app import create_app

    for role in ROLES:
        accounts.add(f"{role}-1", role, PASSWORD, by="test")
    return create_app(secured)


def sign_in(app, name: str, password: str = PASSWORD, address: str = "127.0.0.1"):
    """A browser signing in through the form; return its client and the answer to the form."""
    browser = app.server.test_client()
    page = browser.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = browser.post(
        "/login",
        data={"csrf": csrf, "name": name, "password": password, "next": "/cases"},
        environ_base={"REMOTE_ADDR": address},
    )
    return browser, answer


def signed_in(app, name: str):
    browser, answer = sign_in(app, name)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    return browser


def post(browser, body) -> tuple[int, str]:
    response = browser.post(ROUTE, data=json.dumps(body), content_type="application/json")
    return response.status_code, response.get_data(as_text=True)


# ---------------------------------------------------------------------------- accounts


def test_passwords_are_kept_as_argon2id_hashes_and_checked_in_full(client, accounts, secured):
    accounts.add("ana", "viewer", PASSWORD, by="test")
    stored = client.hget(Keys(secured.key_prefix).account("ana"), "hash").decode()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.check("ana", PASSWORD).role == "viewer"
    assert accounts.check("ana", PASSWORD[:-1]) is None
    assert accounts.check("nobody", PASSWORD) is None
    with pytest.raises(AccountError, match="exists"):
        accounts.add("ana", "admin", PASSWORD, by="test")
    with pytest.raises(AccountError, match="12"):
        accounts.add("bo", "viewer", "short", by="test")
    with pytest.raises(ValueError, match="unknown role"):
        accounts.add("cy", "mayor", PASSWORD, by="test")
    accounts.disable("ana", by="test")
    assert accounts.check("ana", PASSWORD) is None


def _command(secured, *args, stdin: str = "") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "REDIS_URL": secured.redis_url,
        "CITYDECK_KEY_PREFIX": secured.key_prefix,
        "CITYDECK_STATE_DIR": str(secured.state_dir),
        "CITYDECK_SECRET_KEY": secured.secret_key,
    }
    return subprocess.run(
        [sys.executable, "-m", "accounts", *args], cwd=PROJECT_ROOT, env=env, input=stdin, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip


def test_the_accounts_command_adds_lists_disables_and_makes_and_revokes_wall_tokens(secured, accounts):
    made = _command(secured, "add", "dora", "--role", "health")
    assert made.returncode == 0, made.stderr
    password = re.search(r"password: (\S+)", made.stdout).group(1)
    assert accounts.check("dora", password).role == "health"
    assert _command(secured, "passwd", "dora", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert accounts.check("dora", PASSWORD) is not None and accounts.check("dora", password) is None
    assert _command(secured, "role", "dora", "viewer").returncode == 0
    assert _command(secured, "disable", "dora").returncode == 0
    listed = _command(secured, "list").stdout
    assert re.search(r"dora\s+viewer\s+disabled", listed), listed
    refused = _command(secured, "add", "dora", "--role", "admin")
    assert refused.returncode == 2 and "exists already" in refused.stderr
    wall = _command(secured, "wall", "create", "lobby")
    token = re.search(r"/wall\?token=(\S+)", wall.stdout).group(1)
    assert accounts.wall_token(token).label == "lobby"
    assert "lobby" in _command(secured, "wall", "list").stdout and token not in _command(secured, "wall", "list").stdout
    assert _command(secured, "wall", "revoke", "lobby").returncode == 0
    assert accounts.wall_token(token) is None
    verified = _command(secured, "audit", "verify")
    assert verified.returncode == 0 and "holds" in verified.stdout
    exported = _command(secured, "audit", "export").stdout.splitlines()
    assert exported[0].startswith("stream_id,n,at_utc,who,role,action")
    actions = [line.split(",")[5] for line in exported[1:]]
    assert actions == [
        "account.add", "account.passwd", "account.role", "account.disable", "wall.create", "wall.revoke"
    ]  # fmt: skip


# ---------------------------------------------------------------------------- the audit chain


def _audit_with(client, secured, n: int) -> Audit:
    audit = Audit(client, Keys(secured.key_prefix), audit_key(secured))
    for i in range(n):
        audit.append(f"user-{i}", "health", "precise.view", scope="Futian", reason=f"tracing {i}")
    assert audit.verify().ok
    return audit


def _rewrite(client, stream: str, change) -> None:
    """Rewrite the stream as someone with write access to Redis would: every entry kept at its id, one changed."""
    entries = client.xrange(stream)
    client.delete(stream)
    for entry_id, fields in entries:
        fields = change(entry_id, dict(fields))
        if fields is not None:
            client.xadd(stream, fields, id=entry_id)


def test_an_edited_audit_entry_breaks_the_chain_at_that_entry(client, secured):
    audit = _audit_with(client, secured, 6)
    target = client.xrange(audit.keys.audit())[3][0]

    def edit(entry_id, fields):
        if entry_id == target:
            fields[b"who"] = b"someone-else"
        return fields

    _rewrite(client, audit.keys.audit(), edit)
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_at == 4 and verdict.entry_id == target.decode()
    assert "edited" in verdict.why
    shown = _command(secured, "audit", "verify")
    assert shown.returncode == 1 and "broken at entry 4" in shown.stdout


def test_an_edit_that_also_rewrites_its_hash_with_the_right_key_is_found_at_the_next_entry(client, secured):
    audit = _audit_with(client, secured, 5)
    target = client.xrange(audit.keys.audit())[1][0]

    def edit(entry_id, fields):
        if entry_id == target:
            from accounts.audit import Entry, entry_hash

            fields[b"detail"] = b'{"reason":"nothing to see"}'
            content = Entry.of(entry_id, fields).content
            fields[b"hash"] = entry_hash(audit_key(secured), fields[b"prev"].decode(), content).encode()
        return fields

    _rewrite(client, audit.keys.audit(), edit)
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_at == 3 and "does not follow" in verdict.why


def test_a_log_chained_again_without_the_key_is_found_at_the_first_edit(client, secured):
    """Someone who can write to Redis edits entry 3 and chains every entry again, head included: without the
    audit key (it is not in Redis) the hashes they make are not the log's."""
    from accounts.audit import GENESIS, Entry, entry_hash

    audit = _audit_with(client, secured, 6)
    target = client.xrange(audit.keys.audit())[2][0]
    guess, prev = b"any key at all", [GENESIS]

    def chain_again(entry_id, fields):
        if entry_id == target:
            fields[b"detail"] = b'{"reason":"routine check"}'
        fields[b"prev"] = prev[0].encode()
        fields[b"hash"] = entry_hash(guess, prev[0], Entry.of(entry_id, fields).content).encode()
        prev[0] = fields[b"hash"].decode()
        return fields

    _rewrite(client, audit.keys.audit(), chain_again)
    client.hset(audit.keys.audit_head(), "hash", prev[0])
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_at == 1 and "edited" in verdict.why


@pytest.mark.parametrize("which, expected", [(0, 1), (2, 3), (4, 5)])
def test_a_deleted_audit_entry_is_reported_where_it_was(client, secured, which, expected):
    audit = _audit_with(client, secured, 5)
    client.xdel(audit.keys.audit(), client.xrange(audit.keys.audit())[which][0])
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_at == expected and "deleted" in verdict.why


def test_appends_from_many_threads_make_one_unbroken_chain(client, secured):
    from concurrent.futures import ThreadPoolExecutor

    from data.connection import client_from_url

    def write(i):
        c = client_from_url(secured.redis_url)
        Audit(c, Keys(secured.key_prefix), audit_key(secured)).append(f"w{i}", "admin", "account.add", account=f"a{i}")
        c.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(40)))
    verdict = Audit(client, Keys(secured.key_prefix), audit_key(secured)).verify()
    assert verdict.ok and verdict.length == 40


# ---------------------------------------------------------------------------- the door


def test_nothing_is_open_without_a_role(app):
    anonymous = app.server.test_client()
    for path in ("/", "/cases", "/health", "/wall"):
        answer = anonymous.get(path)
        assert answer.status_code == 302 and answer.headers["Location"].startswith("/login"), path
    for path in ("/_dash-layout", "/_dash-dependencies", "/geo/community.json"):
        assert anonymous.get(path).status_code == 401, path
    for key, callback in app.callback_map.items():
        assert post(anonymous, well_formed(key, callback))[0] == 401, key


def test_every_page_carries_the_security_headers(app):
    from views.state import PATHS

    anonymous = app.server.test_client()
    viewer = signed_in(app, "admin-1")
    answers = [anonymous.get("/login"), anonymous.get("/"), viewer.get("/_dash-layout"), viewer.get("/password")]
    answers += [viewer.get(path) for path in [*PATHS, "/wall", "/nowhere"]]
    answers += [viewer.get("/geo/community.json"), viewer.get("/assets/citydeck.css")]
    answers += [viewer.post(ROUTE, data=json.dumps(well_formed(k, c)), content_type="application/json")
                for k, c in list(app.callback_map.items())[:3]]  # fmt: skip
    for answer in answers:
        h = answer.headers
        assert (
            "frame-ancestors 'none'" in h["Content-Security-Policy"]
            and "script-src 'self'" in h["Content-Security-Policy"]
        )
        assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "same-origin"
        assert h["X-Content-Type-Options"] == "nosniff"
    cookie = viewer.get_cookie("citydeck_session")
    assert cookie.http_only and cookie.same_site == "Strict"


def test_a_session_ends_when_the_account_is_disabled_or_its_password_changes(app, accounts):
    browser = signed_in(app, "viewer-1")
    assert browser.get("/").status_code == 200
    accounts.passwd("viewer-1", PASSWORD + "!", by="test")
    assert browser.get("/").status_code == 302
    browser = signed_in(app, "operator-1")
    accounts.disable("operator-1", by="test")
    assert browser.get("/").status_code == 302
    assert sign_in(app, "operator-1")[1].status_code == 401


def test_a_sign_in_from_another_site_is_refused(app):
    browser = app.server.test_client()
    browser.get("/login")
    forged = browser.post("/login", data={"csrf": "guess", "name": "viewer-1", "password": PASSWORD})
    assert forged.status_code == 400


def test_after_the_configured_failures_sign_in_is_refused_for_that_account(app):
    # 5 per 15 minutes by default: five wrong passwords, then even the right one is turned away.
    for _ in range(5):
        assert sign_in(app, "viewer-1", "wrong password!")[1].status_code == 401
    refused = sign_in(app, "viewer-1")[1]
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.get_data(as_text=True)
    # Another account, from another address, is not held up by that.
    assert sign_in(app, "operator-1", address="10.0.0.9")[1].status_code == 302


def test_after_the_configured_failures_sign_in_is_refused_from_that_address(secured, accounts):
    from app import create_app

    app = create_app(replace(secured, signin_limit_address="3 per 15 minutes"))
    accounts.add("eve-target", "viewer", PASSWORD, by="test")
    for i in range(3):
        assert sign_in(app, f"guess-{i}", "wrong password!", address="10.1.1.1")[1].status_code == 401
    assert sign_in(app, "eve-target", address="10.1.1.1")[1].status_code == 429
    assert sign_in(app, "eve-target", address="10.1.1.2")[1].status_code == 302


def test_sign_in_goes_back_only_to_a_page_of_this_site(app):
    browser = app.server.test_client()
    page = browser.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = browser.post(
        "/login", data={"csrf": csrf, "name": "viewer-1", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert answer.status_code == 302 and answer.headers["Location"] == "/"


def test_a_wall_token_opens_the_wall_only_and_stops_at_once_when_revoked(app, accounts):
    token = accounts.create_wall_token("lobby", by="test")
    wall = app.server.test_client()
    entered = wall.get(f"/wall?token={token}&dwell=30")
    assert entered.status_code == 302 and entered.headers["Location"] == "/wall?dwell=30"
    assert wall.get("/wall").status_code == 200
    assert wall.get("/cases").headers["Location"] == "/wall"
    assert wall.get("/health").headers["Location"] == "/wall"
    status = next((k, c) for k, c in app.callback_map.items() if "freshness" in k)
    assert post(wall, well_formed(*status))[0] == 200
    health = next((k, c) for k, c in app.callback_map.items() if "health-body" in k)
    assert post(wall, well_formed(*health))[0] == 403
    accounts.revoke_wall_token("lobby", by="test")
    # The very next refresh is refused: a tick after the revocation, the wall shows nothing new.
    assert post(wall, well_formed(*status))[0] == 401
    assert app.server.test_client().get(f"/wall?token={token}").status_code == 403


# ---------------------------------------------------------------------------- what each role's answers carry


@pytest.fixture
def fed(client, secured, city_map, demo_city):
    """Two confirmed cases linked at a real venue, a complaint with a phone number, and a dead letter with a
    person's token: everything a viewer must never be sent."""
    venues = demo_city.places[demo_city.places.kind == "venue"].head(2)
    (v1, lon1, lat1), (v2, lon2, lat2) = venues[["place_id", "lon", "lat"]].itertuples(index=False)
    now = int(time.time() * 1000)
    stream = Keys(secured.key_prefix).stream
    seq = iter(range(1, 1000))
    home = (lon1 + 0.004321, lat1 + 0.003217)  # where a case lives: never on any shared answer
    # A visit's recorded point, a few metres from the venue's registered one.
    visit_point = (lon1 + 0.000777, lat1 + 0.000555)
    for case in ("case-tok-aa11", "case-tok-bb22"):
        client.xadd(stream("cases"), raw_event("case_report", seq=next(seq), ts=now - HOUR_MS, case_id=case,
                    status="confirmed", onset_ts=now - 24 * HOUR_MS, lon=home[0], lat=home[1]))  # fmt: skip
        client.xadd(stream("cases"), raw_event("case_visit", seq=next(seq), ts=now - 50 * 60_000, case_id=case,
                    venue_id=v1, arrive_ts=now - 3 * HOUR_MS, leave_ts=now - 2 * HOUR_MS, lon=visit_point[0],
                    lat=visit_point[1]))  # fmt: skip
    client.xadd(stream("cases"), raw_event("case_visit", seq=next(seq), ts=now - 40 * 60_000, case_id="case-tok-aa11",
                venue_id=v2, arrive_ts=now - 90 * 60_000, leave_ts=now - 80 * 60_000, lon=lon2, lat=lat2))  # fmt: skip
    client.xadd(stream("cases"), {"v": "1", "type": "declaration", "src": "t", "seq": "9999", "ts": str(now),
                                  "person_id": "person-tok-cc33", "health_code": "purple", "symptom": "none",
                                  "lon": str(lon1), "lat": str(lat1)})  # fmt: skip
    client.xadd(stream("complaints"), raw_event("complaint", seq=1, ts=now - 60_000, complaint_id="k-9",
                text="Water off since morning, call me on 138 0013 8000 or li.lei@example.cn",
                lon=lon1, lat=lat1))  # fmt: skip
    worker = Aggregator(client, secured, city_map, name="w", sources=("cases", "complaints"))
    worker.ensure_groups()
    worker.drain()
    return {
        "tokens": ("case-tok-aa11", "case-tok-bb22", "person-tok-cc33"),
        "points": (*home, *visit_point),
        "contacts": ("138 0013 8000", "li.lei@example.cn"),
    }


def _digits(x: float) -> str:
    """A coordinate to 4 decimals (about 10 m), cut rather than rounded, as any longer rendering begins."""
    return f"{math.floor(x * 1e4) / 1e4:.4f}"


def _shows_point(text: str, lon: float, lat: float) -> bool:
    return _digits(lon) in text and _digits(lat) in text


def _leaks(text: str, fed: dict) -> list[str]:
    found = [t for t in fed["tokens"] if t in text]
    home, visit = fed["points"][:2], fed["points"][2:]
    found += [f"point {p}" for p in (home, visit) if _shows_point(text, *p)]
    return found + [c for c in fed["contacts"] if c in text]


def _every_answer(app, browser) -> list[tuple[str, int, str]]:
    """Post every callback as a browser would and as anything could: (what, status, body) of each."""
    out = []
    for key, callback in app.callback_map.items():
        body = well_formed(key, callback)
        for path in ("/cases", "/health", "/complaints", "/wall"):
            for item in body["inputs"] + body["state"]:
                if isinstance(item, dict) and item.get("property") == "pathname":
                    item["value"] = path
            out.append((f"{key[:40]} at {path}", *post(browser, copy.deepcopy(body))))
        if any(d["id"] == "precise-open" for d in callback["inputs"]):
            out.append((key, *post(browser, _open_precise(body))))
    out += [(what, *post(browser, body)) for what, body in battery(app.callback_map)[:400] if isinstance(body, dict)]
    return out


def _triggered_by(app, input_id: str, output_id: str) -> tuple[str, dict]:
    """The callback an input of this id triggers that writes to this output."""
    return next(
        (k, c)
        for k, c in app.callback_map.items()
        if any(d["id"] == input_id for d in c["inputs"]) and output_id in written_by(k)
    )


def _open_precise(body: dict, reason: str = "tracing the dumpling-house cluster, ticket 4411") -> dict:
    body = copy.deepcopy(body)
    body["changedPropIds"] = ["precise-open.n_clicks"]
    for item in body["inputs"]:
        if item["id"] == "precise-open":
            item["value"] = 1
    for item in body["state"]:
        if item["id"] == "precise-reason":
            item["value"] = reason
    return body


def test_no_answer_to_a_viewer_or_a_wall_carries_a_person_token_a_case_point_or_a_contact(app, accounts, fed):
    token = accounts.create_wall_token("lobby", by="test")
    wall = app.server.test_client()
    wall.get(f"/wall?token={token}")
    for who, browser in (("viewer", signed_in(app, "viewer-1")), ("wall", wall)):
        answers = _every_answer(app, browser)
        assert sum(status == 200 for _, status, _ in answers) > 10, who
        leaks = [(what, _leaks(text, fed)) for what, status, text in answers if _leaks(text, fed)]
        assert not leaks, (who, leaks[:5])


def test_the_health_officer_sees_the_precise_view_only_when_asked_with_a_reason_and_it_is_audited(app, fed):
    officer = signed_in(app, "health-1")
    key, callback = _triggered_by(app, "cases-tick", "precise-status")
    act = well_formed(*_triggered_by(app, "precise-open", "precise-status"))
    status, closed = post(officer, well_formed(key, callback))
    assert status == 200 and "Closed" in closed and not _leaks(closed, fed)
    status, short = post(officer, _open_precise(act, reason="x"))
    assert "Say why" in short and "Closed" not in short and not _leaks(short, fed)
    # The ask is the click's own answer: no refresh touches the line it is in.
    assert "precise-said" not in written_by(key)
    status, opened = post(officer, _open_precise(act))
    assert status == 200 and "Open until" in opened
    # The precise answer does carry what the others must not: the check above can see it.
    assert {"case-tok-aa11", "case-tok-bb22"} <= set(_leaks(opened, fed))
    assert _shows_point(opened, *fed["points"][2:]) and not _shows_point(opened, *fed["points"][:2])
    again = post(officer, well_formed(key, callback))[1]
    assert "case-tok-aa11" in again
    audit = app.server.extensions["citydeck.access"].accounts.audit
    actions = [(e.who, e.action, json.loads(e.detail).get("reason")) for e in audit.entries()]
    reason = "tracing the dumpling-house cluster, ticket 4411"
    assert ("health-1", "precise.grant", reason) in actions
    assert actions.count(("health-1", "precise.view", reason)) == 1  # once per grant and scope, not per refresh
    assert audit.verify().ok
    # A viewer posting the very same request is refused.
    assert post(signed_in(app, "viewer-1"), _open_precise(act))[0] == 403
    # The grant is this session's: another session of the same officer must give its own reason, and
    # signing out ends it.
    elsewhere = post(signed_in(app, "health-1"), well_formed(key, callback))[1]
    assert "Closed" in elsewhere and "case-tok-aa11" not in elsewhere
    officer.get("/logout")
    officer = signed_in(app, "health-1")
    back = post(officer, well_formed(key, callback))[1]
    assert "Closed" in back and "case-tok-aa11" not in back
    assert ("health-1", "precise.end", reason) in [
        (e.who, e.action, json.loads(e.detail).get("reason")) for e in audit.entries()
    ]


def test_a_look_after_its_grant_ended_is_neither_shown_nor_audited_nor_marked(client, accounts):
    accounts.add("health-x", "health", PASSWORD, by="test")
    officer = accounts.get("health-x")
    grant = accounts.grant_precise(officer, "sid-x", "tracing cluster K2, ticket 4411", 600, "Futian")
    key = accounts.keys.grant("sid-x")
    assert accounts.saw_precise(officer, "sid-x", grant, "cases", "Futian", "1h") is True
    assert 0 < client.pttl(key) <= 600_000  # the mark lives as long as the grant, no longer
    # A refresh read the grant; the officer closes it before the refresh marks its look.
    accounts.end_precise(officer, "sid-x")
    assert accounts.saw_precise(officer, "sid-x", grant, "cases", "Luohu", "1h") is False
    # Or it expires; or a new grant replaced it: the look read under the old one is not the new one's.
    assert accounts.saw_precise(officer, "sid-x", grant, "cases", "Luohu", "1h") is False
    again = accounts.grant_precise(officer, "sid-x", "tracing cluster K3, ticket 4412", 600, "Luohu")
    assert accounts.saw_precise(officer, "sid-x", grant, "cases", "Luohu", "24h") is False
    assert accounts.saw_precise(officer, "sid-x", again, "cases", "Luohu", "24h") is True
    accounts.end_precise(officer, "sid-x")
    assert client.exists(key) == 0
    told = [(e.action, json.loads(e.detail).get("scope")) for e in accounts.audit.entries() if e.who == "health-x"]
    assert told == [
        ("precise.grant", "Futian"), ("precise.view", "Futian"), ("precise.end", None),
        ("precise.grant", "Luohu"), ("precise.view", "Luohu"), ("precise.end", None),
    ]  # fmt: skip
    # Opened again while open, with a new reason: the grant it replaces is said to end.
    accounts.grant_precise(officer, "sid-x", "tracing cluster K4, ticket 4413", 600, "Futian")
    accounts.grant_precise(officer, "sid-x", "tracing cluster K4 and K5, ticket 4414", 600, "Futian")
    told = [(e.action, json.loads(e.detail).get("reason")) for e in accounts.audit.entries() if e.who == "health-x"]
    assert told[-3:] == [
        ("precise.grant", "tracing cluster K4, ticket 4413"), ("precise.end", "tracing cluster K4, ticket 4413"),
        ("precise.grant", "tracing cluster K4 and K5, ticket 4414"),
    ]  # fmt: skip


def test_complaint_words_go_to_operators_masked_and_to_no_one_below(app, fed):
    key, callback = next((k, c) for k, c in app.callback_map.items() if "complaints-table.rowData" in k)
    texts = {}
    for role in ("viewer", "operator"):
        status, text = post(signed_in(app, f"{role}-1"), well_formed(key, callback))
        assert status == 200
        texts[role] = text
    assert "k-9" in texts["viewer"] and "Water off" not in texts["viewer"]
    assert "Water off since morning" in texts["operator"] and "[phone]" in texts["operator"]
    assert not _leaks(texts["operator"], fed)


def test_dead_letters_show_their_reason_to_all_and_their_fields_masked_to_admins_only(app, fed):
    key, callback = next((k, c) for k, c in app.callback_map.items() if "health-body" in k)
    viewer = post(signed_in(app, "viewer-1"), well_formed(key, callback))[1]
    admin = post(signed_in(app, "admin-1"), well_formed(key, callback))[1]
    assert "unknown_enum" in viewer and "health_code=purple" not in viewer
    assert "health_code=purple" in admin and "person_id=•••" in admin
    assert not _leaks(viewer, fed) and not _leaks(admin, fed)


def test_sign_in_off_is_refused_beyond_this_machine(tmp_path):
    env = {**os.environ, "CITYDECK_AUTH": "off", "CITYDECK_STATE_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", "18951", "--no-simulators", "--no-aggregator"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and "CITYDECK_AUTH=off" in run.stderr


def test_a_signed_out_session_stays_out_even_if_its_old_cookie_comes_back(app):
    """A refresh on its way when the browser signed out answers with the old cookie: it must open nothing."""
    browser = signed_in(app, "viewer-1")
    old = browser.get_cookie("citydeck_session").value
    assert browser.get("/").status_code == 200
    browser.get("/logout")
    browser.set_cookie("citydeck_session", old)
    assert browser.get("/").status_code == 302


def test_the_admin_page_lists_accounts_tokens_audit_and_settings_to_admins_only(app, accounts):
    accounts.create_wall_token("lobby", by="test")
    key, callback = next((k, c) for k, c in app.callback_map.items() if "admin-body" in k)
    status, page = post(signed_in(app, "admin-1"), well_formed(key, callback))
    assert status == 200
    for shown in ("viewer-1", "health-1", "lobby", "account.add", "wall.create", "CITYDECK_SECRET_KEY", "(set)"):
        assert shown in page, shown
    assert "k" * 48 not in page  # the secret itself, never
    for role in ("viewer", "operator", "health"):
        assert post(signed_in(app, f"{role}-1"), well_formed(key, callback))[0] == 403, role


def test_the_navigation_leads_each_role_to_the_pages_it_may_open():
    from callbacks.access import pages_for

    assert "admin" not in pages_for("health") and "admin" in pages_for("admin")
    assert "health" in pages_for("viewer") and "health" not in pages_for("wall")
    assert pages_for(None) == ()


def test_a_redis_password_never_reaches_the_settings_shown():
    from settings import Settings

    shown = dict(Settings.from_env({}, redis_url="rediss://:hunter2-secret@redis.example:6380/0").shown())
    assert shown["REDIS_URL"] == "rediss://:•••@redis.example:6380/0"


def test_a_one_time_password_opens_only_the_page_that_replaces_it(app, accounts):
    accounts.add("newbie", "viewer", "given-once-password", by="test", must_change=True)
    browser, answer = sign_in(app, "newbie", "given-once-password")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/password")
    assert browser.get("/cases").headers["Location"].startswith("/password")
    key, callback = next((k, c) for k, c in app.callback_map.items() if "freshness" in k)
    assert post(browser, well_formed(key, callback))[0] == 403
    page = browser.get("/password").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = {"csrf": csrf, "current": "given-once-password", "next": "/cases"}
    assert (
        browser.post("/password", data={**form, "current": "wrong", "new": PASSWORD, "again": PASSWORD}).status_code
        == 401
    )
    assert browser.post("/password", data={**form, "new": PASSWORD, "again": PASSWORD + "x"}).status_code == 400
    same = {**form, "new": "given-once-password", "again": "given-once-password"}
    assert browser.post("/password", data=same).status_code == 400
    done = browser.post("/password", data={**form, "new": PASSWORD, "again": PASSWORD})
    assert done.status_code == 302 and done.headers["Location"] == "/cases"
    assert browser.get("/cases").status_code == 200 and post(browser, well_formed(key, callback))[0] == 200
    assert accounts.check("newbie", "given-once-password") is None and not accounts.get("newbie").must_change
    assert ("newbie", "account.passwd") in [(e.who, e.action) for e in accounts.audit.entries()]


def test_with_sign_in_off_only_this_machine_is_answered_and_production_refuses_it(settings):
    from accounts.web import AuthOffRefused
    from app import create_app

    app = create_app(settings)  # sign-in off, as the other tests run
    browser = app.server.test_client()
    assert browser.get("/", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert browser.get("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}).status_code == 403
    with pytest.raises(AuthOffRefused, match="production"):
        create_app(replace(settings, environment="production", secret_key="p" * 48))


def test_a_page_the_role_may_not_open_says_so_and_the_shell_opens_only_with_a_role(app):
    key, callback = next((k, c) for k, c in app.callback_map.items() if "content.children" in k)
    body = well_formed(key, callback)
    for item in body["inputs"]:
        if item["property"] == "pathname":
            item["value"] = "/admin"
    status, page = post(signed_in(app, "viewer-1"), body)
    assert status == 200 and "not for your role" in page and "admin-verify" not in page
    assert "admin-verify" in post(signed_in(app, "admin-1"), body)[1]
    # A path under a static prefix that no file route takes is a page like any other: it needs a role.
    answer = app.server.test_client().get("/_dash-component-suites/x")
    assert answer.status_code == 401 and "precise" not in answer.get_data(as_text=True)


def test_walls_are_no_account_s_role(accounts):
    with pytest.raises(ValueError, match="token"):
        accounts.add("kiosk", "wall", PASSWORD, by="test")


def test_only_a_refused_password_counts_towards_the_lock(app):
    browser = app.server.test_client()
    for _ in range(8):  # forged forms are refused (400) before any password is checked
        assert browser.post("/login", data={"csrf": "x", "name": "viewer-1", "password": "guess"}).status_code == 400
    assert sign_in(app, "viewer-1")[1].status_code == 302


def test_a_wall_signed_out_stays_out_even_if_its_old_cookie_comes_back(app, accounts):
    token = accounts.create_wall_token("lobby", by="test")
    wall = app.server.test_client()
    wall.get(f"/wall?token={token}")
    old = wall.get_cookie("citydeck_session").value
    assert wall.get("/wall").status_code == 200
    wall.get("/logout")
    wall.set_cookie("citydeck_session", old)
    assert wall.get("/wall").status_code == 302


def test_entries_deleted_from_the_end_with_the_head_set_back_are_found_by_the_next_verification(client, secured):
    """Someone deletes the newest entries and points the head at the last one kept: every hash still holds, but
    the last verification's signed anchor says the chain reached further."""
    audit = _audit_with(client, secured, 6)  # verified: its anchor is entry 6
    kept = client.xrange(audit.keys.audit())[3]
    for entry_id, _ in client.xrange(audit.keys.audit())[4:]:
        client.xdel(audit.keys.audit(), entry_id)
    client.hset(audit.keys.audit_head(), mapping={"n": 4, "hash": kept[1][b"hash"]})
    verdict = audit.verify()
    assert not verdict.ok and verdict.broken_at == 5 and "the last verification saw them" in verdict.why
    # Forging the anchor without the key does not help either.
    client.hset(audit.keys.audit_verified(), mapping={"anchor_n": 4, "anchor_hash": kept[1][b"hash"]})
    assert "altered" in audit.verify().why
