"""The alarm model on a real Redis: raised once however many processes fold the same tick, held while its
condition lapses for less than the hold (no flapping), cleared and logged once after it, acknowledged
with a note that reaches the log and the audit, ranked by severity then age, grouped by district; and
acknowledging from the alarms page, and its CSV log."""

from __future__ import annotations

import csv
import io
import threading

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from data.alarms import AlarmBook
from data.keys import Keys
from views.geography import CityGeography
from views.snapshots import ranked_alarms

pytestmark = pytest.mark.redis

HOLD_S = 60


@pytest.fixture
def book(settings, client):
    return AlarmBook(client, Keys(settings.key_prefix), HOLD_S, 14)


@pytest.fixture(scope="module")
def geo(demo_city):
    return CityGeography(demo_city, 8, 25.0)


def condition(key: str, severity: int = 2, kind: str = "crowding", community: str = "", **more) -> dict:
    return {"key": key, "kind": kind, "severity": severity, "what": f"what {key}", "where": f"where {key}",
            "community": community, "evidence": [["n", "1"]], **more}  # fmt: skip


def events(book) -> list[tuple[str, str]]:
    return sorted((e["event"], e["key"]) for e in book.log())


def test_a_condition_raises_one_alarm_once_however_many_processes_fold_the_tick(settings, client):
    books = [AlarmBook(client.__class__.from_url(settings.redis_url), Keys(settings.key_prefix), HOLD_S, 14)
             for _ in range(8)]  # fmt: skip
    start = threading.Barrier(len(books))
    seen = []

    def fold(b):
        start.wait()
        seen.append(b.track([condition("crowding:P1")], 1_000_000))

    threads = [threading.Thread(target=fold, args=(b,)) for b in books]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events(books[0]) == [("raised", "crowding:P1")]
    assert {a["since_ms"] for s in seen for a in s} == {1_000_000}
    assert all(s[0]["state"] == "raised" and not s[0]["lapsed"] for s in seen)


def test_an_alarm_does_not_flap_at_its_threshold_and_clears_once_after_the_hold(book):
    t = 1_000_000
    book.track([condition("crowding:P1")], t)
    # The condition comes and goes within the hold: one alarm all along, its start kept.
    for step, holds in enumerate([False, True, False, True, False], start=1):
        now = t + step * 20_000
        in_force = book.track([condition("crowding:P1")] if holds else [], now)
        assert [(a["key"], a["since_ms"], a["lapsed"]) for a in in_force] == [("crowding:P1", t, not holds)]
    last_seen = t + 4 * 20_000
    assert book.track([], last_seen + HOLD_S * 1000 - 1)[0]["lapsed"] is True
    assert book.track([], last_seen + HOLD_S * 1000) == []
    assert book.track([], last_seen + HOLD_S * 1000 + 5) == []
    assert events(book) == [("cleared", "crowding:P1"), ("raised", "crowding:P1")]
    # Raised again later: a new alarm with a new start.
    again = book.track([condition("crowding:P1")], last_seen + 10 * HOLD_S * 1000)
    assert again[0]["since_ms"] == last_seen + 10 * HOLD_S * 1000 and again[0]["state"] == "raised"


def test_an_acknowledged_alarm_says_who_when_and_why_until_it_clears(book):
    book.track([condition("crowding:P1"), condition("cases:cluster:V1", 3, "cases")], 1_000)
    assert book.acknowledge("crowding:P9", "op-1", "operator", "on it", 2_000) == (None, None, False)
    assert (
        book.acknowledge("crowding:P1", "op-1", "operator", "  team 3 on the way  ", 2_000)[0]["what"]
        == "what crowding:P1"
    )
    in_force = {
        a["key"]: a for a in book.track([condition("crowding:P1"), condition("cases:cluster:V1", 3, "cases")], 3_000)
    }
    assert in_force["crowding:P1"]["state"] == "acknowledged"
    assert in_force["crowding:P1"]["ack"] == {
        "by": "op-1",
        "role": "operator",
        "at_ms": 2_000,
        "note": "team 3 on the way",
    }
    assert in_force["cases:cluster:V1"]["state"] == "raised" and in_force["cases:cluster:V1"]["ack"] is None
    # The first acknowledgement stands: a second neither replaces its note nor is logged.
    _alarm, standing, fresh = book.acknowledge("crowding:P1", "op-2", "operator", "me too", 2_500)
    assert not fresh and standing["by"] == "op-1" and standing["note"] == "team 3 on the way"
    acked = [e for e in book.log() if e["event"] == "acknowledged"]
    assert [(e["key"], e["by"], e["note"]) for e in acked] == [("crowding:P1", "op-1", "team 3 on the way")]
    # Cleared, then raised again: the new alarm is not acknowledged.
    book.track([], 3_000 + HOLD_S * 1000)
    assert book.track([condition("crowding:P1")], 10 * HOLD_S * 1000)[0]["state"] == "raised"


def test_the_wall_is_taken_over_by_the_most_severe_open_alarm_the_oldest_first_and_groups_a_kind_by_district(geo):
    futian = [c for c, (_n, d) in geo.community_parents.items() if d == "D-FT"][:3]
    alarms = [
        condition("services:C1", 1, "services", futian[0]) | {"since_ms": 1, "state": "raised"},
        condition("crowding:P2", 2, "crowding", futian[0]) | {"since_ms": 5, "state": "raised"},
        condition("crowding:P1", 2, "crowding", futian[1]) | {"since_ms": 3, "state": "raised"},
        *[condition(f"complaints:{c}", 3, "complaints", c) | {"since_ms": 9, "state": "acknowledged"} for c in futian],
    ]
    view = ranked_alarms(alarms, geo)
    # The complaints are more severe, but acknowledged: the oldest of the next severity takes over.
    assert view["lead"]["key"] == "crowding:P1"
    assert (view["total"], view["open"]) == (6, 3)
    texts = [line["text"] for line in view["lines"]]
    assert texts[0] == f"Urgent complaints surging in 3 places of {geo.names['D-FT']}"
    assert texts[1] == f"Crowding in 2 places of {geo.names['D-FT']}"
    assert texts[2] == "what services:C1 — where services:C1"
    assert view["lines"][0]["acknowledged"] == 3
    everything_acked = [a | {"state": "acknowledged"} for a in alarms]
    assert ranked_alarms(everything_acked, geo)["lead"] is None


def test_an_operator_acknowledges_from_the_alarms_page_and_the_log_exports_as_csv(settings, client):
    from app import create_app
    from tests.test_dashboard_requests import well_formed

    app = create_app(settings)
    deck = app.server.extensions["citydeck"]
    deck.alarms.track([condition("crowding:P1", 3)], int(deck.clock() * 1000))
    key, callback = next((k, c) for k, c in app.callback_map.items() if "alarms-said" in k)
    body = well_formed(key, callback)
    body["inputs"][0]["value"] = 1
    body["state"][0]["value"] = "crowding:P1"
    body["state"][1]["value"] = '=HYPERLINK("x") team 3 on the way' + " and more" * 5_000
    answer = app.server.test_client().post("/_dash-update-component", json=body)
    assert answer.status_code == 200 and "Acknowledged" in answer.get_data(as_text=True)
    entries = list(deck_audit(app).entries())
    assert entries[-1].action == "alarm_acknowledged" and "crowding:P1" in entries[-1].detail
    assert len(entries[-1].detail) < 1_000, "the audit keeps the note as the alarm log does, cut to 300 characters"
    again = app.server.test_client().post("/_dash-update-component", json=body)
    assert "Already acknowledged by" in again.get_data(as_text=True)
    assert list(deck_audit(app).entries())[-1].n == entries[-1].n, "a second acknowledgement is not audited"
    log = app.server.test_client().get("/alarms/log.csv")
    assert log.status_code == 200 and "citydeck-alarm-log-" in log.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(log.get_data(as_text=True))))
    assert [(r["event"], r["key"]) for r in rows] == [("acknowledged", "crowding:P1"), ("raised", "crowding:P1")]
    assert rows[0]["note"].startswith("'=HYPERLINK")  # a spreadsheet shows it, never runs it


def deck_audit(app):
    return app.server.extensions["citydeck.access"].accounts.audit


class _Dies:
    """A connection of a process that dies at its n-th command: the command is lost (``before``) or it
    reaches Redis and the process dies before the answer (``after``). Nothing is sent after that."""

    budget = 0
    mode = "before"

    def send_packed_command(self, command, check_health=True):
        _Dies.budget -= 1
        if _Dies.budget >= 0:
            return super().send_packed_command(command, check_health)
        if _Dies.budget == -1 and _Dies.mode == "after":
            super().send_packed_command(command, check_health)
        raise redis.ConnectionError("the process died here")


def _dying(url: str, budget: int, mode: str) -> redis.Redis:
    """A client to the test's Redis (a socket or TCP) whose process dies at its ``budget``-th command."""
    _Dies.budget, _Dies.mode = budget, mode
    base = redis.UnixDomainSocketConnection if url.startswith("unix") else redis.Connection
    return redis.Redis.from_url(url, connection_class=type("Dying", (_Dies, base), {}), retry=Retry(NoBackoff(), 0))


def _lives_of_an_alarm(hold_ms: int):
    """An alarm's whole life and another's, as steps a process takes (each a function of the book)."""
    t = 1_000_000
    a, b = condition("crowding:A"), condition("cases:B", kind="cases")
    return [
        lambda bk: bk.track([a, b], t),
        lambda bk: bk.acknowledge("crowding:A", "op-1", "operator", "team 3 on the way", t + 1),
        lambda bk: bk.track([b], t + 10_000),  # A lapses, within the hold
        lambda bk: bk.track([], t + 10_000 + hold_ms),  # both held long enough: cleared
        lambda bk: bk.track([a], t + 100 * hold_ms),  # A again: a new alarm, not acknowledged
    ]


@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_process_killed_at_any_command_leaves_every_change_made_and_logged_once_or_not_at_all(settings, mode):
    """Die at the 1st, 2nd, ... command of an alarm's life, then go on from that step with a process that
    lives (the next tick, the operator's second click): the log says each raise, acknowledgement and clear
    exactly once, and a cleared alarm leaves nothing (no acknowledgement) to its next raise."""
    kills = 0
    for budget in range(400):
        keys = Keys(f"{settings.key_prefix}-{mode}-{budget}")
        dying = _dying(settings.redis_url, budget, mode)
        steps = _lives_of_an_alarm(HOLD_S * 1000)
        done = 0
        try:
            for step in steps:
                step(AlarmBook(dying, keys, HOLD_S, 14))
                done += 1
        except redis.ConnectionError:
            kills += 1
        finally:
            dying.close()
        living = redis.Redis.from_url(settings.redis_url)
        book = AlarmBook(living, keys, HOLD_S, 14)
        for step in steps[done:]:
            last = step(book)
        if done == len(steps):
            last = book.track([condition("crowding:A")], 1_000_000 + 100 * HOLD_S * 1000)
        told = [(e["key"], e["event"]) for e in reversed(book.log())]
        assert [e for k, e in told if k == "crowding:A"] == ["raised", "acknowledged", "cleared", "raised"], budget
        assert [e for k, e in told if k == "cases:B"] == ["raised", "cleared"], budget
        assert [(x["key"], x["state"], x["ack"]) for x in last] == [("crowding:A", "raised", None)], budget
        living.close()
        if done == len(steps):
            break  # the life was lived with no death: every command has been a place to die
    else:
        pytest.fail("the steps never ran through")
    assert kills > 10  # there were that many places to die, each tried
