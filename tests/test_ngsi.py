"""NGSI-LD entities of the city's state, fetched from the real app over a real Redis folded by the real
aggregator, and every property checked against the FIWARE Smart Data Models' own definitions, as the
``pysmartdatamodels`` package ships them (offline): the property's NGSI type, JSON type, format and choices,
and each model's required properties."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyproj import Geod

from data.aggregator import Aggregator
from data.keys import Keys
from tests.events import LAT, LON, raw_event

pytestmark = pytest.mark.redis
MODELS = {"CrowdFlowObserved": "dataModel.Transportation", "IssueReporting": "dataModel.IssueTracking"}


@functools.cache
def model_rows(model: str) -> tuple[dict, ...]:
    """The property definitions the ``pysmartdatamodels`` package ships for one model, in its order (read
    from the package's assets, without importing it: only its data is used)."""
    spec = importlib.util.find_spec("pysmartdatamodels")
    if spec is None:
        pytest.fail("pysmartdatamodels is not installed: pip install --no-deps -r requirements-models.txt")
    assets = Path(spec.submodule_search_locations[0]) / "model-assets"
    rows = json.loads(gzip.decompress((assets / "smartdatamodels.json.gz").read_bytes()))
    return tuple(r for r in rows if r.get("dataModel") == model and r.get("repoName") == MODELS[model])


@functools.cache
def required_properties(model: str) -> tuple[str, ...]:
    """The properties the model's schema requires, from the package's metadata."""
    assets = Path(importlib.util.find_spec("pysmartdatamodels").submodule_search_locations[0]) / "model-assets"
    metadata = json.loads((assets / "datamodels_metadata.json").read_text(encoding="utf-8"))
    return tuple(next(m["required"] for m in metadata if m.get("dataModel") == model))


def top_level(model: str) -> dict[str, dict]:
    """The model's own properties (not an address's parts, nor a geometry's members) by name."""
    out: dict[str, dict] = {}
    for row in model_rows(model):
        if "typeNGSI" in row and "parentId" not in row:
            out.setdefault(row["property"], row)
    return out


def point_definitions(model: str) -> dict[str, dict]:
    """The GeoJSON Point's members as the model defines them (listed before the ``type`` that names Point)."""
    rows = model_rows(model)
    for i, row in enumerate(rows):
        if row["property"] == "type" and row.get("enum") == ["Point"]:
            return {r["property"]: r for r in rows[i - 2 : i + 1]}
    raise AssertionError(f"{model}: no Point geometry in the shipped definitions")


def value_schema(definition: dict) -> dict:
    schema = {"type": definition["type"]}
    for name in ("format", "enum"):
        if name in definition:
            schema[name] = definition[name]
    return schema


def conforms_to_format(value, fmt: str | None) -> None:
    """The formats the models use, checked here: jsonschema checks date-time only with an extra package."""
    if fmt == "date-time":
        when = datetime.fromisoformat(value)
        assert when.tzinfo is not None and "T" in value, value
    elif fmt == "uri":
        parts = urlsplit(value)
        assert parts.scheme and parts.netloc, value
    else:
        assert fmt is None, f"a format this test does not check: {fmt}"


def check_against_models(entity: dict) -> None:
    """Every property of an NGSI-LD entity against its model's definition; its required ones present."""
    model = entity["type"]
    assert model in MODELS
    defined = top_level(model)
    assert "id" in required_properties(model)
    for name in required_properties(model):
        assert name in entity, f"{model} lacks required {name}"
    jsonschema.validate(entity["id"], value_schema(defined["id"]))
    assert entity["id"].startswith(f"urn:ngsi-ld:{model}:")
    jsonschema.validate(entity["type"], value_schema(defined["type"]))
    checker = jsonschema.FormatChecker()
    for name, attribute in entity.items():
        if name in ("id", "type", "@context"):
            continue
        assert name in defined, f"{model} defines no property {name}"
        assert attribute["type"] == defined[name]["typeNGSI"], (name, attribute)
        jsonschema.validate(attribute["value"], value_schema(defined[name]), format_checker=checker)
        conforms_to_format(attribute["value"], defined[name].get("format"))
        if defined[name]["typeNGSI"] == "GeoProperty":
            point = point_definitions(model)
            assert set(attribute["value"]) == {"type", "coordinates"}
            for member, value in attribute["value"].items():
                jsonschema.validate(value, value_schema(point[member]))
            lon, lat = attribute["value"]["coordinates"]
            assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert isinstance(entity["@context"], list) and entity["@context"][0].endswith(
        f"{MODELS[model]}/master/context.jsonld"
    )


@pytest.fixture
def web(settings):
    from app import create_app

    deployed = replace(settings, auth="on", secret_key="s" * 48, api_read_limit="100000 per minute")
    return create_app(deployed).server.test_client()


@pytest.fixture
def city_state(client, settings, city_map):
    """Sensors and complaints folded by the real aggregator; what was written, for recomputing answers."""
    now = int(time.time() * 1000)
    sensors = [  # id, people, occupancy, capacity, fever, lon, lat
        ("S-busy", 900, 950, 1000, 4, LON, LAT),
        ("S-calm", 40, 100, 1000, 0, LON + 0.02, LAT + 0.01),
        ("S-full", 300, 90, 100, 1, LON - 0.05, LAT - 0.02),
        ("S-far", 12, 10, 500, 0, LON + 0.15, LAT + 0.08),
    ]
    events = [
        raw_event("reading", seq=i, ts=now - 1000, sensor_id=s, people=p, occupancy=o, capacity=c, fever=f,
                  place_id=f"P-{s}", lon=lon, lat=lat, interval_s=60)
        for i, (s, p, o, c, f, lon, lat) in enumerate(sensors)
    ]  # fmt: skip
    keys = Keys(settings.key_prefix)
    for e in events:
        client.xadd(keys.stream("foot"), e)
    complaints = [  # id, words, lon, lat
        ("k-hole", "pothole on the road, call 13800138000", LON + 0.001, LAT),
        ("k-loud", "loud music from a party every night", LON + 0.1, LAT + 0.05),
        ("k-done", "garbage not collected", LON, LAT + 0.001),
    ]
    for i, (cid, words, lon, lat) in enumerate(complaints):
        client.xadd(keys.stream("complaints"), raw_event("complaint", seq=i, ts=now - 5000, complaint_id=cid,
                                                         text=words, category=None, lon=lon, lat=lat))  # fmt: skip
    client.xadd(keys.stream("complaints"), raw_event("complaint_update", seq=9, ts=now - 2000, complaint_id="k-done",
                                                     action="closed", level="community"))  # fmt: skip
    worker = Aggregator(client, settings, city_map, name="ngsi")
    worker.ensure_groups()
    worker.drain()
    return {"sensors": sensors, "complaints": complaints, "now": now}


def fetch(web, **query) -> list[dict]:
    answer = web.get("/ngsi-ld/v1/entities", query_string=query)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.content_type.startswith("application/ld+json")
    return answer.get_json()


def test_entities_of_both_types_hold_to_the_shipped_data_models(web, city_state, settings):
    flows = fetch(web, type="CrowdFlowObserved")
    issues = fetch(web, type="IssueReporting")
    for entity in flows + issues:
        check_against_models(entity)
    by_sensor = {e["id"].rsplit(":", 1)[1]: e for e in flows}
    assert set(by_sensor) == {s for s, *_ in city_state["sensors"]}
    for sensor, people, occupancy, capacity, _fever, lon, lat in city_state["sensors"]:
        e = by_sensor[sensor]
        assert e["peopleCount"]["value"] == people and e["occupancy"]["value"] == occupancy
        assert e["congested"]["value"] == (occupancy >= settings.crowding_share * capacity)
        assert e["location"]["value"]["coordinates"] == [round(lon, 6), round(lat, 6)]
        span = (time.mktime(time.strptime(e["dateObservedTo"]["value"], "%Y-%m-%dT%H:%M:%SZ"))
                - time.mktime(time.strptime(e["dateObservedFrom"]["value"], "%Y-%m-%dT%H:%M:%SZ")))  # fmt: skip
        assert span == 60
    assert "fever" not in json.dumps(flows).lower()  # health data stays out
    assert {e["reportId"]["value"] for e in issues} == {"k-hole", "k-loud"}  # the closed one is not open
    assert {e["category"]["value"] for e in issues} == {"road", "noise"}
    text = json.dumps(issues)
    assert "13800138000" not in text and "pothole" not in text and "party" not in text  # no words, no contact


def test_queries_filter_by_property_and_distance_and_page(web, city_state):
    congested = {e["id"].rsplit(":", 1)[1] for e in fetch(web, type="CrowdFlowObserved", q="congested==true")}
    assert congested == {s for s, _, o, c, *_ in city_state["sensors"] if o >= 0.9 * c} == {"S-busy", "S-full"}
    busy = {e["id"].rsplit(":", 1)[1] for e in fetch(web, type="CrowdFlowObserved", q="peopleCount>=40;occupancy<500")}
    assert busy == {s for s, p, o, *_ in city_state["sensors"] if p >= 40 and o < 500}
    noise = fetch(web, type="IssueReporting", q='category=="noise"')
    assert [e["reportId"]["value"] for e in noise] == ["k-loud"]

    geod = Geod(ellps="WGS84")
    for metres in (500, 3000, 20000):
        near = fetch(web, type="CrowdFlowObserved", georel=f"near;maxDistance=={metres}", geometry="Point",
                     coordinates=json.dumps([LON, LAT]))  # fmt: skip
        expected = {s for s, *_, lon, lat in city_state["sensors"] if geod.inv(LON, LAT, lon, lat)[2] <= metres}
        assert {e["id"].rsplit(":", 1)[1] for e in near} == expected
    whole = fetch(web, type="CrowdFlowObserved", limit="1000")
    pages = [fetch(web, type="CrowdFlowObserved", limit="3", offset=str(o)) for o in (0, 3)]
    assert [e["id"] for e in pages[0] + pages[1]] == [e["id"] for e in whole] and len(pages[0]) == 3
    assert fetch(web, type="Streetlight") == []


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"type": "IssueReporting", "q": "text==secret"},
        {"type": "IssueReporting", "q": "category"},
        {"type": "CrowdFlowObserved", "q": "peopleCount>lots"},
        {"type": "CrowdFlowObserved", "q": "congested>true"},
        {"type": "CrowdFlowObserved", "q": "peopleCount>nan"},
        {"type": "CrowdFlowObserved,IssueReporting", "q": "category==road"},
        {"type": "CrowdFlowObserved", "georel": "near;maxDistance==100"},
        {"type": "CrowdFlowObserved", "georel": "within", "geometry": "Point", "coordinates": "[114,22]"},
        {"type": "CrowdFlowObserved", "georel": "near;maxDistance==1", "geometry": "Polygon", "coordinates": "[1,2]"},
        {"type": "CrowdFlowObserved", "georel": "near;maxDistance==1", "geometry": "Point", "coordinates": "[1]"},
        {"type": "CrowdFlowObserved", "georel": "near;maxDistance==1", "geometry": "Point", "coordinates": "[200,1]"},
        {"type": "CrowdFlowObserved", "georel": "near;maxDistance==1", "geometry": "Point", "coordinates": "x"},
        {"type": "CrowdFlowObserved", "limit": "-1"},
        {"type": "CrowdFlowObserved", "limit": "5000"},
        {"type": "CrowdFlowObserved", "offset": "one"},
    ],
)
def test_a_malformed_query_gets_400_with_problem_details(web, query):
    answer = web.get("/ngsi-ld/v1/entities", query_string=query)
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["type"].startswith("https://uri.etsi.org/ngsi-ld/errors/") and body["status"] == 400
    assert body["title"] and body["detail"]


def test_entities_are_read_only_and_other_paths_are_not_found(web):
    assert web.post("/ngsi-ld/v1/entities", json={"id": "x"}).status_code == 405
    missing = web.get("/ngsi-ld/v1/types")
    assert missing.status_code == 404 and missing.get_json()["type"].endswith("ResourceNotFound")


def test_fuzzed_queries_never_get_a_500(web, city_state):
    values = st.one_of(
        st.text(max_size=40),
        st.sampled_from(["CrowdFlowObserved", "IssueReporting", "near;maxDistance==500", "Point", "[114.05,22.54]",
                         "congested==true", "peopleCount>1", "10", "0"]),
    )  # fmt: skip
    names = st.sampled_from(["type", "q", "georel", "geometry", "coordinates", "limit", "offset", "attrs"])

    @hypothesis_settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(query=st.dictionaries(names, values, max_size=6))
    def fuzz(query):
        answer = web.get("/ngsi-ld/v1/entities", query_string=query)
        assert answer.status_code in (200, 400), answer.get_data(as_text=True)
        if answer.status_code == 400:
            assert answer.get_json()["status"] == 400

    fuzz()
