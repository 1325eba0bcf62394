"""citydeck on a real 3-primary Redis Cluster shows what it shows on one server.

The same seeded city events are folded by two aggregator workers on the session's single server
and on a cluster started from the same binary; every key the workers wrote, and every page's
snapshot, must be equal. The ground-truth check runs its first tick (every scope and window) on
the cluster. A worker running while the slot of a source is resharded under it goes on, and leaves
what a worker that met no move leaves. The simulators write to the cluster and resume there, the
dashboard's processes share one snapshot per tick through it, and the whole demo runs on it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from data import aggregator
from data.aggregator import Aggregator
from data.connection import client_from_url, is_cluster
from data.keys import SOURCES, Keys
from data.read import CityReader
from settings import Settings
from tests.event_mix import MINUTE_MS, CityMix
from tests.ledger import assert_settled, digest
from tests.test_truth import FIGURES, KNOWN, WINDOWS, Run, mismatch, shown_health
from tests.test_workers_agree import write
from views import snapshots
from views.geography import CityGeography
from views.state import ViewState

pytestmark = [pytest.mark.redis, pytest.mark.slow]
HOUR_MS = 3_600_000


def settings_on(url: str, **overrides) -> Settings:
    return Settings.from_env({}, redis_url=url, key_prefix=f"t{uuid.uuid4().hex[:10]}", **{"auth": "off", **overrides})


@pytest.fixture(scope="module")
def cluster_client(redis_cluster):
    client = client_from_url(redis_cluster.url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def geo(demo_city):
    return CityGeography(demo_city, 8, 25.0)


def test_a_cluster_url_gives_a_cluster_client_and_the_sources_spread_over_the_primaries(cluster_client):
    assert is_cluster(cluster_client)
    keys = Keys("citydeck")
    nodes = {cluster_client.get_node_from_key(keys.stream(s)).name for s in SOURCES}
    assert len(nodes) > 1, "every source on one primary: the cluster would not spread the load"


# ---------------------------------------------------------------------------- the pipeline, both ways


def fold_with_two_workers(client, settings, city_map, phases, now_ms: int) -> Settings:
    """Write each phase, drain it with two workers taking turns batch by batch, then close its hours."""
    keys = Keys(settings.key_prefix)
    workers = [Aggregator(client, settings, city_map, name=f"w{i}", clock=lambda: now_ms / 1000) for i in range(2)]
    for worker in workers:
        worker.ensure_groups()
    for entries in phases:
        write(client, keys, entries)
        while sum([worker.step(block_ms=None) for worker in workers]):
            pass
        for worker in workers:
            worker.flush()
        workers[0].tick_keepers()
        workers[0].roll_up()
    for worker in workers:
        worker.close()
    return settings


def two_phases(city, seed: int, now_ms: int, first: int, second: int) -> list[list]:
    """Seeded city events in two phases: an hour and more that closes between them, then stragglers for it."""
    hour = now_ms // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    mix = CityMix(city, seed=seed)
    return [
        mix.phase(hour + 5 * MINUTE_MS, hour + 80 * MINUTE_MS, first),
        mix.phase(hour + 80 * MINUTE_MS, hour + 100 * MINUTE_MS, second, stragglers_from=hour + 20 * MINUTE_MS),
    ]


@pytest.fixture(scope="module")
def folded_both_ways(redis_url, redis_cluster, cluster_client, demo_city, city_map):
    """The same events folded on the single server and on the cluster: (client, settings) of each."""
    original = aggregator.ROLL_UP_EVERY_S
    aggregator.ROLL_UP_EVERY_S = 10**9  # hours close between phases only, as in every run compared
    try:
        now_ms = int(time.time() * 1000)
        phases = two_phases(demo_city, 41, now_ms, 2000, 800)
        single_client = client_from_url(redis_url)
        runs = {}
        for name, client, url in (("single", single_client, redis_url), ("cluster", cluster_client, redis_cluster.url)):
            settings = settings_on(url, lateness_seconds=120, batch_size=60)
            runs[name] = (client, fold_with_two_workers(client, settings, city_map, phases, now_ms))
        yield runs, now_ms
        single_client.close()
    finally:
        aggregator.ROLL_UP_EVERY_S = original


def test_workers_on_a_cluster_leave_every_key_a_single_server_leaves(folded_both_ways):
    runs, _ = folded_both_ways
    found = {}
    for name, (client, settings) in runs.items():
        keys = Keys(settings.key_prefix)
        assert_settled(client, keys)
        lag = CityReader(client, settings).consumer_lag()
        assert all(v["lag"] == 0 and v["pending"] == 0 for v in lag.values()), (name, lag)
        found[name] = digest(client, keys)
    single, cluster = found["single"], found["cluster"]
    counted = sum(int(single[f"{{P:{s}}}:meta"][b"events"]) for s in SOURCES)
    assert counted > 2000 and any(":h:" in k for k in single), "too little folded, or no hour rolled up"
    assert cluster.keys() == single.keys(), sorted(cluster.keys() ^ single.keys())[:20]
    assert [k for k in single if cluster[k] != single[k]] == []


def test_every_page_on_a_cluster_shows_what_it_shows_on_a_single_server(folded_both_ways, geo):
    runs, now_ms = folded_both_ways
    now = now_ms / 1000
    shown = {}
    for name, (client, settings) in runs.items():
        reader = CityReader(client, settings, clock=lambda: now)
        pages = {}
        for window in WINDOWS:
            for state in (ViewState(window), ViewState(window, "D-FT")):
                for view, figures in Run._build(reader, geo, state, now).items():
                    pages[(view, window, state.district)] = figures
        health = shown_health(snapshots.health_snapshot(reader, now))
        pages[("health",)] = health
        shown[name] = pages
    single, cluster = shown["single"], shown["cluster"]
    assert single[("health",)]["events"], "nothing shown: the comparison would prove nothing"
    differ = {k: (single[k], cluster[k]) for k in single if single[k] != cluster[k]}
    assert not differ, str(differ)[:2000]


# ---------------------------------------------------------------------------- the truth, on a cluster


def test_every_figure_of_the_first_tick_on_a_cluster_equals_its_recomputation(redis_cluster, demo_city, city_map):
    run = Run(
        redis_cluster.url, demo_city, city_map, hour=int(time.time()) // 3600 * 3600, workers=1, recomputed={}, ticks=1
    )
    try:
        assert is_cluster(run.client)
        checked = [(key, figure) for key in run.shown for figure in FIGURES[key[1].removesuffix(" (fresh page)")]]
        wrong = [
            text for key, figure in checked if (text := mismatch(run, key, figure)) and not known(run, key, figure)
        ]
        assert len(checked) > 1000 and not wrong, wrong[:5]
    finally:
        run.client.close()


def known(run: Run, key: tuple, figure: str) -> bool:
    """Whether the truth check marks this figure as showing a known defect at this tick and scope."""
    tick, view, scope, window = key
    page = view.removesuffix(" (fresh page)")
    defect = KNOWN.get((page, figure))
    return bool(defect and defect[1](run, (tick, page, scope, window)))


# ---------------------------------------------------------------------------- a slot moves under a worker


def test_a_worker_goes_on_when_its_source_s_slot_is_resharded_under_it(
    redis_cluster, cluster_client, redis_url, demo_city, city_map, caplog, monkeypatch
):
    monkeypatch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)
    now_ms = int(time.time() * 1000)
    hour = now_ms // HOUR_MS * HOUR_MS - 2 * HOUR_MS
    mix = CityMix(demo_city, seed=43)
    before = mix.phase(hour + 5 * MINUTE_MS, hour + 40 * MINUTE_MS, 800)
    after = mix.phase(hour + 40 * MINUTE_MS, hour + 70 * MINUTE_MS, 3000)
    moved = settings_on(redis_cluster.url, batch_size=50, block_ms=200)
    keys = Keys(moved.key_prefix)
    reader = CityReader(cluster_client, moved)

    def settled() -> bool:
        lag = reader.consumer_lag()
        return all(v["lag"] == 0 and v["pending"] == 0 for v in lag.values())

    def wait_until_settled() -> None:
        deadline = time.monotonic() + 120
        while not settled():
            assert running.is_alive(), failures
            assert time.monotonic() < deadline, reader.consumer_lag()
            time.sleep(0.05)

    worker = Aggregator(client_from_url(redis_cluster.url), moved, city_map, name="w", clock=lambda: now_ms / 1000)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            worker.run()
        except BaseException as e:  # noqa: BLE001  (reported by the test, not lost in the thread)
            failures.append(e)

    running = threading.Thread(target=work)
    caplog.set_level(logging.WARNING, logger="citydeck.aggregator")
    write(cluster_client, keys, before)
    running.start()
    try:
        wait_until_settled()
        # The slot moves while the worker is busy with a backlog: its reads and commits of that source meet
        # ASK and TRYAGAIN while the keys migrate, then MOVED; a read blocked there is ended (UNBLOCKED).
        write(cluster_client, keys, after)
        slot = cluster_client.keyslot(keys.stream("foot"))
        home = redis_cluster.owner_of(slot)
        redis_cluster.move_slot(slot, next(p for p in redis_cluster.ports if p != home))
        wait_until_settled()
    finally:
        worker.stop()
        running.join(timeout=30)
        worker.client.close()
    assert not failures and not running.is_alive(), failures
    met = [r.getMessage() for r in caplog.records]
    assert any("a cluster slot moved" in m or "UNBLOCKED" in m for m in met), f"the worker never met the move: {met}"

    # The same events, on one server, by a worker that met no move.
    client = client_from_url(redis_url)
    try:
        calm = settings_on(redis_url, batch_size=50)
        still = Aggregator(client, calm, city_map, name="w", clock=lambda: now_ms / 1000)
        still.ensure_groups()
        for entries in (before, after):
            write(client, Keys(calm.key_prefix), entries)
            while still.step(block_ms=None):  # no roll-up: the running worker closed no hour either
                pass
        # Hotspots are those of what was folded by the last tick: a tick of both once all is folded.
        still.publish()
        Aggregator(cluster_client, moved, city_map, name="tick", clock=lambda: now_ms / 1000).publish()
        still.close()
        assert_settled(cluster_client, keys)
        assert digest(cluster_client, keys) == digest(client, Keys(calm.key_prefix))
    finally:
        client.close()


# ---------------------------------------------------------------------------- the simulators


def late_morning_before(seconds: float, timezone: str) -> int:
    """Return the last 11:00 in the city before ``seconds``, in ms: an hour when every source writes.

    At night the offices are shut and a few simulated minutes may bring no application at all, which
    would leave nothing to resume.
    """
    moment = datetime.fromtimestamp(seconds, ZoneInfo(timezone))
    morning = moment.replace(hour=11, minute=0, second=0, microsecond=0)
    if morning > moment:
        morning = (morning - timedelta(days=1)).replace(hour=11)
    return int(morning.timestamp()) * 1000


def test_the_simulators_write_every_source_to_a_cluster_and_a_restart_resumes_there(
    redis_cluster, cluster_client, demo_city, city_map
):
    from simulators.producer import producer_client
    from simulators.resume import newest_written
    from simulators.runner import RunOptions, run

    settings = settings_on(redis_cluster.url)
    keys = Keys(settings.key_prefix)
    start = late_morning_before(time.time() - 20 * 60, RunOptions.timezone)
    options = RunOptions(speed=600, scale=0.05, seed=5, start_ms=start, flush_seconds=0.05)

    def simulate_until(ms: int) -> None:
        stop, result = threading.Event(), []
        runner = threading.Thread(
            target=lambda: result.append(
                run(options, settings, lambda: producer_client(redis_cluster.url), demo_city, stop)
            )
        )
        runner.start()
        deadline = time.monotonic() + 120
        while runner.is_alive() and time.monotonic() < deadline:
            # The sources share one simulated clock; the sensors' readings, every minute, show where it is.
            if (w := newest_written(cluster_client, keys.stream("foot"))) and w.ts >= ms:
                break
            time.sleep(0.05)
        stop.set()
        runner.join(60)
        assert result == [0]

    simulate_until(start + 3 * MINUTE_MS)
    first = {s: cluster_client.xlen(keys.stream(s)) for s in SOURCES}
    simulate_until(newest_written(cluster_client, keys.stream("foot")).ts + 3 * MINUTE_MS)
    worker = Aggregator(cluster_client, settings, city_map, name="w")
    worker.ensure_groups()
    worker.drain()
    worker.close()
    # Resumed where each stream ended: no event written twice, so none dead-lettered as a duplicate.
    assert_settled(cluster_client, keys)
    dead = CityReader(cluster_client, settings).dead_letter_counts()
    assert all(not counts.get("duplicate") for counts in dead.values()), dead
    counted = {s: f["events"] for s, f in CityReader(cluster_client, settings).freshness().items()}
    assert all(counted[s] > first[s] > 0 for s in SOURCES if s != "complaints"), (first, counted)


# ---------------------------------------------------------------------------- the dashboard's cache


def test_the_dashboard_runs_on_a_cluster_its_processes_sharing_one_snapshot_per_tick(redis_cluster):
    from app import create_app
    from callbacks.deck import Deck

    settings = settings_on(redis_cluster.url)
    app = create_app(settings)
    deck = app.server.extensions["citydeck"]
    assert is_cluster(deck.client)
    assert app.server.test_client().get("/health").status_code == 200
    other = Deck(settings, client_from_url(redis_cluster.url), lambda: None)  # a second gunicorn worker
    other.init_app(app.server)
    built = []

    def build(now: float) -> dict:
        built.append(now)
        return {"built_at": now}

    try:
        for window in WINDOWS:  # a tick may turn between the two asks: then the next window is asked
            built.clear()
            first = deck.snapshot("overview", ViewState(window), build)
            second = other.snapshot("overview", ViewState(window), build)
            if len(built) == 1:
                break
        assert len(built) == 1 and first == second, "the second process built the snapshot again"
    finally:
        other.client.close()
        deck.client.close()


# ---------------------------------------------------------------------------- the whole demo


def test_the_demo_runs_on_a_cluster_its_workers_folding_what_its_simulators_write(
    redis_cluster, cluster_client, tmp_path
):
    from tests.test_launcher import Demo, free_port

    settings = settings_on(redis_cluster.url)
    port = free_port()
    demo = Demo(settings, tmp_path, "--port", str(port), "--backfill", "0.1", "--scale", "0.02")
    try:
        demo.wait_for("citydeck is running")
        reader = CityReader(cluster_client, settings)
        deadline = time.monotonic() + 120
        while not all(f["events"] for s, f in reader.freshness().items() if s != "complaints"):
            assert demo.process.poll() is None and time.monotonic() < deadline, demo.output[-3000:]
            time.sleep(0.1)
        assert reader.workers(), "no worker heartbeat on the cluster"
        demo.process.send_signal(signal.SIGINT)
        assert demo.finish() == 0, demo.output[-3000:]
        assert "Traceback" not in demo.output, demo.output[-3000:]
    finally:
        demo.kill()


# ---------------------------------------------------------------------------- sign-in


def test_sign_in_its_rate_limit_sessions_and_the_audit_chain_work_on_a_cluster(redis_cluster):
    from accounts.store import Accounts
    from app import create_app
    from tests.test_access import PASSWORD, sign_in

    settings = settings_on(redis_cluster.url, auth="on", secret_key="c" * 48)
    client = client_from_url(redis_cluster.url)
    accounts = Accounts.of(settings, client)
    accounts.add("ana", "viewer", PASSWORD, by="test")
    app = create_app(settings)
    browser, answer = sign_in(app, "ana")
    assert answer.status_code == 302 and browser.get("/").status_code == 200
    for _ in range(5):
        assert sign_in(app, "ana", "wrong password!")[1].status_code == 401
    assert sign_in(app, "ana")[1].status_code == 429  # counted in the cluster, as every worker would count
    browser.get("/logout")
    assert browser.get("/").status_code == 302
    assert [e.action for e in accounts.audit.entries()] == ["account.add", "signin", "signout"]
    assert accounts.audit.verify().ok


# ---------------------------------------------------------------------------- the alarms


def test_an_alarm_is_raised_acknowledged_logged_and_cleared_on_a_cluster(redis_cluster, cluster_client):
    from data.alarms import AlarmBook

    settings = settings_on(redis_cluster.url)
    book = AlarmBook(cluster_client, Keys(settings.key_prefix), clear_after_s=60, log_days=14)
    now_ms = int(time.time() * 1000)
    crowd = {"key": "crowding:P1", "kind": "crowding", "severity": 2, "what": "Crowding", "where": "Futian"}
    (raised,) = book.track([crowd], now_ms)
    assert (raised["state"], raised["since_ms"]) == ("raised", now_ms)
    assert book.acknowledge("crowding:P1", "ops", "operator", "on it", now_ms + 1_000)[2]
    (acked,) = book.track([crowd], now_ms + 2_000)
    assert acked["state"] == "acknowledged" and acked["ack"]["by"] == "ops"
    assert book.track([], now_ms + 3_000)[0]["lapsed"]  # held a while before it clears: no flapping
    assert book.track([], now_ms + 63_000) == []
    assert [e["event"] for e in reversed(book.log())] == ["raised", "acknowledged", "cleared"]
