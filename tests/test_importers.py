"""Importers on the real public files and small realistic fixtures: every number of a summary is recomputed
here from the file with pandas; nothing is written (the Redis side is in test_importers_redis.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import shapely

from importers import core, hourly, mapping, periods, places, requests311, routes
from importers.__main__ import main
from importers.core import NO_POINT, Options
from settings import Settings
from tests.conftest import real_data

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000_000
# The boxes of the cities the real files come from, for cities built to contain their points.
NYC_BOX = (-74.26, 40.49, -73.70, 40.92)
BOSTON_BOX = (-71.19, 42.23, -70.99, 42.40)
MELBOURNE_BOX = (144.90, -37.85, 145.00, -37.77)
KOREA_BOX = (124.6, 33.1, 131.9, 38.6)


def grid_city(tmp_path: Path, name: str, box: tuple[float, float, float, float], n: int = 3):
    """A city of n x n boxes over ``box``, written as a boundary file and loaded as a deployment would."""
    from geo.loader import load_city

    min_lon, min_lat, max_lon, max_lat = box
    dx, dy = (max_lon - min_lon) / n, (max_lat - min_lat) / n
    features = []
    for i in range(n):
        for j in range(n):
            cell = shapely.box(min_lon + i * dx, min_lat + j * dy, min_lon + (i + 1) * dx, min_lat + (j + 1) * dy)
            features.append(
                {
                    "type": "Feature",
                    "properties": {"district": f"{name} {i}", "community": f"{name} {i}-{j}", "population": 1000},
                    "geometry": shapely.geometry.mapping(cell),
                }
            )
    path = tmp_path / f"{name}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return load_city(path, district="district", community="community", population="population", name=name)


def settings() -> Settings:
    return Settings.from_env({})


def prepare(kind, path, spec, city, **options):
    return core.prepare(kind, path, spec, Options(dry_run=True, **options), settings(), city, NOW)


def utc_ms(times: pd.Series) -> pd.Series:
    """Aware times as ms since the epoch."""
    return times.dt.tz_convert("UTC").dt.as_unit("ms").astype("int64")


def text_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# ---------------------------------------------------------------------------- 311


def test_nyc_311_summary_counts_every_row_of_the_real_file(tmp_path):
    path = real_data("complaints", "nyc311_2013-12_sample.csv")
    df = text_table(path)
    has_point = (df["Latitude"].str.strip() != "") & (df["Longitude"].str.strip() != "")
    city = grid_city(tmp_path, "nyc", NYC_BOX)
    p = prepare(requests311, path, mapping.load("nyc311_2013"), city)
    s = p.summary
    assert s.rows_read == len(df)
    assert s.without_coordinates == int((~has_point).sum()) > 0
    assert s.duplicates == int(df.loc[has_point, "Unique Key"].duplicated().sum())
    assert s.events == len(p.events) == int(has_point.sum()) - s.duplicates
    assert s.outside_city == 0
    assert dict(s.rejected) == {"bad_coordinates": s.without_coordinates}
    # Every refused row is named by its line: the header is line 1 and no cell of this file spans lines.
    no_point_lines = {f"line {i + 2}" for i in df.index[~has_point]}
    assert {where for where, reason in s.problems if reason == NO_POINT} == no_point_lines


def test_nyc_311_times_are_local_new_york_times_made_utc_and_categories_mapped(tmp_path):
    path = real_data("complaints", "nyc311_2014-2019_mixed_sample.csv")
    df = text_table(path)
    df = df[(df["Latitude"] != "") & (df["Longitude"] != "")].drop_duplicates("Unique Key")
    created = pd.to_datetime(df["Created Date"], format="%m/%d/%Y %I:%M:%S %p")
    expected_ts = utc_ms(created.dt.tz_localize("America/New_York"))
    channels = {"PHONE": "hotline", "ONLINE": "web", "MOBILE": "app"}
    expected_channel = df["Open Data Channel Type"].map(lambda v: channels.get(v, "hotline"))
    p = prepare(requests311, path, mapping.load("nyc311"), grid_city(tmp_path, "nyc", NYC_BOX))
    events = {e.fields["complaint_id"]: e for e in p.events}
    assert len(events) == len(df)
    assert {k: e.ts for k, e in events.items()} == dict(zip(df["Unique Key"], expected_ts.tolist()))
    assert {k: e.fields["channel"] for k, e in events.items()} == dict(zip(df["Unique Key"], expected_channel))
    noise = df.loc[df["Complaint Type"].str.startswith("Noise"), "Unique Key"]
    assert {events[k].fields["category"] for k in noise} == {"noise"}
    first = df.iloc[0]
    assert events[first["Unique Key"]].fields["text"] == f"{first['Complaint Type']} / {first['Descriptor']}"


def test_boston_311_local_times_placeholder_points_and_closure_notes_kept_out(tmp_path):
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    df = text_table(path)
    placeholder = (df["latitude"].astype(float).round(4) == 42.3594) & (
        df["longitude"].astype(float).round(4) == -71.0587
    )
    p = prepare(requests311, path, mapping.load("boston311"), grid_city(tmp_path, "boston", BOSTON_BOX))
    s = p.summary
    assert s.rows_read == len(df)
    assert s.without_coordinates == int(placeholder.sum()) > 0
    assert s.events == len(df) - int(placeholder.sum())
    kept = df[~placeholder]
    opened = pd.to_datetime(kept["open_dt"]).dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    assert sorted(e.ts for e in p.events) == sorted(utc_ms(opened).tolist())
    # The closure notes hold names and numbers: none of their words beyond the first few reach an event.
    values = [str(v) for e in p.events for v in e.fields.values()]
    notes = [n.strip() for n in df["closure_reason"] if len(n.strip()) > 20]
    assert notes and not any(n in v or v in n for n in notes for v in values if len(v) > 20)
    assert not any("Case Closed" in v or re.search(r"\d{3}[- ]\d{3}[- ]\d{4}", v) for v in values)
    assert {e.fields["channel"] for e in p.events} <= {"hotline", "app", "web"}


def test_a_mapping_naming_a_missing_column_stops_at_once_listing_the_files_columns(tmp_path, capsys):
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'base = "boston311"\n[fields]\ncategory = "Reason"\n'  # the column is "reason"
    )
    with pytest.raises(mapping.MappingError) as error:
        prepare(requests311, path, mapping.load(str(bad)), None)
    message = str(error.value)
    assert "['Reason']" in message and all(repr(c) in message for c in text_table(path).columns)
    assert main(["311", str(path), "--mapping", str(bad), "--dry-run"]) == 2
    assert "names column(s) ['Reason']" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("time_table", "says"),
    [
        ('[time]\ncolumn = "open_dt"\ntimezone = "Mars/Olympus"\n', "'Mars/Olympus' is not a time zone"),
        ('[time]\ncolumn = "open_dt"\nformat = 42\n', "format must be text"),
    ],
)
def test_a_mapping_with_a_bad_time_zone_or_format_stops_with_a_message_not_a_traceback(
    tmp_path, capsys, time_table, says
):
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "boston311"\n' + time_table)
    assert main(["311", str(path), "--mapping", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_bad_rows_are_reported_with_their_line_numbers_and_the_import_goes_on(tmp_path, demo_city):
    path = tmp_path / "requests.csv"
    path.write_text(
        "id,opened,what,lon,lat\n"
        '1,2024-05-01 08:00:00,"Streetlight out\nsince Monday",114.0579,22.5431\n'  # lines 2-3
        "2,yesterday,Noise,114.0579,22.5431\n"  # line 4: no time
        "3,2024-05-01 09:00:00,Pothole,0,0\n"  # line 5: the (0, 0) placeholder
        "4,2024-05-01 10:00:00,Pothole,,\n"  # line 6: no point
        "5,2024-05-01 11:00:00,,114.0579,22.5431\n"  # line 7: no words
        "6,2024-05-01 12:00:00,Blocked drain,114.0579,22.5431\n"
        "6,2024-05-01 12:00:00,Blocked drain,114.0579,22.5431\n"  # line 9: the same request again
    )
    spec = mapping.parse(
        {
            "key": "id",
            "time": {"column": "opened", "timezone": "Asia/Shanghai", "format": "%Y-%m-%d %H:%M:%S"},
            "where": {"lon": "lon", "lat": "lat"},
            "fields": {"complaint_id": "id"},
            "constants": {"channel": "hotline"},
            "text": {"columns": ["what"]},
        }
    )
    p = prepare(requests311, path, spec, demo_city)
    assert [e.fields["complaint_id"] for e in p.events] == ["1", "6"]
    assert p.events[0].fields["text"] == "Streetlight out\nsince Monday"
    assert [(where, reason.split(" ")[0]) for where, reason in p.summary.problems] == [
        ("line 4", "missing_field:ts"),
        ("line 5", "null_island"),
        ("line 6", "bad_coordinates:no"),
        ("line 7", "missing_field:text"),
    ]
    assert p.summary.duplicates == 1


def test_a_file_of_another_city_is_counted_outside_the_configured_one_not_dropped_silently(demo_city):
    path = real_data("complaints", "boston311_2022-01_sample.csv")
    df = text_table(path)
    placeholder = (df["latitude"] == "42.3594") & (df["longitude"] == "-71.0587")
    s = prepare(requests311, path, mapping.load("boston311"), demo_city).summary
    assert s.events == 0
    assert s.outside_city == len(df) - int(placeholder.sum())
    assert s.rejected == {"outside_city": s.outside_city, "bad_coordinates": int(placeholder.sum())}


# ---------------------------------------------------------------------------- wide counts


def melbourne_counts(path: Path) -> tuple[pd.DataFrame, list[str]]:
    df = text_table(path)
    df = df[~df.eq("").all(axis=1)]
    return df, [c for c in df.columns if c not in ("Date", "Hour") and not c.startswith("Unnamed")]


def test_melbourne_hourly_wide_counts_become_one_reading_per_counted_cell(tmp_path):
    path = real_data("foot_traffic", "melbourne_hourly_counts_jan2019_wide.csv")
    locations = real_data("foot_traffic", "melbourne_sensor_locations.csv")
    df, sensors = melbourne_counts(path)
    cells = df[sensors].stack()
    counted = cells[~cells.str.strip().isin(["", "-1", "undefined"])].astype(int)
    city = grid_city(tmp_path, "melbourne", MELBOURNE_BOX)
    p = prepare(hourly, path, mapping.load("melbourne_hourly"), city, lookup=locations)
    assert p.summary.unmatched == []  # the aliases join the three names the locations file spells otherwise
    assert p.summary.notes["cells not counted (blank or a no-count mark)"] == len(cells) - len(counted)
    assert len(p.events) == len(counted)
    assert sum(e.fields["people"] for e in p.events) == int(counted.sum())
    assert {e.fields["interval_s"] for e in p.events} == {3600}
    # 1 January 2019, 00:00-01:00 in Melbourne (UTC+11): stamped at the end of its hour.
    first = min(e.ts for e in p.events)
    assert first == int(pd.Timestamp("2018-12-31T14:00:00Z").value // 1_000_000) - 1


def test_sensors_without_a_location_are_named_and_their_counts_refused(tmp_path):
    path = real_data("foot_traffic", "melbourne_hourly_counts_jan2019_wide.csv")
    locations = real_data("foot_traffic", "melbourne_sensor_locations.csv")
    df, sensors = melbourne_counts(path)
    known = set(text_table(locations)["sensor_description"].str.strip().str.casefold())
    lost = [c for c in sensors if c.strip().casefold() not in known]
    spec = mapping.load("melbourne_hourly")
    no_aliases = mapping.parse({**_toml(spec.path), "lookup": {**_toml(spec.path)["lookup"], "aliases": {}}}, spec.path)
    p = prepare(hourly, path, no_aliases, grid_city(tmp_path, "melbourne", MELBOURNE_BOX), lookup=locations)
    assert sorted(p.summary.unmatched) == sorted(lost) and lost
    lost_cells = df[lost].stack()
    assert p.summary.without_coordinates == int((~lost_cells.str.strip().isin(["", "-1", "undefined"])).sum())


def _toml(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


def test_blank_trailing_rows_of_a_wide_export_are_skipped_and_counted(tmp_path):
    path = real_data("foot_traffic", "melbourne_hourly_counts_2012_wide.csv")
    raw = text_table(path)
    blank = int(raw.eq("").all(axis=1).sum())
    p = prepare(
        hourly,
        path,
        mapping.load("melbourne_hourly_2012"),
        grid_city(tmp_path, "melbourne", MELBOURNE_BOX),
        lookup=real_data("foot_traffic", "melbourne_sensor_locations.csv"),
    )
    assert p.summary.blank_rows == blank > 0
    assert p.summary.rows_read == len(raw) - blank
    assert p.summary.rejected.get("missing_field", 0) == 0


def test_periodic_counts_skip_blank_and_zero_periods_whatever_the_columns_letter_case(demo_city):
    path = FIXTURES / "periods_counts.csv"
    df = text_table(path)
    spec = mapping.load("periods_example")
    period_columns = [c for c in df.columns if c.casefold() in spec.options["periods"]]
    assert len(period_columns) == 6 and len({c for c in period_columns if c != c.lower()}) >= 4
    cells = df.set_index("Station")[period_columns].stack()
    counted = cells[~cells.str.strip().isin(["", "0"])].astype(int)
    in_city = counted.drop(["GZ-01", "XX-01"], level=0)
    p = prepare(periods, path, spec, demo_city)
    s = p.summary
    assert s.notes["periods not counted (zero or blank)"] == len(cells) - len(counted)
    assert s.rejected == {"outside_city": len(counted["GZ-01"]), "null_island": len(counted["XX-01"])}
    assert len(p.events) == len(in_city)
    assert sum(e.fields["people"] for e in p.events) == int(in_city.sum())
    by_sensor = {}
    for e in p.events:
        by_sensor[e.fields["sensor_id"]] = by_sensor.get(e.fields["sensor_id"], 0) + e.fields["people"]
    assert by_sensor["ft-01"] == int(in_city["FT-01"].sum())
    assert "ba-01" not in by_sensor  # counted nowhere: every period zero
    # Spring morning, 07:00-09:00 in Shenzhen (UTC+8): stamped at the end of its two hours.
    spring_am = [e for e in p.events if e.fields["sensor_id"] == "ft-01" and e.fields["people"] == 412]
    assert [e.ts for e in spring_am] == [int(pd.Timestamp("2022-04-12T01:00:00Z").value // 1_000_000) - 1]
    assert {e.fields["interval_s"] for e in p.events} == {7200}


# ---------------------------------------------------------------------------- cases


def test_case_routes_become_visits_of_pseudonymous_cases_with_one_confirmation_each(tmp_path):
    path = real_data("case_tracing", "ds4c_PatientRoute.csv")
    df = text_table(path)
    rows = df.drop_duplicates(["patient_id", "date", "type", "latitude", "longitude"])
    p = prepare(routes, path, mapping.load("ds4c_routes"), grid_city(tmp_path, "korea", KOREA_BOX, n=4))
    visits = [e for e in p.events if e.type == "case_visit"]
    reports = [e for e in p.events if e.type == "case_report"]
    assert p.summary.outside_city == 0 and p.summary.without_coordinates == 0
    assert p.summary.duplicates == len(df) - len(rows)
    assert len(visits) == len(rows)
    assert len(reports) == rows["patient_id"].nunique() == len({v.fields["case_id"] for v in visits})
    ids = set(df["patient_id"])
    assert not any(e.fields["case_id"] in ids or e.fields["case_id"][1:] in ids for e in p.events)
    # A date and no hour: the visit lasts the whole day in Seoul.
    first = rows.iloc[0]
    day = pd.Timestamp(first["date"]).tz_localize("Asia/Seoul").tz_convert("UTC").value // 1_000_000
    visit = next(v for v in visits if v.row == 0)
    assert (visit.fields["arrive_ts"], visit.fields["leave_ts"]) == (day, day + 24 * 3_600_000)


def test_a_list_of_places_joins_its_geocodes_by_name_and_keeps_unmatched_ones_at_area_level(demo_city):
    path = FIXTURES / "exposure_places.csv"
    geocodes = FIXTURES / "exposure_geocodes.csv"
    df = text_table(path)

    def norm(s: str) -> str:
        return " ".join(re.sub(r"[^\w]+", " ", s.lower()).split())

    coded = {norm(n): (float(x), float(y)) for n, x, y in text_table(geocodes)[["name", "lon", "lat"]].values}
    dated = df[pd.to_datetime(df["Last visit date"], errors="coerce", format="%Y-%m-%d").notna()]
    dated = dated.drop_duplicates(["Place name", "District", "Last visit date"])
    matched = dated[dated["Place name"].map(norm).isin(coded)]
    districts = {norm(n) for n in demo_city.districts["name"]}
    unmatched = df.loc[~df["Place name"].map(norm).isin(coded), "Place name"].drop_duplicates()
    at_area = dated[~dated["Place name"].map(norm).isin(coded) & dated["District"].map(norm).isin(districts)]
    p = prepare(places, path, mapping.load("exposure_places_example"), demo_city, lookup=geocodes)
    s = p.summary
    visits = [e for e in p.events if e.type == "case_visit"]
    assert s.unmatched == unmatched.tolist()
    assert s.notes["rows kept at area level (name not geocoded)"] == len(at_area) == 2
    assert len(visits) == len(matched) + len(at_area)
    assert s.without_coordinates == len(dated) - len(matched) - len(at_area) == 1
    assert s.rejected["missing_field"] == len(df) - len(df.dropna()) + int(
        pd.to_datetime(df["Last visit date"], errors="coerce", format="%Y-%m-%d").isna().sum()
    )
    assert s.duplicates == 1
    mall = [v for v in visits if v.fields["venue_id"] == "site-coastal-city-mall"]
    assert len(mall) == 2 and {(v.fields["lon"], v.fields["lat"]) for v in mall} == {coded["coastal city mall"]}
    futian = demo_city.districts.set_index("name").geometry["Futian"]
    market = next(v for v in visits if v.fields["venue_id"] == "area-futian")
    assert futian.contains(shapely.Point(market.fields["lon"], market.fields["lat"]))
    assert len([e for e in p.events if e.type == "case_report"]) == len(visits)


# ---------------------------------------------------------------------------- other file formats


def _events_of(p: core.Prepared) -> list[tuple]:
    return sorted((e.ts, e.fields["complaint_id"], e.fields["category"], round(e.fields["lon"], 6)) for e in p.events)


def test_json_lines_parquet_geojson_and_wkt_give_the_events_the_csv_gives(tmp_path):
    import geopandas as gpd

    path = real_data("complaints", "boston311_2022-01_sample.csv")
    city = grid_city(tmp_path, "boston", BOSTON_BOX)
    spec = mapping.load("boston311")
    expected = _events_of(prepare(requests311, path, spec, city))
    df = text_table(path)

    jsonl = tmp_path / "boston.jsonl"
    df.to_json(jsonl, orient="records", lines=True)
    parquet = tmp_path / "boston.parquet"
    df.to_parquet(parquet)
    for copy in (jsonl, parquet):
        assert _events_of(prepare(requests311, copy, spec, city)) == expected

    lon, lat = df["longitude"].astype(float), df["latitude"].astype(float)
    wkt = tmp_path / "boston_wkt.csv"
    df.drop(columns=["longitude", "latitude"]).assign(
        location_wkt=[f"POINT ({x} {y})" for x, y in zip(lon, lat)]
    ).to_csv(wkt, index=False)
    by_wkt = mapping.parse(
        {**_toml(spec.path), "where": {"wkt": "location_wkt", "placeholders": [[-71.0587, 42.3594]]}}
    )
    assert _events_of(prepare(requests311, wkt, by_wkt, city)) == expected

    geojson = tmp_path / "boston.geojson"
    gpd.GeoDataFrame(
        df.drop(columns=["longitude", "latitude"]), geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326"
    ).to_file(geojson, driver="GeoJSON", engine="pyogrio")
    by_geometry = mapping.parse(
        {**_toml(spec.path), "where": {"geometry": True, "placeholders": [[-71.0587, 42.3594]]}}
    )
    assert _events_of(prepare(requests311, geojson, by_geometry, city)) == expected


def test_a_wide_table_with_a_column_per_hour_reads_as_the_one_with_a_column_per_sensor(tmp_path):
    path = real_data("foot_traffic", "melbourne_hourly_counts_jan2019_wide.csv")
    locations = real_data("foot_traffic", "melbourne_sensor_locations.csv")
    df = text_table(path)
    sensors = ["Princes Bridge", "Webb Bridge"]
    by_sensor = tmp_path / "by_sensor.csv"
    df[["Date", "Hour", *sensors]].to_csv(by_sensor, index=False)
    long = df.melt(id_vars=["Date", "Hour"], value_vars=sensors, var_name="Sensor", value_name="count")
    by_hour = tmp_path / "by_hour.csv"
    long.pivot(index=["Sensor", "Date"], columns="Hour", values="count").rename(
        columns=lambda h: f"{int(h):02d}:00"
    ).reset_index().to_csv(by_hour, index=False)
    city = grid_city(tmp_path, "melbourne", MELBOURNE_BOX)
    spec = mapping.load("melbourne_hourly")
    hours_spec = mapping.parse(
        {
            **_toml(spec.path),
            "key": ["Sensor", "Date"],
            "time": {"column": "Date", "format": "%d/%m/%Y", "timezone": "Australia/Melbourne"},
            "fields": {"sensor_id": "Sensor"},
            "options": {**_toml(spec.path)["options"], "across": "hours"},
        },
        spec.path,
    )

    def readings(p):
        return sorted((e.ts, e.fields["sensor_id"], e.fields["people"]) for e in p.events)

    wide = readings(prepare(hourly, by_sensor, spec, city, lookup=locations))
    assert len(wide) > 24 * 28
    assert readings(prepare(hourly, by_hour, hours_spec, city, lookup=locations)) == wide


def test_nyc_categories_come_from_the_one_table_the_triage_check_reads(tmp_path):
    from tools.triage_nyc311 import read_requests, true_categories

    path = real_data("complaints", "nyc311_2014-2019_mixed_sample.csv")
    requests = read_requests([path])
    truth = dict(zip(requests["complaint_id"], true_categories(requests)))
    p = prepare(requests311, path, mapping.load("nyc311"), grid_city(tmp_path, "nyc", NYC_BOX))
    assert len(p.events) > 800
    assert {e.fields["complaint_id"]: e.fields["category"] for e in p.events} == {
        e.fields["complaint_id"]: truth[e.fields["complaint_id"]] for e in p.events
    }
