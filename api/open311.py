"""The Open311 GeoReport v2 API under ``/open311/v2/``: the city's complaint taxonomy as services, citizen
reports posted as complaint events, and the complaints' status as the aggregator triaged and routed them.

Every answer comes as JSON or XML (``.json`` / ``.xml``); every refusal in the specification's error
format with its 4xx. A post's contact fields (email, names, phone, device and account ids) are read
and dropped: they never reach the event, so no reader can show them. The complaint's words are kept
for the operators who may read them and are not shown here: a GET is public.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, request
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from werkzeug.exceptions import HTTPException

from data.intake import file_once
from data.keys import Keys
from data.read.complaints import complaint_records
from data.schema import CHANNELS_COMPLAINTS, COMPLAINT_CATEGORIES, city_bounds, decode_batch, encode
from engines.complaints import RuleSet, load_rules
from settings import SettingsError
from views.geography import name_key
from views.privacy import masked_text

log = logging.getLogger("citydeck.open311")

PREFIX = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
FORMATS = {"json": "application/json; charset=utf-8", "xml": "text/xml; charset=utf-8"}
DOOR = "open311"  # the event's producer, and the prefix of the ids it files
WINDOW_DAYS = 90  # the specification's default and widest window of GET requests
MAX_ADDRESS = 500  # characters of an address_string
MAX_URL = 2000  # characters of a media_url
MAX_KEYWORDS = 12  # keywords listed per service
# The contact fields a post may carry: read, counted in the post's digest, never kept.
CONTACT_FIELDS = ("email", "device_id", "account_id", "first_name", "last_name", "phone")
# Text a client may send: no control characters but line breaks and tabs (XML could not carry them back).
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
MIN_KEY_LENGTH = 16


class Refused(HTTPException):
    """A request answered with a 4xx and the specification's error body."""

    def __init__(self, code: int, description: str):
        super().__init__(description)
        self.code = code


# ---------------------------------------------------------------------------- keys


def api_keys(spec: str) -> dict[str, str]:
    """The 'label=key' pairs of CITYDECK_OPEN311_API_KEYS as label -> key; a malformed pair is an error."""
    out = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        label, eq, key = pair.partition("=")
        if not eq or not label.strip() or len(key.strip()) < MIN_KEY_LENGTH:
            raise SettingsError(
                f"CITYDECK_OPEN311_API_KEYS: {label.strip() or '(no label)'!r} is not 'label=key' with a key of"
                f" {MIN_KEY_LENGTH}+ characters"
            )
        out[label.strip()] = key.strip()
    return out


def key_label(keys: Mapping[str, str], given: str) -> str | None:
    """The label of the key given, or None; every key is compared, in constant time, whatever matches."""
    found = None
    for label, key in keys.items():
        if hmac.compare_digest(given.encode(), key.encode()):
            found = label
    return found


# ---------------------------------------------------------------------------- formats


def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return CONTROL.sub("", str(value))


def _xml(top: ElementTree.Element) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(top, encoding="unicode")


def _xml_fill(element: ElementTree.Element, row: Mapping[str, Any]) -> None:
    for name, value in row.items():
        child = ElementTree.SubElement(element, name)
        if isinstance(value, Mapping):
            _xml_fill(child, value)
        elif isinstance(value, list):
            singular = {"keywords": "keyword", "formats": "format", "endpoints": "endpoint", "attributes": "attribute",
                        "values": "value"}  # fmt: skip
            for v in value:
                grandchild = ElementTree.SubElement(child, singular.get(name, "item"))
                if isinstance(v, Mapping):
                    _xml_fill(grandchild, v)
                else:
                    grandchild.text = _xml_text(v)
        else:
            child.text = _xml_text(value)


def answer(fmt: str, root: str, item: str, rows: Sequence[Mapping[str, Any]], status: int = 200) -> Response:
    """Rows as the specification lays them out: a JSON list, or an XML root of items."""
    if fmt == "xml":
        top = ElementTree.Element(root)
        for row in rows:
            _xml_fill(ElementTree.SubElement(top, item), row)
        body = _xml(top)
    else:
        # Keywords travel as one comma-separated string in JSON, as a list of elements in XML.
        rows = [{k: (", ".join(v) if k == "keywords" else v) for k, v in r.items()} for r in rows]
        body = json.dumps(rows, ensure_ascii=False)
    return Response(body, status=status, content_type=FORMATS[fmt])


def one(fmt: str, root: str, body: Mapping[str, Any]) -> Response:
    """One object (discovery, a service definition): a JSON object, or an XML root holding its members."""
    if fmt == "xml":
        top = ElementTree.Element(root)
        _xml_fill(top, body)
        return Response(_xml(top), content_type=FORMATS[fmt])
    return Response(json.dumps(body, ensure_ascii=False), content_type=FORMATS[fmt])


def refusal(code: int, description: str, fmt: str) -> Response:
    """The specification's error body: ``[{"code": 400, "description": "..."}]``, or ``<errors>`` in XML."""
    return answer(fmt, "errors", "error", [{"code": code, "description": description}], status=code)


def _format_of(path: str) -> str:
    """The format a path asks for (its extension), JSON when it names none or another."""
    return "xml" if path.rstrip("/").endswith(".xml") else "json"


# ---------------------------------------------------------------------------- services


def services(rules: RuleSet) -> list[dict[str, Any]]:
    """One service per category of the city's complaint taxonomy: its group is the department that owns it."""
    taxonomy, routing = rules.taxonomy, rules.routing
    out = []
    for name in COMPLAINT_CATEGORIES:
        category = taxonomy.category(name)
        owners = routing.owners.get(name, ())
        group = routing.departments[owners[0]] if owners else "city services"
        out.append(
            {
                "service_code": name,
                "service_name": category.label,
                "description": f"Report {category.label}; first handled at {routing.competent[name]} level.",
                "metadata": True,
                "type": "realtime",
                "keywords": list(category.keywords[:MAX_KEYWORDS]),
                "group": group,
            }
        )
    return out


CHANNEL_NAMES = {"hotline": "a call to the city hotline, relayed", "app": "a mobile app", "web": "a web form",
                 "wechat": "a WeChat mini-program"}  # fmt: skip


def attributes() -> list[dict[str, Any]]:
    """The questions every service asks besides the specification's fields: how the report came in (the
    complaint's channel, which the dashboards count), so a call centre relaying calls says so."""
    return [
        {
            "variable": True,
            "code": "CHANNEL",
            "datatype": "singlevaluelist",
            "required": False,
            "datatype_description": "one of the keys; without it, 'app' when a device_id is given, else 'web'",
            "order": 1,
            "description": "How did the citizen reach the city?",
            "values": [{"key": c, "name": CHANNEL_NAMES.get(c, c)} for c in CHANNELS_COMPLAINTS],
        }
    ]


# ---------------------------------------------------------------------------- requests out


def _when(ms: int | float | None, tz: ZoneInfo) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="seconds")


def shown_request(
    row: Mapping[str, Any], tz: ZoneInfo, parents: Mapping[str, tuple[str, str]], rules: RuleSet
) -> dict[str, Any]:
    """A complaint as an Open311 service request: no words, no contact; where it is and who holds it.

    ``parents``: community id -> (neighbourhood id, district id), to name the office of the level holding it.
    """
    routing = rules.routing
    label = rules.taxonomy.category(row["category"]).label
    if row["department"]:
        agency = routing.departments.get(row["department"], row["department"])
    else:
        community = row.get("community_id", "")
        if community in parents:  # not outside the city
            neighbourhood, district = parents[community]
            area = {"community": community, "neighbourhood": neighbourhood, "district": district}[row["level"]]
            agency = f"{row['level']} office ({area})"
        else:
            agency = f"{row['level']} office"
    is_open = row["status"] == "open"
    if is_open:
        notes = f"P{row['priority']} {label}; with {agency} since {_when(row['entered_ms'], tz)}"
    else:
        notes = f"P{row['priority']} {label}; {row['status']} with {agency} on {_when(row['updated_ms'], tz)}"
    if row["escalations"]:
        notes += f"; escalated {row['escalations']} time{'s' if row['escalations'] != 1 else ''}"
    return {
        "service_request_id": row["complaint_id"],
        "status": "open" if is_open else "closed",
        "status_notes": notes,
        "service_name": label,
        "service_code": row["category"],
        "agency_responsible": agency,
        "service_notice": "",
        "requested_datetime": _when(row["opened_ms"], tz),
        "updated_datetime": _when(row["updated_ms"], tz),
        "expected_datetime": _when(row["deadline_ms"], tz) if is_open else "",
        "address": masked_text(row.get("address", "")),  # a phone number typed into it is not shown
        "address_id": "",
        "zipcode": "",
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": row.get("media_url", ""),
    }


def _parsed_time(name: str, text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(400, f"{name} {text[:40]!r} is not an ISO 8601 date and time") from None
    if when.tzinfo is None:
        raise Refused(400, f"{name} {text[:40]!r} has no time zone (add Z or an offset such as +08:00)")
    return when


def _choices(name: str, text: str, allowed: Sequence[str]) -> list[str]:
    given = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in given if v not in allowed]
    if unknown or not given:
        raise Refused(400, f"{name} {(unknown or [text])[0][:40]!r} is not one of {', '.join(allowed)}")
    return given


def _count(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise Refused(400, f"{name} {text[:20]!r} is not a whole number from {low} to {high}")
    return int(text)


def selected(rows: list[dict], args: Mapping[str, str], now_ms: int, page_size: int) -> list[dict]:
    """The complaints a GET requests asks for, newest first: by ids (then nothing else counts), else by
    service codes, status and requested time (the last 90 days by default, 90 days at most), a page of them."""
    if args.get("service_request_id"):
        ids = {v.strip() for v in args["service_request_id"].split(",") if v.strip()}
        return sorted((r for r in rows if r["complaint_id"] in ids), key=lambda r: -r["opened_ms"])
    codes = _choices("service_code", args["service_code"], COMPLAINT_CATEGORIES) if "service_code" in args else None
    statuses = _choices("status", args["status"], ("open", "closed")) if "status" in args else None
    end = _parsed_time("end_date", args["end_date"]) if "end_date" in args else None
    start = _parsed_time("start_date", args["start_date"]) if "start_date" in args else None
    # A start alone searches up to now, as its words say: one more than 90 days back is refused, not emptied.
    end = end or datetime.fromtimestamp(now_ms / 1000, UTC)
    start = start or end - timedelta(days=WINDOW_DAYS)
    if start > end:
        raise Refused(400, "start_date is after end_date")
    if end - start > timedelta(days=WINDOW_DAYS):
        raise Refused(400, f"start_date to end_date spans more than {WINDOW_DAYS} days")
    page = _count("page", args.get("page"), 1, 1, 10**6)
    size = _count("page_size", args.get("page_size"), page_size, 1, page_size)
    low, high = start.timestamp() * 1000, end.timestamp() * 1000
    chosen = [
        r
        for r in rows
        if low <= r["opened_ms"] <= high
        and (codes is None or r["category"] in codes)
        and (statuses is None or ("open" if r["status"] == "open" else "closed") in statuses)
    ]
    chosen.sort(key=lambda r: (-r["opened_ms"], r["complaint_id"]))
    return chosen[(page - 1) * size : page * size]


# ---------------------------------------------------------------------------- requests in


def _text_value(form: Mapping[str, str], name: str, limit: int) -> str | None:
    value = form.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > limit:
        raise Refused(400, f"{name} is longer than {limit:,} characters")
    if CONTROL.search(value):
        raise Refused(400, f"{name} holds control characters")
    return value.strip()


def _coordinate(form: Mapping[str, str], name: str, limit: float) -> float | None:
    text = form.get(name)
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(400, f"{name} {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or abs(value) > limit:
        raise Refused(400, f"{name} {text[:40]!r} is not within ±{limit:g} degrees")
    return value


def report(form: Mapping[str, str], max_text: int, named_points: Mapping[str, tuple[float, float]]) -> dict[str, Any]:
    """What a POST requests files: the service, the point and what was said; raises ``Refused`` on bad input.

    With no lat and long, an ``address_string`` that names a place or community of the city (``named_points``,
    by ``name_key``) is placed there.
    """
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Refused(400, "service_code is required")
    if code not in COMPLAINT_CATEGORIES:
        raise Refused(400, f"service_code {code[:40]!r} is not a service of this city (see services.json)")
    asked = {a["code"]: a for a in attributes()}
    unknown = sorted(k for k in form if k.startswith("attribute[") and k[len("attribute[") : -1] not in asked)
    if unknown:
        raise Refused(400, f"service {code} has no attribute {unknown[0][:40]!r} (its attributes: {', '.join(asked)})")
    channel = (form.get("attribute[CHANNEL]") or "").strip() or ("app" if form.get("device_id") else "web")
    if channel not in CHANNELS_COMPLAINTS:
        raise Refused(400, f"attribute[CHANNEL] {channel[:40]!r} is not one of {', '.join(CHANNELS_COMPLAINTS)}")
    lat, lon = _coordinate(form, "lat", 90), _coordinate(form, "long", 180)
    address = _text_value(form, "address_string", MAX_ADDRESS)
    if (lat is None) != (lon is None):
        raise Refused(400, "lat and long come together: one was given without the other")
    if lat is None and address is not None and name_key(address) in named_points:
        lon, lat = named_points[name_key(address)]
    elif lat is None:
        if address:
            raise Refused(400, f"address_string {address[:60]!r} names no place or community of this city that it"
                          " can place (one name, one place): give lat and long")  # fmt: skip
        given = "an address_id" if form.get("address_id") else "no location"
        raise Refused(400, f"lat and long are required (or an address_string naming a place of the city); {given}"
                      " was given")  # fmt: skip
    description = _text_value(form, "description", max_text)
    media = _text_value(form, "media_url", MAX_URL)
    if media is not None:
        parts = urlsplit(media)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Refused(400, "media_url is not an http or https URL")
    for name in CONTACT_FIELDS:
        _text_value(form, name, MAX_ADDRESS)  # checked like the rest, then dropped
    return {"service_code": code, "lat": lat, "lon": lon, "address": address, "description": description,
            "media_url": media, "channel": channel}  # fmt: skip


def post_digest(label: str, form: Mapping[str, str], idempotency_key: str | None) -> str:
    """What makes two posts the same: the client's Idempotency-Key header, else everything it sent."""
    if idempotency_key:
        basis = ["key", idempotency_key]
    else:
        basis = ["form", sorted((k, v) for k, v in form.items() if k != "api_key")]
    return hashlib.sha256(json.dumps([label, basis], ensure_ascii=False).encode()).hexdigest()


# ---------------------------------------------------------------------------- the blueprint


def blueprint(deck, settings, limiter, reads) -> Blueprint:
    """The Open311 API of one dashboard app: its routes, the key check, the rate limits and the refusals.

    ``reads``: the limit of public reads, a decorator."""
    bp = Blueprint("open311", __name__, url_prefix=PREFIX)
    keys_by_label = api_keys(settings.open311_api_keys)
    tz = ZoneInfo(settings.city_timezone)
    stream_keys = Keys(settings.key_prefix)
    rules = load_rules(settings.rules)  # the city's own complaint rules, as the workers triage and route with

    def given_key() -> str:
        return str(request.form.get("api_key") or request.headers.get("X-API-Key") or "")

    def limit_key() -> str:
        # A valid key is limited on its own; posts with none share their address's allowance.
        try:
            label = key_label(keys_by_label, given_key())
        except HTTPException:
            label = None  # a body too large: refused by the view with its own reason
        return f"key:{label}" if label else f"address:{get_remote_address()}"

    @bp.before_request
    def cap_the_body():
        request.max_content_length = settings.open311_max_body_bytes
        # A body of unsaid length (chunked) would be read before its size is known: its sender says it first.
        if request.method == "POST" and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise Refused(411, "send the body with its Content-Length, not chunked")

    @bp.route("/discovery.<fmt>")
    @reads
    def discovery(fmt: str):
        fmt = _known_format(fmt)
        endpoint = {"specification": SPEC, "url": request.host_url.rstrip("/") + PREFIX, "changeset": "2026-12-04",
                    "type": "production", "formats": ["text/xml", "application/json"]}  # fmt: skip
        body = {"changeset": "2026-12-04", "contact": "the city's complaint office", "key_service": "ask the city"
                " for a key (CITYDECK_OPEN311_API_KEYS)", "endpoints": [endpoint]}  # fmt: skip
        return one(fmt, "discovery", body)

    @bp.route("/services.<fmt>")
    @reads
    def service_list(fmt: str):
        return answer(_known_format(fmt), "services", "service", services(rules))

    @bp.route("/services/<code>.<fmt>")
    @reads
    def service_definition(code: str, fmt: str):
        fmt = _known_format(fmt)
        if code not in COMPLAINT_CATEGORIES:
            raise Refused(404, f"no service {code[:40]!r}")
        return one(fmt, "service_definition", {"service_code": code, "attributes": attributes()})

    @bp.route("/requests/<request_id>.<fmt>")
    @reads
    def one_request(request_id: str, fmt: str):
        fmt = _known_format(fmt)
        rows = complaint_records(deck.reader, _now_ms(), [request_id])
        if not rows:
            raise Refused(404, f"no service request {request_id[:40]!r} (a new one shows once triaged, in seconds)")
        return answer(
            fmt, "service_requests", "request", [shown_request(rows[0], tz, deck.geo.community_parents, rules)]
        )

    @bp.route("/requests.<fmt>", methods=["GET", "POST"])
    @limiter.limit(settings.open311_limit, key_func=limit_key, methods=["POST"], scope="open311-post")
    @reads
    def requests(fmt: str):
        fmt = _known_format(fmt)
        if request.method == "GET":
            rows = complaint_records(deck.reader, _now_ms())
            chosen = selected(rows, request.args, _now_ms(), settings.open311_page_size)
            return answer(
                fmt,
                "service_requests",
                "request",
                [shown_request(r, tz, deck.geo.community_parents, rules) for r in chosen],
            )
        form = request.form  # read before the key: a body over the cap is a 413 whatever the key
        label = key_label(keys_by_label, given_key())
        if label is None:
            log.warning("open311: refused a post from %s: no valid api_key", get_remote_address())
            raise Refused(403, "api_key is missing or not valid")
        filed = report(form, settings.max_text_length, deck.geo.named_points)
        now_ms = _now_ms()
        event = encode(
            "complaint",
            src=DOOR,
            seq=0,
            ts=now_ms,
            complaint_id="",  # numbered when filed
            channel=filed["channel"],
            text=filed["description"] or rules.taxonomy.category(filed["service_code"]).label,
            category=filed["service_code"],
            address=filed["address"],
            media_url=filed["media_url"],
            lon=filed["lon"],
            lat=filed["lat"],
        )
        refused = dead_letter_reason(event, now_ms)
        if refused:
            raise Refused(400, f"the request cannot be filed: {refused}")
        digest = post_digest(label, form, request.headers.get("Idempotency-Key"))
        request_id, new = file_once(
            deck.client, stream_keys, "complaints", DOOR, event, post_digest=digest, id_field="complaint_id",
            remember_s=settings.open311_retry_window_s, maxlen=settings.stream_maxlen,
        )  # fmt: skip
        if new:
            log.info("open311: %s filed %s (%s)", label, request_id, filed["service_code"])
        notice = "filed; triaged and routed within seconds" if new else "already filed: the same request as before"
        rows = [{"service_request_id": request_id, "service_notice": notice, "account_id": ""}]
        return answer(fmt, "service_requests", "request", rows, status=201 if new else 200)

    @bp.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    @bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def nothing_here(rest: str):
        raise Refused(404, f"no Open311 resource {rest[:60]!r} for {request.method}")

    def _now_ms() -> int:
        return int(deck.clock() * 1000)

    def dead_letter_reason(event: Mapping[str, str], now_ms: int) -> str | None:
        """Why the workers would dead-letter this event (a point at (0, 0) or outside the city, ...), judged
        by the schema's one decoder as they judge it, or None: a request accepted here is one they fold."""
        numbered = {**event, "complaint_id": "open311-0"}  # its number comes when it is filed
        _decoded, rejected = decode_batch(
            "complaints",
            [{k.encode(): v.encode() for k, v in numbered.items()}],
            now_ms=now_ms,
            future_tolerance_ms=settings.future_tolerance_seconds * 1000,
            max_text_length=settings.max_text_length,
            bounds=city_bounds(deck.geo.bounds, settings.city_margin_km),
        )
        return rejected[0].reason if rejected else None

    @bp.errorhandler(RateLimitExceeded)
    def too_many(error: RateLimitExceeded):
        log.warning("open311: rate limit reached (%s) from %s", error.description, get_remote_address())
        what = "service requests posted" if request.method == "POST" else "reads"
        return refusal(429, f"too many {what} ({error.description}): wait and try again", _format_of(request.path))

    def refused(error: HTTPException):
        return refusal(error.code or 400, _described(error), _format_of(request.path))

    # By code too: a handler the app keeps for a code (Dash's, the door's) would otherwise answer first.
    for code in (400, 403, 404, 405, 413):
        bp.register_error_handler(code, refused)
    bp.register_error_handler(HTTPException, refused)

    return bp


def _known_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise Refused(404, f"format {fmt[:20]!r} is not served: ask for .json or .xml")
    return fmt


def _described(error: HTTPException) -> str:
    if isinstance(error, Refused):
        return error.description or "refused"
    if error.code == 413:
        return "the body is larger than this API reads"
    if error.code == 400:
        return "the request is malformed (its body or query could not be read)"
    return error.description or error.name
