"""NGSI-LD entities under ``/ngsi-ld/v1/``: the city's current state as FIWARE Smart Data Models, read-only.

``CrowdFlowObserved``: one per foot-traffic sensor, from its latest reading (people and occupancy, the
congestion flag of the crowding rule); never its fever count, which is health data. ``IssueReporting``:
one per open complaint, from its triage and route; never its words or anything of the person. No case
tracing data is read here at all. So the door is public, like Open311's reads.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from data.read.complaints import complaint_records
from data.read.foot import latest_readings
from engines.foot import CrowdingRule

PREFIX = "/ngsi-ld/v1"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CONTEXTS = {
    "CrowdFlowObserved": "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld",
    "IssueReporting": "https://raw.githubusercontent.com/smart-data-models/dataModel.IssueTracking/master/context.jsonld",
}
PROBLEMS = "https://uri.etsi.org/ngsi-ld/errors/"
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000  # NGSI-LD's usual page and the most one answer holds
EARTH_RADIUS_M = 6_371_008.8
# The properties ``q`` may ask about, per type, and how their values read.
QUERYABLE: dict[str, dict[str, type]] = {
    "CrowdFlowObserved": {"peopleCount": float, "occupancy": float, "congested": bool},
    "IssueReporting": {"category": str, "resolutionStatus": str, "departmentId": str, "areaServed": str},
}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le,
}  # fmt: skip
Q_TERM = re.compile(r"^([A-Za-z][A-Za-z0-9_]{0,63})(==|!=|>=|<=|>|<)(.{1,200})$")


class Problem(HTTPException):
    """A refused query, answered with NGSI-LD's ProblemDetails."""

    def __init__(self, title: str, detail: str, kind: str = "BadRequestData", code: int = 400):
        super().__init__(detail)
        self.code, self.title, self.kind = code, title, kind


def problem(code: int, kind: str, title: str, detail: str) -> Response:
    body = {"type": PROBLEMS + kind, "title": title, "status": code, "detail": detail}
    return Response(json.dumps(body, ensure_ascii=False), status=code, content_type="application/json")


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _point(lon: float, lat: float) -> dict:
    return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}


def _property(value: Any) -> dict:
    return {"type": "Property", "value": value}


def crowd_flows(readings: Mapping[str, Mapping[str, Any]], rule: CrowdingRule) -> list[dict]:
    """One CrowdFlowObserved per sensor, from its latest reading: the interval it counted and what it counted."""
    out = []
    for sensor, r in sorted(readings.items()):
        to_ms, from_ms = r["ts"], r["ts"] - r["interval_s"] * 1000
        entity = {
            "id": f"urn:ngsi-ld:CrowdFlowObserved:{sensor}",
            "type": "CrowdFlowObserved",
            "dateObserved": _property(f"{_iso(from_ms)}/{_iso(to_ms)}"),
            "dateObservedFrom": _property(_iso(from_ms)),
            "dateObservedTo": _property(_iso(to_ms)),
            "peopleCount": _property(r["people"]),
            "congested": _property(bool(rule.crowded(r["occupancy"], r["capacity"]))),
            "location": _point(r["lon"], r["lat"]),
            "areaServed": _property(r["community_id"]),
            "source": _property(f"citydeck foot-traffic sensor at {r['place_id']}"),
        }
        if r["occupancy"] >= 0:
            entity["occupancy"] = _property(r["occupancy"])
        out.append(entity)
    return out


def issues(rows: list[dict]) -> list[dict]:
    """One IssueReporting per open complaint: its category, status, place and dates; no words, no person."""
    out = []
    for r in sorted(rows, key=lambda r: r["complaint_id"]):
        if r["status"] != "open":
            continue
        entity = {
            "id": f"urn:ngsi-ld:IssueReporting:{r['complaint_id']}",
            "type": "IssueReporting",
            "category": _property(r["category"]),
            "resolutionStatus": _property("Assigned"),
            "location": _point(r["lon"], r["lat"]),
            "dateCreated": _property(_iso(r["opened_ms"])),
            "dateModified": _property(_iso(r["updated_ms"])),
            "reportId": _property(r["complaint_id"]),
            "areaServed": _property(r.get("community_id", "outside")),
        }
        if r["department"]:
            entity["departmentId"] = _property(r["department"])
        out.append(entity)
    return out


# ---------------------------------------------------------------------------- the query


def _value(kind: type, text: str):
    text = text.strip()
    if kind is bool:
        if text not in ("true", "false"):
            raise Problem("Bad q", f"{text[:40]!r} is not true or false")
        return text == "true"
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise Problem("Bad q", f"{text[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise Problem("Bad q", f"{text[:40]!r} is not a finite number")
        return value
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def query_filter(q: str, entity_type: str) -> Callable[[dict], bool]:
    """A filter from an NGSI-LD ``q`` of terms joined by ``;`` (and): ``attr==value``, ``!=``, ``<``, ``>``..."""
    allowed = QUERYABLE[entity_type]
    terms = []
    for term in q.split(";"):
        m = Q_TERM.match(term.strip())
        if m is None:
            raise Problem("Bad q", f"{term[:60]!r} is not 'attribute operator value'", "InvalidRequest")
        name, op, raw = m.groups()
        if name not in allowed:
            raise Problem("Bad q", f"{entity_type} can be queried by {', '.join(allowed)}, not {name!r}")
        value = _value(allowed[name], raw)
        if op not in ("==", "!=") and allowed[name] is not float:
            raise Problem("Bad q", f"{name} is compared with == or != only")
        terms.append((name, op, value))

    def keep(entity: dict) -> bool:
        for name, op, value in terms:
            if name not in entity:
                return False
            if not COMPARE[op](entity[name]["value"], value):
                return False
        return True

    return keep


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine, on the mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def geo_filter(georel: str | None, geometry: str | None, coordinates: str | None) -> Callable[[dict], bool] | None:
    """A filter from ``georel=near;maxDistance==N`` (or ``minDistance``), ``geometry=Point`` and
    ``coordinates=[lon,lat]``; None when no geo-query is asked."""
    if georel is None and geometry is None and coordinates is None:
        return None
    if georel is None or geometry is None or coordinates is None:
        raise Problem("Bad geo-query", "georel, geometry and coordinates come together")
    if geometry != "Point":
        raise Problem("Bad geo-query", f"geometry {geometry[:40]!r} is not served: only Point")
    relation, _, distance = georel.partition(";")
    m = re.fullmatch(r"(maxDistance|minDistance)==(\d{1,9}(?:\.\d{1,6})?)", distance)
    if relation != "near" or m is None:
        raise Problem("Bad geo-query", f"georel {georel[:60]!r} is not near;maxDistance==N or near;minDistance==N")
    try:
        point = json.loads(coordinates)
    except (ValueError, RecursionError):
        point = None
    if (
        not isinstance(point, list)
        or len(point) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in point)
        or abs(point[0]) > 180
        or abs(point[1]) > 90
    ):
        raise Problem("Bad geo-query", f"coordinates {coordinates[:60]!r} is not [longitude, latitude]")
    lon, lat, within = float(point[0]), float(point[1]), m.group(1) == "maxDistance"
    metres = float(m.group(2))

    def keep(entity: dict) -> bool:
        there = entity["location"]["value"]["coordinates"]
        d = distance_m(lon, lat, there[0], there[1])
        return d <= metres if within else d >= metres

    return keep


def _count(name: str, text: str | None, default: int, high: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) > high:
        raise Problem(f"Bad {name}", f"{name} {text[:20]!r} is not a whole number from 0 to {high}")
    return int(text)


# ---------------------------------------------------------------------------- the blueprint


def blueprint(deck, settings, reads) -> Blueprint:
    """The NGSI-LD entities of one dashboard app; ``reads``: the limit of public reads, a decorator."""
    bp = Blueprint("ngsi_ld", __name__, url_prefix=PREFIX)
    rule = CrowdingRule.of(settings)
    builders: dict[str, Callable[[], list[dict]]] = {
        "CrowdFlowObserved": lambda: crowd_flows(latest_readings(deck.reader), rule),
        "IssueReporting": lambda: issues(complaint_records(deck.reader, int(deck.clock() * 1000))),
    }

    @bp.route("/entities")
    @reads
    def entities():
        args = request.args
        entity_type = args.get("type")
        if not entity_type:
            raise Problem("Missing type", "this server answers entity queries by type: add type=...")
        limit = _count("limit", args.get("limit"), DEFAULT_LIMIT, MAX_LIMIT)
        offset = _count("offset", args.get("offset"), 0, 10**9)
        types = [t.strip() for t in entity_type.split(",")]
        keep_q = None
        if "q" in args:
            if len(types) != 1 or types[0] not in QUERYABLE:
                raise Problem("Bad q", "q needs exactly one type, CrowdFlowObserved or IssueReporting")
            keep_q = query_filter(args["q"], types[0])
        keep_near = geo_filter(args.get("georel"), args.get("geometry"), args.get("coordinates"))
        found = [e for t in types if t in builders for e in builders[t]()]
        found = [e for e in found if (keep_q is None or keep_q(e)) and (keep_near is None or keep_near(e))]
        page = [{**e, "@context": [CONTEXTS[e["type"]], CORE_CONTEXT]} for e in found[offset : offset + limit]]
        response = Response(json.dumps(page, ensure_ascii=False), content_type="application/ld+json")
        response.headers["NGSILD-Results-Count"] = str(len(found))
        return response

    @bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def nothing_here(rest: str):
        if rest == "entities":
            raise Problem("Read-only", "this server's entities are read-only", "OperationNotSupported", 405)
        raise Problem("Not found", f"no NGSI-LD resource {rest[:60]!r} here", "ResourceNotFound", 404)

    @bp.errorhandler(HTTPException)
    def refused(error: HTTPException):
        if isinstance(error, Problem):
            return problem(error.code, error.kind, error.title, error.description or "")
        kind = {404: "ResourceNotFound", 405: "OperationNotSupported", 429: "TooManyRequests"}.get(error.code or 400)
        return problem(error.code or 400, kind or "BadRequestData", error.name, error.description or error.name)

    # By code too: a handler the app keeps for a code (the door's 429) would otherwise answer first.
    for code in (400, 404, 405, 413, 429):
        bp.register_error_handler(code, refused)

    return bp
