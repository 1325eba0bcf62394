"""The dashboard's pure parts: URL state, privacy suppression, figure builders, and snapshot builders on a
real Redis fed through the real aggregator."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import plotly.graph_objects as go
import pytest

from data.aggregator import Aggregator
from data.connection import client_from_url
from data.keys import Keys
from data.read import CityReader
from data.read.cases import active_codes
from data.read.windows import WINDOWS
from data.schema import encode
from views import figures, snapshots
from views.geography import CityGeography
from views.privacy import shown_count, shown_total
from views.snapshots import DAY_S
from views.state import DEFAULT_WINDOW, ViewState, moment_of, parse_state, parse_wall, state_query

DISTRICTS = {"D-FT", "D-LU"}
NEIGHBOURHOODS = {"D-FT-N01": "D-FT", "D-LU-N02": "D-LU"}


@pytest.fixture(scope="module")
def geo(demo_city):
    return CityGeography(demo_city, 8, 25.0)


# ---------------------------------------------------------------------------- URL state


@pytest.mark.parametrize(
    "search",
    ["?window=7y", "?district=%27%3Bdrop", "?window=&district=", "?neighbourhood=D-XX-N99", "?%%%", "garbage=1&&&"],
)
def test_bad_url_values_fall_back_to_defaults_and_say_so(search):
    state, notes = parse_state(search, DISTRICTS, NEIGHBOURHOODS)
    assert state.window in ("15m", "1h", "24h")
    assert state.district in (None, *DISTRICTS)
    if "7y" in search or "drop" in search or "D-XX" in search:
        assert notes and state == ViewState()


def test_a_custom_window_is_hours_or_days_up_to_a_week_and_a_bad_one_falls_back_and_says_how_to_write_it():
    for window, seconds in (("36h", 36 * 3600), ("7d", 7 * 86_400), ("168h", 7 * 86_400), ("15m", 900)):
        state, notes = parse_state(f"?window={window}", DISTRICTS, NEIGHBOURHOODS)
        assert (state.window, state.window_s, notes) == (window, seconds, [])
        assert parse_state(state_query(state), DISTRICTS, NEIGHBOURHOODS) == (state, [])
    for bad in ("0h", "5x", "12", "-3h", "1.5h"):
        state, notes = parse_state(f"?window={bad}", DISTRICTS, NEIGHBOURHOODS)
        assert state.window == DEFAULT_WINDOW and len(notes) == 1 and "36h or 7d" in notes[0], bad
    # Longer than a week: the longest window, and the page says why.
    for long in ("8d", "169h", "60d", "9999d"):
        state, notes = parse_state(f"?window={long}", DISTRICTS, NEIGHBOURHOODS)
        assert state.window == "7d" and notes == ["a window reaches back 7d at most: showing the last 7 d"], long


def test_state_round_trips_through_the_query_string():
    state = ViewState("24h", "D-LU", "D-LU-N02")
    assert parse_state(state_query(state), DISTRICTS, NEIGHBOURHOODS) == (state, [])
    assert state_query(ViewState()) == ""


def test_a_moment_round_trips_in_one_spelling_and_a_bad_or_future_one_is_live_and_says_so():
    state = ViewState("24h", "D-LU", None, "2019-10-06T08:00")
    assert state_query(state) == "?window=24h&district=D-LU&at=2019-10-06T08:00"
    assert parse_state(state_query(state), DISTRICTS, NEIGHBOURHOODS) == (state, [])
    # A space and an offset are read as the same local moment; seconds are kept (playback moves by them).
    assert parse_state("?at=2019-10-06%2008:00:59%2B02:00", DISTRICTS, NEIGHBOURHOODS)[0].at == "2019-10-06T08:00:59"
    for bad in ("?at=yesterday", "?at=2019-13-01T00:00", "?at=0001-01-01T00:00"):
        state, notes = parse_state(bad, DISTRICTS, NEIGHBOURHOODS)
        assert state.at is None and len(notes) == 1 and "showing live" in notes[0], bad
    now = moment_of("2019-10-06T08:00", "Asia/Shanghai")
    assert parse_state("?at=2019-10-06T07:59", DISTRICTS, NEIGHBOURHOODS, (now, "Asia/Shanghai"))[0].at
    state, notes = parse_state("?at=2019-10-06T08:00", DISTRICTS, NEIGHBOURHOODS, (now, "Asia/Shanghai"))
    assert state.at is None and notes == ["2019-10-06 08:00 is not in the past: showing live"]


def test_a_neighbourhood_implies_its_district_and_a_mismatch_is_dropped():
    assert parse_state("?neighbourhood=D-FT-N01", DISTRICTS, NEIGHBOURHOODS)[0].district == "D-FT"
    state, notes = parse_state("?district=D-LU&neighbourhood=D-FT-N01", DISTRICTS, NEIGHBOURHOODS)
    assert (state.district, state.neighbourhood, len(notes)) == ("D-LU", None, 1)


def test_drilling_up_goes_community_to_neighbourhood_to_city():
    state = ViewState(DEFAULT_WINDOW, "D-FT", "D-FT-N01")
    assert state.level == "community"
    assert state.up().level == "neighbourhood"
    assert state.up().up().level == "district"


def test_wall_playlist_and_dwell_come_from_the_url_or_the_settings():
    plan, notes = parse_wall("?views=foot-traffic,complaints,nope&dwell=20", "overview", 30)
    assert plan.views == ("foot-traffic", "complaints") and plan.dwell_s == 20 and notes
    plan, notes = parse_wall("?dwell=abc", "cases,services", 30)
    assert plan.views == ("cases", "services") and plan.dwell_s == 30 and notes
    assert [plan.showing(t) for t in (0, 29, 30, 61)] == ["cases", "cases", "services", "cases"]


# ---------------------------------------------------------------------------- the complaints table


def test_an_export_is_named_after_the_view_area_window_and_the_city_s_time():
    from datetime import UTC, datetime

    from layouts.render import export_file_name

    at = datetime(2026, 12, 4, 7, 30, 40, tzinfo=UTC).timestamp()  # 15:30 in Shenzhen
    assert export_file_name("complaints", "Futian", "1h", at, "Asia/Shanghai") == (
        "citydeck-complaints-futian-1h-2026-12-04T1530.csv"
    )
    assert export_file_name("complaints", None, "24h", at, "Asia/Shanghai").startswith("citydeck-complaints-city-24h-")
    assert export_file_name("complaints", None, "15m", at, "Europe/Paris").endswith("-2026-12-04T0830.csv")
    named = {area: export_file_name("complaints", area, "1h", at, "Asia/Shanghai") for area in
             ("Bao'an", "中正區", "Xixiang · Bao'an", "../../etc/passwd", 'O’Brien "East" Gate', "...")}  # fmt: skip
    assert [name.split("-1h-")[0].removeprefix("citydeck-complaints-") for name in named.values()] == [
        "baoan", "中正區", "xixiang-baoan", "etc-passwd", "obrien-east-gate", "area",
    ]  # fmt: skip
    assert not any("/" in name or " " in name for name in named.values())


def test_the_complaints_table_shows_the_columns_chosen_and_always_the_complaint():
    from dash.exceptions import PreventUpdate

    from callbacks.values import chosen
    from layouts.pages import CHOOSABLE_COLUMNS, COMPLAINT_COLUMNS, complaint_columns

    every = complaint_columns()
    assert [c["field"] for c in every] == [field for field, _ in COMPLAINT_COLUMNS]
    assert not any(c["hide"] for c in every)
    some = complaint_columns(chosen(["district", "waited_h"], CHOOSABLE_COLUMNS))
    assert {c["field"] for c in some if not c["hide"]} == {"district", "waited_h", "complaint"}
    assert {c["field"] for c in complaint_columns(chosen(None, CHOOSABLE_COLUMNS)) if not c["hide"]} == {"complaint"}
    waited = next(c for c in every if c["field"] == "waited_h")
    assert waited["filter"] == "agNumberColumnFilter" and waited["cellDataType"] == "number"
    for wrong in ("district", ["district", "nope"], [1], {"a": 1}):
        with pytest.raises(PreventUpdate):
            chosen(wrong, CHOOSABLE_COLUMNS)


# ---------------------------------------------------------------------------- privacy


def test_zero_is_shown_one_and_two_are_suppressed_and_three_is_shown():
    shown = [shown_count(n) for n in (0, 1, 2, 3, 40)]
    assert [c.text for c in shown] == ["0", "<3", "<3", "3", "40"]
    assert [c.value for c in shown] == [0, None, None, 3, 40]
    assert [c.at_least for c in shown] == [0, 1, 1, 3, 40]
    assert shown_count(4, minimum=5).text == "<5" and shown_count(4, minimum=5).spoken == "fewer than 5"


def test_a_dead_letters_producer_id_is_shown_whole_unless_it_is_no_id():
    from views.privacy import masked_fields

    for src in ("sim-foot-20261204T211422Z-d1f203fe", "imp-311-8f2e4031977215aa", "open311"):
        assert masked_fields({"src": src})["src"] == src
    # A number where the producer's id belongs is masked like any text.
    for src in ("13800138000", "+86 138 0013 8000", "call 13800138000"):
        assert "13800138000" not in masked_fields({"src": src})["src"].replace(" ", "")


def test_a_total_never_reveals_a_suppressed_area():
    total = shown_total({"a": 1, "b": 5, "c": 7})
    assert total.value is None and total.at_least == 13
    assert total.text.startswith("12+") and "13" not in total.text and "<3" in total.text
    assert shown_total({"a": 3, "b": 4, "c": 0}) == shown_count(7)


def test_no_suppressed_count_can_be_derived_from_what_is_shown():
    # Every value a suppressed cell could take must give the same screen, totals included.
    rng = np.random.default_rng(11)
    for _ in range(40):
        counts = rng.choice([0, 1, 2, 3, 4, 9, 25], size=5).tolist()
        screen = ([shown_count(n) for n in counts], shown_total(counts))
        for i in [i for i, n in enumerate(counts) if 0 < n < 3]:
            for other in (1, 2):
                changed = counts[:i] + [other] + counts[i + 1 :]
                assert ([shown_count(n) for n in changed], shown_total(changed)) == screen


# ---------------------------------------------------------------------------- figures


def _snapshot_like(geo):
    ids = geo.areas_of("district", None, None)
    return {
        "level": "district",
        "bounds": geo.bounds,
        "cases": {
            "ids": ids,
            "names": ids,
            "values": [1.5] * len(ids),
            "shown": ["<3"] * len(ids),
            "exact": [None] * len(ids),
        },
        "codes": {
            "ids": ids,
            "names": ids,
            "value": [None] + [4] * (len(ids) - 1),
            "yellow": ["<3"] + ["4"] * (len(ids) - 1),
            "red": ["<3"] * len(ids),
            "spoken": [["fewer than 3", "fewer than 3"]] + [["4", "fewer than 3"]] * (len(ids) - 1),
        },
        "sites": {
            "lon": [114.0],
            "lat": [22.6],
            "names": ["x"],
            "recency_h": [5.0],
            "window_h": 48.0,
            "size": [3],
            "shown": ["<3"],
        },
        "heat": {"lon": [114.0], "lat": [22.6], "weight": [5]},
        "hotspots": [{"cell": "c", "lon": 114.0, "lat": 22.6, "count": 4, "z": 3.1}],
        "volumes": {"ids": ids, "names": ids, "values": list(range(len(ids)))},
        "centers": [],
        "sensors": [],
        "history_days": 0,
    }


def test_map_figures_are_valid_plotly_and_need_no_tiles_or_fonts(geo):
    snap = _snapshot_like(geo)
    for fig in (
        figures.cases_map(snap, "r"),
        figures.codes_map(snap, "r"),
        figures.foot_heat_map(snap, "r"),
        figures.sensors_map(snap, "r"),
        figures.services_map(snap, "r"),
        figures.complaints_map(snap, "r"),
    ):
        go.Figure(fig)  # raises on any invalid property
        style = fig["layout"]["map"]["style"]
        assert isinstance(style, dict) and [layer["type"] for layer in style["layers"]] == ["background"]
        assert "glyphs" not in style and style["sources"]
        assert all(t["type"] in ("scattermap", "densitymap", "choroplethmap") for t in fig["data"])
        assert all(t.get("mode", "markers") == "markers" for t in fig["data"] if t["type"] == "scattermap")
        assert fig["layout"]["uirevision"] == "r"


def test_choropleths_point_at_the_static_geojson_url_and_stay_small(geo):
    fig = figures.cases_map(_snapshot_like(geo), "r")
    assert fig["data"][0]["geojson"] == "/geo/district.json"
    assert len(json.dumps(fig)) < 20_000


def test_a_tile_style_from_settings_replaces_the_background(geo):
    fig = figures.foot_heat_map(_snapshot_like(geo), "r", tile_style="carto-darkmatter")
    assert fig["layout"]["map"]["style"] == "carto-darkmatter"


def test_a_refresh_resends_only_the_changed_keys_of_traces_keeps_the_layout_and_sends_nothing_unchanged(geo):
    from dash import no_update
    from dash.exceptions import PreventUpdate

    from bench.load import patched
    from callbacks.pages import sent

    first = figures.bar_chart(["noise"], [2], "r", title="last hour")
    *whole, store = sent([first], ["2 filed"], None)
    assert whole == [first, "2 filed"] and sent([first], ["2 filed"], "r:an-older-store")[:2] == (first, "2 filed")
    with pytest.raises(PreventUpdate):  # the same traces and numbers again: an empty answer
        sent([figures.bar_chart(["noise"], [2], "r", title="last hour")], ["2 filed"], store)
    later = figures.bar_chart(["water", "noise"], [5, 3], "r", title="last hour")
    patch, numbers, store_patch = sent([later], ["2 filed"], store)
    # The keys of the trace that changed (its bars), not its colour or type, and no title: it did not change.
    assert patch.to_plotly_json()["operations"] == [
        {"operation": "Assign", "location": ["data", 0, "y"], "params": {"value": later["data"][0]["y"]}},
        {"operation": "Assign", "location": ["data", 0, "x"], "params": {"value": later["data"][0]["x"]}},
    ]
    assert patched(first, patch.to_plotly_json()) == later  # the page then holds what a fresh page draws
    assert numbers is no_update
    assert [op["location"] for op in store_patch.to_plotly_json()["operations"]] == [
        ["digests", 0],
        ["traces", "0"],
        ["titles", "0"],
    ]
    # Another window names itself in the title: the title alone is patched, the rest of the layout kept.
    other = figures.bar_chart(["noise"], [2], "r", title="last 24 h")
    titled = sent([other], ["2 filed"], store)[0].to_plotly_json()["operations"]
    assert [op["location"] for op in titled] == [["layout", "title"]]
    assert titled[0]["params"]["value"]["text"] == "last 24 h"
    # A trace more (or fewer): the traces are sent whole.
    two = {"data": [*first["data"], *later["data"]], "layout": first["layout"]}
    grown = sent([two], ["2 filed"], store)[0].to_plotly_json()["operations"]
    assert grown == [{"operation": "Assign", "location": ["data"], "params": {"value": two["data"]}}]


def test_the_geojson_of_each_level_is_simplified_and_keeps_every_area(geo, demo_city):
    for level in ("district", "neighbourhood", "community"):
        body = json.loads(geo.geojson(level))
        assert len(body["features"]) == len(demo_city.level(level))
    assert len(geo.geojson("community")) < 400_000


# ---------------------------------------------------------------------------- snapshots on a real Redis


@pytest.fixture(scope="module")
def fed(redis_url, demo_city, city_map, tmp_path_factory):
    """A key prefix of its own, filled with a realistic mix of events through the real aggregator."""
    import uuid

    from bench.ingest import fill
    from settings import Settings

    # The worker that fills the prefix reports once, at set-up; the views are read later in the module.
    settings = Settings.from_env(
        {}, redis_url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:10]}", worker_timeout_s=3600.0
    )
    client = client_from_url(redis_url)
    keys = Keys(settings.key_prefix)
    fill(client, keys, demo_city, 4000, seed=3)
    now_ms = int(time.time() * 1000)
    venue = demo_city.places[demo_city.places.kind == "venue"].iloc[0]
    centre = demo_city.communities.geometry.iloc[0].representative_point()
    for seq in range(2):  # two confirmed cases in one community: a small cell
        client.xadd(
            keys.stream("cases"),
            encode(
                "case_report",
                src="t",
                seq=seq,
                ts=now_ms - 1000,
                case_id=f"c{seq}",
                status="confirmed",
                lon=centre.x,
                lat=centre.y,
            ),
        )
    client.xadd(
        keys.stream("cases"),
        encode(
            "case_visit",
            src="t",
            seq=9,
            ts=now_ms - 1000,
            case_id="c0",
            venue_id=venue.place_id,
            arrive_ts=now_ms - 9000,
            leave_ts=now_ms - 5000,
            lon=venue.lon,
            lat=venue.lat,
        ),
    )
    worker = Aggregator(client, settings, city_map)
    worker.ensure_groups()
    worker.drain()
    yield settings, CityReader(client, settings), demo_city.communities["community_id"].iloc[0]
    client.close()


@pytest.mark.redis
def test_cases_snapshot_suppresses_small_counts_and_lists_exposure_sites(fed, geo):
    _settings, reader, community = fed
    state = ViewState("1h")
    snap = snapshots.cases_snapshot(reader, geo, ViewState("1h", None, None), time.time())
    district = geo.community_parents[community][1]
    i = snap["cases"]["ids"].index(district)
    # The bench's one case is hidden in its community, and the district's figure is made of that cell.
    assert snap["cases"]["shown"][i] == "0+ · 1 area <3" and snap["cases"]["values"][i] == 1.5
    assert snap["sites"]["lon"] and all(s == "<3" or int(s) >= 3 for s in snap["sites"]["shown"])
    drilled = snapshots.cases_snapshot(
        reader, geo, ViewState("1h", district, geo.community_parents[community][0]), time.time()
    )
    j = drilled["cases"]["ids"].index(community)
    assert drilled["cases"]["shown"][j] == "<3" and drilled["cases"]["values"][j] == 1.5
    assert "2" not in drilled["headline"]["confirmed"].split("+")[0] or drilled["headline"]["confirmed"].startswith(
        "0+"
    )
    assert state.level == "district"


@pytest.mark.redis
def test_every_view_snapshot_builds_from_the_aggregates(fed, geo):
    settings, reader, _ = fed
    now = time.time()
    state = ViewState("1h")
    foot = snapshots.foot_snapshot(reader, geo, state, now)
    assert foot["heat"]["lon"] and foot["sensors"] and foot["history_days"] == 0
    services = snapshots.services_snapshot(reader, geo, state, now)
    assert services["headline"]["applications"] > 0 and services["share_auto"] is not None
    assert services["centers"] and "counters_needed" in services["centers"][0]
    complaints = snapshots.complaints_snapshot(reader, geo, state, now)
    assert complaints["table"] and complaints["headline"]["filed"] > 0
    overview = snapshots.overview_snapshot(reader, geo, state, now)
    assert set(overview) >= {"cases", "foot", "services", "complaints"}
    health = snapshots.health_snapshot(reader, now)
    assert {s["source"] for s in health["sources"]} == {"cases", "foot", "services", "complaints"}
    assert health["workers"]
    status = snapshots.status_snapshot(reader, geo, settings, now)
    assert not any(line["stale"] for line in status["freshness"])


@pytest.mark.redis
def test_the_overview_is_composed_from_the_views_snapshots_of_the_tick(fed, geo):
    _settings, reader, _ = fed
    now = time.time()
    state = ViewState("1h", geo.districts[0][0])
    pages = {view: snapshots.view_snapshot(view, reader, geo, state, now) for view in snapshots.LIVE_MAPS}
    asked = []
    overview = snapshots.overview_snapshot(
        reader, geo, state, now, views=lambda view: asked.append(view) or pages[view]
    )
    assert sorted(asked) == sorted(snapshots.LIVE_MAPS)  # each page's snapshot once, none rebuilt
    assert overview["cases"]["headline"] == pages["cases"]["headline"]
    assert overview["foot"]["headline"] == pages["foot-traffic"]["headline"]
    assert overview["services"]["volumes"] == pages["services"]["volumes"]
    assert overview["complaints"]["headline"] == pages["complaints"]["headline"]
    assert overview["label"] == pages["services"]["label"]


@pytest.mark.redis
def test_a_drilled_snapshot_holds_only_the_areas_of_that_district(fed, geo):
    _settings, reader, _ = fed
    district = geo.districts[0][0]
    snap = snapshots.services_snapshot(reader, geo, ViewState("1h", district), time.time())
    assert snap["level"] == "neighbourhood"
    assert all(geo.neighbourhood_district[n] == district for n in snap["volumes"]["ids"])


@pytest.mark.redis
def test_crowding_over_capacity_raises_an_alarm_that_says_where(fed, geo, demo_city):
    settings, reader, _ = fed
    keys = Keys(settings.key_prefix)
    mall = demo_city.places[demo_city.places.kind == "mall"].iloc[0]
    for seq in range(12):  # crowded minute after minute for eleven minutes: past the grace period
        ago_s = (11 - seq) * 60
        reader.client.xadd(
            keys.stream("foot"),
            encode(
                "reading", src="alarm", seq=seq, ts=int((time.time() - ago_s) * 1000), sensor_id="S-ALARM",
                sensor_kind="counter", place_id=mall.place_id, place_kind="mall", interval_s=60, people=50, fever=0,
                occupancy=int(mall.capacity) * 2, capacity=int(mall.capacity), lon=mall.lon, lat=mall.lat,
            ),
        )  # fmt: skip
    from data.aggregator import CityMap

    worker = Aggregator(reader.client, settings, CityMap.of(demo_city, 8))
    worker.ensure_groups()
    worker.drain()
    found = [a for a in snapshots.alarms(reader, geo, settings, time.time()) if a["key"] == f"crowding:{mall.place_id}"]
    assert found and mall["name"] in found[0]["where"]


# ---------------------------------------------------------------------------- case tracing on a real Redis

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class CaseFeed:
    """Case-tracing events at real venues of the demo city, written to the stream and aggregated."""

    def __init__(self, client, settings, city_map):
        self.client, self.stream, self.seq = client, Keys(settings.key_prefix).stream("cases"), 0
        self.worker = Aggregator(client, settings, city_map, name="views", sources=("cases",))
        self.worker.ensure_groups()

    def __call__(self, type_name: str, ts: int, place, **fields) -> None:
        self.seq += 1
        self.client.xadd(
            self.stream, encode(type_name, src="views", seq=self.seq, ts=ts, lon=place.lon, lat=place.lat, **fields)
        )

    def drain(self) -> None:
        self.worker.drain()


@pytest.fixture
def outbreak(client, settings, city_map, demo_city, geo):
    """Two linked cases and four contacts at a venue of one district, one lone case at a venue of another.

    The first venue's community holds 4 yellow codes and 2 red ones; the second's 1 red: a community whose
    every count is hidden.
    """
    venues = demo_city.places[demo_city.places.kind == "venue"]
    districts = venues["community_id"].map(lambda c: geo.community_parents[c][1])
    near, far = venues[districts == districts.iloc[0]].iloc[0], venues[districts != districts.iloc[0]].iloc[0]
    now = int(time.time() * 1000)
    feed = CaseFeed(client, settings, city_map)
    for i in range(4):
        feed("checkin", now - 5 * HOUR_MS, near, person_id=f"p-{i}", venue_id=near.place_id, stay_s=3600)
    feed.drain()
    for case in ("c-a", "c-b"):
        feed("case_report", now - 3 * HOUR_MS, near, case_id=case, status="confirmed", onset_ts=now - DAY_MS)
    feed("case_report", now - 3 * HOUR_MS, far, case_id="c-far", status="confirmed", onset_ts=now - DAY_MS)
    visit = {"venue_id": near.place_id, "arrive_ts": now - 5 * HOUR_MS, "leave_ts": now - 4 * HOUR_MS}
    feed("case_visit", now - 2 * HOUR_MS, near, case_id="c-a", **visit)
    feed("case_visit", now - 2 * HOUR_MS, near, case_id="c-b", **visit)
    lone = {"venue_id": far.place_id, "arrive_ts": now - 30 * HOUR_MS, "leave_ts": now - 29 * HOUR_MS}
    feed("case_visit", now - 2 * HOUR_MS, far, case_id="c-far", **lone)
    feed.drain()
    return CityReader(client, settings), near, far, feed


@pytest.mark.redis
def test_the_cases_snapshot_colours_sites_by_recency_and_reads_codes_and_clusters_from_the_keeper(outbreak, geo):
    reader, near, far, _feed = outbreak
    snap = snapshots.cases_snapshot(reader, geo, ViewState("24h"), time.time())
    sites = dict(zip(snap["sites"]["names"], snap["sites"]["recency_h"]))
    assert 3.8 < sites[near["name"]] < 4.2 and 28.8 < sites[far["name"]] < 29.2
    assert snap["sites"]["names"][0] == near["name"]  # newest first
    assert snap["sites"]["window_h"] == reader.settings.infectious_days * 24
    codes = {i: (y, r, v) for i, y, r, v in zip(*(snap["codes"][k] for k in ("ids", "yellow", "red", "value")))}
    assert codes[near.community_id] == ("4", "<3", 4)
    # No yellow code there: 0 is shown as 0, it reveals nobody; one red code is suppressed.
    assert codes[far.community_id] == ("0", "<3", None)
    assert snap["headline"]["yellow"] == "4" and snap["headline"]["red"] == "0+ · 2 areas <3"
    assert snap["headline"]["clusters"] == 1 and len(snap["clusters"]) == 1
    cluster = snap["clusters"][0]
    assert cluster["size"] == "<3" and cluster["sites"] == 1 and cluster["site_names"] == near["name"]
    assert 4.8 < cluster["first_seen_h"] < 5.2 and snap["headline"]["largest"] == cluster
    for fig in (figures.cases_map(snap, "r"), figures.codes_map(snap, "r")):
        go.Figure(fig)


@pytest.mark.redis
def test_a_drilled_cases_snapshot_keeps_only_the_sites_codes_and_clusters_of_that_district(outbreak, geo):
    reader, near, far, _feed = outbreak
    district = geo.community_parents[far.community_id][1]
    snap = snapshots.cases_snapshot(reader, geo, ViewState("24h", district), time.time())
    assert snap["sites"]["names"] == [far["name"]] and snap["clusters"] == []
    assert near.community_id not in snap["codes"]["ids"] and far.community_id in snap["codes"]["ids"]
    assert snap["headline"]["yellow"] == "0" and snap["headline"]["largest"] is None


@pytest.mark.redis
def test_a_suppressed_code_count_never_reaches_the_page(outbreak, geo):
    reader, near, far, _feed = outbreak
    exact = active_codes(reader)
    assert exact.loc[near.community_id, "red"] == 2 and exact.loc[far.community_id, "red"] == 1
    snap = snapshots.cases_snapshot(reader, geo, ViewState("24h"), time.time())
    payload = json.dumps(
        [snap["codes"], snap["clusters"], snap["headline"], figures.codes_map(snap, "r"), figures.cases_map(snap, "r")]
    )
    assert '"<3"' in payload and '"1"' not in payload and '"2"' not in payload
    assert "red 2" not in payload and "red 1" not in payload and "c-a" not in payload and "p-0" not in payload
    few = figures.codes_map(snap, "r")["data"][1]
    i = few["locations"].index(far.community_id)
    assert few["customdata"][i][1:] == ["0", "fewer than 3"]
    assert far.community_id not in figures.codes_map(snap, "r")["data"][0]["locations"]


@pytest.mark.redis
def test_a_new_cluster_of_enough_cases_raises_a_wall_alarm_and_an_old_one_does_not(outbreak, geo, settings):
    reader, near, _far, feed = outbreak
    assert not [a for a in snapshots.alarms(reader, geo, settings, time.time()) if a["kind"] == "cases"]
    now = int(time.time() * 1000)
    feed("case_report", now - HOUR_MS, near, case_id="c-c", status="confirmed", onset_ts=now - DAY_MS)
    feed(
        "case_visit", now - HOUR_MS, near, case_id="c-c", venue_id=near.place_id,
        arrive_ts=now - 5 * HOUR_MS, leave_ts=now - 4 * HOUR_MS,
    )  # fmt: skip
    feed.drain()
    found = [a for a in snapshots.alarms(reader, geo, settings, time.time()) if a["kind"] == "cases"]
    assert len(found) == 1 and found[0]["what"].startswith("New case cluster: 3 cases linked at 1 site")
    assert near["name"] in found[0]["where"] and found[0]["key"] == f"cases:cluster:{near.place_id}"
    later = time.time() + 2 * DAY_S
    assert not [a for a in snapshots.alarms(reader, geo, settings, later) if a["kind"] == "cases"]


def _texts(component) -> list[str]:
    """Every string in a component tree."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [t for c in component for t in _texts(c)]
    children = getattr(component, "children", None)
    return _texts(children) if children is not None else []


@pytest.mark.redis
def test_the_urgent_headline_and_the_surge_alarm_count_exactly_the_urgent_categories(
    client, settings, city_map, demo_city, geo
):
    from data.schema import COMPLAINT_CATEGORIES
    from engines.complaints import URGENT_CATEGORIES, load_routing
    from simulators.complaints import TEXTS
    from tests.events import raw_event

    settings = type(settings)(**{**settings.__dict__, "alarm_urgent_complaints": 2})
    now = int(time.time() * 1000)
    # Two complaints of each category, each category in a community of its own.
    spots = demo_city.communities.iloc[::40].head(len(COMPLAINT_CATEGORIES))
    where = dict(zip(COMPLAINT_CATEGORIES, spots.itertuples(), strict=True))
    stream = Keys(settings.key_prefix).stream("complaints")
    for i, category in enumerate(COMPLAINT_CATEGORIES):
        point = where[category].geometry.representative_point()
        text = TEXTS[category][0].format(road="Shennan Avenue", community="here")
        for k in range(2):
            client.xadd(stream, raw_event(
                "complaint", seq=2 * i + k, ts=now - (k + 1) * 60_000, complaint_id=f"K-{i}-{k}", text=text,
                category=category, lon=point.x, lat=point.y,
            ))  # fmt: skip
    worker = Aggregator(client, settings, city_map, name="urgent", sources=("complaints",))
    worker.ensure_groups()
    worker.drain()
    reader = CityReader(client, settings)

    snap = snapshots.complaints_snapshot(reader, geo, ViewState("1h"), now / 1000, max_rows=0)
    assert snap["headline"]["urgent"] == 2 * len(URGENT_CATEGORIES)
    # The routing chart has the router's levels, in its order.
    assert list(snap["routing"]) == list(load_routing().levels)
    surges = {a["key"] for a in snapshots.alarms(reader, geo, settings, now / 1000) if a["kind"] == "complaints"}
    assert surges == {f"complaints:{where[c].community_id}" for c in URGENT_CATEGORIES}


@pytest.mark.redis
def test_every_number_and_chart_of_a_drilled_page_says_which_area_and_window_it_counts(fed, geo):
    from layouts import render

    _settings, reader, _ = fed
    district, neighbourhood = "D-FT", "D-FT-N01"
    state = ViewState("15m", district, neighbourhood)
    name = geo.names[neighbourhood]
    services = snapshots.services_snapshot(reader, geo, state, time.time())
    for number in render.services_numbers(services):
        label, hint = _texts(number)[1:3]
        assert name in hint, f"services '{label}' does not say it counts {name}: {hint!r}"
    channels = figures.bar_chart(list(services["channels"]), [], "r", title=services["labels"]["channels"])
    assert name in channels["layout"]["title"]["text"] and "last 15 min" in channels["layout"]["title"]["text"]
    complaints = snapshots.complaints_snapshot(reader, geo, state, time.time(), max_rows=5)
    assert "as triaged" in complaints["labels"]["categories"] and name in complaints["labels"]["categories"]
    assert "-" not in complaints["categories"]
    filed = render.complaints_numbers(complaints)[0]
    assert _texts(filed)[2] == f"{services['scope']} · last 15 min"
    # The routing chart and the escalations count the drilled area's complaints, and say so.
    escalations = next(n for n in render.complaints_numbers(complaints) if _texts(n)[1] == "escalations")
    assert _texts(escalations)[2] == f"{services['scope']} · last 15 min"
    assert name in complaints["labels"]["routing"]
    # Each headline number says on hover where it comes from, what it counts, by which rule and as of when.
    # ... in the city's time (Asia/Shanghai for the demo), whatever the zone the tests run in.
    at = datetime.fromtimestamp(services["at"], ZoneInfo(services["tz"])).strftime("%H:%M")
    for number in render.services_numbers(services) + render.complaints_numbers(complaints):
        label, hint = _texts(number)[1:3]
        counts = "now" if label in render.NOW_NUMBERS else "last 15 min"
        assert number.title.startswith(f"{label}: from ") and f"· {services['scope']} · {counts}" in number.title
        assert number.title.endswith(f"as of {at}") and number.title.count(services["scope"]) == 1, number.title
        assert hint.replace(services["label"], "").replace(services["scope"], "").strip(" ·") in number.title
    counters = next(n for n in render.services_numbers(services) if _texts(n)[1] == "counters needed")
    assert "Erlang C, wait ≤ 10 min" in counters.title and "e-government applications" in counters.title
    assert f"{services['scope']} · now" in counters.title
    opened = next(n for n in render.complaints_numbers(complaints) if _texts(n)[1] == "open")
    assert "· now ·" in opened.title and "last 15 min" not in opened.title


@pytest.mark.redis
def test_the_foot_page_lists_as_fever_alerts_only_the_sensors_the_fever_rule_raises(client, settings, city_map, geo):
    from data.read.foot import fever_alerts
    from tests.events import raw_event

    hour_ms, minute_ms = 3_600_000, 60_000
    now = int(time.time() * 1000)
    events = []
    for i in range(24):  # a day of ordinary readings: many people, almost no fever
        ts = now - (i + 2) * hour_ms
        events += [
            raw_event("reading", seq=2 * i + k, ts=ts, sensor_id=s, people=2000, fever=0)
            for k, s in enumerate(("S-hot", "S-calm"))
        ]
    # Both read fevers now; only S-hot's are improbably many for the people it counted.
    events.append(raw_event("reading", seq=100, ts=now - 10 * minute_ms, sensor_id="S-hot", people=1000, fever=12))
    events.append(raw_event("reading", seq=101, ts=now - 10 * minute_ms, sensor_id="S-calm", people=1000, fever=1))
    history = type(settings)(**{**settings.__dict__, "lateness_seconds": 3 * 86_400})
    keys = Keys(settings.key_prefix)
    for e in sorted(events, key=lambda e: int(e["ts"])):
        client.xadd(keys.stream("foot"), e)
    worker = Aggregator(client, history, city_map, name="fever")
    worker.ensure_groups()
    worker.drain()
    reader = CityReader(client, settings)

    foot = snapshots.foot_snapshot(reader, geo, ViewState("1h"), now / 1000)
    rule = [a["sensor_id"] for a in fever_alerts(reader, now / 1000)]
    assert rule == ["S-hot"]
    assert [r["sensor"] for r in foot["fever"]] == rule
    fevers = {r["sensor"]: r["fever"] for r in foot["sensors"]}
    assert fevers == {"S-hot": 12, "S-calm": 1}  # S-calm read a fever, and is no alert


@pytest.mark.redis
def test_the_health_view_shows_each_dead_letters_reason_and_detail(client, settings, city_map):
    from tests.events import raw_event

    now_ms = int(time.time() * 1000)
    keys = Keys(settings.key_prefix)
    refused = {
        "unknown_enum:channel": raw_event("complaint", seq=1, ts=now_ms) | {"channel": "carrier-pigeon"},
        "missing_field:complaint_id": raw_event("complaint", seq=2, ts=now_ms) | {"complaint_id": ""},
        "future_time": raw_event("complaint", seq=3, ts=now_ms + 86_400_000),
    }
    for fields in refused.values():
        client.xadd(keys.stream("complaints"), fields)
    worker = Aggregator(client, settings, city_map, name="health")
    worker.ensure_groups()
    worker.drain()

    health = snapshots.health_snapshot(CityReader(client, settings), time.time())
    shown = sorted((d["source"], d["reason"], d["detail"]) for d in health["dead_letters"])
    expected = sorted(("complaints", *(reason.split(":", 1) + [""])[:2]) for reason in refused)
    assert shown == expected


# ---------------------------------------------------------------------------- complaint hotspots


@pytest.mark.redis
def test_the_complaints_page_shows_the_hotspots_the_workers_published_and_never_runs_the_statistic(
    client, settings, city_map, demo_city, geo, monkeypatch
):
    import engines.hotspots
    from data.keepers.complaints import hotspots_key
    from layouts import render
    from tests.events import raw_event
    from tests.test_keeper_complaints import complaints_around

    keys = Keys(settings.key_prefix)
    now_ms = (int(time.time()) // 60 * 60 + 30) * 1000
    for i, (ts, lon, lat) in enumerate(complaints_around(demo_city, now_ms)):
        client.xadd(
            keys.stream("complaints"), raw_event("complaint", seq=i, ts=ts, complaint_id=f"k-{i}", lon=lon, lat=lat)
        )
    worker = Aggregator(client, settings, city_map, name="hot", clock=lambda: now_ms / 1000)
    worker.ensure_groups()
    worker.drain()

    def refuse(*_args, **_kwargs):
        raise AssertionError("a dashboard refresh ran the hotspot statistic")

    for name in ("getis_ord", "cell_hotspots", "G_Local", "ring_weights"):
        monkeypatch.setattr(engines.hotspots, name, refuse)
    reader = CityReader(client, settings)
    now = now_ms / 1000
    for window in WINDOWS:
        value = json.loads(client.get(hotspots_key(keys, window)))
        snap = snapshots.complaints_snapshot(reader, geo, ViewState(window), now, max_rows=0)
        assert value["cells"] and [list(h.values()) for h in snap["hotspots"]] == value["cells"]
        assert list(snap["hotspots"][0]) == ["cell", "lon", "lat", "count", "z"]
        assert snap["headline"]["hotspots"] == len(value["cells"])
        as_of = {"start": value["start"], "end": value["end"], "computed_ms": now_ms, "age_s": 0.0, "stale": False}
        assert snap["hotspots_as_of"] == as_of
        hint = _texts(render.complaints_numbers(snap)[-1])[2]
        assert hint == "H3 cells, Gi* p < 0.05, 3+ complaints around"
        overview = snapshots.overview_snapshot(reader, geo, ViewState(window), now)
        assert overview["complaints"]["hotspots"] == snap["hotspots"]

    # Drilled into a district, only its cells.
    hot = [row[0] for row in json.loads(client.get(hotspots_key(keys, "24h")))["cells"]]
    district = next(d for d, _ in geo.districts if 0 < len(geo.cells_in(d, None) & set(hot)) < len(hot))
    drilled = snapshots.complaints_snapshot(reader, geo, ViewState("24h", district), now, max_rows=0)
    assert [h["cell"] for h in drilled["hotspots"]] == [c for c in hot if c in geo.cells_in(district, None)]

    # The workers stopped ten minutes ago: the hotspots are shown as they were, with their age.
    later = snapshots.complaints_snapshot(reader, geo, ViewState("1h"), now + 600, max_rows=0)
    assert later["hotspots_as_of"]["stale"] and later["hotspots_as_of"]["age_s"] == 600.0
    assert _texts(render.complaints_numbers(later)[-1])[2].endswith(" · computed 10 min ago")

    # Before any worker published them, the page says so.
    empty = type(settings)(**{**settings.__dict__, "key_prefix": settings.key_prefix + "-empty"})
    none = snapshots.complaints_snapshot(CityReader(client, empty), geo, ViewState("1h"), now, max_rows=0)
    assert none["hotspots"] == [] and none["hotspots_as_of"] is None
    assert _texts(render.complaints_numbers(none)[-1])[2].endswith(" · not published yet")
