"""Malformed requests to a real dashboard get a 4xx (or a 204 'no update') and a short log line, never a
500: bad JSON, missing keys, wrong ids, a wrong type for every input and state of every callback, huge
bodies and hostile URL query strings."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from dash._utils import split_callback_id
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

pytestmark = pytest.mark.redis

ROUTE = "/_dash-update-component"

# The value a browser would send for a property, by property name.
PLAUSIBLE = {
    "n_intervals": 1,
    "pathname": "/",
    "search": "",
    "n_clicks": 1,
    "clickData": None,
    "data": None,
}
# ... and for the controls whose value a browser always sends as something (a choice, a typed text).
PLAUSIBLE_OF = {
    ("window", "value"): "1h",
    ("window-custom", "value"): "36h",
    ("moment-pick", "value"): "2019-10-06T08:00",
    ("play-speed", "value"): 60,
}
WRONG = [
    None,
    0,
    -1,
    1e308,
    True,
    "",
    "x",
    "<script>alert(1)</script>",
    "?window=abc&district=<script>",
    "?%zz&window=15m&window=24h",
    "D-FT-N01",
    "/../../etc/passwd",
    "\x00\ud800",
    "x" * 20_000,
    [],
    [1, "a", None],
    [{"id": "x"}],
    {},
    {"points": "x"},
    {"points": [1]},
    {"points": [{"location": ["D-FT"]}]},
    {"points": [{"location": {"a": 1}}]},
    {"a": {"b": {"c": [1, 2, {"d": None}]}}},
]
QUERIES = [
    "?window=abc&district=<script>",
    "?window=15m&district=D-FT&neighbourhood=D-LU-N01",
    "?neighbourhood=D-FT-N01",
    "?%zz",
    "?window=" + "9" * 5000,
    "?views=x,,y&dwell=-4",
    "?views=overview&dwell=nan",
    "?dwell=1e999",
    "?district=%00%ff",
]


@pytest.fixture
def app(settings):
    from app import create_app

    return create_app(settings)


def _concrete(id_text: str):
    """A concrete id for a declared one: a pattern's wildcards become a value (a page, as links and slots name)."""
    if not id_text.startswith("{"):
        return id_text
    return {k: ("overview" if isinstance(v, list) else v) for k, v in json.loads(id_text).items()}


def _wildcard(id_text: str) -> bool:
    return id_text.startswith("{") and any(isinstance(v, list) for v in json.loads(id_text).values())


def _dependency(declared: dict) -> dict | list:
    id_ = _concrete(declared["id"])
    prop = declared["property"]
    if isinstance(id_, str) and (id_, prop) in PLAUSIBLE_OF:
        value = PLAUSIBLE_OF[(id_, prop)]
    elif prop == "id":
        value = id_
    else:
        value = PLAUSIBLE.get(prop)
    item = {"id": id_, "property": prop, "value": value}
    return [item] if _wildcard(declared["id"]) else item


def _output(declared: dict) -> dict | list:
    item = {"id": _concrete(declared["id"]), "property": declared["property"]}
    return [item] if _wildcard(declared["id"]) else item


def _prop_id(item: dict | list) -> str:
    from dash._utils import stringify_id

    first = item[0] if isinstance(item, list) else item
    return f"{stringify_id(first['id'])}.{first['property']}"


def well_formed(key: str, callback: dict) -> dict:
    """The body a browser sends for a callback, with plausible values."""
    spec = split_callback_id(key)
    inputs = [_dependency(d) for d in callback["inputs"]]
    return {
        "output": key,
        "outputs": [_output(s) for s in spec] if isinstance(spec, list) else _output(spec),
        "inputs": inputs,
        "state": [_dependency(d) for d in callback["state"]],
        "changedPropIds": [_prop_id(inputs[0])],
    }


def _with_value(item, value):
    if isinstance(item, list):
        return [dict(i, value=value) for i in item] or [{"id": "x", "property": "value", "value": value}]
    return dict(item, value=value)


def battery(callback_map: dict) -> list[tuple[str, dict | bytes | str]]:
    """(what, body) of every malformed request tried."""
    out: list[tuple[str, dict | bytes | str]] = []
    for key, callback in callback_map.items():
        base = well_formed(key, callback)
        for part in ("inputs", "state"):
            for i in range(len(base[part])):
                for value in WRONG:
                    body = copy.deepcopy(base)
                    body[part][i] = _with_value(body[part][i], value)
                    out.append((f"{key[:50]} {part}[{i}]={str(value)[:30]!r}", body))
                if isinstance(base[part][i], list):
                    for shape in (
                        "x",
                        [],
                        [1],
                        [{"id": "x", "property": "y"}],
                        [{"id": {"type": 1}, "property": "id"}],
                    ):
                        body = copy.deepcopy(base)
                        body[part][i] = shape
                        out.append((f"{key[:50]} {part}[{i}] shaped {shape!r}", body))
            if any(d["property"] == "search" for d in callback[part]):
                i = next(j for j, d in enumerate(callback[part]) if d["property"] == "search")
                for query in QUERIES:
                    body = copy.deepcopy(base)
                    body[part][i] = _with_value(body[part][i], query)
                    out.append((f"{key[:50]} search={query[:30]!r}", body))
        for name in ("output", "outputs", "inputs", "state", "changedPropIds"):
            body = copy.deepcopy(base)
            del body[name]
            out.append((f"{key[:50]} without {name}", body))
        for name, value in (
            ("inputs", "x"),
            ("inputs", base["inputs"][:-1]),
            ("inputs", [*base["inputs"], base["inputs"][0]]),
            ("state", {"a": 1}),
            ("outputs", "x"),
            ("outputs", [{"id": "nope", "property": "children"}]),
            ("changedPropIds", "x"),
            ("changedPropIds", [5]),
            ("changedPropIds", ["{bad.value"]),
            ("changedPropIds", ["nope.value"]),
            ("output", key + "x"),
            ("output", ["x"]),
        ):
            body = copy.deepcopy(base)
            body[name] = value
            out.append((f"{key[:50]} {name}={str(value)[:30]!r}", body))
    out += [
        ("not JSON", b"{not json"),
        ("a JSON list", b"[1, 2]"),
        ("a JSON string", b'"output"'),
        ("empty", b""),
        ("nested 5,000 deep", b"[" * 5000 + b"]" * 5000),
        ("an object nested 100 deep", {"output": "health-body.children", "x": json.loads("[" * 100 + "]" * 100)}),
        ("unknown output", {"output": "nope.children", "inputs": [], "state": []}),
        ("10 MB", {"output": "x" * 10_000_000}),
        ("2 MB of inputs", {"output": "health-body.children", "inputs": [{"value": "x" * 2_000_000}]}),
    ]
    return out


def _post(client, body):
    if isinstance(body, bytes | str):
        return client.post(ROUTE, data=body, content_type="application/json")
    return client.post(ROUTE, data=json.dumps(body), content_type="application/json")


def _operator_may(body) -> bool:
    """With sign-in off everyone is an operator: the precise view's callback is refused (403), the rest answer."""
    from accounts.roles import may
    from accounts.web import OFF_ROLE
    from callbacks.access import needs

    return may(OFF_ROLE, needs(body))


def written_by(key: str) -> set[str]:
    """The component ids a callback writes to (a pattern's by its type)."""
    spec = split_callback_id(key)
    ids_ = [o["id"] for o in (spec if isinstance(spec, list) else [spec])]
    return {json.loads(i).get("type", i) if i.startswith("{") else i for i in ids_}


def test_no_click_shares_a_callback_with_a_refresh(app):
    """The renderer drops a running request when the same callback is asked again. A button that a tick's
    callback also listens to loses its click whenever the answer takes longer than a refresh: a busy server
    swallows the officer's 'open' or the admin's 'verify'. Clicks get callbacks of their own."""
    shared = [
        key
        for key, callback in app.callback_map.items()
        if {"n_intervals", "n_clicks"} <= {d["property"] for d in callback["inputs"]}
    ]
    assert not shared
    assert any("n_clicks" in {d["property"] for d in c["inputs"]} for c in app.callback_map.values())


def served(app) -> list[tuple[str, dict]]:
    """The callbacks the server runs (not those computed in the browser)."""
    return [(key, callback) for key, callback in app.callback_map.items() if callback.get("callback") is not None]


def test_a_callback_computed_in_the_browser_is_refused_with_400(app):
    browser_side = [(k, c) for k, c in app.callback_map.items() if c.get("callback") is None]
    assert browser_side, "the wall's screen size is computed in the browser"
    for key, callback in browser_side:
        assert _post(app.server.test_client(), well_formed(key, callback)).status_code == 400, key


def test_well_formed_requests_of_every_callback_are_answered(app):
    client = app.server.test_client()
    for key, callback in served(app):
        body = well_formed(key, callback)
        response = _post(client, body)
        expected = (200, 204) if _operator_may(body) else (403,)
        assert response.status_code in expected, (key, response.status_code, response.get_data()[:300])


def test_every_malformed_request_gets_a_4xx_or_no_update_and_a_short_log_line(app, caplog):
    client = app.server.test_client()
    failures = []
    tried = battery(app.callback_map)
    with caplog.at_level(logging.INFO):
        for what, body in tried:
            response = _post(client, body)
            if response.status_code >= 500:
                failures.append((what, response.status_code))
    assert not failures, f"{len(failures)} of {len(tried)} malformed requests gave a 5xx: {failures[:20]}"
    longest = max((len(r.getMessage()) for r in caplog.records), default=0)
    assert longest < 400, f"a log line of {longest:,} characters"


def test_a_body_over_the_cap_is_refused_with_413(settings):
    from dataclasses import replace

    from app import create_app

    app = create_app(replace(settings, max_request_bytes=10_000))
    response = _post(app.server.test_client(), {"output": "health-body.children", "inputs": ["x" * 20_000]})
    assert response.status_code == 413


@pytest.mark.parametrize("path", ["/_dash-component-suites/nolib/x.js", "/_dash-component-suites/dash/../../app.py"])
def test_a_component_file_of_no_library_is_not_found(app, path):
    assert app.server.test_client().get(path).status_code == 404


@pytest.mark.parametrize("path", ["/", "/cases", "/wall", "/nowhere"])
@pytest.mark.parametrize("query", QUERIES)
def test_pages_with_hostile_query_strings_are_served(app, path, query):
    assert app.server.test_client().get(path + query).status_code in (200, 404)


# --- Fuzzing: bodies generated from the app's own callback map ---------------------------------------------

# Any JSON a client can send: every text (lone surrogates included), every number (huge, NaN and infinities
# are what Python's JSON writes and reads back), nested lists and objects.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(st.characters(exclude_categories=()), max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def callback_bodies(draw, callback_map: dict) -> dict | bytes:
    """A body for one of the app's callbacks: its declared dependencies with arbitrary values, then
    perhaps one part of the envelope replaced by arbitrary JSON or dropped."""
    key = draw(st.sampled_from(sorted(callback_map)))
    body = well_formed(key, callback_map[key])
    for part in ("inputs", "state"):
        for i, item in enumerate(body[part]):
            if draw(st.booleans()):
                if isinstance(item, list):
                    many = draw(st.integers(0, 3))
                    body[part][i] = [dict(item[0], value=draw(json_values)) for _ in range(many)]
                else:
                    body[part][i] = dict(item, value=draw(json_values))
    if draw(st.booleans()):
        body["changedPropIds"] = draw(st.lists(st.sampled_from(body["changedPropIds"] + ["x.value"]), max_size=2))
    envelope = draw(st.sampled_from(["kept", "replaced", "dropped"]))
    if envelope != "kept":
        name = draw(st.sampled_from(["output", "outputs", "inputs", "state", "changedPropIds"]))
        if envelope == "dropped":
            del body[name]
        else:
            body[name] = draw(json_values)
    return body


malformed_bodies = st.one_of(
    json_values,
    st.binary(max_size=200),
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"output":' * depth + b"1" + b"}" * depth),
)


def test_fuzzed_callback_requests_never_get_a_5xx(app):
    client = app.server.test_client()
    callback_map = app.callback_map

    @hypothesis_settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=callback_bodies(callback_map) | malformed_bodies)
    def answered(body):
        response = _post(client, body)
        assert response.status_code < 500, (response.status_code, response.get_data()[:300])

    answered()


@pytest.mark.parametrize("output", ["..abc..", "..a.b...c..", "abc", "..."])
def test_an_output_that_names_no_property_is_refused_with_400(app, output):
    """Found by the fuzzer: '..abc..' (a multi-output with a part without its property) was a 500."""
    response = _post(app.server.test_client(), {"output": output, "inputs": [], "state": []})
    assert response.status_code == 400, (response.status_code, response.get_data()[:200])


def test_a_valid_looking_request_of_every_callback_is_answered_with_200(app):
    """Not every refusal: the body a browser sends, with plausible values, gets its outputs."""
    client = app.server.test_client()
    for key, callback in served(app):
        body = well_formed(key, callback)
        response = _post(client, body)
        assert response.status_code == (200 if _operator_may(body) else 403), (key, response.status_code)
