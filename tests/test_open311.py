"""The Open311 GeoReport v2 API driven as a client drives it, in JSON and XML, against a real Redis, the real
app and the real aggregator: services, a posted request filed once, triaged and routed, filters, and every
malformed request refused with its 4xx in the specification's error format."""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
import shapely
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from data.aggregator import Aggregator
from data.keys import Keys
from data.schema import COMPLAINT_CATEGORIES
from engines.complaints import ROUTING_PATH, TAXONOMY_PATH, triage_text
from tests.events import LAT, LON, raw_event

pytestmark = pytest.mark.redis
KEY, OTHER_KEY = "k" * 8 + "-phone-app-key", "o" * 8 + "-kiosk-key-0001"
ROUTING = json.loads(ROUTING_PATH.read_text(encoding="utf-8"))  # the demo city's rules, which the tests run with
TAXONOMY = json.loads(TAXONOMY_PATH.read_text(encoding="utf-8"))
HOUR_MS = 3_600_000
CONTACT = {"email": "li.wei@example.org", "first_name": "Wei", "last_name": "Li", "phone": "13800138000",
           "device_id": "device-7f3a9"}  # fmt: skip


@pytest.fixture
def api_settings(settings):
    """A deployment's settings: sign-in on, two Open311 clients with keys."""
    return replace(
        settings, auth="on", secret_key="s" * 48, open311_api_keys=f"phone-app={KEY}, kiosk={OTHER_KEY}",
        open311_limit="1000 per minute", api_read_limit="100000 per minute",
    )  # fmt: skip


@pytest.fixture
def app(api_settings):
    from app import create_app

    return create_app(api_settings)


@pytest.fixture
def web(app):
    return app.server.test_client()


@pytest.fixture
def worker(client, api_settings, city_map):
    w = Aggregator(client, api_settings, city_map, name="open311")
    w.ensure_groups()
    return w


def parsed(response, fmt: str) -> list[dict]:
    """A response body as rows: the JSON list, or the XML root's items with their children as text."""
    if fmt == "json":
        assert response.content_type.startswith("application/json")
        return response.get_json()
    assert response.content_type.startswith("text/xml")
    root = ElementTree.fromstring(response.get_data())
    rows = []
    for item in root:
        row = {}
        for child in item:
            row[child.tag] = [g.text or "" for g in child] if len(child) else (child.text or "")
        rows.append(row)
    return rows


def error_of(response, fmt: str) -> tuple[int, str]:
    """The one error of a refusal in the specification's format: its code and description."""
    if fmt == "json":
        body = response.get_json()
        assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}, body
        return body[0]["code"], body[0]["description"]
    root = ElementTree.fromstring(response.get_data())
    assert root.tag == "errors" and len(root) == 1 and root[0].tag == "error"
    return int(root[0].find("code").text), root[0].find("description").text


def post(web, fmt: str = "json", key: str | None = KEY, headers=None, **form):
    data = {**({"api_key": key} if key is not None else {}), **form}
    return web.post(f"/open311/v2/requests.{fmt}", data=data, headers=headers or {})


def stream_entries(client, api_settings) -> list[dict[str, str]]:
    entries = client.xrange(Keys(api_settings.key_prefix).stream("complaints"))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def local(ms: int, settings) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(ms / 1000, ZoneInfo(settings.city_timezone))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_services_are_the_city_taxonomy_with_its_groups_and_keywords(web, fmt):
    answer = web.get(f"/open311/v2/services.{fmt}")
    assert answer.status_code == 200
    rows = {r["service_code"]: r for r in parsed(answer, fmt)}
    assert list(rows) == list(COMPLAINT_CATEGORIES)
    for code, row in rows.items():
        spec = TAXONOMY["categories"][code]
        assert row["service_name"] == spec["label"]
        assert row["group"] == ROUTING["departments"][ROUTING["categories"][code]["departments"][0]]
        keywords = row["keywords"] if fmt == "xml" else row["keywords"].split(", ")
        assert keywords == [*spec.get("en", ()), *spec.get("zh", ())][:12]
        assert str(row["metadata"]).lower() == "true" and row["type"] == "realtime"
    assert "CHANNEL" in web.get(f"/open311/v2/services/noise.{fmt}").get_data(as_text=True)
    discovery = web.get(f"/open311/v2/discovery.{fmt}")
    assert discovery.status_code == 200 and b"GeoReport_v2" in discovery.get_data()


def test_reads_are_public_with_sign_in_on_while_the_dashboard_still_asks_for_it(web):
    assert web.get("/open311/v2/services.json").status_code == 200
    assert web.get("/ngsi-ld/v1/entities?type=IssueReporting").status_code == 200
    assert web.get("/cases").status_code == 302  # a page: to the sign-in form


def test_a_posted_request_is_filed_once_triaged_routed_and_read_back_in_both_formats(client, api_settings, web, worker):
    words = "Manhole cover missing on the road, a cyclist nearly fell in. Call me on 13800138000"
    form = dict(service_code="road", lat=str(LAT), long=str(LON), address_string="Shennan Blvd 1001, Futian",
                description=words, media_url="https://photos.example.org/p/1.jpg", **CONTACT)  # fmt: skip
    before_ms = int(time.time() * 1000)
    first = post(web, **form)
    assert first.status_code == 201
    request_id = parsed(first, "json")[0]["service_request_id"]
    again = post(web, "xml", **form)  # the client's retry, in the other format
    assert again.status_code == 200 and parsed(again, "xml")[0]["service_request_id"] == request_id

    entries = stream_entries(client, api_settings)
    assert len(entries) == 1
    event = entries[0]
    assert event["complaint_id"] == request_id and event["src"] == "open311" and event["category"] == "road"
    assert not set(CONTACT) & set(event)  # the contact fields never reach the event
    assert not any(value in event.values() for value in CONTACT.values())

    worker.drain()
    triage = triage_text(words, "road")
    assert triage.category == "manhole"  # the words win over the service chosen
    competent = ROUTING["categories"]["manhole"]
    agency = ROUTING["departments"][competent["departments"][0]] if competent["competent"] == "department" else None
    deadline_ms = ROUTING["deadlines_h"][competent["competent"]][str(triage.priority)] * HOUR_MS
    for fmt in ("json", "xml"):
        answer = web.get(f"/open311/v2/requests/{request_id}.{fmt}")
        assert answer.status_code == 200
        body = answer.get_data(as_text=True)
        for value in CONTACT.values():
            assert value not in body  # not even inside the words: they are not shown at all
        assert "cyclist" not in body
        (row,) = parsed(answer, fmt)
        assert row["service_request_id"] == request_id and row["status"] == "open"
        assert row["service_code"] == "manhole" and row["agency_responsible"] == agency
        requested = datetime.fromisoformat(row["requested_datetime"])
        assert before_ms // 1000 <= requested.timestamp() <= time.time()
        assert requested.utcoffset() == local(before_ms, api_settings).utcoffset()
        expected = datetime.fromisoformat(row["expected_datetime"])
        assert expected.timestamp() == requested.timestamp() + deadline_ms / 1000
        assert datetime.fromisoformat(row["updated_datetime"]) == requested
        assert float(row["lat"]) == round(LAT, 6) and float(row["long"]) == round(LON, 6)
        assert row["address"] == form["address_string"] and row["media_url"] == form["media_url"]
        assert row["status_notes"].startswith(f"P{triage.priority} manhole cover; with {agency} since")


def test_an_idempotency_key_makes_a_changed_retry_the_same_request_and_each_client_has_its_own(
    client, api_settings, web
):
    form = dict(service_code="noise", lat=str(LAT), long=str(LON), description="loud music at night")
    one = post(web, headers={"Idempotency-Key": "retry-7"}, **form)
    two = post(web, headers={"Idempotency-Key": "retry-7"}, **{**form, "description": "loud music, still"})
    other_client = post(web, key=OTHER_KEY, headers={"Idempotency-Key": "retry-7"}, **form)
    ids = [parsed(r, "json")[0]["service_request_id"] for r in (one, two, other_client)]
    assert (one.status_code, two.status_code, other_client.status_code) == (201, 200, 201)
    assert ids[0] == ids[1] != ids[2]
    assert [e["complaint_id"] for e in stream_entries(client, api_settings)] == [ids[0], ids[2]]
    assert [e["seq"] for e in stream_entries(client, api_settings)] == ["1", "2"]  # numbered with no gap


def test_requests_are_filtered_by_dates_status_and_service_and_paged(client, api_settings, web, worker, demo_city):
    now = int(time.time() * 1000)
    texts = {"noise": "loud music from a party", "road": "pothole on the road surface", "sanitation": "garbage"}
    filed = []  # (id, category, opened ms), oldest first
    for i in range(12):
        category = list(texts)[i % 3]
        opened = now - (12 - i) * 6 * HOUR_MS
        filed.append((f"k-{i:02d}", category, opened))
    events = [
        raw_event("complaint", seq=i, ts=ts, complaint_id=cid, text=texts[cat], category=None, channel="app")
        for i, (cid, cat, ts) in enumerate(filed)
    ]
    closed_ids = {"k-03", "k-07"}
    events += [
        raw_event("complaint_update", seq=100 + j, ts=now - HOUR_MS, complaint_id=cid, action="closed",
                  level="community")
        for j, cid in enumerate(sorted(closed_ids))
    ]  # fmt: skip
    for e in events:
        client.xadd(Keys(api_settings.key_prefix).stream("complaints"), e)
    worker.drain()
    assert {c for _, c, _ in filed} == {triage_text(t).category for t in texts.values()} == set(texts)
    # Where k-03 (noise) was held when closed: deadlines passed level by level from the competent one.
    (where,) = demo_city.communities[demo_city.communities.contains(shapely.Point(LON, LAT))].itertuples()
    noise, opened_03 = triage_text(texts["noise"]), next(ts for cid, _, ts in filed if cid == "k-03")
    levels = ROUTING["levels"][ROUTING["levels"].index(ROUTING["categories"]["noise"]["competent"]) :]
    entered, climbed = opened_03, 0
    while (
        levels[climbed] != "department"
        and entered + ROUTING["deadlines_h"][levels[climbed]][str(noise.priority)] * HOUR_MS <= now - HOUR_MS
    ):
        entered += ROUTING["deadlines_h"][levels[climbed]][str(noise.priority)] * HOUR_MS
        climbed += 1
    area = {"community": where.community_id, "neighbourhood": where.neighbourhood_id, "district": where.district_id}
    held_by = f"{levels[climbed]} office ({area[levels[climbed]]})"

    def ids(fmt: str, **query) -> list[str]:
        answer = web.get(f"/open311/v2/requests.{fmt}", query_string=query)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return [r["service_request_id"] for r in parsed(answer, fmt)]

    def expected(start_ms=None, end_ms=None, status=None, codes=None) -> list[str]:
        chosen = [
            (ts, cid)
            for cid, cat, ts in filed
            if (start_ms is None or ts >= start_ms)
            and (end_ms is None or ts <= end_ms)
            and (status is None or ("closed" if cid in closed_ids else "open") in status)
            and (codes is None or cat in codes)
        ]
        return [cid for _, cid in sorted(chosen, reverse=True)]

    iso = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).isoformat()  # noqa: E731
    start, end = now - 50 * HOUR_MS, now - 20 * HOUR_MS
    for fmt in ("json", "xml"):
        assert ids(fmt) == expected()
        assert ids(fmt, start_date=iso(start), end_date=iso(end)) == expected(start, end)
        assert ids(fmt, status="closed") == expected(status={"closed"}) == sorted(closed_ids, reverse=True)
        closed = parsed(web.get(f"/open311/v2/requests/k-03.{fmt}"), fmt)[0]
        on = datetime.fromtimestamp((now - HOUR_MS) // 1000, UTC).astimezone(local(now, api_settings).tzinfo)
        assert closed["status"] == "closed" and closed["expected_datetime"] == ""
        assert closed["status_notes"] == f"P{noise.priority} noise; closed with {held_by} on {on.isoformat()}" + (
            f"; escalated {climbed} time{'s' if climbed != 1 else ''}" if climbed else ""
        )
        assert closed["agency_responsible"] == held_by and closed["updated_datetime"] == on.isoformat()
        assert ids(fmt, status="open", service_code="noise,road") == expected(status={"open"}, codes={"noise", "road"})
        assert ids(fmt, service_request_id="k-05,k-07,nope") == ["k-07", "k-05"]
        pages = [ids(fmt, page=str(p), page_size="5") for p in (1, 2, 3)]
        assert pages == [expected()[0:5], expected()[5:10], expected()[10:]]
    # The same instant in another offset is the same filter.
    shifted = datetime.fromtimestamp(start / 1000, UTC).astimezone(datetime.now().astimezone().tzinfo)
    later = (datetime.fromtimestamp(start / 1000, UTC) + timedelta(hours=8)).replace(tzinfo=None).isoformat() + "+08:00"
    assert ids("json", start_date=shifted.isoformat()) == ids("json", start_date=later) == expected(start)


GET_REFUSALS = [
    ({"start_date": "yesterday"}, 400, "start_date"),
    ({"end_date": "2026-13-45T00:00:00Z"}, 400, "end_date"),
    ({"start_date": "2026-12-01T00:00:00"}, 400, "time zone"),
    ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-12-01T00:00:00Z"}, 400, "90 days"),
    ({"start_date": "2026-12-02T00:00:00Z", "end_date": "2026-12-01T00:00:00Z"}, 400, "after"),
    ({"start_date": "2020-01-01T00:00:00Z"}, 400, "90 days"),  # alone: up to now, so more than 90 days
    ({"status": "pending"}, 400, "status"),
    ({"service_code": "pothole"}, 400, "service_code"),
    ({"page": "0"}, 400, "page"),
    ({"page_size": "100000"}, 400, "page_size"),
]
POST_REFUSALS = [
    ({}, 400, "service_code is required"),
    ({"service_code": "unicorns"}, 400, "not a service"),
    ({"lat": "north"}, 400, "lat"),
    ({"lat": "91"}, 400, "lat"),
    ({"long": "nan"}, 400, "long"),
    ({"long": None}, 400, "together"),
    ({"lat": None, "long": None, "address_string": "Shennan Blvd 1001"}, 400, "names no place"),
    ({"lat": None, "long": None, "address_id": "A-77"}, 400, "an address_id was given"),
    ({"lat": None, "long": None}, 400, "no location"),
    ({"media_url": "javascript:alert(1)"}, 400, "media_url"),
    ({"attribute[WHISPER]": "yes"}, 400, "no attribute 'attribute[WHISPER]'"),
    ({"attribute[CHANNEL]": "carrier pigeon"}, 400, "attribute[CHANNEL]"),
    ({"description": "x" * 2001}, 400, "longer than"),
    ({"description": "bell\x07"}, 400, "control"),
    # A point the workers would throw away is refused at the door, by the schema's own reasons.
    ({"lat": "0", "long": "0"}, 400, "null_island"),
    ({"lat": "40.7", "long": "-74.0"}, 400, "outside_city"),
]


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("query", "status", "says"), GET_REFUSALS)
def test_a_malformed_query_is_refused_in_the_spec_format(web, fmt, query, status, says):
    answer = web.get(f"/open311/v2/requests.{fmt}", query_string=query)
    assert answer.status_code == status
    code, description = error_of(answer, fmt)
    assert code == status and says in description


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(("change", "status", "says"), POST_REFUSALS)
def test_a_malformed_post_is_refused_in_the_spec_format_and_files_nothing(
    client, api_settings, web, fmt, change, status, says
):
    form = {"service_code": "noise", "lat": str(LAT), "long": str(LON), "description": "loud"}
    form = {k: v for k, v in {**({} if change == {} else form), **change}.items() if v is not None}
    answer = post(web, fmt, **form)
    assert answer.status_code == status
    code, description = error_of(answer, fmt)
    assert code == status and says in description, description
    assert stream_entries(client, api_settings) == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("key", [None, "", "k" * 22, KEY[:-1], KEY + "x"])
def test_a_post_without_a_valid_key_is_refused_with_403(client, api_settings, web, fmt, key):
    answer = post(web, fmt, key=key, service_code="noise", lat=str(LAT), long=str(LON), description="loud")
    assert answer.status_code == 403 and error_of(answer, fmt) == (403, "api_key is missing or not valid")
    assert stream_entries(client, api_settings) == []


def test_the_key_may_come_as_a_header(web):
    answer = web.post("/open311/v2/requests.json", headers={"X-API-Key": OTHER_KEY},
                      data={"service_code": "noise", "lat": str(LAT), "long": str(LON)})  # fmt: skip
    assert answer.status_code == 201


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_body_over_the_cap_is_refused_with_413(client, api_settings, web, fmt):
    huge = "x" * (api_settings.open311_max_body_bytes + 1)
    answer = post(web, fmt, service_code="noise", lat=str(LAT), long=str(LON), description=huge)
    assert answer.status_code == 413
    assert error_of(answer, fmt)[0] == 413
    assert stream_entries(client, api_settings) == []


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_chunked_body_of_unsaid_length_is_refused_with_411_and_files_nothing(client, api_settings, web, fmt):
    body = f"api_key={KEY}&service_code=noise&lat={LAT}&long={LON}&description=" + "x" * 30_000
    answer = web.post(
        f"/open311/v2/requests.{fmt}",
        input_stream=io.BytesIO(body.encode()),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 411
    assert error_of(answer, fmt)[0] == 411
    assert stream_entries(client, api_settings) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/open311/v2/requests.csv", 404),
        ("/open311/v2/services/unicorns.json", 404),
        ("/open311/v2/requests/k-none.json", 404),
        ("/open311/v2/nothing.json", 404),
        ("/open311/v2/", 404),
    ],
)
def test_unknown_resources_are_refused_in_the_spec_format(web, path, status):
    answer = web.get(path)
    assert answer.status_code == status and error_of(answer, "json")[0] == status
    xml = web.get(path.replace(".json", ".xml"))
    assert xml.status_code == status


def test_a_method_the_api_has_not_is_refused_in_the_spec_format(web):
    answer = web.put("/open311/v2/requests.xml", data={"service_code": "noise"})
    assert answer.status_code in (404, 405) and error_of(answer, "xml")[0] == answer.status_code


def test_posts_over_the_rate_limit_get_429_per_key(client, api_settings):
    from app import create_app

    web = create_app(replace(api_settings, open311_limit="3 per minute")).server.test_client()
    for i in range(3):
        ok = post(web, service_code="noise", lat=str(LAT), long=str(LON), description=f"loud {i}")
        assert ok.status_code == 201
    for fmt in ("json", "xml"):
        over = post(web, fmt, service_code="noise", lat=str(LAT), long=str(LON), description="loud again")
        assert over.status_code == 429 and error_of(over, fmt)[0] == 429
    assert post(web, key=OTHER_KEY, service_code="noise", lat=str(LAT), long=str(LON)).status_code == 201
    # Guessing keys from one address shares that address's allowance.
    guesses = [post(web, key=f"guess-{i:012d}", service_code="noise").status_code for i in range(5)]
    assert guesses == [403, 403, 403, 429, 429]
    assert len(stream_entries(client, api_settings)) == 4


FIELDS = ["api_key", "service_code", "lat", "long", "address_string", "address_id", "description", "media_url",
          "email", "phone", "first_name", "device_id", "attribute[x]", "jurisdiction_id", "page", "status"]  # fmt: skip
QUERY = ["service_request_id", "service_code", "start_date", "end_date", "status", "page", "page_size", "format"]
values = st.one_of(
    st.text(max_size=60),
    st.sampled_from([KEY, "noise", "road", str(LAT), str(LON), "nan", "-1e309", "91", "2026-12-01T00:00:00Z",
                     "open", "closed", "open,closed", "1", "0", "", "http://x.org/a.png"]),
)  # fmt: skip


def test_fuzzed_posts_and_queries_never_get_a_500(api_settings, client):
    from app import create_app

    web = create_app(replace(api_settings, open311_limit="100000 per minute")).server.test_client()

    @hypothesis_settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        fmt=st.sampled_from(["json", "xml"]),
        form=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=12)), values, max_size=10),
        query=st.dictionaries(st.sampled_from(QUERY), values, max_size=5),
        request_id=st.text(max_size=20),
    )
    def fuzz(fmt, form, query, request_id):
        posted = web.post(f"/open311/v2/requests.{fmt}", data=form)
        assert posted.status_code in (200, 201, 400, 403, 413), posted.get_data(as_text=True)
        if posted.status_code >= 400:
            assert error_of(posted, fmt)[0] == posted.status_code
        listed = web.get(f"/open311/v2/requests.{fmt}", query_string=query)
        assert listed.status_code in (200, 400), listed.get_data(as_text=True)
        if listed.status_code == 400:
            assert error_of(listed, fmt)[0] == 400
        one = web.get(f"/open311/v2/requests/{request_id}.{fmt}")
        assert one.status_code in (200, 404)

    fuzz()


def test_a_phone_number_or_email_typed_into_the_address_is_not_shown(web, worker):
    answer = post(web, service_code="noise", lat=str(LAT), long=str(LON),
                  address_string="Block 4, ring 13800138000 or li.wei@example.org")  # fmt: skip
    request_id = parsed(answer, "json")[0]["service_request_id"]
    worker.drain()
    (row,) = parsed(web.get(f"/open311/v2/requests/{request_id}.json"), "json")
    assert row["address"] == "Block 4, ring [phone] or [e-mail]"


@pytest.mark.parametrize("spec", ["phone-app", "=" + KEY, "phone-app=short", f"phone-app={KEY},kiosk"])
def test_a_malformed_key_setting_stops_the_app_at_start(api_settings, spec):
    from app import create_app
    from settings import SettingsError

    with pytest.raises(SettingsError, match="CITYDECK_OPEN311_API_KEYS"):
        create_app(replace(api_settings, open311_api_keys=spec))


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_discovery_names_the_specification_the_endpoint_and_both_formats(web, fmt):
    answer = web.get(f"/open311/v2/discovery.{fmt}", base_url="https://city.example.org")
    if fmt == "json":
        (endpoint,) = answer.get_json()["endpoints"]
        formats = endpoint["formats"]
    else:
        endpoint = {c.tag: c.text for c in ElementTree.fromstring(answer.get_data()).find("endpoints/endpoint")}
        formats = [f.text for f in ElementTree.fromstring(answer.get_data()).find("endpoints/endpoint/formats")]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "https://city.example.org/open311/v2"
    assert formats == ["text/xml", "application/json"]


def test_public_reads_over_the_limit_get_429_in_each_format(api_settings):
    from app import create_app

    web = create_app(replace(api_settings, api_read_limit="4 per minute")).server.test_client()
    paths = ["/open311/v2/services.json", "/open311/v2/requests.xml", "/ngsi-ld/v1/entities?type=IssueReporting",
             "/open311/v2/requests/k-1.json"]  # fmt: skip
    assert [web.get(p).status_code for p in paths] == [200, 200, 200, 404]
    assert error_of(web.get("/open311/v2/services.xml"), "xml")[0] == 429
    assert error_of(web.get("/open311/v2/requests.json"), "json")[0] == 429
    problem = web.get("/ngsi-ld/v1/entities?type=CrowdFlowObserved")
    assert problem.status_code == 429 and problem.get_json()["type"].endswith("TooManyRequests")
    other = web.get("/open311/v2/services.json", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200  # limited per address
    assert post(web, service_code="noise", lat=str(LAT), long=str(LON)).status_code == 201  # posts by their key


def test_an_address_naming_a_community_of_the_city_is_placed_inside_it(web, worker, demo_city):
    communities = demo_city.communities
    unique = communities[~communities["name"].duplicated(keep=False)].iloc[7]
    answer = post(web, service_code="noise", address_string="  " + unique["name"].upper() + " ",
                  description="loud music every night")  # fmt: skip
    assert answer.status_code == 201
    request_id = parsed(answer, "json")[0]["service_request_id"]
    worker.drain()
    (row,) = parsed(web.get(f"/open311/v2/requests/{request_id}.json"), "json")
    assert unique["geometry"].contains(shapely.Point(float(row["long"]), float(row["lat"])))
    assert row["agency_responsible"] == f"community office ({unique['community_id']})"  # noise: the community's


def test_a_name_two_places_share_is_not_placed(web, demo_city):
    places = demo_city.places
    shared = places[places["name"].duplicated(keep=False)]["name"].iloc[0]
    answer = post(web, service_code="noise", address_string=shared)
    assert answer.status_code == 400 and "names no place" in error_of(answer, "json")[1]


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_a_service_definition_asks_how_the_report_came_in_and_a_post_answers_it(client, api_settings, web, fmt):
    answer = web.get(f"/open311/v2/services/water.{fmt}")
    assert answer.status_code == 200
    if fmt == "json":
        definition = answer.get_json()
        (attribute,) = definition["attributes"]
        keys = [v["key"] for v in attribute["values"]]
    else:
        root = ElementTree.fromstring(answer.get_data())
        definition = {"service_code": root.find("service_code").text}
        attribute = {c.tag: c.text for c in root.find("attributes/attribute")}
        keys = [v.find("key").text for v in root.find("attributes/attribute/values")]
    assert definition["service_code"] == "water"
    assert attribute["code"] == "CHANNEL" and attribute["datatype"] == "singlevaluelist"
    assert str(attribute["required"]).lower() == "false"
    assert keys == ["hotline", "app", "web", "wechat"]
    spoken = post(web, fmt, service_code="water", lat=str(LAT), long=str(LON), **{"attribute[CHANNEL]": "hotline"})
    by_app = post(web, fmt, service_code="water", lat=str(LAT), long=str(LON), device_id="d-1")
    by_web = post(web, fmt, service_code="water", lat=str(LAT), long=str(LON))
    assert (spoken.status_code, by_app.status_code, by_web.status_code) == (201, 201, 201)
    assert [e["channel"] for e in stream_entries(client, api_settings)] == ["hotline", "app", "web"]
