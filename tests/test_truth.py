"""Every number a page shows equals its recomputation from the raw events: each figure of each page, at
the city, every district, a neighbourhood and its communities, for every window, as time moves on, with
the events drained by 1, 2 and 3 aggregator workers at once.

The events (tests/truth.py) go through the real aggregator into a real Redis, once per number of workers,
each run under a key prefix of its own; the pages' snapshots are built at four instants by one long-lived
reader, as an open dashboard would; the expected values come from the raw events alone, the same for every
run. A failure names the workers, tick, view, scope, window and figure.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import h3
import pytest

from data import aggregator
from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keepers.cases import derived_case_token
from data.keys import Keys
from data.read import CityReader
from engines.tracing import TracingParams
from tests import truth as harness
from tests.truth import NEIGHBOURHOOD, PAST_DAYS, WINDOWS, Areas, Ticks, Truth, case_token, raw_frame, scenario
from tests.workers import drain_at_once
from views import snapshots
from views.geography import CityGeography
from views.state import ViewState

pytestmark = [pytest.mark.redis, pytest.mark.slow]

DISTRICTS = ("D-FT", "D-LU", "D-NS", "D-YT", "D-BA", "D-LG", "D-LH", "D-PS", "D-GM", "D-DP")
TICKS = 4
# How many workers drain the events at once. Those of a run of several read small batches, so that their
# batches interleave.
WORKERS = (1, 2, 3)
RACED_BATCH = 100
# Every district is looked at on the first tick; as time moves on, the city, one district and a
# neighbourhood of it (whose map shows its communities, one by one).
FIRST_SCOPES = ("city", *(f"district:{d}" for d in DISTRICTS), "neighbourhood")
LATER_SCOPES = ("city", "district:D-FT", "neighbourhood")
FRESH_SCOPES = ("city", "neighbourhood")  # also looked at by a page opened at that tick

FIGURES: dict[str, tuple[str, ...]] = {
    "cases": (
        "areas.shown", "headline.confirmed", "headline.suspected", "sites", "clusters", "headline.sites",
        "headline.clusters", "codes.yellow", "codes.red", "codes.value", "headline.yellow", "headline.red",
    ),
    "foot-traffic": (
        "headline.people", "headline.people_yesterday", "headline.sensors", "sensors", "silent_count", "crowded",
        "heat", "ratio", "normal", "fever",
    ),
    "services": (
        "volumes", "headline.applications", "headline.applications_hour", "headline.share_auto_hour", "share_auto",
        "channels", "modes.decided", "centers",
    ),
    "complaints": (
        "headline.filed", "areas", "categories", "routing", "headline.escalated", "headline.open", "table", "table.rows",
        "heat", "hotspots.as_of",
    ),
    "overview": (
        "cases.areas", "cases.confirmed", "foot.people", "foot.heat", "services.volumes",
        "services.applications_hour", "services.share_auto_hour", "complaints.open", "complaints.heat",
    ),
    "health": ("events", "stream_length", "dead", "rate_per_s"),
    "wall": ("alarms", "freshness"),
    "wall (quiet)": ("alarms", "freshness"),
}  # fmt: skip
# Views of the whole city alone, looked at once per tick. The quiet wall is the wall QUIET_S after the tick,
# nothing having come meanwhile: sources fall silent, crowding and fever alarms go or stay.
CITY_WIDE = ("health", "wall", "wall (quiet)")
QUIET_S = 900.0


def state_of(scope: str, window: str) -> ViewState:
    if scope == "city":
        return ViewState(window)
    if scope == "neighbourhood":
        return ViewState(window, NEIGHBOURHOOD.rsplit("-", 1)[0], NEIGHBOURHOOD)
    return ViewState(window, scope.split(":", 1)[1])


# ---------------------------------------------------------------------------- what the snapshots hold


def _cells(points: dict) -> dict[str, int]:
    """A heat layer's points back to the H3 cells whose centres they are."""
    return {h3.latlng_to_cell(lat, lon, 8): w for lon, lat, w in zip(points["lon"], points["lat"], points["weight"])}


def shown_cases(snap: dict) -> dict:
    areas, codes = snap["cases"], snap["codes"]
    sites = snap["sites"]
    return {
        "sites": {n: (h, c) for n, h, c in zip(sites["names"], sites["recency_h"], sites["shown"])},
        "clusters": sorted(((c["size"], c["site_names"]) for c in snap["clusters"]), reverse=True),
        "headline.sites": snap["headline"]["sites"],
        "headline.clusters": snap["headline"]["clusters"],
        "areas.shown": dict(zip(areas["ids"], areas["shown"])),
        "headline.confirmed": snap["headline"]["confirmed"],
        "headline.suspected": snap["headline"]["suspected"],
        "codes.yellow": dict(zip(codes["ids"], codes["yellow"])),
        "codes.red": dict(zip(codes["ids"], codes["red"])),
        "codes.value": dict(zip(codes["ids"], codes["value"])),
        "headline.yellow": snap["headline"]["yellow"],
        "headline.red": snap["headline"]["red"],
    }


def shown_foot(snap: dict) -> dict:
    h = snap["headline"]
    return {
        "headline.people": h["people"],
        "headline.people_yesterday": h["people_yesterday"],
        "headline.sensors": h["sensors"],
        "sensors": {
            r["sensor"]: {k: r[k] for k in ("now", "fever", "occupancy", "capacity", "silent")} for r in snap["sensors"]
        },
        "silent_count": snap["silent_count"],
        "crowded": sorted(r["sensor"] for r in snap["crowded"]),
        "heat": _cells(snap["heat"]),
        "ratio": {r["sensor"]: r["ratio"] for r in snap["sensors"]},
        "normal": {r["sensor"]: r["normal"] for r in snap["sensors"]},
        "fever": sorted(r["sensor"] for r in snap["fever"]),
    }


def shown_services(snap: dict) -> dict:
    h = snap["headline"]
    keep = ("booked", "arrived", "served", "no_show", "queue", "arrivals_per_h", "mean_wait_s")
    return {
        "volumes": dict(zip(snap["volumes"]["ids"], snap["volumes"]["values"])),
        "headline.applications": h["applications"],
        "headline.applications_hour": h["applications_hour"],
        "headline.share_auto_hour": h["share_auto_hour"],
        "share_auto": snap["share_auto"],
        "channels": {c: n for c, n in snap["channels"].items() if n},
        "modes.decided": {m: v["decided"] for m, v in snap["modes"].items() if v["decided"]},
        "centers": {r["center"]: {k: r[k] for k in keep} for r in snap["centers"]},
    }


def shown_complaints(snap: dict) -> dict:
    h = snap["headline"]
    return {
        "headline.filed": h["filed"],
        "areas": dict(zip(snap["areas"]["ids"], snap["areas"]["values"])),
        "categories": {c: n for c, n in snap["categories"].items() if n},
        "routing": {level: actions for level, actions in snap["routing"].items() if actions},
        "headline.escalated": h["escalated"],
        "headline.open": h["open"],
        "table": sorted(r["complaint"] for r in snap["table"]),
        "table.rows": {r["complaint"]: (r["category"], r["community"]) for r in snap["table"]},
        "heat": _cells(snap["heat"]),
        "hotspots.as_of": _as_of(snap["hotspots_as_of"]),
    }


def _as_of(as_of: dict | None) -> tuple[int, int, int] | None:
    """The window and moment of the published hotspots a page shows."""
    return None if as_of is None else (as_of["start"], as_of["end"], as_of["computed_ms"])


def shown_overview(snap: dict) -> dict:
    return {
        "cases.areas": dict(zip(snap["cases"]["areas"]["ids"], snap["cases"]["areas"]["shown"])),
        "cases.confirmed": snap["cases"]["headline"]["confirmed"],
        "foot.people": snap["foot"]["headline"]["people"],
        "foot.heat": _cells(snap["foot"]["heat"]),
        "services.volumes": dict(zip(snap["services"]["volumes"]["ids"], snap["services"]["volumes"]["values"])),
        "services.applications_hour": snap["services"]["headline"]["applications_hour"],
        "services.share_auto_hour": snap["services"]["headline"]["share_auto_hour"],
        "complaints.open": snap["complaints"]["headline"]["open"],
        "complaints.heat": _cells(snap["complaints"]["heat"]),
    }


def shown_health(snap: dict) -> dict:
    by = {s["source"]: s for s in snap["sources"]}
    return {f: {source: by[source][f] for source in by} for f in FIGURES["health"]}


def shown_wall(status: dict) -> dict:
    """The alarms that take over the wall, and each source's freshness with the events a stale one held back."""

    def held_back(message: str) -> int | None:
        found = re.search(r"where about ([\d,]+) events were expected", message)
        return int(found.group(1).replace(",", "")) if found else None

    return {
        "alarms": {a["key"]: (a["kind"], a["what"], a["where"]) for a in status["alarms"]},
        "freshness": {
            line["source"]: {
                "age_s": None if line["age_s"] is None else round(line["age_s"], 1),
                "stale": line["stale"],
                "expected": held_back(line["message"]),
            }
            for line in status["freshness"]
        },
    }


# ---------------------------------------------------------------------------- what the events say


def expected_health(truth: Truth) -> dict:
    h = truth.health()
    return {f: {source: h[source][f] for source in h} for f in FIGURES["health"]}


def expected_pages(truth: Truth, state: ViewState, centers: dict) -> dict[str, dict]:
    """What each page (the health view aside) should show in a view state."""
    window_s = WINDOWS[state.window]
    cases, foot = truth.cases(state, window_s), truth.foot(state, window_s)
    services, complaints = truth.services(state, window_s, centers), truth.complaints(state, window_s)
    overview = {
        "cases.areas": cases["areas.shown"],
        "cases.confirmed": cases["headline.confirmed"],
        "foot.people": foot["headline.people"],
        "foot.heat": foot["heat"],
        "services.volumes": services["volumes"],
        "services.applications_hour": services["headline.applications_hour"],
        "services.share_auto_hour": services["headline.share_auto_hour"],
        "complaints.open": complaints["headline.open"],
        "complaints.heat": complaints["heat"],
    }
    return {"cases": cases, "foot-traffic": foot, "services": services, "complaints": complaints, "overview": overview}


# ---------------------------------------------------------------------------- the run


class Run:
    """The events fed tick by tick and drained by some workers at once, with every page's snapshot and
    recomputation at each tick; the recomputations, which the events alone decide, are shared by the runs
    through ``recomputed``."""

    def __init__(self, redis_url: str, city, city_map, hour: int, workers: int, recomputed: dict, ticks: int = TICKS):
        from settings import Settings

        # Fine buckets are kept for the days the normal of an hour is learnt from, as history imported is.
        self.settings = Settings.from_env(
            {}, redis_url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}", retention_hours=24.0 * (PAST_DAYS + 3)
        )
        raced = type(self.settings)(**{**self.settings.__dict__, "batch_size": RACED_BATCH})
        self.client = client_from_url(redis_url)
        keys = Keys(self.settings.key_prefix)
        self.ticks = Ticks(hour).times
        history, per_tick = scenario(city, hour)
        clock = [self.ticks[0]]
        worker = Aggregator(self.client, self.settings, city_map, name="truth", clock=lambda: clock[0])
        worker.ensure_groups()
        # One reader for the whole run: a dashboard process that has been open since the first tick.
        reader = CityReader(self.client, self.settings, clock=lambda: clock[0])
        geo = CityGeography(city, 8, 25.0)
        areas = Areas(city)
        centers = {pid: p for pid, p in geo.places.items() if p["kind"] == "service_center"}

        written, drained = [], []
        self.shown: dict[tuple, dict] = {}
        self.expected: dict[tuple, dict] = {}
        self.closed_in_view: dict[tuple, bool] = {}
        self.elsewhere: dict[tuple, bool] = {}
        self.escalated_elsewhere: dict[tuple, bool] = {}
        for k, now in enumerate(self.ticks[:ticks]):
            clock[0] = now
            for group in history.groups if k == 0 else per_tick[k - 1]:
                pipe = self.client.pipeline(transaction=False)
                for source, fields in group:
                    pipe.xadd(keys.stream(source), fields)
                pipe.execute()
                if workers == 1:
                    worker.drain()
                else:
                    drain_at_once(raced, city_map, workers, int(now * 1000))
                    worker.roll_up()  # closes the past between groups, as one worker's drain does
                written.append(group)
                drained.append(now)
            worker.roll_up()
            worker.tick_keepers()
            if k not in recomputed:
                frame = raw_frame(written, int(now * 1000), drained)
                # The wall QUIET_S later, nothing having come meanwhile, is recomputed from the same events.
                recomputed[k] = Truth(frame, areas, now), Truth(frame, areas, now + QUIET_S).wall()
            truth, quiet_wall = recomputed[k]

            def pages(state: ViewState, k=k, truth=truth) -> dict[str, dict]:
                if (k, state) not in recomputed:
                    recomputed[(k, state)] = expected_pages(truth, state, centers)
                return recomputed[(k, state)]

            same_batch = truth.closed_with_their_complaint()
            health = snapshots.health_snapshot(reader, now)
            self._keep(k, "health", "city", "1h", shown_health(health), expected_health(truth))
            wall = snapshots.status_snapshot(reader, geo, self.settings, now)
            self._keep(k, "wall", "city", "1h", shown_wall(wall), truth.wall())
            # The same wall a while later, read by a screen of its own, nothing having come meanwhile.
            later = now + QUIET_S
            quiet = CityReader(self.client, self.settings, clock=lambda later=later: later)
            wall = snapshots.status_snapshot(quiet, geo, self.settings, later)
            self._keep(k, "wall (quiet)", "city", "1h", shown_wall(wall), quiet_wall)
            # A page opened at this tick reads with a reader of its own, with no window kept summed.
            fresh = CityReader(self.client, self.settings, clock=lambda: clock[0])
            for scope in FIRST_SCOPES if k == 0 else LATER_SCOPES:
                for window in WINDOWS:
                    state = state_of(scope, window)
                    built = self._build(reader, geo, state, now)
                    if k > 0 and scope in FRESH_SCOPES:
                        opened = self._build(fresh, geo, state, now)
                        built |= {f"{view} (fresh page)": shown for view, shown in opened.items()}
                    closed = len(truth.scoped(same_batch, state) if state.district else same_batch) > 0
                    for view, shown in built.items():
                        page = view.removesuffix(" (fresh page)")
                        self._keep(k, view, scope, window, shown, pages(state)[page])
                        self.closed_in_view[(k, view, scope, window)] = closed
                    if state.district:
                        # Updates of complaints elsewhere in the window: what a city-wide count adds.
                        everywhere = pages(ViewState(window))["complaints"]["routing"]
                        here = self.expected[(k, "complaints", scope, window)]["routing"]
                        key = (k, "complaints", scope, window)
                        self.elsewhere[key] = everywhere != here
                        self.escalated_elsewhere[key] = _escalations(everywhere) != _escalations(here)

    @staticmethod
    def _build(reader: CityReader, geo: CityGeography, state: ViewState, now: float) -> dict[str, dict]:
        """What each page shows in a view state, as read by one reader."""
        return {
            "cases": shown_cases(snapshots.cases_snapshot(reader, geo, state, now)),
            "foot-traffic": shown_foot(snapshots.foot_snapshot(reader, geo, state, now)),
            "services": shown_services(snapshots.services_snapshot(reader, geo, state, now)),
            "complaints": shown_complaints(snapshots.complaints_snapshot(reader, geo, state, now)),
            "overview": shown_overview(snapshots.overview_snapshot(reader, geo, state, now)),
        }

    def _keep(self, tick: int, view: str, scope: str, window: str, shown: dict, wanted: dict) -> None:
        self.shown[(tick, view, scope, window)] = shown
        self.expected[(tick, view, scope, window)] = wanted


def _escalations(routing: dict[str, dict[str, int]]) -> int:
    return sum(actions.get("escalated", 0) for actions in routing.values())


@pytest.fixture(scope="module")
def hour() -> int:
    """The hour the scenario ends in: the same for every run of the module."""
    return int(time.time()) // 3600 * 3600


@pytest.fixture(scope="module")
def recomputed() -> dict:
    """The figures recomputed from the events, per tick and view state: the same for every run."""
    return {}


@pytest.fixture(scope="module", params=WORKERS, ids=lambda n: f"{n}w")
def run(request, redis_url, demo_city, city_map, hour, recomputed):
    with pytest.MonkeyPatch.context() as patch:
        # Hours close between the groups only, as for one worker: a roll-up in the middle of a drain would
        # make late what the events, written group by group, say is not.
        patch.setattr(aggregator, "ROLL_UP_EVERY_S", 10**9)
        r = Run(redis_url, demo_city, city_map, hour, request.param, recomputed)
    yield r
    r.client.close()


# Defects found by this check and not fixed here, each named, and when a figure shows them. They are
# marked strict at run time, where the events say the defect is in view: a fix turns them into passes.
KNOWN: dict[tuple[str, str], tuple[str, Callable[[Run, tuple], bool]]] = {}


def _cases():
    for tick in range(TICKS):
        for scope in FIRST_SCOPES if tick == 0 else LATER_SCOPES:
            for window in WINDOWS:
                for view in [*FIGURES, *(f"{v} (fresh page)" for v in FIGURES if v not in CITY_WIDE)]:
                    page = view.removesuffix(" (fresh page)")
                    if page in CITY_WIDE and (scope, window) != ("city", "1h"):
                        continue
                    if view != page and (tick == 0 or scope not in FRESH_SCOPES):
                        continue
                    name = view.replace(" (fresh page)", "@fresh").replace(" (quiet)", "@quiet")
                    for figure in FIGURES[page]:
                        yield pytest.param(
                            tick, view, scope, window, figure, id=f"t{tick}-{name}-{figure}-{scope}-{window}"
                        )


@pytest.mark.parametrize(("tick", "view", "scope", "window", "figure"), list(_cases()))
def test_every_figure_equals_its_recomputation_from_the_raw_events(request, run, tick, view, scope, window, figure):
    key = (tick, view, scope, window)
    known = KNOWN.get((view.removesuffix(" (fresh page)"), figure))
    if known and known[1](run, (tick, view.removesuffix(" (fresh page)"), scope, window)):
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=known[0]))
    assert (wrong := mismatch(run, key, figure)) is None, wrong


def mismatch(run: Run, key: tuple, figure: str) -> str | None:
    """What a figure shows that its recomputation does not give, or None when they agree."""
    shown, wanted = run.shown[key][figure], run.expected[key][figure]
    if figure.endswith(".rows"):
        # The rows a table lists (it may leave some out) each say what the events say of them.
        shown = {k: v for k, v in shown.items() if wanted.get(k) != v}
        wanted = {k: wanted.get(k, "not in this scope") for k in shown}
    if shown == wanted:
        return None
    tick, view, scope, window = key
    return (
        f"{view} page, {figure}, {scope}, window {window}, tick {tick} (now={run.ticks[tick]}): "
        f"{_difference(shown, wanted)}"
    )


def _difference(shown, wanted) -> str:
    """What differs: the keys whose values differ (and those on one side only), or the two values."""
    if isinstance(shown, dict) and isinstance(wanted, dict):
        keys = sorted(set(shown) | set(wanted), key=str)
        diff = {k: (shown.get(k, "absent"), wanted.get(k, "absent")) for k in keys if shown.get(k) != wanted.get(k)}
        text = ", ".join(f"{k}: shows {a!r}, the events give {b!r}" for k, (a, b) in diff.items())
    else:
        text = f"shows {shown!r}, the events give {wanted!r}"
    return text if len(text) < 800 else text[:800] + "…"


def test_the_recomputation_states_the_rules_in_force(run):
    """The recomputation spells out each rule's numbers on its own: they must be the ones the deployment runs."""
    import inspect

    from data.read import foot as foot_reads
    from data.read import health as health_reads
    from engines.complaints import URGENT_CATEGORIES
    from engines.foot import MAD_TO_SD, CrowdingRule, FeverRule, NormalBands

    s = run.settings
    assert (s.crowding_share, s.lateness_seconds, s.privacy_min_count) == (
        harness.CROWDING_SHARE, harness.LATENESS_S, harness.SMALL,
    )  # fmt: skip
    bands = NormalBands()
    assert (s.history_days, bands.min_history_days, inspect.signature(foot_reads.now_versus_normal).parameters["tz"].default) == (
        harness.NORMAL_DAYS, harness.NORMAL_MIN_DAYS, harness.NORMAL_TZ,
    )  # fmt: skip
    assert (bands.unusual_z, bands.busy_ratio, bands.quiet_ratio, bands.spread_floor_share, MAD_TO_SD) == (
        harness.UNUSUAL_Z, harness.BUSY_RATIO, harness.QUIET_RATIO, harness.SPREAD_FLOOR_SHARE, harness.MAD_TO_SD,
    )  # fmt: skip
    fever = FeverRule()
    assert (fever.window_min * 60, fever.baseline_h * 3600, fever.prior_rate, fever.alert_p, fever.min_count) == (
        harness.FEVER_WINDOW_S, harness.FEVER_BASELINE_S, harness.FEVER_PRIOR_RATE, harness.FEVER_ALERT_P,
        harness.FEVER_MIN,
    )  # fmt: skip
    crowding = CrowdingRule.of(s)
    assert (crowding.grace_s, crowding.max_gap_s, crowding.gap_intervals) == (
        harness.CROWDING_GRACE_S, harness.CROWDING_GAP_S, harness.CROWDING_GAP_INTERVALS,
    )  # fmt: skip
    assert (s.alarm_cluster_cases, s.alarm_urgent_complaints, s.alarm_wait_target_s, tuple(URGENT_CATEGORIES)) == (
        harness.ALARM_CLUSTER_CASES, harness.ALARM_URGENT_COMPLAINTS, harness.ALARM_WAIT_TARGET_S,
        harness.URGENT_CATEGORIES,
    )  # fmt: skip
    assert (s.stale_after_s, snapshots.SILENCE_GAPS, health_reads.RATE_HISTORY_DAYS) == (
        harness.STALE_AFTER_S, harness.SILENCE_GAPS, harness.RATE_DAYS,
    )  # fmt: skip
    assert TracingParams.of(s) == TracingParams(
        infectious_days_before=harness.INFECTIOUS_DAYS,
        contact_window_min=harness.CONTACT_WINDOW_MIN,
        contact_quarantine_days=harness.QUARANTINE_DAYS,
        case_isolation_days=harness.ISOLATION_DAYS,
    )  # and the tracer's own margins at their defaults: no stay margin, isolated when confirmed


def test_the_events_hold_every_case_the_check_claims_to_cover(run):
    """The recomputation is not trivially equal: the scenario reaches every kind of figure and edge."""
    city, hood = (0, "cases", "city", "24h"), (0, "cases", "neighbourhood", "24h")
    assert len(run.expected[city]["sites"]) == 3 and len(run.expected[city]["clusters"]) == 2
    assert run.expected[hood]["sites"] and "<3" in run.expected[city]["headline.confirmed"]
    health = run.expected[(0, "health", "city", "1h")]
    assert all(health["dead"][s].get("duplicate") for s in ("foot", "services", "complaints", "cases"))
    assert health["dead"]["services"]["late"] == 1 and health["dead"]["services"]["bad_coordinates"] == 1
    for window in WINDOWS:
        services = run.expected[(0, "services", "neighbourhood", window)]
        assert services["headline.applications"] and services["channels"]
        complaints = run.expected[(3, "complaints", "neighbourhood", window)]
        assert complaints["headline.filed"] and complaints["categories"] and complaints["headline.open"]
        foot = run.expected[(3, "foot-traffic", "city", window)]
        assert foot["heat"] and foot["crowded"] and foot["silent_count"] == 2 and foot["headline.people_yesterday"]
    # Health codes: red cases, yellow contacts, in a community shown and in small cells hidden.
    yellow = [t for t in run.expected[city]["codes.yellow"].values() if t != "0"]
    assert "<3" in yellow and any(t != "<3" for t in yellow) and "<3" in run.expected[city]["headline.yellow"]
    assert any(t not in ("0", "<3") for t in run.expected[hood]["codes.yellow"].values())
    assert any(t != "0" for t in run.expected[city]["codes.red"].values())
    # A drilled complaints page shows other routing and escalations than the whole city's.
    assert any(run.elsewhere.values()) and any(run.escalated_elsewhere.values())
    # The window edges: the first millisecond of each window is in it, the one before is not.
    shifted = run.expected[(0, "services", "city", "15m")]["headline.applications"]
    assert shifted != run.expected[(0, "services", "city", "1h")]["headline.applications"]
    # Time moved on: the neighbourhood's hour rolled up by the last tick, and counts grew.
    assert run.expected[(3, "services", "city", "15m")] != run.expected[(0, "services", "city", "15m")]
    # Sensors judged against a normal, one too new to have one, one silent; a fever rise after the first tick.
    foot = [run.expected[(k, "foot-traffic", "city", "1h")] for k in range(TICKS)]
    assert {"normal", "busy", "unusual"} <= {v for f in foot for v in f["normal"].values()}
    assert {"no_history", "no_data"} <= set(foot[0]["normal"].values())
    assert not foot[0]["fever"] and foot[3]["fever"]
    # Every kind of alarm, crowding both raised and over, and a source gone quiet that is stale and others not.
    walls = [run.expected[(k, view, "city", "1h")] for k in range(TICKS) for view in ("wall", "wall (quiet)")]
    kinds = [{a[0] for a in wall["alarms"].values()} for wall in walls]
    assert set.union(*kinds) == {"crowding", "cases", "complaints", "services"}
    assert any("crowding" not in k for k in kinds)
    stale = [line["stale"] for wall in walls for line in wall["freshness"].values()]
    assert any(stale) and not all(stale)


def test_the_harness_gives_a_person_who_falls_ill_the_case_token_the_registry_does():
    assert case_token("p-falls-ill") == derived_case_token("p-falls-ill")
