"""Callbacks posted through a real app's callback route, as a browser posts them, for tests that read an answer."""

from __future__ import annotations

import json

from dash._utils import split_callback_id

ROUTE = "/_dash-update-component"


def post_callback(app, output: str, given: dict, changed: str) -> dict:
    """Post the callback whose outputs include ``output`` ('id.property'), its inputs and states set from
    ``given`` ((id, property) -> value, None otherwise), as if ``changed`` had just changed; its answer."""
    response = app.server.test_client().post(
        ROUTE, data=json.dumps(callback_body(app, output, given, changed)), content_type="application/json"
    )
    assert response.status_code == 200, response.get_data()[:300]
    return response.get_json()["response"]


def callback_body(app, output: str, given: dict, changed: str) -> dict:
    """The body a browser posts for that callback."""
    key = next(k for k in app.callback_map if output in k)
    callback = app.callback_map[key]
    outputs = [
        {"id": json.loads(s["id"]) if s["id"].startswith("{") else s["id"], "property": s["property"]}
        for s in split_callback_id(key)
    ]
    return {
        "output": key,
        "outputs": outputs,
        "inputs": [{**d, "value": given.get((d["id"], d["property"]))} for d in callback["inputs"]],
        "state": [{**d, "value": given.get((d["id"], d["property"]))} for d in callback["state"]],
        "changedPropIds": [changed],
    }
