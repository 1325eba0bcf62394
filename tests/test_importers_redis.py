"""Importers writing to a real Redis, read back and folded by a real aggregator worker: events keep their own
times as-is, a replay folds with no dead letters, and a file imported twice counts once."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from data.aggregator import Aggregator, CityMap
from data.connection import client_from_url
from data.keys import Keys
from data.read import CityReader, Window
from importers import core, hourly, mapping, requests311
from importers.core import Options
from tests.conftest import real_data
from tests.test_importers import BOSTON_BOX, MELBOURNE_BOX, NYC_BOX, grid_city, text_table, utc_ms

pytestmark = pytest.mark.redis


def run(settings, kind, path, spec, city, **options):
    return core.run(kind, path, spec, Options(**options), settings, city, lambda: client_from_url(settings.redis_url))


def stream(client, settings, source: str) -> list[dict[str, str]]:
    entries = client.xrange(Keys(settings.key_prefix).stream(source))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def fold_all(client, settings, city) -> CityReader:
    worker = Aggregator(client, settings, CityMap.of(city, settings.h3_resolution), name="import-test")
    worker.ensure_groups()
    worker.drain()
    return CityReader(client, settings)


def complaints_folded(reader: CityReader) -> int:
    return sum(reader.counts("complaints", "complaints.community", Window.last(3 * 3600)).values())


def test_nyc_as_is_writes_each_request_at_its_own_new_york_time(client, settings, tmp_path):
    path = real_data("complaints", "nyc311_2013-12_sample.csv")
    df = text_table(path)
    df = df[(df["Latitude"] != "") & (df["Longitude"] != "")].drop_duplicates("Unique Key")
    created = pd.to_datetime(df["Created Date"], format="%m/%d/%Y %I:%M:%S %p").dt.tz_localize("America/New_York")
    city = grid_city(tmp_path, "nyc", NYC_BOX)
    summary = run(settings, requests311, path, mapping.load("nyc311_2013"), city, mode="as-is")
    written = stream(client, settings, "complaints")
    assert summary.written == len(written) == len(df)
    assert {e["complaint_id"]: int(e["ts"]) for e in written} == dict(zip(df["Unique Key"], utc_ms(created)))
    assert {e["src"] for e in written} == {summary.src}
    # Numbered 0..n-1 in file order, whatever order they were written in (by time).
    assert sorted(int(e["seq"]) for e in written) == list(range(len(df)))


@pytest.mark.parametrize(
    ("name", "file", "box", "speed"),
    [
        ("nyc311_2013", "nyc311_2013-12_sample.csv", NYC_BOX, 200),  # one day in about 7 minutes
        ("boston311", "boston311_2022-01_sample.csv", BOSTON_BOX, 5000),  # three weeks in about 6 minutes
    ],
)
def test_a_311_replay_folds_every_request_with_no_dead_letters(client, settings, tmp_path, name, file, box, speed):
    path = real_data("complaints", file)
    city = grid_city(tmp_path, name, box)
    began_ms = int(time.time() * 1000)
    summary = run(settings, requests311, path, mapping.load(name), city, mode="replay", speed=speed)
    written = stream(client, settings, "complaints")
    times = [int(e["ts"]) for e in written]
    # Shifted to end at the start of the import, compressed: the file's span divided by the speed.
    assert began_ms <= max(times) <= int(time.time() * 1000)
    assert summary.last_ts == max(times) and summary.first_ts == min(times)
    assert summary.written == len(written) == summary.events > 0
    reader = fold_all(client, settings, city)
    assert reader.dead_letter_counts()["complaints"] == {}
    assert complaints_folded(reader) == summary.written


def test_importing_the_same_file_twice_counts_it_once(client, settings, tmp_path):
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    city = grid_city(tmp_path, "boston", BOSTON_BOX)
    spec = mapping.load("boston311")
    first = run(settings, requests311, path, spec, city, mode="replay", speed=5000)
    reader = fold_all(client, settings, city)
    folded = complaints_folded(reader)
    assert folded == first.written > 0
    again = run(settings, requests311, path, spec, city, mode="replay", speed=5000)
    assert again.src == first.src
    assert (again.written, again.already_imported) == (0, first.written)
    reader = fold_all(client, settings, city)
    assert complaints_folded(reader) == folded
    assert len(stream(client, settings, "complaints")) == first.written
    assert reader.dead_letter_counts()["complaints"] == {}


def test_written_events_that_reach_the_aggregator_twice_are_dead_lettered_as_duplicates(client, settings, tmp_path):
    # Two imports racing before any worker folds: the second cannot see the first's record yet, and the
    # aggregator's src:seq check is what keeps the count single.
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    city = grid_city(tmp_path, "boston", BOSTON_BOX)
    spec = mapping.load("boston311")
    now_ms = int(time.time() * 1000)
    for _ in range(2):
        core.run(
            requests311, path, spec, Options(mode="replay", speed=5000), settings, city,
            lambda: client_from_url(settings.redis_url), now_ms=now_ms,
        )  # fmt: skip
    events = len(stream(client, settings, "complaints")) // 2
    reader = fold_all(client, settings, city)
    assert complaints_folded(reader) == events
    assert reader.dead_letter_counts()["complaints"] == {"duplicate": events}


def test_a_melbourne_replay_folds_its_people_counts(client, settings, tmp_path):
    path = real_data("foot_traffic", "melbourne_hourly_counts_jan2019_wide.csv")
    locations = real_data("foot_traffic", "melbourne_sensor_locations.csv")
    df = text_table(path)
    sensors = [c for c in df.columns if c not in ("Date", "Hour") and not c.startswith("Unnamed")]
    # The last day of the month, so the replay stays within the aggregator's lateness at speed 10.
    last_day = df[df["Date"] == df["Date"].iloc[-1]]
    day_file = tmp_path / "melbourne_last_day.csv"
    last_day.to_csv(day_file, index=False)
    cells = last_day[sensors].stack()
    people = int(cells[~cells.str.strip().isin(["", "-1", "undefined"])].astype(int).sum())
    city = grid_city(tmp_path, "melbourne", MELBOURNE_BOX)
    summary = run(
        settings, hourly, day_file, mapping.load("melbourne_hourly"), city, mode="replay", speed=200, lookup=locations
    )
    reader = fold_all(client, settings, city)
    assert reader.dead_letter_counts()["foot"] == {}
    assert sum(reader.counts("foot", "people.sensor", Window.last(3 * 3600)).values()) == people
    assert summary.written == len(stream(client, settings, "foot"))


def test_the_command_imports_boston_as_is_into_a_city_loaded_from_a_boundary_file(
    client, settings, tmp_path, monkeypatch, capsys
):
    from importers.__main__ import main

    path = real_data("complaints", "boston311_2022-01_sample.csv")
    df = text_table(path)
    placeholder = (df["latitude"] == "42.3594") & (df["longitude"] == "-71.0587")
    grid_city(tmp_path, "boston", BOSTON_BOX)  # writes tmp_path/boston.geojson
    for name, value in {
        "REDIS_URL": settings.redis_url,
        "CITYDECK_KEY_PREFIX": settings.key_prefix,
        "CITYDECK_CITY": str(tmp_path / "boston.geojson"),
        "CITYDECK_CITY_LEVELS": "district=district,community=community",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["311", str(path), "--mapping", "boston311", "--as-is", "--quiet"]) == 0
    out = capsys.readouterr().out
    written = stream(client, settings, "complaints")
    assert len(written) == len(df) - int(placeholder.sum())
    assert f"rows read: {len(df)}" in out and f"events written: {len(written)}" in out
    assert f"rows without coordinates: {int(placeholder.sum())}" in out and "points outside the city: 0" in out
    opened = pd.to_datetime(df.loc[~placeholder, "open_dt"]).dt.tz_localize("America/New_York")
    assert sorted(int(e["ts"]) for e in written) == sorted(utc_ms(opened))
    # Folded at their own time (January 2022): no dead letter, and each hour holds the requests opened in it.
    reader = fold_all(client, settings, grid_city(tmp_path, "boston", BOSTON_BOX))
    assert reader.dead_letter_counts()["complaints"] == {}
    opened_s = opened.map(lambda t: int(t.timestamp()))
    for hour, n in opened_s.groupby(opened_s // 3600 * 3600).size().items():
        assert sum(reader.counts("complaints", "complaints.community", Window(hour, hour + 3600)).values()) == n


# ---------------------------------------------------------------------------- end to end, at their own time


def test_periodic_counts_imported_as_is_fold_into_history_per_station(client, settings, demo_city, city_map):
    from importers import periods
    from tests.test_importers import FIXTURES

    path = FIXTURES / "periods_counts.csv"
    df = text_table(path)
    spec = mapping.load("periods_example")
    columns = [c for c in df.columns if c.casefold() in spec.options["periods"]]
    cells = df.set_index("Station")[columns].stack()
    counted = cells[~cells.str.strip().isin(["", "0"])].astype(int).drop(["GZ-01", "XX-01"], level=0)
    summary = run(settings, periods, path, spec, demo_city, mode="as-is")
    assert summary.written == len(counted)
    worker = Aggregator(client, settings, city_map, name="periods")
    worker.ensure_groups()
    worker.drain()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["foot"] == {}
    # 2022's seasons, read back from the hours they were counted in: every station's people, as the table says.
    year = Window(
        int(pd.Timestamp("2022-01-01T00:00Z").timestamp()), int(pd.Timestamp("2023-01-01T00:00Z").timestamp())
    )
    by_sensor = reader.counts("foot", "people.sensor", year)
    assert by_sensor == {s.lower(): int(n) for s, n in counted.groupby(level=0).sum().items()}


def test_a_list_of_places_imported_as_is_folds_into_visits_per_venue(client, settings, demo_city, city_map):
    from importers import places
    from tests.test_importers import FIXTURES

    summary = run(
        settings, places, FIXTURES / "exposure_places.csv", mapping.load("exposure_places_example"), demo_city,
        mode="as-is", lookup=FIXTURES / "exposure_geocodes.csv",
    )  # fmt: skip
    written = stream(client, settings, "cases")
    visits = [e for e in written if e["type"] == "case_visit"]
    assert summary.written == len(written) and visits
    worker = Aggregator(client, settings, city_map, name="places")
    worker.ensure_groups()
    worker.drain()
    reader = CityReader(client, settings)
    assert reader.dead_letter_counts()["cases"] == {}
    spring = Window(
        int(pd.Timestamp("2022-02-01T00:00Z").timestamp()), int(pd.Timestamp("2022-04-01T00:00Z").timestamp())
    )
    want: dict[str, int] = {}
    for v in visits:
        want[v["venue_id"]] = want.get(v["venue_id"], 0) + 1
    assert reader.counts("cases", "visits.venue", spring) == want


# ---------------------------------------------------------------------------- Open311, the other way


def test_an_open311_endpoint_is_paged_through_and_its_requests_imported_into_another_deployment(
    client, settings, city_map, monkeypatch, capsys, tmp_path
):
    """citydeck's own Open311 endpoint, served on a loopback port, read by the importer as a client would: every
    request it lists becomes one complaint of another deployment, and a dump of the same answers the same."""
    import json
    import threading
    import urllib.request
    from dataclasses import replace

    from werkzeug.serving import make_server

    from app import create_app
    from importers.__main__ import main
    from tests.events import LAT, LON

    key = "r" * 16 + "-review"
    source = replace(settings, open311_api_keys=f"relay={key}", open311_limit="1000 per minute",
                     api_read_limit="100000 per minute")  # fmt: skip
    server = make_server("127.0.0.1", 0, create_app(source).server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/open311/v2"
    try:
        codes = ["noise", "streetlight", "water", "noise", "road"]
        for i, code in enumerate(codes):
            form = {"api_key": key, "service_code": code, "lat": str(LAT + i * 1e-3), "long": str(LON),
                    "description": f"report {i}"}  # fmt: skip
            body = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in form.items()).encode()
            with urllib.request.urlopen(urllib.request.Request(f"{base}/requests.json", data=body), timeout=30) as r:
                assert r.status == 201
        worker = Aggregator(client, source, city_map, name="open311-source")
        worker.ensure_groups()
        worker.drain()  # triaged and routed: the GET now lists them
        with urllib.request.urlopen(f"{base}/requests.json", timeout=30) as r:
            listed = json.loads(r.read())
        assert sorted(x["service_code"] for x in listed) == sorted(codes)

        other = f"{settings.key_prefix}-other"
        for name, value in {"REDIS_URL": settings.redis_url, "CITYDECK_KEY_PREFIX": other}.items():
            monkeypatch.setenv(name, value)
        # Two requests a page: the importer pages until the server answers an empty one.
        assert main(["311", f"{base}/requests.json?page_size=2", "--mapping", "open311", "--as-is", "--quiet"]) == 0
        out = capsys.readouterr().out
        assert f"rows read: {len(codes)}" in out and f"events written: {len(codes)}" in out
        imported = stream(client, replace(settings, key_prefix=other), "complaints")
        assert sorted(e["complaint_id"] for e in imported) == sorted(x["service_request_id"] for x in listed)
        assert sorted(e["category"] for e in imported) == sorted(codes)
        assert "report" not in json.dumps(imported)  # the GET never lists the words, so none is imported

        # The same answers saved as a dump (a requests.json file) read as the same requests.
        dump = tmp_path / "requests.json"
        dump.write_text(json.dumps(sorted(listed, key=lambda x: x["service_request_id"]), sort_keys=True))
        assert main(["311", str(dump), "--mapping", "open311", "--dry-run", "--quiet"]) == 0
        assert f"events would write: {len(codes)}" in capsys.readouterr().out
        assert main(["311", f"{base}/nothing.json", "--mapping", "open311", "--quiet"]) == 2
        assert "answered 404" in capsys.readouterr().err
    finally:
        server.shutdown()
