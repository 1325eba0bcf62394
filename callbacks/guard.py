"""The door of the callback route: a request to ``/_dash-update-component`` that is not what the browser
sends for one of this app's callbacks is refused with a 4xx and one short log line before Dash reads it.

Dash itself answers a missing key or a wrong shape with a 500 and logs the whole body (twice, with the
exception it chains). The values inside a well-formed request are checked by the callbacks themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from dash._utils import split_callback_id
from dash.exceptions import DependencyException
from flask import abort, request
from werkzeug.exceptions import RequestEntityTooLarge

log = logging.getLogger("citydeck.web")

QUOTED = 80  # characters of a refused value a log line quotes
# A browser's callback body nests a dozen levels at most (a map click's points); deeper is no browser's,
# and past about a thousand levels Python's JSON reader itself fails with a RecursionError.
MAX_NESTING = 64


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= QUOTED else text[:QUOTED] + f"… ({len(text):,} chars)"


def _same_dependency(given: Any, declared: Mapping[str, str]) -> str | None:
    """Why an input, state or output the request names is not the declared one (None when it is)."""
    prop = declared["property"]
    dict_id = json.loads(declared["id"]) if declared["id"].startswith("{") else None
    if dict_id is not None and any(isinstance(v, list) for v in dict_id.values()):
        keys = set(dict_id)
        if not isinstance(given, list):
            return f"{declared['id']}.{prop} should be a list"
        for item in given:
            if not isinstance(item, dict) or not isinstance(item.get("id"), dict) or item.get("property") != prop:
                return f"{declared['id']}.{prop} has an entry {_quote(item)}"
            if set(item["id"]) != keys or not all(isinstance(v, str | int) for v in item["id"].values()):
                return f"{declared['id']}.{prop} has an id {_quote(item['id'])}"
        return None
    expected_id = declared["id"] if dict_id is None else dict_id
    # An output a second callback may also set is declared as 'property@hash'; the browser names either.
    if (
        not isinstance(given, dict)
        or given.get("id") != expected_id
        or str(given.get("property")).partition("@")[0] != prop.partition("@")[0]
    ):
        return f"expected {declared['id']}.{prop}, got {_quote(given)}"
    return None


def _unlike_matches(pairs: list[tuple[Mapping[str, str], Any]]) -> str | None:
    """Why one ``ALL`` pattern matches other components in one part of the request than in another.

    The browser matches a pattern against the page once for the whole callback; a callback answering a
    list of one length for a pattern given with another is Dash's 500.
    """
    matched: dict[str, list] = {}
    for declared, given in pairs:
        dict_id = json.loads(declared["id"]) if declared["id"].startswith("{") else None
        if dict_id is None or not any(v == ["ALL"] for v in dict_id.values()):
            continue
        found = [item["id"] for item in given]
        if matched.setdefault(declared["id"], found) != found:
            return f"{declared['id']} matches {_quote(found)} in one place and {_quote(matched[declared['id']])} in another"
    return None


def _prop_ids(items: list) -> list[tuple[Any, str]]:
    flat = [i for item in items for i in (item if isinstance(item, list) else [item])]
    return [(i["id"], i["property"]) for i in flat]


def _parsed_prop_id(prop_id: str) -> tuple[Any, str] | None:
    id_part, dot, prop = prop_id.rpartition(".")
    if not dot:
        return None
    if id_part.startswith("{"):
        try:
            return json.loads(id_part), prop
        except ValueError:
            return None
    return id_part, prop


def nesting(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep lists and objects nest in a JSON value, counted up to just past ``limit``."""
    deepest, level = 0, [(value, 1)]
    while level:
        item, depth = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        level.extend((child, depth + 1) for child in children)
    return deepest


def refusal(body: Any, callback_map: Mapping[str, Mapping]) -> str | None:
    """Why a callback request body is malformed for this app, or None when it is well formed."""
    if not isinstance(body, dict):
        return f"the body is not a JSON object: {_quote(body)}"
    if nesting(body) > MAX_NESTING:
        return f"the body nests deeper than {MAX_NESTING} levels"
    output = body.get("output")
    if not isinstance(output, str) or output not in callback_map:
        return f"no callback has the output {_quote(output)}"
    callback = callback_map[output]
    if callback.get("callback") is None:
        return f"the output {_quote(output)} is computed in the browser, not here"
    for part, declared in (("inputs", callback["inputs"]), ("state", callback["state"])):
        given = body.get(part, [])
        if not isinstance(given, list) or len(given) != len(declared):
            return f"{part} should be a list of {len(declared)}, got {_quote(given)}"
        for item, dependency in zip(given, declared):
            why = _same_dependency(item, dependency)
            if why:
                return f"{part}: {why}"
    spec = split_callback_id(output)
    outputs = body.get("outputs")
    if isinstance(spec, list):
        if not isinstance(outputs, list) or len(outputs) != len(spec):
            return f"outputs should be a list of {len(spec)}, got {_quote(outputs)}"
    else:
        spec, outputs = [spec], [outputs]
    for item, declared in zip(outputs, spec):
        why = _same_dependency(item, declared)
        if why:
            return f"outputs: {why}"
    why = _unlike_matches(
        [
            *zip(spec, outputs),
            *zip(callback["inputs"], body.get("inputs", [])),
            *zip(callback["state"], body.get("state", [])),
        ]
    )
    if why:
        return why
    changed = body.get("changedPropIds", [])
    known = _prop_ids(body.get("inputs", []))
    if not isinstance(changed, list) or not all(isinstance(c, str) and _parsed_prop_id(c) in known for c in changed):
        return f"changedPropIds names no input of this callback: {_quote(changed)}"
    return None


def init_app(app, max_request_bytes: int) -> None:
    """Cap every request's body and refuse malformed callback requests before Dash reads them."""
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = max_request_bytes
    route = app.config.routes_pathname_prefix + "_dash-update-component"

    @server.before_request
    def refuse_malformed_callbacks():
        if request.path != route or request.method != "POST":
            return None
        try:
            body = request.get_json(silent=True)
        except RequestEntityTooLarge:
            log.warning(
                "refused %s: body of %s bytes over the cap of %s", route, request.content_length, max_request_bytes
            )
            raise
        except RecursionError:
            why = f"the body nests deeper than {MAX_NESTING} levels"
        else:
            why = "the body is not JSON" if body is None else refusal(body, app.callback_map)
        if why:
            log.warning("refused %s: %s", route, why)
            abort(400, description=why)
        return None

    @server.errorhandler(DependencyException)
    def refuse_unknown_component_files(error):
        # Dash answers a script path of no registered library with a 500 and a traceback.
        log.warning("refused %s: %s", _quote(request.path), str(error).partition("\n")[0])
        return "No such component file.", 404
